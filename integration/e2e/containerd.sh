#!/usr/bin/env bash
# integration/e2e/containerd.sh — containerd-shim-berth-v2 end to end: a private containerd
# (own config, root, state, sockets; started and stopped here), a busybox image built
# offline from busybox-static and imported, and ctr driving tasks through
# --runtime io.containerd.berth.v2. Prints "N passed, N failed" last; exits non-zero on any
# failure; cleans up (tasks, shims, containerd, mounts, cgroups, dirs) even on failure.
#
# Usage: integration/e2e/containerd.sh        (root; builds the shim if BERTH_SHIM is unset)
# Env:   BERTH_SHIM=path/to/containerd-shim-berth-v2   use this binary instead of building
#        BERTH_E2E_KEEP=1                             leave the work dir for inspection
set -uo pipefail
. "$(dirname "$0")/../lib/common.sh"
cd "$BERTH_REPO"
apt_install containerd umoci skopeo busybox-static bsdutils procps

if [ -z "${BERTH_SHIM:-}" ]; then
  cargo build -p containerd-shim-berth-v2 >&2 || die "building the shim failed"
  BERTH_SHIM="$BERTH_REPO/target/debug/containerd-shim-berth-v2"
fi
[ -x "$BERTH_SHIM" ] || die "$BERTH_SHIM is not an executable"

NS=berth-e2e
RT=io.containerd.berth.v2
IMG=localhost/berth/busybox:latest
# Short: the shim's socket lives at $D/s/<sha256> and unix socket paths end at 108 bytes.
D="$(mktemp -d /tmp/berth-e2e.XXXXXX)"
EVENTS_PID=

cleanup() {
  set +e
  if [ -n "${CTRD_SOCK:-}" ] && [ -S "$CTRD_SOCK" ]; then
    for t in $(c task ls -q 2>/dev/null); do c task kill -s SIGKILL "$t" >/dev/null 2>&1; done
    for t in $(c task ls -q 2>/dev/null); do
      for _ in $(seq 30); do c task delete "$t" >/dev/null 2>&1 && break; sleep 0.1; done
    done
    for ct in $(c container ls -q 2>/dev/null); do c container delete "$ct" >/dev/null 2>&1; done
  fi
  [ -n "$EVENTS_PID" ] && kill "$EVENTS_PID" 2>/dev/null
  containerd_down "$D"
  # Containers of a killed shim that nobody cleaned up (a failed test): kill by cgroup.
  # (/berth-tasks itself is left: the task runner of a concurrent run may use it.)
  for cg in /sys/fs/cgroup/*/"$NS" /sys/fs/cgroup/*/berth-tasks/"$NS"; do
    [ -d "$cg" ] || continue
    find "$cg" -mindepth 2 -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null
    sleep 0.2
    find "$cg" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null
    rmdir "$cg" 2>/dev/null
  done
  if [ "${BERTH_E2E_KEEP:-}" = 1 ]; then log "kept $D"; else rm -rf "$D"; fi
}
trap cleanup EXIT

# containerd finds io.containerd.berth.v2 as containerd-shim-berth-v2 on its PATH.
mkdir -p "$D/bin"
ln -s "$(readlink -f "$BERTH_SHIM")" "$D/bin/containerd-shim-berth-v2"
PATH="$D/bin:$PATH" containerd_up "$D"
c() { ctr --address "$CTRD_SOCK" --namespace "$NS" "$@"; }
TAR="$BERTH_WORK/busybox-oci.tar"
make_busybox_image "$TAR"
c images import --base-name "${IMG%:*}" "$TAR" >/dev/null || die "image import failed"
c events >"$D/events.log" 2>&1 &
EVENTS_PID=$!
RUN=(--runtime "$RT" --fifo-dir "$D/fifo")
STATE="$D/berth/$NS"

task_status() { c task ls 2>/dev/null | awk -v id="$1" '$1==id {print $3}'; }
task_pid() { c task ls 2>/dev/null | awk -v id="$1" '$1==id {print $2}'; }
wait_status() {
  local i
  for i in $(seq 100); do [ "$(task_status "$1")" = "$2" ] && return 0; sleep 0.1; done
  return 1
}
ppid_of() { awk '$1=="PPid:" {print $2}' "/proc/$1/status" 2>/dev/null; }
# shim server processes of our containerd
shims() { pgrep -f "containerd-shim-berth-v2 .*-address $CTRD_SOCK" || true; }
event_seen() { # TOPIC REGEX: waits up to 5 s for the event in the ctr events log
  local i
  for i in $(seq 50); do
    grep "$1" "$D/events.log" 2>/dev/null | grep -q "$2" && return 0
    sleep 0.1
  done
  return 1
}
# nothing of container ID left: state, cgroup, rootfs mount, processes
no_leftovers() {
  local id="$1" bad="" d
  [ -e "$STATE/$id" ] && bad+=" state"
  for d in /sys/fs/cgroup/*/"$NS/$id" /sys/fs/cgroup/*/berth-tasks/"$NS"/*/"$id"; do [ -d "$d" ] && { bad+=" cgroup"; break; }; done
  grep -q "/$id/rootfs " /proc/self/mounts && bad+=" rootfs-mount"
  [ -z "$bad" ] || { echo "$bad"; return 1; }
}
remove() { c task delete "$1" >/dev/null 2>&1; c container delete "$1" >/dev/null 2>&1; }
# Task cgroups (the shim's /berth-tasks/<ns>/<group>): read a limit on v1 or v2.
TASKS_CG="berth-tasks/$NS"
UNIFIED=; [ -f /sys/fs/cgroup/cgroup.controllers ] && UNIFIED=1
task_cg_exists() { # GROUP: its task cgroup exists in any hierarchy
  local d
  for d in /sys/fs/cgroup/*/"$TASKS_CG/$1" /sys/fs/cgroup/"$TASKS_CG/$1"; do [ -d "$d" ] && return 0; done
  return 1
}
task_mem_limit() { # GROUP → bytes
  if [ -n "$UNIFIED" ]; then cat "/sys/fs/cgroup/$TASKS_CG/$1/memory.max"
  else cat "/sys/fs/cgroup/memory/$TASKS_CG/$1/memory.limit_in_bytes"; fi 2>/dev/null
}
task_cpu_max() { # GROUP → "quota period"
  if [ -n "$UNIFIED" ]; then cat "/sys/fs/cgroup/$TASKS_CG/$1/cpu.max"
  else echo "$(cat "/sys/fs/cgroup/cpu/$TASKS_CG/$1/cpu.cfs_quota_us") $(cat "/sys/fs/cgroup/cpu/$TASKS_CG/$1/cpu.cfs_period_us")"; fi 2>/dev/null
}
mem_cgroup_of() { # PID → its memory cgroup path (the unified one on v2)
  if [ -n "$UNIFIED" ]; then awk -F: '$1=="0" {print $3}' "/proc/$1/cgroup"
  else awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' "/proc/$1/cgroup"; fi 2>/dev/null
}
wait_gone() { # GROUP: waits up to 5 s for its task cgroup to disappear
  local i
  for i in $(seq 50); do task_cg_exists "$1" || return 0; sleep 0.1; done
  return 1
}

log "=== run --rm: output, exit status, stdin"
out="$(c run --rm "${RUN[@]}" "$IMG" e2e-rm sh -c 'echo hello from berth shim; echo to-stderr >&2; cat /proc/1/cmdline | tr "\0" " "' 2>&1 </dev/null)"
if echo "$out" | grep -q 'hello from berth shim' && echo "$out" | grep -q 'to-stderr' &&
  echo "$out" | grep -q 'sh -c'; then pass "ctr run --rm output"; else fail "ctr run --rm: $out"; fi
code=0; c run --rm "${RUN[@]}" "$IMG" e2e-exit sh -c 'exit 7' </dev/null >/dev/null 2>&1 || code=$?
[ "$code" = 7 ] && pass "exit status 7 passes through" || fail "exit status $code (want 7)"
ign="$(c run --rm "${RUN[@]}" "$IMG" e2e-sig sh -c 'grep SigIgn /proc/self/status' </dev/null 2>&1 | awk '{print $2}')"
[ -n "$ign" ] && (( (0x$ign & 0x1000) == 0 )) && pass "SIGPIPE has its default disposition" || fail "SigIgn: $ign"
out="$(printf 'line-one\nline-two\n' | c run --rm "${RUN[@]}" "$IMG" e2e-stdin sh -c 'cat; echo eof-seen' 2>&1)"
if echo "$out" | grep -q line-two && echo "$out" | grep -q eof-seen; then pass "stdin and EOF (CloseIO)"; else fail "stdin: $out"; fi
if event_seen /tasks/create e2e-rm && event_seen /tasks/start e2e-rm && event_seen /tasks/exit '"id":"e2e-rm"' &&
  event_seen /tasks/delete e2e-rm; then pass "create/start/exit/delete events"; else fail "lifecycle events missing"; fi
left="$(no_leftovers e2e-rm)" && pass "run --rm leaves nothing" || fail "run --rm left:$left"
sleep 0.5
[ -z "$(shims)" ] && pass "shim exits after its last container" || fail "shims still running: $(shims)"

log "=== tty"
out="$(script -qec "ctr --address $CTRD_SOCK --namespace $NS run --rm -t ${RUN[*]} $IMG e2e-tty sh -c 'tty; echo tty-ok'" /dev/null 2>&1 </dev/null)"
if echo "$out" | grep -q '/dev/pts/' && echo "$out" | grep -q tty-ok; then pass "ctr run -t"; else fail "ctr run -t: $out"; fi

log "=== detached task: exec, pause/resume, metrics, ps, kill"
# PID 1 ignores signals it has no handler for: this one exits 3 on SIGTERM.
c run -d "${RUN[@]}" "$IMG" e2e-bg sh -c 'trap "exit 3" TERM; while :; do sleep 1; done' >/dev/null </dev/null
wait_status e2e-bg RUNNING && pass "detached task running" || fail "detached: $(task_status e2e-bg)"
out="$(c task exec --exec-id x1 e2e-bg sh -c 'echo exec-ok $(cat /proc/1/cmdline | tr "\0" " ")' 2>&1 </dev/null)"
echo "$out" | grep -q 'exec-ok sh -c trap' && pass "ctr task exec" || fail "ctr task exec: $out"
code=0; c task exec --exec-id x2 e2e-bg sh -c 'exit 5' </dev/null >/dev/null 2>&1 || code=$?
[ "$code" = 5 ] && pass "exec exit status" || fail "exec exit status $code (want 5)"
event_seen /tasks/exec-added x1 && event_seen /tasks/exec-started x1 && pass "exec events" || fail "exec events missing"
out="$(script -qec "ctr --address $CTRD_SOCK --namespace $NS task exec -t --exec-id x3 e2e-bg sh -c 'tty; echo exec-tty-ok'" /dev/null 2>&1 </dev/null)"
if echo "$out" | grep -q '/dev/pts/' && echo "$out" | grep -q exec-tty-ok; then pass "ctr task exec -t"; else fail "exec -t: $out"; fi

c task pause e2e-bg && wait_status e2e-bg PAUSED && pass "pause" || fail "pause: $(task_status e2e-bg)"
grep -q FROZEN "/sys/fs/cgroup/freezer/$NS/e2e-bg/freezer.state" 2>/dev/null ||
  [ "$(cat "/sys/fs/cgroup/$NS/e2e-bg/cgroup.freeze" 2>/dev/null)" = 1 ] && pass "cgroup frozen" || fail "cgroup not frozen"
c task resume e2e-bg && wait_status e2e-bg RUNNING && pass "resume" || fail "resume: $(task_status e2e-bg)"
event_seen /tasks/paused e2e-bg && event_seen /tasks/resumed e2e-bg && pass "pause/resume events" || fail "pause/resume events missing"

out="$(c task metrics e2e-bg 2>&1)"
usage="$(echo "$out" | awk '$1=="memory.usage_in_bytes" || $1=="memory.usage" {print $2}')"
pids="$(echo "$out" | awk '$1=="pids.current" {print $2}')"
if [ "${usage:-0}" -gt 0 ] 2>/dev/null && [ "${pids:-0}" -ge 1 ] 2>/dev/null; then
  pass "ctr task metrics (memory $usage bytes, $pids pids)"; else fail "ctr task metrics: $out"; fi
n="$(c task ps e2e-bg 2>/dev/null | awk 'NR>1' | wc -l)"
[ "$n" -ge 1 ] && pass "ctr task ps ($n)" || fail "ctr task ps"

c task kill -s SIGTERM e2e-bg
wait_status e2e-bg STOPPED && pass "kill SIGTERM" || fail "kill: $(task_status e2e-bg)"
event_seen /tasks/exit '"id":"e2e-bg","pid":[0-9]*,"exit_status":3' && pass "exit event with status 3 after kill" ||
  fail "no exit event (status 3) after kill: $(grep /tasks/exit "$D/events.log" | grep e2e-bg)"
remove e2e-bg
left="$(no_leftovers e2e-bg)" && pass "delete leaves nothing" || fail "delete left:$left"

log "=== kill of a foreground task gives 128+signal"
c run --rm "${RUN[@]}" "$IMG" e2e-fg sleep 300 </dev/null >/dev/null 2>&1 &
fg=$!
wait_status e2e-fg RUNNING
c task kill -s SIGKILL e2e-fg
code=0; wait "$fg" || code=$?
[ "$code" = 137 ] && pass "killed task exits 137" || fail "killed task exit $code (want 137)"

log "=== OOM under --memory-limit"
code=0; c run --rm "${RUN[@]}" --memory-limit 33554432 "$IMG" e2e-oom tail /dev/zero </dev/null >/dev/null 2>&1 || code=$?
[ "$code" = 137 ] && pass "memory hog exits 137" || fail "memory hog exit $code (want 137)"
event_seen /tasks/oom e2e-oom && pass "/tasks/oom event" || fail "no /tasks/oom event: $(grep -c . "$D/events.log") events logged"

log "=== grouping: one shim per berth.task.id"
c run -d "${RUN[@]}" --annotation berth.task.id=grp1 "$IMG" e2e-ga sleep 300 >/dev/null </dev/null
c run -d "${RUN[@]}" --annotation berth.task.id=grp1 "$IMG" e2e-gb sleep 300 >/dev/null </dev/null
c run -d "${RUN[@]}" "$IMG" e2e-gc sleep 300 >/dev/null </dev/null
wait_status e2e-gb RUNNING
sa="$(ppid_of "$(task_pid e2e-ga)")"; sb="$(ppid_of "$(task_pid e2e-gb)")"; sc="$(ppid_of "$(task_pid e2e-gc)")"
if [ -n "$sa" ] && [ "$sa" = "$sb" ] && [ "$sa" != "$sc" ]; then pass "same group, one shim ($sa); other group, own shim ($sc)"
else fail "group shims: a=$sa b=$sb c=$sc"; fi
n="$(shims | wc -l)"
[ "$n" = 2 ] && pass "two shim processes for three containers" || fail "$n shim processes (want 2)"
c task kill -s SIGKILL e2e-ga; wait_status e2e-ga STOPPED; remove e2e-ga
[ "$(task_status e2e-gb)" = RUNNING ] && kill -0 "$sa" 2>/dev/null && pass "group shim serves on after one delete" ||
  fail "group shim gone after deleting one container"
c task kill -s SIGKILL e2e-gb; wait_status e2e-gb STOPPED; remove e2e-gb
for _ in $(seq 30); do kill -0 "$sa" 2>/dev/null || break; sleep 0.1; done
kill -0 "$sa" 2>/dev/null && fail "group shim still running after its last delete" || pass "group shim exits after its last delete"
c task kill -s SIGKILL e2e-gc; wait_status e2e-gc STOPPED; remove e2e-gc

log "=== task cgroup: berth.task.* limits shared by a group"
c run -d "${RUN[@]}" --annotation berth.task.id=tc1 --annotation berth.task.cpu=512 \
  --annotation berth.task.memory=64 "$IMG" e2e-ta sleep 300 >/dev/null </dev/null
c run -d "${RUN[@]}" --annotation berth.task.id=tc1 "$IMG" e2e-tb sleep 300 >/dev/null </dev/null
wait_status e2e-ta RUNNING; wait_status e2e-tb RUNNING
m="$(task_mem_limit tc1)"
[ "$m" = 67108864 ] && pass "task cgroup memory limit 64 MiB ($m)" || fail "task memory limit: '$m' (want 67108864)"
q="$(task_cpu_max tc1)"
[ "$q" = "50000 100000" ] && pass "task cgroup cpu quota 512 units = 50000/100000 us" || fail "task cpu: '$q' (want 50000 100000)"
pa="$(task_pid e2e-ta)"; pb="$(task_pid e2e-tb)"
ca="$(mem_cgroup_of "$pa")"; cb="$(mem_cgroup_of "$pb")"
if [ "$ca" = "/$TASKS_CG/tc1/e2e-ta" ] && [ "$cb" = "/$TASKS_CG/tc1/e2e-tb" ]; then pass "both containers' cgroups are under the task cgroup"
else fail "container cgroups: $ca / $cb"; fi
# The limit binds the group: a hog in the container without a limit of its own is killed at 64 MiB.
code=0; c task exec --exec-id hog e2e-tb tail /dev/zero </dev/null >/dev/null 2>&1 || code=$?
[ "$code" = 137 ] && pass "memory hog in the group killed by the task limit" || fail "hog in the task exit $code (want 137)"
c task kill -s SIGKILL e2e-ta; wait_status e2e-ta STOPPED; remove e2e-ta
task_cg_exists tc1 && [ "$(task_status e2e-tb)" = RUNNING ] && pass "task cgroup stays while a container is left" ||
  fail "task cgroup gone with a container left"
c task kill -s SIGKILL e2e-tb; wait_status e2e-tb STOPPED; remove e2e-tb
wait_gone tc1 && pass "task cgroup removed with its last container" || fail "task cgroup tc1 left: $(ls -d /sys/fs/cgroup/*/"$TASKS_CG"/tc1 2>/dev/null)"
left="$(no_leftovers e2e-tb)" && pass "task containers leave nothing" || fail "task containers left:$left"

log "=== task cgroup: CRI sandbox annotations"
SB=0123456789abcdef-sandbox
c run -d "${RUN[@]}" --annotation io.kubernetes.cri.sandbox-id=$SB --annotation io.kubernetes.cri.container-type=sandbox \
  --annotation io.kubernetes.cri.sandbox-cpu-quota=20000 --annotation io.kubernetes.cri.sandbox-cpu-period=50000 \
  --annotation io.kubernetes.cri.sandbox-memory=33554432 "$IMG" e2e-sa sleep 300 >/dev/null </dev/null
c run -d "${RUN[@]}" --annotation io.kubernetes.cri.sandbox-id=$SB --annotation io.kubernetes.cri.container-type=container \
  "$IMG" e2e-sb sleep 300 >/dev/null </dev/null
wait_status e2e-sa RUNNING; wait_status e2e-sb RUNNING
m="$(task_mem_limit $SB)"; q="$(task_cpu_max $SB)"
[ "$m" = 33554432 ] && [ "$q" = "20000 50000" ] && pass "pod cgroup from CRI annotations (memory $m, cpu $q)" ||
  fail "pod cgroup: memory '$m' (want 33554432), cpu '$q' (want 20000 50000)"
ca="$(mem_cgroup_of "$(task_pid e2e-sa)")"; cb="$(mem_cgroup_of "$(task_pid e2e-sb)")"
[ "$ca" = "/$TASKS_CG/$SB/e2e-sa" ] && [ "$cb" = "/$TASKS_CG/$SB/e2e-sb" ] && pass "pod containers under the pod cgroup" ||
  fail "pod container cgroups: $ca / $cb"
for t in e2e-sb e2e-sa; do c task kill -s SIGKILL $t; wait_status $t STOPPED; remove $t; done
wait_gone $SB && pass "pod cgroup removed with its last container" || fail "pod cgroup $SB left"

log "=== task cgroup: bad annotations fail create and leave nothing"
for bad in berth.task.memory=lots berth.task.cpu=0 io.kubernetes.cri.sandbox-memory=-1 io.kubernetes.cri.sandbox-cpu-quota=abc; do
  code=0; c run --rm "${RUN[@]}" --annotation berth.task.id=tbad --annotation "$bad" "$IMG" e2e-tbad true \
    </dev/null >"$D/tbad.out" 2>&1 || code=$?
  c container delete e2e-tbad >/dev/null 2>&1
  if [ "$code" != 0 ] && grep -q "annotation ${bad%%=*}" "$D/tbad.out"; then pass "$bad: create fails naming it"
  else fail "$bad: rc $code: $(cat "$D/tbad.out")"; fi
  left="$(no_leftovers e2e-tbad)"
  ! task_cg_exists tbad && [ -z "$left" ] && pass "$bad: nothing left" || fail "$bad left:$left $(ls -d /sys/fs/cgroup/*/"$TASKS_CG"/tbad 2>/dev/null)"
done

log "=== kill -9 of a task's shim removes the task cgroup"
c run -d "${RUN[@]}" --annotation berth.task.id=tk9 --annotation berth.task.memory=64 "$IMG" e2e-ka sleep 300 >/dev/null </dev/null
c run -d "${RUN[@]}" --annotation berth.task.id=tk9 "$IMG" e2e-kb sleep 300 >/dev/null </dev/null
wait_status e2e-ka RUNNING; wait_status e2e-kb RUNNING
task_cg_exists tk9 || fail "task cgroup tk9 missing before kill -9"
kill -9 "$(ppid_of "$(task_pid e2e-ka)")"
wait_gone tk9 && pass "kill -9: task cgroup removed by the delete action" || fail "kill -9: task cgroup tk9 left"
left=; for t in e2e-ka e2e-kb; do remove $t; left+="$(no_leftovers $t)"; done
[ -z "$left" ] && pass "kill -9: task containers leave nothing" || fail "kill -9 of a task shim left:$left"

log "=== log URIs: binary:// and file://"
cat >"$D/logger.sh" <<'SH'
#!/bin/sh
# A containerd logging binary: fd 3 = stdout, fd 4 = stderr, fd 5 = ready. Args: out PREFIX.
out="$2"
echo "CONTAINER_ID=$CONTAINER_ID CONTAINER_NAMESPACE=$CONTAINER_NAMESPACE args=$*" >"$out.env"
cat <&3 >"$out.out" 4<&- 5>&- &
cat <&4 >"$out.err" 3<&- 5>&- &
exec 3<&- 4<&- 5>&-
wait
SH
chmod +x "$D/logger.sh"
out="$(c run --rm "${RUN[@]}" --log-uri "binary://$D/logger.sh?out=$D/log1" "$IMG" e2e-log \
  sh -c 'echo to-logger-stdout; echo to-logger-stderr >&2' </dev/null 2>&1)"
for _ in $(seq 50); do grep -q to-logger-stderr "$D/log1.err" 2>/dev/null && grep -q to-logger-stdout "$D/log1.out" 2>/dev/null && break; sleep 0.1; done
if grep -qx to-logger-stdout "$D/log1.out" 2>/dev/null && grep -qx to-logger-stderr "$D/log1.err" 2>/dev/null; then
  pass "binary:// logger got stdout on fd 3 and stderr on fd 4"
else fail "binary:// logger: out='$(cat "$D/log1.out" 2>/dev/null)' err='$(cat "$D/log1.err" 2>/dev/null)' ctr: $out"; fi
grep -qx "CONTAINER_ID=e2e-log CONTAINER_NAMESPACE=$NS args=out $D/log1" "$D/log1.env" 2>/dev/null &&
  pass "binary:// logger environment and arguments" || fail "logger env: $(cat "$D/log1.env" 2>/dev/null)"
for _ in $(seq 30); do pgrep -f "$D/logger.sh" >/dev/null || break; sleep 0.1; done
pgrep -f "$D/logger.sh" >/dev/null && fail "logger still running after delete: $(pgrep -f "$D/logger.sh")" || pass "logger ended after delete"
code=0; c run --rm "${RUN[@]}" --log-uri "binary://$D/no-such-logger" "$IMG" e2e-nolog true </dev/null >"$D/nolog.out" 2>&1 || code=$?
c container delete e2e-nolog >/dev/null 2>&1
[ "$code" != 0 ] && grep -q no-such-logger "$D/nolog.out" && pass "missing logger fails create, naming it" || fail "missing logger: rc $code $(cat "$D/nolog.out")"
left="$(no_leftovers e2e-nolog)" && pass "missing logger leaves nothing" || fail "missing logger left:$left"
c run --rm "${RUN[@]}" --log-uri "file://$D/logs/f1.log" "$IMG" e2e-flog sh -c 'echo file-out; echo file-err >&2' </dev/null >/dev/null 2>&1
grep -qx file-out "$D/logs/f1.log" 2>/dev/null && grep -qx file-err "$D/logs/f1.log" && pass "file:// log URI (directory made)" ||
  fail "file:// log: $(cat "$D/logs/f1.log" 2>/dev/null)"

log "=== kill -9 of the shim is cleaned up"
c run -d "${RUN[@]}" "$IMG" e2e-k9 sleep 300 >/dev/null </dev/null
wait_status e2e-k9 RUNNING
pid="$(task_pid e2e-k9)"; shim="$(ppid_of "$pid")"
sock="$(cat "$D/state/io.containerd.runtime.v2.task/$NS/e2e-k9/address" 2>/dev/null)"
kill -9 "$shim"
for _ in $(seq 100); do [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null || break; sleep 0.1; done
if [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then fail "container process survived its shim"
else pass "container killed after shim kill -9"; fi
for _ in $(seq 50); do [ -z "$(task_status e2e-k9)" ] || [ "$(task_status e2e-k9)" = STOPPED ] && break; sleep 0.1; done
left="$(no_leftovers e2e-k9)" && pass "kill -9: no state, cgroup or mount left" || fail "kill -9 left:$left"
[ -n "$sock" ] && [ ! -e "${sock#unix://}" ] && pass "kill -9: shim socket removed" || fail "kill -9: socket $sock left"
event_seen /tasks/exit '"id":"e2e-k9"' && pass "kill -9: exit event" || fail "kill -9: no exit event"
c task delete e2e-k9 >/dev/null 2>&1; c container delete e2e-k9 >/dev/null 2>&1 && pass "kill -9: container deletable" || fail "kill -9: container delete"

log "=== failed create leaves nothing"
code=0; c run --rm "${RUN[@]}" "$IMG" e2e-bad /no/such/program </dev/null >"$D/bad.out" 2>&1 || code=$?
[ "$code" != 0 ] && grep -q 'no/such/program' "$D/bad.out" && pass "failed create reports the cause" || fail "failed create: rc $code $(cat "$D/bad.out")"
c container delete e2e-bad >/dev/null 2>&1
left="$(no_leftovers e2e-bad)" && pass "failed create leaves nothing" || fail "failed create left:$left"
sleep 0.5
[ -z "$(shims)" ] && pass "no shim left after failed create" || fail "shims left after failed create: $(shims)"

log "=== containerd restart"
c run -d "${RUN[@]}" "$IMG" e2e-rs sleep 300 >/dev/null </dev/null
wait_status e2e-rs RUNNING
pid="$(task_pid e2e-rs)"
kill "$(cat "$D/containerd.pid")"
for _ in $(seq 100); do kill -0 "$(cat "$D/containerd.pid")" 2>/dev/null || break; sleep 0.1; done
kill "$EVENTS_PID" 2>/dev/null
[ -d "/proc/$pid" ] && pass "task survives containerd stop" || fail "task died with containerd"
PATH="$D/bin:$PATH" containerd_up "$D"
c events >>"$D/events.log" 2>&1 &
EVENTS_PID=$!
[ "$(task_status e2e-rs)" = RUNNING ] && [ "$(task_pid e2e-rs)" = "$pid" ] && pass "task running after restart" ||
  fail "after restart: $(task_status e2e-rs) pid $(task_pid e2e-rs)"
out="$(c task exec --exec-id r1 e2e-rs echo exec-after-restart 2>&1 </dev/null)"
echo "$out" | grep -q exec-after-restart && pass "exec after restart" || fail "exec after restart: $out"
c task kill -s SIGKILL e2e-rs
wait_status e2e-rs STOPPED && pass "killable after restart" || fail "kill after restart: $(task_status e2e-rs)"
event_seen /tasks/exit '"id":"e2e-rs","pid":[0-9]*,"exit_status":137' && pass "exit event (137) after restart" ||
  fail "no exit event after restart"
remove e2e-rs
left="$(no_leftovers e2e-rs)" && pass "deleted after restart" || fail "after restart left:$left"

summary
