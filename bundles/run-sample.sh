#!/usr/bin/env bash
# bundles/run-sample.sh — set up a fresh Debian 12 machine (as root) and run berth's main
# job on the embedded default: the sample ECS task definition bundles/tasks/batch.json
# (three containers: prepare → work → report, ordered by dependsOn SUCCESS/COMPLETE) on a
# busybox image built offline from Debian's busybox-static. No registry is needed.
#
#   bash bundles/run-sample.sh                 # the batch task
#   bash bundles/run-sample.sh tasks/web.json  # another definition under bundles/
#   bash bundles/run-sample.sh --oci           # the plain OCI bundle bundles/hello instead
set -euo pipefail
. "$(dirname "$0")/../integration/lib/common.sh"
cd "$BERTH_REPO"
apt_install busybox-static libseccomp-dev pkg-config gcc umoci skopeo
BERTH="$(build_release_berth)"
if [ "${1:-}" = "--oci" ]; then
  BUNDLE="$BERTH_REPO/target/bundles/hello"
  mkdir -p "$BUNDLE"
  make_rootfs "$BUNDLE/rootfs"
  cp bundles/hello/config.json "$BUNDLE/config.json"
  exec "$BERTH" run --bundle "$BUNDLE" "berth-sample-$$"
fi
"$BERTH" image import "$(bash bundles/make-busybox-image.sh)" >&2
task="bundles/${1:-tasks/batch.json}"
log "berth task run $task"
exec "$BERTH" task run "$task"
