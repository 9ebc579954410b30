#!/usr/bin/env bash
# shim/build-release.sh — builds the release shim as a static-pie executable and prints its
# path (the last line of stdout; cargo's output goes to stderr).
#
# Why static: the shim lives as long as its task, idle, so its resident memory is paid per
# task. Linked dynamically, it maps libc, libm, libgcc_s, libseccomp and ld.so, and the
# kernel's fault-around (64 KiB of cached file around each fault) makes about 2 MiB of them
# resident; the dynamic loader also runs at each of the four execs of the shim per
# `ctr run` (start action, server, container init, delete action). Static-pie keeps ASLR of
# the shim's image. Measurements: docs/shim.md, "Memory".
#
# crt-static is passed as a target rustflag with an explicit --target: without --target
# cargo applies RUSTFLAGS to proc-macros and build scripts too, which cannot be static.
# libseccomp links its archive (libseccomp-dev ships libseccomp.a; rustc wants its directory).
set -euo pipefail
cd "$(dirname "$0")/.."
host="$(rustc -vV | sed -n 's/^host: //p')"
seccomp_a="$(cc -print-file-name=libseccomp.a)"
[ -f "$seccomp_a" ] || { echo "build-release.sh: libseccomp.a not found (apt-get install libseccomp-dev)" >&2; exit 1; }
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs" \
  LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH="$(dirname "$seccomp_a")" \
  cargo build --release -p containerd-shim-berth-v2 --target "$host" >&2
bin="${CARGO_TARGET_DIR:-$PWD/target}/$host/release/containerd-shim-berth-v2"
# A dynamic result (a toolchain without static glibc) would silently lose the point.
if readelf -lW "$bin" | grep -q 'INTERP'; then
  echo "build-release.sh: $bin is not static" >&2
  exit 1
fi
echo "$bin"
