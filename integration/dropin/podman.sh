#!/usr/bin/env bash
# integration/dropin/podman.sh — berth as podman's OCI runtime (podman --runtime), with a
# private podman store and the offline busybox image. Prints "N passed, N failed".
# podman's default nofile ulimit (1048576) exceeds this host's hard limit (20000; root lacks
# CAP_SYS_RESOURCE here). Measured: podman 4.3's --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 asks for 1048576 too, and
# runc and crun fail on it exactly like berth, so explicit values are given.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"

BERTH="${BERTH_BIN:-$BERTH_REPO/target/debug/berth}"
[ -x "$BERTH" ] || die "$BERTH not built (cargo build --workspace)"
apt_install podman umoci skopeo busybox-static

D="$(mktemp -d "${TMPDIR:-/tmp}/berth-podman.XXXXXX")"
P=(podman --root "$D/storage" --runroot "$D/run" --runtime "$BERTH" --cgroup-manager cgroupfs
   --events-backend file --storage-driver vfs)
cleanup() { "${P[@]}" rm -af >/dev/null 2>&1 || true; umount -R "$D/storage" 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT
TAR="$BERTH_WORK/busybox-oci.tar"
make_busybox_image "$TAR"
"${P[@]}" load -q -i "$TAR" >/dev/null
IMG=localhost/berth/busybox:latest
RUN=(run --rm --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network none)

out="$("${P[@]}" "${RUN[@]}" "$IMG" sh -c 'echo hello from podman; id -u' 2>&1 || true)"
[ "$(echo "$out" | head -1)" = "hello from podman" ] && pass "podman run --rm" || fail "podman run: $out"

code=0; "${P[@]}" "${RUN[@]}" "$IMG" sh -c 'exit 5' >/dev/null 2>&1 || code=$?
[ "$code" = 5 ] && pass "exit status" || fail "exit status $code (want 5)"

"${P[@]}" run -d --name bg --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network none "$IMG" sleep 300 >/dev/null 2>&1 || true
out="$("${P[@]}" exec bg sh -c 'echo exec-ok' 2>&1 || true)"
[ "$out" = exec-ok ] && pass "podman exec" || fail "podman exec: $out"
"${P[@]}" rm -f bg >/dev/null 2>&1 && pass "podman rm -f" || fail "podman rm -f"

summary
