# shellcheck shell=bash
# integration/lib/common.sh — shared helpers for berth's shell test drivers: Debian
# packages, a busybox rootfs, an offline busybox OCI image, and a private containerd.
# Source it:  . "$(dirname "$0")/../lib/common.sh"

BERTH_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BERTH_WORK="${BERTH_WORK:-${TMPDIR:-/tmp}/berth-work}"

log() { printf '[berth] %s\n' "$*" >&2; }
die() { printf '[berth] ERROR: %s\n' "$*" >&2; exit 1; }

# apt_install PKG... — installs what is missing (apt-get update first, once per run).
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  if [ -z "${BERTH_APT_UPDATED:-}" ]; then
    apt-get -o DPkg::Lock::Timeout=600 update -q >&2
    export BERTH_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
    --no-install-recommends "${missing[@]}" >&2
}

# build_release_berth — builds the berth binary as shipped and prints its path: release, and
# statically linked (glibc static-pie, libseccomp.a). Every berth command is a fresh exec;
# dynamically linked, a third of its user time went to ld.so (mapping four libraries,
# 11 700 relocations, symbol binding), ~2.5 ms per container lifecycle. Static needs
# --target (proc macros cannot be static), so the binary lands in target/<triple>/release.
# Relative relocations are packed (DT_RELR): less to read and write at each start
# (docs/DESIGN.md). shim/build-release.sh uses the same RUSTFLAGS, so the builds share deps.
build_release_berth() {
  local triple libdir
  triple="$(rustc -vV | sed -n 's/^host: //p')"
  libdir="$(pkg-config --variable=libdir libseccomp)"
  LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH="$libdir" \
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs" \
    cargo build --release -j"${CARGO_BUILD_JOBS:-2}" -p berth --target "$triple" >&2
  echo "$BERTH_REPO/target/$triple/release/berth"
}

# make_rootfs DIR — busybox-static with one symlink per applet and a minimal /etc.
make_rootfs() {
  local root="$1" bb=/bin/busybox a
  [ -x "$bb" ] || die "$bb missing: apt-get install busybox-static"
  mkdir -p "$root"/{bin,sbin,etc,dev,proc,sys,tmp,run,root,var/tmp,usr/bin,usr/sbin}
  chmod 1777 "$root/tmp" "$root/var/tmp"
  rm -f "$root/bin/busybox"
  install -m 0755 "$bb" "$root/bin/busybox"
  for a in $("$root/bin/busybox" --list); do
    [ "$a" = busybox ] || ln -sfn busybox "$root/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'berth\n' >"$root/etc/hostname"
}

# make_busybox_image OUT_TAR [REF] — the offline busybox OCI archive, built by the same
# script the README uses (bundles/make-busybox-image.sh), under the given image name.
make_busybox_image() {
  local out="$1" ref="${2:-localhost/berth/busybox:latest}"
  IMAGE_NAME="$ref" bash "$BERTH_REPO/bundles/make-busybox-image.sh" "$out" >/dev/null
}

# containerd_up DIR — a private containerd (own config, root, state, socket) under DIR;
# sets CTRD_SOCK and CTRD_PID. The legacy v1 runtime plugin cannot be disabled in 1.6:
# its root is kept private too. Waits CTRD_WAIT_TRIES tenths of a second (default 100) for it.
containerd_up() {
  local d="$1"
  mkdir -p "$d"/{root,state,opt,runc-root,fifo}
  cat >"$d/config.toml" <<TOML
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[debug]
  address = "$d/debug.sock"
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$d/opt"
  [plugins."io.containerd.runtime.v1.linux"]
    runtime_root = "$d/runc-v1"
TOML
  CTRD_SOCK="$d/containerd.sock"
  rm -f "$CTRD_SOCK" "$CTRD_SOCK.ttrpc" "$d/debug.sock"
  setsid containerd --config "$d/config.toml" </dev/null >>"$d/containerd.log" 2>&1 &
  CTRD_PID=$!
  echo "$CTRD_PID" >"$d/containerd.pid"
  local i
  for i in $(seq "${CTRD_WAIT_TRIES:-100}"); do
    ctr --address "$CTRD_SOCK" version >/dev/null 2>&1 && return 0
    kill -0 "$CTRD_PID" 2>/dev/null || { tail -20 "$d/containerd.log" >&2; die "containerd exited"; }
    sleep 0.1
  done
  die "containerd did not answer; see $d/containerd.log"
}

# containerd_down DIR — stops that containerd, its shims and tasks, unmounts its dirs.
containerd_down() {
  local d="$1" pid m
  pid="$(cat "$d/containerd.pid" 2>/dev/null || true)"
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  # shims started for this containerd carry its socket path in their arguments
  for pid in $(pgrep -f "containerd-shim.*-address $d/containerd.sock" || true); do kill -9 "$pid" 2>/dev/null || true; done
  awk -v d="$d" '$2 ~ "^"d {print $2}' /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# Test counters for drivers that print "N passed, N failed".
PASSED=0 FAILED=0
pass() { PASSED=$((PASSED + 1)); log "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); log "FAIL: $*"; }
summary() { echo "$PASSED passed, $FAILED failed"; [ "$FAILED" -eq 0 ]; }
