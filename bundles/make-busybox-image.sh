#!/usr/bin/env bash
# bundles/make-busybox-image.sh — build berth's sample busybox image OFFLINE, as an OCI
# archive (the tar `skopeo copy … oci-archive:` writes), and print its path on stdout.
#
# Usage: bundles/make-busybox-image.sh [--force] [OUT_TAR]
#   OUT_TAR  default: ${BERTH_IMAGE_DIR:-${TMPDIR:-/tmp}/berth-images}/busybox-oci.tar
#   --force  rebuild even if OUT_TAR is already there (default: reuse it — idempotent)
# Env: IMAGE_NAME  the name recorded in the archive's index (default busybox:latest), which
#                  `berth image import OUT_TAR` uses when no --name is given.
#
# The image: one layer holding Debian's static busybox (busybox-static) with a symlink per
# applet, the usual empty mount points, and a tiny /etc/passwd and /etc/group; config with
# PATH, WorkingDir / and Cmd ["/bin/sh"]. Built with umoci (layout, layer, config) and
# skopeo (layout → archive). Missing tools are installed with apt-get.
set -euo pipefail

force=false
if [ "${1:-}" = "--force" ]; then force=true; shift; fi
out="${1:-${BERTH_IMAGE_DIR:-${TMPDIR:-/tmp}/berth-images}/busybox-oci.tar}"
name="${IMAGE_NAME:-busybox:latest}"

die() { printf 'make-busybox-image: %s\n' "$*" >&2; exit 1; }

need=()
command -v umoci >/dev/null || need+=(umoci)
command -v skopeo >/dev/null || need+=(skopeo)
busybox=""
for b in /bin/busybox /usr/bin/busybox; do [ -x "$b" ] && busybox="$b" && break; done
# Debian's busybox (non-static) links against libc and would not run in the image.
if [ -z "$busybox" ] || ! dpkg -s busybox-static >/dev/null 2>&1; then need+=(busybox-static); fi
if [ "${#need[@]}" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${need[*]}: apt-get install ${need[*]} (as root)"
  printf 'make-busybox-image: installing %s\n' "${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${need[@]}" >&2 || { apt-get update -q >&2 && apt-get install -y -q "${need[@]}" >&2; }
  busybox=/bin/busybox
fi
[ -x "$busybox" ] || die "no busybox binary after installing busybox-static"

if [ -s "$out" ] && ! $force; then
  echo "$out"
  exit 0
fi
mkdir -p "$(dirname "$out")"

work="$(mktemp -d "${TMPDIR:-/tmp}/berth-busybox-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT

root="$work/rootfs"
mkdir -p "$root"/{bin,sbin,etc,dev,proc,sys,tmp,run,root,var/tmp,usr/bin,usr/sbin}
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"
install -m 0755 "$busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
: >"$root/etc/hostname"

rootless=()
[ "$(id -u)" = 0 ] || rootless=(--rootless)
layout="$work/layout"
umoci init --layout "$layout" >&2
umoci new --image "$layout:latest" >&2
umoci insert "${rootless[@]}" --image "$layout:latest" \
  --history.created_by "berth: bundles/make-busybox-image.sh (busybox-static)" "$root" / >&2
# dpkg names architectures as OCI does (amd64, arm64, …).
umoci config --image "$layout:latest" --architecture "$(dpkg --print-architecture)" --os linux \
  --config.env 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --config.workingdir / --config.cmd /bin/sh >&2

# Write next to OUT and rename: a concurrent reader never sees a half-written archive.
tmp_out="$out.tmp.$$"
rm -f "$tmp_out"
skopeo --insecure-policy copy --quiet "oci:$layout:latest" "oci-archive:$tmp_out:$name" >&2
mv -f "$tmp_out" "$out"
echo "$out"
