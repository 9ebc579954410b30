#!/usr/bin/env bash
# Self-test of the cgroup v2 VM harness (integration/vm/run.sh).
#
# Boots the guest a few times and checks that:
#   - the guest is a pure cgroup v2 system (cgroup2fs at /sys/fs/cgroup, no
#     v1 hierarchy mounted, memory/cpu/pids available and delegated);
#   - a child cgroup can be created, memory.max set and read back, a shell
#     moved into it, and the limit is actually enforced (OOM kill);
#   - host environment (BERTH_*), working directory and the results share
#     reach the guest, and overlayfs can be mounted (modules work);
#   - the command's exit status propagates (sh -c 'exit 3' -> 3);
#   - --timeout kills the guest and leaves no qemu behind.
# Exits 0 only if every check passes. Prints "selftest: N passed, N failed".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
RUN=$HERE/run.sh
PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
nok() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
check() { # check DESCRIPTION CMD...
	local d=$1
	shift
	if "$@"; then ok "$d"; else nok "$d"; fi
}

RESULTS=$(mktemp -d "${TMPDIR:-/tmp}/berth-vm-selftest.XXXXXX")
trap 'rm -rf "$RESULTS"' EXIT

# ---- 1: cgroup v2 checks, all inside one boot. The guest script prints
# its own ok/not ok lines and exits with the number of failures.
GUEST_CHECKS=$(
	cat <<'EOF'
fails=0
ok() { echo "ok - guest: $*"; }
nok() { echo "not ok - guest: $*"; fails=$((fails + 1)); }
t() { d=$1; shift; if "$@"; then ok "$d"; else nok "$d"; fi; }

CG=/sys/fs/cgroup
t "/sys/fs/cgroup is cgroup2fs" [ "$(stat -f -c %T $CG)" = cgroup2fs ]
t "/sys/fs/cgroup magic is 0x63677270" [ "$(stat -f -c %t $CG)" = 63677270 ]
t "no cgroup v1 hierarchy mounted" sh -c '! grep -q " cgroup " /proc/mounts'
t "/proc/self/cgroup is v2 only" [ "$(cut -d: -f1-2 /proc/self/cgroup)" = "0:" ]
for c in memory cpu pids; do
	t "controller $c available" grep -qw "$c" $CG/cgroup.controllers
	t "controller $c enabled in subtree_control" grep -qw "$c" $CG/cgroup.subtree_control
done

child=$CG/berth-selftest
t "create child cgroup" mkdir $child
t "set memory.max" sh -c "echo 64M > $child/memory.max"
t "memory.max reads back 67108864" [ "$(cat $child/memory.max)" = 67108864 ]
t "set pids.max" sh -c "echo 100 > $child/pids.max"
t "pids.max reads back 100" [ "$(cat $child/pids.max)" = 100 ]
inner=$(sh -c "echo \$\$ > $child/cgroup.procs && cat /proc/self/cgroup")
t "shell moved into child cgroup (got $inner)" [ "$inner" = "0::/berth-selftest" ]
t "memory.current accounted" [ "$(cat $child/memory.current)" -gt 0 ]

# Enforcement: a shell that holds 128 MB in a variable must be OOM-killed
# in a 32M cgroup (bounded by timeout in case the limit does not bite).
oom=$CG/berth-oom
mkdir $oom
echo 32M >$oom/memory.max
echo 0 >$oom/memory.swap.max 2>/dev/null || true
timeout 120 sh -c "echo \$\$ > $oom/cgroup.procs && x=\$(head -c 128000000 /dev/zero | tr '\\0' a) && echo \${#x}" >/dev/null 2>&1 || true
t "memory.max enforced (oom_kill in memory.events)" \
	[ "$(awk '$1 == "oom_kill" { print $2 }' $oom/memory.events)" -ge 1 ]

t "BERTH_ variable passed" [ "${BERTH_SELFTEST_TOKEN:-}" = "tok en'\"\$x" ]
t "working directory kept" [ "$(pwd -P)" = "$BERTH_SELFTEST_CWD" ]
t "PATH passed" [ "$PATH" = "$BERTH_SELFTEST_PATH" ]
t "results share writable" sh -c 'echo from-guest > "$BERTH_VM_RESULTS/guest.txt"'
t "/tmp is a writable tmpfs" sh -c '[ "$(stat -f -c %T /tmp)" = tmpfs ] && touch /tmp/x'
mkdir -p /tmp/ov/l /tmp/ov/u /tmp/ov/w /tmp/ov/m && echo lower >/tmp/ov/l/f
t "overlayfs mount works" sh -c 'mount -t overlay ov -o lowerdir=/tmp/ov/l,upperdir=/tmp/ov/u,workdir=/tmp/ov/w /tmp/ov/m && [ "$(cat /tmp/ov/m/f)" = lower ]'
t "modprobe works (veth)" modprobe veth
exit "$fails"
EOF
)

echo "# boot 1: cgroup v2 checks"
export BERTH_SELFTEST_TOKEN="tok en'\"\$x"
export BERTH_SELFTEST_PATH=$PATH
BERTH_SELFTEST_CWD=$(pwd -P)
export BERTH_SELFTEST_CWD
start=$SECONDS
rc=0
OUT=$("$RUN" --timeout 300 --results "$RESULTS" -- sh -c "$GUEST_CHECKS" 2>&1) || rc=$?
while IFS= read -r line; do echo "    $line"; done <<<"$OUT"
echo "# boot 1 took $((SECONDS - start))s"
PASS=$((PASS + $(grep -c '^ok - guest:' <<<"$OUT" || true)))
FAIL=$((FAIL + $(grep -c '^not ok - guest:' <<<"$OUT" || true)))
check "guest checks exited 0 (got $rc)" [ "$rc" = 0 ]
check "guest ran at least 20 checks" [ "$(grep -c '^ok - guest:' <<<"$OUT" || true)" -ge 20 ]
check "results file visible on the host" grep -qx from-guest "$RESULTS/guest.txt"

# ---- 2: exit status propagation.
echo "# boot 2: exit status"
start=$SECONDS
rc=0
"$RUN" --timeout 120 -- sh -c 'exit 3' >/dev/null 2>&1 || rc=$?
echo "# boot 2 took $((SECONDS - start))s"
check "run.sh -- sh -c 'exit 3' exits 3 (got $rc)" [ "$rc" = 3 ]

# ---- 3: timeout. The guest boots in ~3-5 s under TCG; 20 s is plenty to
# get into "sleep", which then must be cut off by the host.
echo "# boot 3: timeout"
start=$SECONDS
rc=0
ERR=$("$RUN" --timeout 20 -- sleep 300 2>&1 >/dev/null) || rc=$?
took=$((SECONDS - start))
# run.sh keeps the run dir of a failed run for inspection; this failure was
# intended, so remove it.
kept=$(sed -n 's/^berth-vm: run dir kept: //p' <<<"$ERR")
if [[ -n $kept && -d $kept ]]; then rm -rf "$kept"; fi
echo "# boot 3 took ${took}s"
check "--timeout 20 exits 124 (got $rc)" [ "$rc" = 124 ]
check "--timeout 20 returned within 40s (took ${took}s)" [ "$took" -lt 40 ]
# Our own qemu would show the results dir of boot 3 in its command line;
# look for any qemu whose command line names this repo's harness cache.
check "no qemu left running" sh -c '! ps -eo args | grep -q "^qemu-system-x86_64 .*mount_tag=berthrun"'

echo "selftest: $PASS passed, $FAIL failed"
[[ $FAIL == 0 ]]
