#!/usr/bin/env bash
# integration/dropin/containerd.sh — berth as a drop-in for runc under containerd's own
# runc shim (io.containerd.runc.v2 with BinaryName = berth, via ctr --runc-binary), against
# a private containerd 1.6 and a busybox image built offline. Prints "N passed, N failed".
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"

BERTH="${BERTH_BIN:-$BERTH_REPO/target/debug/berth}"
[ -x "$BERTH" ] || die "$BERTH not built (cargo build --workspace)"
apt_install containerd umoci skopeo busybox-static

D="$(mktemp -d "${TMPDIR:-/tmp}/berth-dropin.XXXXXX")"
cleanup() { containerd_down "$D"; rm -rf "$D"; }
trap cleanup EXIT
containerd_up "$D"
TAR="$BERTH_WORK/busybox-oci.tar"
make_busybox_image "$TAR"
c() { ctr --address "$CTRD_SOCK" --namespace berth-dropin "$@"; }
c images import --base-name localhost/berth/busybox "$TAR" >/dev/null
IMG=localhost/berth/busybox:latest
RUN=(--runtime io.containerd.runc.v2 --runc-binary "$BERTH" --runc-root "$D/runc-root" --fifo-dir "$D/fifo")

task_status() { c task ls 2>/dev/null | awk -v id="$1" '$1==id {print $3}'; }
wait_status() {
  local i
  for i in $(seq 100); do [ "$(task_status "$1")" = "$2" ] && return 0; sleep 0.1; done
  return 1
}

out="$(c run --rm "${RUN[@]}" "$IMG" dropin-rm sh -c 'echo hello from berth; cat /proc/1/cmdline | tr "\0" " "' 2>&1 || true)"
if echo "$out" | grep -q 'hello from berth' && echo "$out" | grep -q '^sh -c\|sh -c'; then pass "ctr run --rm output"; else fail "ctr run --rm: $out"; fi

code=0; c run --rm "${RUN[@]}" "$IMG" dropin-exit sh -c 'exit 3' >/dev/null 2>&1 || code=$?
[ "$code" = 3 ] && pass "exit status passes through" || fail "exit status $code (want 3)"

c run -d "${RUN[@]}" "$IMG" dropin-bg sleep 300 >/dev/null
wait_status dropin-bg RUNNING && pass "detached task running" || fail "detached task: $(task_status dropin-bg)"

out="$(c task exec --exec-id e1 dropin-bg sh -c 'echo exec-ok $(cat /proc/1/cmdline | tr "\0" " ")' 2>&1 || true)"
echo "$out" | grep -q 'exec-ok sleep 300' && pass "ctr task exec" || fail "ctr task exec: $out"

c task pause dropin-bg && wait_status dropin-bg PAUSED && pass "pause" || fail "pause: $(task_status dropin-bg)"
c task resume dropin-bg && wait_status dropin-bg RUNNING && pass "resume" || fail "resume: $(task_status dropin-bg)"

pids="$(c task ps dropin-bg 2>/dev/null | awk 'NR>1 {print $1}' | wc -l)"
[ "$pids" -ge 1 ] && pass "ctr task ps ($pids)" || fail "ctr task ps"

c task kill -s SIGKILL dropin-bg
wait_status dropin-bg STOPPED && pass "kill" || fail "kill: $(task_status dropin-bg)"
c task delete dropin-bg >/dev/null && c container delete dropin-bg >/dev/null && pass "delete" || fail "delete"
left="$("$BERTH" --root "$D/runc-root/berth-dropin" list -q 2>/dev/null || true)"
[ -z "$left" ] && pass "no berth state left" || fail "berth state left: $left"

summary
