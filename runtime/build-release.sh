#!/usr/bin/env bash
# runtime/build-release.sh — builds berth as shipped (release, static-pie: see
# docs/DESIGN.md "The release binary is static") and prints the binary's path.
# Needs libseccomp-dev and pkg-config (run-sample.sh installs them).
set -euo pipefail
. "$(dirname "$0")/../integration/lib/common.sh"
cd "$BERTH_REPO"
build_release_berth
