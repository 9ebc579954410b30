#!/usr/bin/env bash
# The cgroup v2 slice: build berth, containerd-shim-berth-v2, the cgroup v2
# integration tests (integration/tests/cgroup_v2.rs) and the busybox image on
# the host, then in ONE boot of the qemu guest of run.sh (a pure cgroup v2
# system, see v2-guest.sh):
#   part 1  the test binary: container cgroups and berth task cgroups on v2;
#   part 2  v2-shim.sh: a real containerd with the berth shim (OOM event from
#           the memory.events watcher, io.containerd.cgroups.v2 metrics),
#           alongside part 1 (BERTH_V2_SERIAL=1: after it).
#
#   integration/vm/v2-slice.sh [--timeout SECS] [--threads N] [--part P] [-- TEST-ARGS...]
#
#   --timeout SECS  hard limit for the whole guest run (default 900); part 1
#                   gets 2/3 of it, part 2 a quarter, each as a hard limit
#   --threads N     test threads inside the guest (default 2, one per vCPU;
#                   --threads 1 to debug one test at a time)
#   --part P        all (default), tests (part 1 only) or shim (part 2 only)
#   TEST-ARGS       passed to the test binary after --ignored, e.g. a name
#                   filter: v2-slice.sh --part tests -- device_filter
#
# Environment: CARGO (default cargo), CARGO_BUILD_JOBS (default 2), plus
# everything run.sh reads (BERTH_VM_CACHE, BERTH_VM_KERNEL_PKG, ...).
# Installs containerd, jq and procps on the host if missing (part 2 runs the host's
# containerd and ctr in the guest).
#
# Prints cargo test's "test result:" line and v2-shim.sh's "shim-v2: N passed,
# N failed" line, then "v2-slice: N passed, N failed" (both parts) last.
# Exit status: the first failing part's (101 for a failed test, 1 for a failed
# shim check); 124 on timeout; 125 if the VM could not run it; 2 if the host
# build failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd -P)
TIMEOUT=900
THREADS=2
PART=all
TEST_ARGS=()
while [[ $# -gt 0 ]]; do
	case $1 in
	--timeout) TIMEOUT=${2:?--timeout needs a value}; shift 2 ;;
	--threads) THREADS=${2:?--threads needs a value}; shift 2 ;;
	--part) PART=${2:?--part needs a value}; shift 2 ;;
	--) shift; TEST_ARGS=("$@"); break ;;
	-h | --help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0 ;;
	*) echo "v2-slice: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done

case $PART in
all | tests | shim) ;;
*) echo "v2-slice: --part must be all, tests or shim" >&2; exit 2 ;;
esac
CARGO=${CARGO:-cargo}
JOBS=${CARGO_BUILD_JOBS:-2}
cd "$REPO"
# shellcheck source=../lib/common.sh
. "$REPO/integration/lib/common.sh"
[[ $PART == tests ]] || apt_install containerd jq procps

# The path of the artifact whose target is named $1 and has kind $2, from
# cargo's JSON messages on stdin (one object per line; no jq needed).
artifact() {
	grep -F "\"name\":\"$1\",\"src_path\"" | grep -F "\"kind\":[\"$2\"]" |
		grep -o '"executable":"[^"]*"' | tail -n 1 | cut -d'"' -f4
}

start=$(date +%s)
echo "v2-slice: building berth, the shim and the cgroup_v2 tests (-j$JOBS)" >&2
build_log=$(mktemp "${TMPDIR:-/tmp}/berth-v2-slice.XXXXXX")
run_log=$(mktemp "${TMPDIR:-/tmp}/berth-v2-slice.XXXXXX")
trap 'rm -f "$build_log" "$run_log"' EXIT
if ! "$CARGO" build -j"$JOBS" -p berth --bin berth -p containerd-shim-berth-v2 \
	--bin containerd-shim-berth-v2 --message-format=json-render-diagnostics >"$build_log"; then
	echo "v2-slice: FAILED: cargo build of berth and the shim failed" >&2
	exit 2
fi
BERTH=$(artifact berth bin <"$build_log")
SHIM=$(artifact containerd-shim-berth-v2 bin <"$build_log")
if ! "$CARGO" test --no-run -j"$JOBS" -p berth-integration --test cgroup_v2 \
	--message-format=json-render-diagnostics >"$build_log"; then
	echo "v2-slice: FAILED: cargo test --no-run of cgroup_v2 failed" >&2
	exit 2
fi
TESTS=$(artifact cgroup_v2 test <"$build_log")
CHECK=$(artifact berth-check bin <"$build_log")
if [[ ! -x $BERTH || ! -x $SHIM || ! -x $TESTS || ! -x $CHECK ]]; then
	echo "v2-slice: FAILED: could not find the built binaries" \
		"(berth=$BERTH shim=$SHIM tests=$TESTS berth-check=$CHECK)" >&2
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
cp "$SHIM" "$SNAP/containerd-shim-berth-v2"
# The busybox image (berth task tests import it as busybox:latest, ctr under its own name);
# the guest cannot build it quickly (umoci, skopeo under emulation).
if ! make_busybox_image "$SNAP/busybox-oci.tar" localhost/berth/busybox:latest; then
	echo "v2-slice: FAILED: building the busybox image failed" >&2
	exit 2
fi
echo "v2-slice: built in $(($(date +%s) - start))s: $TESTS" >&2

# The guest prints everything live; keep a copy to find the summary lines in.
status=0
"$HERE/run.sh" --timeout "$TIMEOUT" \
	--env "BERTH_BIN=$SNAP/berth" --env "BERTH_CHECK=$SNAP/berth-check" \
	--env "BERTH_SHIM=$SNAP/containerd-shim-berth-v2" --env "BERTH_V2_IMAGE=$SNAP/busybox-oci.tar" -- \
	bash "$HERE/v2-guest.sh" "$PART" "$SNAP/cgroup_v2" "$THREADS" "$((TIMEOUT * 2 / 3))" \
	"$((TIMEOUT / 4))" "${TEST_ARGS[@]}" 2>&1 |
	tee "$run_log" || status=${PIPESTATUS[0]}
echo "v2-slice: finished in $(($(date +%s) - start))s with status $status" >&2

# Both parts' counts: a part that printed no summary line counts as one failure.
passed=0 failed=0
count() { # LINE: adds its "N passed" and "N failed"
	if [[ $1 =~ ([0-9]+)\ passed ]]; then passed=$((passed + BASH_REMATCH[1])); fi
	if [[ $1 =~ ([0-9]+)\ failed ]]; then failed=$((failed + BASH_REMATCH[1])); fi
}
if [[ $PART != shim ]]; then
	summary=$(grep -a '^test result:' "$run_log" | tail -n 1 || true)
	if [[ -n $summary ]]; then
		echo "$summary"
		count "$summary"
	else
		echo "v2-slice: FAILED: no 'test result:' line from the guest (status $status)"
		failed=$((failed + 1))
	fi
fi
if [[ $PART != tests ]]; then
	summary=$(grep -a '^shim-v2: ' "$run_log" | tail -n 1 || true)
	if [[ -n $summary ]]; then
		echo "$summary"
		count "$summary"
	else
		echo "v2-slice: FAILED: no 'shim-v2:' line from the guest (status $status)"
		failed=$((failed + 1))
	fi
fi
[[ $failed -eq 0 || $status -ne 0 ]] || status=1
[[ $status -eq 0 || $failed -gt 0 ]] || failed=1
echo "v2-slice: $passed passed, $failed failed"
exit "$status"
