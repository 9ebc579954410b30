#!/usr/bin/env bash
# The cgroup v2 slice: build berth and the cgroup v2 integration tests
# (integration/tests/cgroup_v2.rs) on the host, run them inside the qemu guest
# of run.sh (a pure cgroup v2 system) and exit with their status.
#
#   integration/vm/v2-slice.sh [--timeout SECS] [--threads N] [-- TEST-ARGS...]
#
#   --timeout SECS  hard limit for the whole guest run (default 900)
#   --threads N     test threads inside the guest (default 2, one per vCPU;
#                   --threads 1 to debug one test at a time)
#   TEST-ARGS       passed to the test binary after --ignored, e.g. a name
#                   filter: v2-slice.sh -- device_filter
#
# Environment: CARGO (default cargo), CARGO_BUILD_JOBS (default 2), plus
# everything run.sh reads (BERTH_VM_CACHE, BERTH_VM_KERNEL_PKG, ...).
#
# The last line printed is cargo test's "test result:" line from the guest
# (or a v2-slice failure line when the guest produced none). Exit status: the
# test binary's; 124 on timeout; 125 if the VM could not run it; 2 if the host
# build failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd -P)
TIMEOUT=900
THREADS=2
TEST_ARGS=()
while [[ $# -gt 0 ]]; do
	case $1 in
	--timeout) TIMEOUT=${2:?--timeout needs a value}; shift 2 ;;
	--threads) THREADS=${2:?--threads needs a value}; shift 2 ;;
	--) shift; TEST_ARGS=("$@"); break ;;
	-h | --help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0 ;;
	*) echo "v2-slice: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done

CARGO=${CARGO:-cargo}
JOBS=${CARGO_BUILD_JOBS:-2}
cd "$REPO"

# The path of the artifact whose target is named $1 and has kind $2, from
# cargo's JSON messages on stdin (one object per line; no jq needed).
artifact() {
	grep -F "\"name\":\"$1\",\"src_path\"" | grep -F "\"kind\":[\"$2\"]" |
		grep -o '"executable":"[^"]*"' | tail -n 1 | cut -d'"' -f4
}

start=$(date +%s)
echo "v2-slice: building berth and the cgroup_v2 tests (-j$JOBS)" >&2
build_log=$(mktemp "${TMPDIR:-/tmp}/berth-v2-slice.XXXXXX")
run_log=$(mktemp "${TMPDIR:-/tmp}/berth-v2-slice.XXXXXX")
trap 'rm -f "$build_log" "$run_log"' EXIT
if ! "$CARGO" build -j"$JOBS" -p berth --bin berth --message-format=json-render-diagnostics \
	>"$build_log"; then
	echo "v2-slice: FAILED: cargo build of berth failed" >&2
	exit 2
fi
BERTH=$(artifact berth bin <"$build_log")
if ! "$CARGO" test --no-run -j"$JOBS" -p berth-integration --test cgroup_v2 \
	--message-format=json-render-diagnostics >"$build_log"; then
	echo "v2-slice: FAILED: cargo test --no-run of cgroup_v2 failed" >&2
	exit 2
fi
TESTS=$(artifact cgroup_v2 test <"$build_log")
CHECK=$(artifact berth-check bin <"$build_log")
if [[ ! -x $BERTH || ! -x $TESTS || ! -x $CHECK ]]; then
	echo "v2-slice: FAILED: could not find the built binaries" \
		"(berth=$BERTH tests=$TESTS berth-check=$CHECK)" >&2
	exit 2
fi
# Run snapshots: the guest reads the host's files live over 9p, and another
# cargo build in this target dir (other work in the same tree) would replace
# or remove the binaries mid-run. Under target/, not /tmp: the guest has its
# own /tmp.
SNAP=$(mktemp -d "$(dirname "$(dirname "$BERTH")")/v2-slice.XXXXXX")
trap 'rm -f "$build_log" "$run_log"; rm -rf "$SNAP"' EXIT
cp "$BERTH" "$SNAP/berth"
cp "$CHECK" "$SNAP/berth-check"
cp "$TESTS" "$SNAP/cgroup_v2"
echo "v2-slice: built in $(($(date +%s) - start))s: $TESTS" >&2

# The guest prints everything live; keep a copy to find the summary line in.
status=0
"$HERE/run.sh" --timeout "$TIMEOUT" \
	--env "BERTH_BIN=$SNAP/berth" --env "BERTH_CHECK=$SNAP/berth-check" -- \
	"$SNAP/cgroup_v2" --ignored --test-threads="$THREADS" "${TEST_ARGS[@]}" 2>&1 |
	tee "$run_log" || status=${PIPESTATUS[0]}
echo "v2-slice: finished in $(($(date +%s) - start))s with status $status" >&2

summary=$(grep -a '^test result:' "$run_log" | tail -n 1 || true)
if [[ -n $summary ]]; then
	echo "$summary"
else
	echo "v2-slice: FAILED: no 'test result:' line from the guest (status $status)"
	[[ $status -ne 0 ]] || status=1
fi
exit "$status"
