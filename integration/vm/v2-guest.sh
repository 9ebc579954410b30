#!/usr/bin/env bash
# integration/vm/v2-guest.sh — the v2 slice's command INSIDE the guest (v2-slice.sh starts it
# through run.sh): part 1, the cgroup_v2 test binary (container cgroups, berth task cgroups);
# part 2, v2-shim.sh (containerd + containerd-shim-berth-v2). Each part has a hard timeout of
# its own, so a hung part is named and the other still runs.
#
#   v2-guest.sh PART TESTS THREADS TESTS_TIMEOUT SHIM_TIMEOUT [TEST-ARGS...]
#
# PART: all, tests or shim. Exit status: the first failing part's (124 if it timed out).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
part=$1 tests=$2 threads=$3 tests_timeout=$4 shim_timeout=$5
shift 5

status=0
if [ "$part" != shim ]; then
	echo "# v2-slice part 1: cgroup_v2 tests (timeout ${tests_timeout}s)"
	s=0
	timeout -k 10 "$tests_timeout" "$tests" --ignored --test-threads="$threads" "$@" || s=$?
	[ "$s" = 124 ] && echo "v2-slice: FAILED: the cgroup_v2 tests did not finish in ${tests_timeout}s"
	[ "$status" = 0 ] && status=$s
fi
if [ "$part" != tests ]; then
	echo "# v2-slice part 2: containerd-shim-berth-v2 under containerd (timeout ${shim_timeout}s)"
	start=$(date +%s)
	s=0
	timeout -k 10 "$shim_timeout" bash "$HERE/v2-shim.sh" || s=$?
	[ "$s" = 124 ] && echo "v2-slice: FAILED: v2-shim.sh did not finish in ${shim_timeout}s"
	echo "# v2-slice part 2 took $(($(date +%s) - start))s"
	[ "$status" = 0 ] && status=$s
fi
exit "$status"
