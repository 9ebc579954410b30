#!/usr/bin/env bash
# integration/vm/v2-shim.sh — containerd-shim-berth-v2 on a pure cgroup v2 host, through a
# real containerd: the OOM event from the memory.events watcher and io.containerd.cgroups.v2
# metrics. Runs INSIDE the guest of run.sh (v2-slice.sh starts it through v2-guest.sh); it
# refuses to run anywhere but on a cgroup v2 host.
#
# A private containerd (the host's binary; config, root, state and sockets under a fresh
# directory in the guest's /tmp tmpfs) with containerd-shim-berth-v2 on its PATH, the busybox
# image imported from an OCI archive built on the host, then ctr:
#   - a memory hog as init under --memory-limit: exit 137, /tasks/oom before /tasks/exit;
#   - a running task whose exec'd hog is OOM-killed: exec exits 137, the task keeps running,
#     and /tasks/oom arrives while it runs (only the shim's inotify watcher on memory.events
#     reports that: the counter is re-read only when init exits);
#   - `ctr task metrics` of the running task decodes as io.containerd.cgroups.v2.Metrics
#     (ctr prints the v2 table only for that type) with memory usage and pids > 0, the limit
#     and memory.events' oom_kill as in the cgroup's own files;
#   - the shared task cgroup (docs/shim.md, "Task cgroup"): two containers with
#     berth.task.id/cpu/memory share /berth-tasks/<ns>/<group> (cpu.max, memory.max, their
#     cgroups below it), an exec'd hog is OOM-killed by the task's limit, the last delete
#     removes it; a bad annotation fails ctr run naming it and leaves no cgroup; the CRI
#     sandbox-id/-memory/-cpu-quota/-cpu-period annotations do the same for a pod.
#
# Env (required): BERTH_SHIM     path of containerd-shim-berth-v2
#                 BERTH_V2_IMAGE OCI archive of localhost/berth/busybox:latest
# Output: TAP-ish ("ok N - ...", "not ok N - ..." with "#" detail lines, "1..N"), then
# "shim-v2: N passed, N failed" last. Exit status 0 only if every check passed. Every ctr
# call has a hard timeout; everything it started is stopped on exit.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

N=0 PASSED=0 FAILED=0 T0=$(date +%s)
# Each result line ends with the seconds since the start: " [12s]".
ok() { N=$((N + 1)) PASSED=$((PASSED + 1)); echo "ok $N - $1 [$(($(date +%s) - T0))s]"; }
not_ok() {
	N=$((N + 1)) FAILED=$((FAILED + 1))
	echo "not ok $N - $1 [$(($(date +%s) - T0))s]"
	shift
	local l
	for l in "$@"; do printf '%s\n' "$l" | sed 's/^/#   /'; done
}
finish() {
	echo "1..$N"
	echo "shim-v2: $PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ] && [ "$N" -gt 0 ]
}
bail() { not_ok "$@"; finish; exit 1; }

[ -f /sys/fs/cgroup/cgroup.controllers ] || bail "cgroup v2 host" "/sys/fs/cgroup is not cgroup2: run through integration/vm/v2-slice.sh"
[ -x "${BERTH_SHIM:-}" ] || bail "shim binary" "BERTH_SHIM=${BERTH_SHIM:-} is not an executable"
[ -s "${BERTH_V2_IMAGE:-}" ] || bail "image archive" "BERTH_V2_IMAGE=${BERTH_V2_IMAGE:-} is missing"
for tool in containerd ctr jq pgrep; do
	command -v "$tool" >/dev/null || bail "$tool installed" "no $tool on PATH (v2-slice.sh installs containerd, jq and procps on the host)"
done

NS=berth-v2
RT=io.containerd.berth.v2
IMG=localhost/berth/busybox:latest
# Short: the shim's socket is $D/s/<sha256>, and unix socket paths end at 108 bytes.
D=$(mktemp -d /tmp/berth-v2c.XXXXXX)
EVENTS_PID=
cleanup() {
	set +e
	if [ -n "${CTRD_SOCK:-}" ] && [ -S "$CTRD_SOCK" ]; then
		for t in $(c task ls -q 2>/dev/null); do c task kill -s SIGKILL "$t" >/dev/null 2>&1; done
		for t in $(c task ls -q 2>/dev/null); do
			for _ in $(seq 50); do c task delete "$t" >/dev/null 2>&1 && break; sleep 0.2; done
		done
		for ct in $(c container ls -q 2>/dev/null); do c container delete "$ct" >/dev/null 2>&1; done
	fi
	[ -n "$EVENTS_PID" ] && kill "$EVENTS_PID" 2>/dev/null
	containerd_down "$D"
	rm -rf "$D"
}
trap cleanup EXIT

# c ARGS: ctr against the private containerd, never longer than 90 s.
c() { timeout -k 5 90 ctr --address "$CTRD_SOCK" --namespace "$NS" "$@"; }
task_status() { c task ls 2>/dev/null | awk -v id="$1" '$1==id {print $3}'; }
# Waits are deadlines ($SECONDS), not counts: under TCG each try spawns processes that take
# long enough for 300 tries of "0.2 s" to last 5 minutes, and a failing check would eat the
# part's whole timeout (and its summary line with it).
wait_status() { # ID STATUS: up to 60 s
	local end=$((SECONDS + 60))
	until [ "$(task_status "$1")" = "$2" ]; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.2
	done
}
# line number of the first event TOPIC of container ID in the events log, waiting up to 60 s
event_line() {
	local n end=$((SECONDS + 60))
	while :; do
		n=$(grep -n " $1 " "$D/events.log" 2>/dev/null | grep -F "\"container_id\":\"$2\"" | head -n 1 | cut -d: -f1)
		[ -n "$n" ] && { echo "$n"; return 0; }
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.2
	done
}
events_of() { grep -F "\"container_id\":\"$1\"" "$D/events.log" 2>/dev/null | cut -d' ' -f5-; }

# containerd finds io.containerd.berth.v2 as containerd-shim-berth-v2 on its PATH.
mkdir -p "$D/bin"
ln -s "$BERTH_SHIM" "$D/bin/containerd-shim-berth-v2"
t0=$(date +%s)
# containerd_up calls die when containerd exits or does not answer (60 s here, under TCG).
die() { bail "private containerd answers" "$*" "$(tail -n 20 "$D/containerd.log" 2>/dev/null)"; }
PATH="$D/bin:$PATH" CTRD_WAIT_TRIES=600 containerd_up "$D"
ok "private containerd $(containerd --version | awk '{print $3}') answers ($(($(date +%s) - t0)) s)"
if out=$(c images import --base-name "${IMG%:*}" "$BERTH_V2_IMAGE" 2>&1); then
	ok "busybox image imported"
else
	bail "busybox image imported" "$out"
fi
timeout -k 5 600 ctr --address "$CTRD_SOCK" --namespace "$NS" events >"$D/events.log" 2>&1 &
EVENTS_PID=$!
RUN=(--runtime "$RT" --fifo-dir "$D/fifo")

# --- init OOM-killed: exit 137, TaskOOM before TaskExit --------------------------------------
code=0
out=$(c run --rm "${RUN[@]}" --memory-limit 33554432 "$IMG" v2-oom tail /dev/zero </dev/null 2>&1) || code=$?
if [ "$code" = 137 ]; then
	ok "memory hog under --memory-limit 32 MiB exits 137"
else
	not_ok "memory hog under --memory-limit 32 MiB exits 137" "exit $code (124: not killed in 90 s)" "$out"
fi
oom=$(event_line /tasks/oom v2-oom)
exit_line=$(event_line /tasks/exit v2-oom)
if [ -n "$oom" ] && [ -n "$exit_line" ] && [ "$oom" -lt "$exit_line" ]; then
	ok "/tasks/oom for the OOM-killed init, before its /tasks/exit"
else
	not_ok "/tasks/oom for the OOM-killed init, before its /tasks/exit" "oom at line ${oom:-none}, exit at line ${exit_line:-none}" "$(events_of v2-oom)"
fi

# --- a running task: v2 cgroup, exec OOM seen by the watcher, v2 metrics ---------------------
LIMIT=50331648 # 48 MiB
CG=/sys/fs/cgroup/$NS/v2-run
if out=$(c run -d "${RUN[@]}" --memory-limit "$LIMIT" "$IMG" v2-run sh -c 'sleep 600 & wait' </dev/null 2>&1) &&
	wait_status v2-run RUNNING; then
	ok "detached task running"
else
	bail "detached task running" "status $(task_status v2-run)" "$out"
fi
if [ "$(cat "$CG/memory.max" 2>&1)" = "$LIMIT" ] && grep -q '^oom_kill 0$' "$CG/memory.events" 2>/dev/null; then
	ok "its cgroup $CG: memory.max $LIMIT, oom_kill 0"
else
	not_ok "its cgroup $CG: memory.max $LIMIT, oom_kill 0" "memory.max: $(cat "$CG/memory.max" 2>&1)" "$(cat "$CG/memory.events" 2>&1)"
fi

code=0
out=$(c task exec --exec-id hog v2-run tail /dev/zero </dev/null 2>&1) || code=$?
if [ "$code" = 137 ] && [ "$(task_status v2-run)" = RUNNING ]; then
	ok "exec'd memory hog exits 137, the task keeps running"
else
	not_ok "exec'd memory hog exits 137, the task keeps running" "exec exit $code, task $(task_status v2-run)" "$out"
fi
if oom=$(event_line /tasks/oom v2-run) && [ "$(task_status v2-run)" = RUNNING ]; then
	ok "/tasks/oom for the running task (memory.events watcher)"
else
	not_ok "/tasks/oom for the running task (memory.events watcher)" "task $(task_status v2-run); events:" "$(events_of v2-run)"
fi

table=$(c task metrics v2-run 2>&1)
metric() { echo "$table" | awk -v k="$1" '$1==k {print $2}'; }
usage=$(metric memory.usage) limit=$(metric memory.usage_limit) pids=$(metric pids.current)
if [ -n "$(metric cpu.usage_usec)" ] && [ -z "$(metric memory.usage_in_bytes)" ] &&
	[ "${usage:-0}" -gt 0 ] 2>/dev/null && [ "${pids:-0}" -gt 0 ] 2>/dev/null && [ "$limit" = "$LIMIT" ]; then
	ok "ctr task metrics: io.containerd.cgroups.v2.Metrics, memory.usage $usage, pids.current $pids, limit $limit"
else
	not_ok "ctr task metrics: io.containerd.cgroups.v2.Metrics with memory and pids > 0" "$table"
fi
json=$(c task metrics --format json v2-run 2>&1)
want_kills=$(awk '$1=="oom_kill" {print $2}' "$CG/memory.events" 2>/dev/null)
got_kills=$(echo "$json" | jq -r '.memory_events.oom_kill // 0' 2>/dev/null)
got_pids=$(echo "$json" | jq -r '.pids.current // 0' 2>/dev/null)
if [ "${want_kills:-0}" -ge 1 ] && [ "$got_kills" = "$want_kills" ] && [ "$got_pids" = "$(cat "$CG/pids.current" 2>/dev/null)" ]; then
	ok "metrics carry memory.events (oom_kill $got_kills) and pids.current $got_pids as in the cgroup"
else
	not_ok "metrics carry memory.events and pids.current as in the cgroup" \
		"cgroup: oom_kill ${want_kills:-?} pids.current $(cat "$CG/pids.current" 2>&1); metrics: oom_kill $got_kills pids $got_pids" \
		"$(echo "$json" | head -n 60)"
fi

c task kill -s SIGKILL v2-run >/dev/null 2>&1
if wait_status v2-run STOPPED && c task delete v2-run >/dev/null 2>&1 && c container delete v2-run >/dev/null 2>&1 &&
	[ ! -e "$CG" ]; then
	ok "killed and deleted: cgroup removed"
else
	not_ok "killed and deleted: cgroup removed" "task $(task_status v2-run); $(ls -d "$CG" 2>&1)"
fi
# --- the shared task cgroup: berth.task.* annotations -----------------------------------------
# Two containers of one group share /berth-tasks/<namespace>/<group> (docs/shim.md, "Task
# cgroup"): its cpu.max and memory.max come from the annotations, their cgroups are below it.
TASK=v2task
TCG=/sys/fs/cgroup/berth-tasks/$NS/$TASK
TANN=(--annotation "berth.task.id=$TASK" --annotation berth.task.cpu=512 --annotation berth.task.memory=64)
task_pid() { c task ls 2>/dev/null | awk -v id="$1" '$1==id {print $2}'; }
out=
for t in v2-ta v2-tb; do
	out+=$(c run -d "${RUN[@]}" "${TANN[@]}" "$IMG" "$t" sh -c 'sleep 600 & wait' </dev/null 2>&1) || out+=" (ctr run $t failed)"
done
if wait_status v2-ta RUNNING && wait_status v2-tb RUNNING; then
	ok "two tasks with berth.task.id=$TASK, cpu 512, memory 64 running"
else
	bail "two tasks with berth.task.id=$TASK, cpu 512, memory 64 running" "v2-ta $(task_status v2-ta), v2-tb $(task_status v2-tb)" "$out"
fi
if [ "$(cat "$TCG/cpu.max" 2>&1)" = "50000 100000" ] && [ "$(cat "$TCG/memory.max" 2>&1)" = 67108864 ]; then
	ok "task cgroup $TCG: cpu.max 50000 100000, memory.max 67108864"
else
	not_ok "task cgroup $TCG: cpu.max 50000 100000, memory.max 67108864" \
		"cpu.max: $(cat "$TCG/cpu.max" 2>&1)" "memory.max: $(cat "$TCG/memory.max" 2>&1)" "$(ls /sys/fs/cgroup/berth-tasks/$NS 2>&1)"
fi
bad=
for t in v2-ta v2-tb; do
	pid=$(task_pid "$t")
	cg=$(cat "/proc/${pid:-0}/cgroup" 2>&1)
	[ "$cg" = "0::/berth-tasks/$NS/$TASK/$t" ] || bad+="$t (pid ${pid:-?}): $cg; "
done
if [ -z "$bad" ] && [ -z "$(cat "$TCG/cgroup.procs" 2>&1)" ]; then
	ok "both inits' /proc/<pid>/cgroup are 0::/berth-tasks/$NS/$TASK/<id>, none in the task cgroup itself"
else
	not_ok "both inits' /proc/<pid>/cgroup are below the task cgroup" "$bad" "task cgroup's own procs: $(cat "$TCG/cgroup.procs" 2>&1)"
fi
# v2-ta has no memory limit of its own: the task's 64 MiB kills the hog (bounded in time, so a
# missing limit fails the check with 143 rather than eating the guest's memory for 90 s).
code=0
out=$(c task exec --exec-id hog v2-ta timeout 30 tail /dev/zero </dev/null 2>&1) || code=$?
task_kills=$(awk '$1=="oom_kill" {print $2}' "$TCG/memory.events" 2>/dev/null)
if [ "$code" = 137 ] && [ "$(cat "$TCG/v2-ta/memory.max" 2>&1)" = max ] && [ "${task_kills:-0}" -ge 1 ] &&
	[ "$(task_status v2-ta)" = RUNNING ] && [ "$(task_status v2-tb)" = RUNNING ]; then
	ok "exec'd memory hog in v2-ta is killed by the task's memory.max (137, oom_kill $task_kills), both keep running"
else
	not_ok "exec'd memory hog in v2-ta is killed by the task's memory.max" "exec exit $code (124: not killed in 90 s)" \
		"v2-ta memory.max: $(cat "$TCG/v2-ta/memory.max" 2>&1)" "task memory.events: $(cat "$TCG/memory.events" 2>&1)" \
		"v2-ta $(task_status v2-ta), v2-tb $(task_status v2-tb)" "$out"
fi
if event_line /tasks/oom v2-ta >/dev/null; then
	ok "/tasks/oom for v2-ta (the kill is counted in its own memory.events)"
else
	not_ok "/tasks/oom for v2-ta" "$(cat "$TCG/v2-ta/memory.events" 2>&1)" "$(events_of v2-ta)"
fi
c task kill -s SIGKILL v2-ta >/dev/null 2>&1
if wait_status v2-ta STOPPED && c task delete v2-ta >/dev/null 2>&1 && c container delete v2-ta >/dev/null 2>&1 &&
	[ ! -e "$TCG/v2-ta" ] && [ -d "$TCG" ]; then
	ok "first member deleted: its cgroup is gone, the task cgroup stays for v2-tb"
else
	not_ok "first member deleted: its cgroup is gone, the task cgroup stays" "v2-ta $(task_status v2-ta)" "$(ls -d "$TCG" "$TCG"/*/ 2>&1)"
fi
c task kill -s SIGKILL v2-tb >/dev/null 2>&1
if wait_status v2-tb STOPPED && c task delete v2-tb >/dev/null 2>&1 && c container delete v2-tb >/dev/null 2>&1 &&
	[ ! -e "$TCG" ]; then
	ok "last member deleted: task cgroup $TCG removed"
else
	not_ok "last member deleted: task cgroup removed" "v2-tb $(task_status v2-tb)" "$(ls -d "$TCG" "$TCG"/*/ 2>&1)"
fi

# A bad annotation fails the Create before anything is made.
code=0
out=$(c run -d "${RUN[@]}" --annotation berth.task.id=v2bad --annotation berth.task.memory=abc "$IMG" v2-bad true </dev/null 2>&1) || code=$?
if [ "$code" != 0 ] && echo "$out" | grep -q 'berth.task.memory' && [ ! -e "/sys/fs/cgroup/berth-tasks/$NS/v2bad" ] &&
	[ ! -e "/sys/fs/cgroup/$NS/v2-bad" ] && [ -z "$(task_status v2-bad)" ]; then
	ok "berth.task.memory=abc: ctr run fails naming the annotation, no cgroup, no task"
	echo "#   $(echo "$out" | grep -o 'annotation berth.task.memory[^:]*: [^;]*' | head -n 1)"
else
	not_ok "berth.task.memory=abc: ctr run fails naming the annotation, no cgroup, no task" "exit $code: $out" \
		"$(ls -d "/sys/fs/cgroup/berth-tasks/$NS/v2bad" "/sys/fs/cgroup/$NS/v2-bad" 2>&1)" "task: $(task_status v2-bad)"
fi
c container delete v2-bad >/dev/null 2>&1

# --- the CRI sandbox annotations: a pod's task cgroup ----------------------------------------
POD=v2pod
PCG=/sys/fs/cgroup/berth-tasks/$NS/$POD
out=$(c run -d "${RUN[@]}" --annotation "io.kubernetes.cri.sandbox-id=$POD" \
	--annotation io.kubernetes.cri.sandbox-memory=33554432 --annotation io.kubernetes.cri.sandbox-cpu-quota=25000 \
	--annotation io.kubernetes.cri.sandbox-cpu-period=50000 "$IMG" v2-pod sh -c 'sleep 600 & wait' </dev/null 2>&1)
pid=$(wait_status v2-pod RUNNING && task_pid v2-pod)
if [ "$(cat "$PCG/cpu.max" 2>&1)" = "25000 50000" ] && [ "$(cat "$PCG/memory.max" 2>&1)" = 33554432 ] &&
	[ "$(cat "/proc/${pid:-0}/cgroup" 2>&1)" = "0::/berth-tasks/$NS/$POD/v2-pod" ]; then
	ok "CRI sandbox-id/-memory/-cpu-quota/-cpu-period: $PCG has cpu.max 25000 50000, memory.max 33554432, the container below"
else
	not_ok "CRI sandbox annotations: the pod's task cgroup and its limits" "task $(task_status v2-pod) pid ${pid:-?}: $(cat "/proc/${pid:-0}/cgroup" 2>&1)" \
		"cpu.max: $(cat "$PCG/cpu.max" 2>&1)" "memory.max: $(cat "$PCG/memory.max" 2>&1)" "$out"
fi
c task kill -s SIGKILL v2-pod >/dev/null 2>&1
if wait_status v2-pod STOPPED && c task delete v2-pod >/dev/null 2>&1 && c container delete v2-pod >/dev/null 2>&1 &&
	[ ! -e "$PCG" ]; then
	ok "pod container deleted: $PCG removed"
else
	not_ok "pod container deleted: task cgroup removed" "v2-pod $(task_status v2-pod)" "$(ls -d "$PCG" 2>&1)"
fi

shims=$(pgrep -f "containerd-shim-berth-v2 .*-address $CTRD_SOCK" || true)
end=$((SECONDS + 10))
while [ -n "$shims" ] && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; shims=$(pgrep -f "containerd-shim-berth-v2 .*-address $CTRD_SOCK" || true); done
if [ -z "$shims" ]; then ok "no shim left after the last task"; else not_ok "no shim left after the last task" "shims: $shims"; fi

finish
