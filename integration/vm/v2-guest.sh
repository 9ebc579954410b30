#!/usr/bin/env bash
# integration/vm/v2-guest.sh — the v2 slice's command INSIDE the guest (v2-slice.sh starts it
# through run.sh): part 1, the cgroup_v2 test binary (container cgroups, berth task cgroups);
# part 2, v2-shim.sh (containerd + containerd-shim-berth-v2). With PART all, part 2 runs
# alongside part 1 (its output is held back and printed after part 1's). Each part has a
# hard timeout of its own, so a hung part is named and the other still finishes.
#
#   v2-guest.sh PART TESTS THREADS TESTS_TIMEOUT SHIM_TIMEOUT [TEST-ARGS...]
#
# PART: all, tests or shim. Env: BERTH_V2_SERIAL=1 runs part 2 after part 1 instead.
# Exit status: part 1's if it failed, else part 2's (124: a part timed out).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
part=$1 tests=$2 threads=$3 tests_timeout=$4 shim_timeout=$5
shift 5

shim_part() {
	local start s=0
	start=$(date +%s)
	echo "# v2-slice part 2: containerd-shim-berth-v2 under containerd (timeout ${shim_timeout}s)"
	timeout -k 10 "$shim_timeout" bash "$HERE/v2-shim.sh" || s=$?
	[ "$s" = 124 ] && echo "v2-slice: FAILED: v2-shim.sh did not finish in ${shim_timeout}s"
	echo "# v2-slice part 2 took $(($(date +%s) - start))s"
	return "$s"
}

status=0 shim_status=0 shim_pid=
shim_out=$(mktemp /tmp/v2-shim.XXXXXX)
if [ "$part" = all ] && [ "${BERTH_V2_SERIAL:-}" != 1 ]; then
	shim_part >"$shim_out" 2>&1 </dev/null &
	shim_pid=$!
fi
if [ "$part" != shim ]; then
	start=$(date +%s)
	echo "# v2-slice part 1: cgroup_v2 tests (timeout ${tests_timeout}s)"
	timeout -k 10 "$tests_timeout" "$tests" --ignored --test-threads="$threads" "$@" || status=$?
	[ "$status" = 124 ] && echo "v2-slice: FAILED: the cgroup_v2 tests did not finish in ${tests_timeout}s"
	echo "# v2-slice part 1 took $(($(date +%s) - start))s"
fi
if [ -n "$shim_pid" ]; then
	wait "$shim_pid" || shim_status=$?
	cat "$shim_out"
elif [ "$part" != tests ]; then
	shim_part || shim_status=$?
fi
rm -f "$shim_out"
[ "$status" = 0 ] && status=$shim_status
exit "$status"
