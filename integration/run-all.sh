#!/usr/bin/env bash
# integration/run-all.sh — berth's whole test suite on a fresh Debian 12 machine, as root:
# installs what the tests need, builds, runs the Rust tests (unit + integration with real
# containers), the drop-in proofs (containerd's runc shim, podman), the containerd shim
# end-to-end suite and the cgroup v2 slice in a qemu VM.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
cd "$BERTH_REPO"
apt_install busybox-static libseccomp-dev pkg-config gcc containerd runc crun podman \
  umoci skopeo jq iproute2 qemu-system-x86 curl
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

declare -A suites
run_suite() {
  local name="$1"; shift
  log "=== $name"
  if "$@"; then suites[$name]=pass; else suites[$name]=FAIL; fi
}

log "=== build"
cargo build --workspace
run_suite "cargo test" cargo test --workspace
run_suite "drop-in: containerd runc shim" bash integration/dropin/containerd.sh
run_suite "drop-in: podman" bash integration/dropin/podman.sh
if [ -x integration/e2e/containerd.sh ]; then
  run_suite "shim: containerd e2e" bash integration/e2e/containerd.sh
fi
if [ -x integration/vm/v2-slice.sh ] && [ "${BERTH_SKIP_VM:-}" != 1 ]; then
  run_suite "cgroup v2 slice (VM)" bash integration/vm/v2-slice.sh
fi

passed=0 failed=0
for s in "${!suites[@]}"; do
  log "$s: ${suites[$s]}"
  if [ "${suites[$s]}" = pass ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
