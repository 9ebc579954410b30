#!/usr/bin/env bash
# bundles/run-sample.sh — set up a fresh Debian 12 machine (as root) and run berth's
# sample: an OCI bundle whose rootfs is built from Debian's busybox-static.
# Idempotent; everything it builds lives under target/.
set -euo pipefail
. "$(dirname "$0")/../integration/lib/common.sh"
cd "$BERTH_REPO"
apt_install busybox-static libseccomp-dev pkg-config gcc
cargo build --release -j2 -p berth >&2
BUNDLE="$BERTH_REPO/target/bundles/hello"
mkdir -p "$BUNDLE"
make_rootfs "$BUNDLE/rootfs"
cp bundles/hello/config.json "$BUNDLE/config.json"
id="berth-sample-$$"
log "running $BUNDLE as container $id"
exec "$BERTH_REPO/target/release/berth" run --bundle "$BUNDLE" "$id"
