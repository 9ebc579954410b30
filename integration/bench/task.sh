#!/usr/bin/env bash
# integration/bench/task.sh — berth task startup figures (a benchmark, not a timed test):
#   1. `berth task run` of a one-container `true` task, attached, end to end (median of N);
#   2. time until all three containers of a three-container task are running (berth task run -d,
#      then task.json polled) vs the same three containers started one by one with `crun run -d`
#      and with `ctr run -d` (private containerd, default runc shim).
# Usage: integration/bench/task.sh [N]   (root; release build; figures go into docs/tasks.md)
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
cd "$BERTH_REPO"
N="${1:-10}"
BERTH="$(build_release_berth)"
W="$(mktemp -d /tmp/berth-bench-task.XXXXXX)"
trap 'set +e; for t in $("$BERTH" --root "$W/run" task ls -q 2>/dev/null); do "$BERTH" --root "$W/run" task stop "$t" >/dev/null; done;
      for i in 1 2 3; do crun --root "$W/crun" delete -f "bb$$-$i" >/dev/null 2>&1; done;
      [ -n "${CTRD_SOCK:-}" ] && for i in 1 2 3; do ctr --address "$CTRD_SOCK" task kill -s KILL "bb$$-$i" >/dev/null 2>&1; sleep 0.2; ctr --address "$CTRD_SOCK" task rm -f "bb$$-$i" >/dev/null 2>&1; ctr --address "$CTRD_SOCK" container rm "bb$$-$i" >/dev/null 2>&1; done;
      [ -n "${CTRD_SOCK:-}" ] && containerd_down "$W/ctrd"; rm -rf "$W"' EXIT

IMG="$(bundles/make-busybox-image.sh 2>/dev/null)"
"$BERTH" image --image-root "$W/images" import "$IMG" >&2
T="task --image-root $W/images"
ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

cat >"$W/true.json" <<'JSON'
{"family": "one", "cpu": "256", "memory": "512",
 "containerDefinitions": [{"name": "main", "image": "busybox", "command": ["true"]}]}
JSON
cat >"$W/three.json" <<'JSON'
{"family": "three", "cpu": "1024", "memory": "2048",
 "containerDefinitions": [
  {"name": "a", "image": "busybox", "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]},
  {"name": "b", "image": "busybox", "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]},
  {"name": "c", "image": "busybox", "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]}]}
JSON

# 1. one-container `true` task
for i in $(seq "$N"); do
  s=$(date +%s%N); "$BERTH" --root "$W/run" $T run --name "one-$i" "$W/true.json" >/dev/null 2>&1; e=$(date +%s%N)
  "$BERTH" --root "$W/run" task rm "one-$i"
  ms "$s" "$e"
done | median | sed 's/^/berth task run (1 container, true), median ms: /'

# 2a. berth: three containers running
for i in $(seq "$N"); do
  s=$(date +%s%N)
  "$BERTH" --root "$W/run" $T run -d --name "three-$i" "$W/three.json" >/dev/null
  until [ "$(grep -c '"lastStatus": "RUNNING"' "$W/run/tasks/three-$i/task.json" 2>/dev/null)" -ge 4 ]; do sleep 0.002; done
  e=$(date +%s%N)
  "$BERTH" --root "$W/run" task stop "three-$i"; "$BERTH" --root "$W/run" task rm "three-$i"
  ms "$s" "$e"
done | median | sed 's/^/berth task run -d (3 containers running), median ms: /'

# 2b. crun: the same three containers one by one (busybox rootfs, crun's default spec)
mkdir -p "$W/bundle"; make_rootfs "$W/bundle/rootfs"
( cd "$W/bundle" && crun spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"sleep", "600"/' config.json )
for i in $(seq "$N"); do
  s=$(date +%s%N)
  for c in 1 2 3; do crun --root "$W/crun" run -d --bundle "$W/bundle" "bb$$-$c" </dev/null >/dev/null 2>&1; done
  e=$(date +%s%N)
  for c in 1 2 3; do crun --root "$W/crun" delete -f "bb$$-$c"; done
  ms "$s" "$e"
done | median | sed 's/^/crun run -d x3, median ms: /'

# 2c. ctr (containerd 1.6 + runc shim): the same image, three containers one by one
if command -v containerd >/dev/null && command -v ctr >/dev/null; then
  containerd_up "$W/ctrd"
  ctr --address "$CTRD_SOCK" image import --base-name busybox --digests "$IMG" >/dev/null 2>&1 || ctr --address "$CTRD_SOCK" image import "$IMG" >/dev/null
  REF="$(ctr --address "$CTRD_SOCK" image ls -q | head -1)"
  for i in $(seq "$N"); do
    s=$(date +%s%N)
    for c in 1 2 3; do ctr --address "$CTRD_SOCK" run -d "$REF" "bb$$-$c" sleep 600 >/dev/null; done
    e=$(date +%s%N)
    for c in 1 2 3; do
      ctr --address "$CTRD_SOCK" task kill -s KILL "bb$$-$c" >/dev/null 2>&1 || true
      for _ in $(seq 50); do ctr --address "$CTRD_SOCK" task rm "bb$$-$c" >/dev/null 2>&1 && break; sleep 0.05; done
      ctr --address "$CTRD_SOCK" container rm "bb$$-$c" >/dev/null
    done
    ms "$s" "$e"
  done | median | sed 's/^/ctr run -d x3, median ms: /'
fi
