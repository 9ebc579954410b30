#!/usr/bin/env bash
# integration/bench/shim.sh — containerd-shim-berth-v2 against containerd's Go runc shim
# (a benchmark, not a timed test; figures go into docs/shim.md):
#   1. `ctr run --rm` of busybox `true`, interleaved: io.containerd.berth.v2 vs
#      io.containerd.runc.v2 driving runc and driving crun (--runc-binary); medians, ratios;
#   2. shim memory with one `sleep` task: RSS, anonymous (RssAnon), PSS, USS, threads;
#   3. 20 concurrent single-container tasks: total shim PSS (and shim processes);
#   4. one berth task of 10 containers (same berth.task.id) in one shim: its memory.
# A private containerd (own root/state/sockets) is started and stopped here.
# Usage: integration/bench/shim.sh [N]     (root; N samples per variant, default 30)
# Env:   BERTH_SHIM=path   the shim binary (default: shim/build-release.sh, the static-pie
#                          release build)
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
cd "$BERTH_REPO"
N="${1:-30}"
apt_install containerd runc crun umoci skopeo busybox-static procps

if [ -z "${BERTH_SHIM:-}" ]; then
  BERTH_SHIM="$(bash "$BERTH_REPO/shim/build-release.sh" | tail -1)"
fi
NS=berth-bench
IMG=localhost/berth/busybox:latest
D="$(mktemp -d /tmp/berth-bench-shim.XXXXXX)"
HUGETLB_MOUNTED=

cleanup() {
  set +e
  if [ -n "${CTRD_SOCK:-}" ]; then
    for t in $(c task ls -q 2>/dev/null); do c task kill -s SIGKILL "$t" >/dev/null 2>&1; done
    sleep 0.3
    for t in $(c task ls -q 2>/dev/null); do c task delete "$t" >/dev/null 2>&1; done
    for t in $(c container ls -q 2>/dev/null); do c container delete "$t" >/dev/null 2>&1; done
  fi
  containerd_down "$D"
  for cg in /sys/fs/cgroup/*/"$NS"; do [ -d "$cg" ] && rmdir "$cg"/* "$cg" 2>/dev/null; done
  if [ -n "$HUGETLB_MOUNTED" ]; then umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb; fi
  rm -rf "$D"
}
trap cleanup EXIT

# crun refuses a hybrid host while cgroup2 (/sys/fs/cgroup/unified) lists a controller:
# give hugetlb a v1 hierarchy, as a systemd hybrid host does (undone on exit).
if [ -f /sys/fs/cgroup/unified/cgroup.controllers ] && grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers; then
  mkdir -p /sys/fs/cgroup/hugetlb
  mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb && HUGETLB_MOUNTED=1
fi

mkdir -p "$D/bin"
ln -s "$(readlink -f "$BERTH_SHIM")" "$D/bin/containerd-shim-berth-v2"
PATH="$D/bin:$PATH" containerd_up "$D"
c() { ctr --address "$CTRD_SOCK" --namespace "$NS" "$@"; }
TAR="$BERTH_WORK/busybox-oci.tar"
make_busybox_image "$TAR"
c images import --base-name "${IMG%:*}" "$TAR" >/dev/null

declare -A ARGS=(
  [berth]="--runtime io.containerd.berth.v2"
  [runc]="--runtime io.containerd.runc.v2 --runc-binary $(command -v runc) --runc-root $D/runc-root"
  [crun]="--runtime io.containerd.runc.v2 --runc-binary $(command -v crun) --runc-root $D/runc-root"
)
VARIANTS=(berth runc crun)
ms_now() { echo $(( $(date +%s%N) / 1000 )); }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

echo "# shim bench $(date -u +%FT%TZ): $(uname -r), $(nproc) cpus, containerd $(containerd --version | awk '{print $3}')"
echo "berth shim: $BERTH_SHIM ($(stat -c %s "$(readlink -f "$BERTH_SHIM")") bytes); runc $(runc --version | awk 'NR==1{print $3}'); crun $(crun --version | awk 'NR==1{print $3}')"
echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# 1. ctr run --rm true, interleaved (order rotates every round), 2 warm-ups each
for v in "${VARIANTS[@]}"; do
  for w in 1 2; do c run --rm ${ARGS[$v]} --fifo-dir "$D/fifo" "$IMG" "warm-$v-$w" true </dev/null >/dev/null; done
done
for ((i = 0; i < N; i++)); do
  for ((k = 0; k < ${#VARIANTS[@]}; k++)); do
    v="${VARIANTS[$(((i + k) % ${#VARIANTS[@]}))]}"
    s=$(ms_now)
    c run --rm ${ARGS[$v]} --fifo-dir "$D/fifo" "$IMG" "t-$v-$i" true </dev/null >/dev/null
    echo $(($(ms_now) - s)) >>"$D/times-$v"
  done
done
echo "## ctr run --rm busybox true (N=$N each, interleaved; µs → ms)"
echo "| shim | median ms | min ms | max ms | vs runc shim+runc | vs runc shim+crun |"
echo "|---|---:|---:|---:|---:|---:|"
declare -A MED
for v in "${VARIANTS[@]}"; do MED[$v]="$(median <"$D/times-$v")"; done
for v in "${VARIANTS[@]}"; do
  min="$(sort -n "$D/times-$v" | head -1)"; max="$(sort -n "$D/times-$v" | tail -1)"
  awk -v n="$v" -v m="${MED[$v]}" -v lo="$min" -v hi="$max" -v r="${MED[runc]}" -v cr="${MED[crun]}" \
    'BEGIN {printf "| %s | %.1f | %.1f | %.1f | %.2f× | %.2f× |\n", n, m/1000, lo/1000, hi/1000, m/r, m/cr}'
done
echo

# memory helpers: kB figures of one process
mem() { # PID -> "rss anon pss uss threads"
  local rss anon th
  rss="$(awk '$1=="VmRSS:"{print $2}' "/proc/$1/status")"
  anon="$(awk '$1=="RssAnon:"{print $2}' "/proc/$1/status")"
  th="$(awk '$1=="Threads:"{print $2}' "/proc/$1/status")"
  awk -v r="$rss" -v a="$anon" -v t="$th" '/^Pss:/{p=$2} /^Private_(Clean|Dirty):/{u+=$2} END{print r, a, p, u, t}' "/proc/$1/smaps_rollup"
}
mib() { awk -v k="$1" 'BEGIN{printf "%.2f", k/1024}'; }
task_pid() { c task ls | awk -v t="$1" '$1==t{print $2}'; }
shim_of() { awk '$1=="PPid:"{print $2}' "/proc/$(task_pid "$1")/status"; }
start_sleep() { c run -d --null-io ${ARGS[$1]} "${@:3}" "$IMG" "$2" sleep 3600 >/dev/null </dev/null; }
stop_all() {
  local t
  for t in $(c task ls -q); do c task kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
  sleep 0.5
  for t in $(c task ls -q); do c task delete "$t" >/dev/null 2>&1 || true; done
  for t in $(c container ls -q); do c container delete "$t" >/dev/null 2>&1 || true; done
}

# 2. one sleep task
echo "## shim memory, one \`sleep\` task (MiB; anonymous = RssAnon, USS = private pages)"
echo "| shim | RSS | anonymous | PSS | USS | threads |"
echo "|---|---:|---:|---:|---:|---:|"
for v in "${VARIANTS[@]}"; do
  start_sleep "$v" "m1-$v"
  sleep 2
  read -r rss anon pss uss th <<<"$(mem "$(shim_of "m1-$v")")"
  echo "| $v | $(mib "$rss") | $(mib "$anon") | $(mib "$pss") | $(mib "$uss") | $th |"
  stop_all
done
echo

# 3. 20 concurrent single-container tasks
echo "## 20 concurrent single-container \`sleep\` tasks: all their shims together (MiB)"
echo "| shim | shim processes | total PSS | total RSS | total anonymous |"
echo "|---|---:|---:|---:|---:|"
for v in berth runc; do
  for i in $(seq 20); do start_sleep "$v" "c20-$v-$i"; done
  sleep 2
  tp=0 tr=0 ta=0 n=0
  for s in $(for i in $(seq 20); do shim_of "c20-$v-$i"; done | sort -u); do
    read -r rss anon pss uss th <<<"$(mem "$s")"
    tp=$((tp + pss)); tr=$((tr + rss)); ta=$((ta + anon)); n=$((n + 1))
  done
  echo "| $v | $n | $(mib $tp) | $(mib $tr) | $(mib $ta) |"
  stop_all
done
echo

# 4. one task of 10 containers in one berth shim
for i in $(seq 10); do start_sleep berth "g10-$i" --annotation berth.task.id=bench-task; done
sleep 2
shims="$(for i in $(seq 10); do shim_of "g10-$i"; done | sort -u)"
read -r rss anon pss uss th <<<"$(mem "$(echo "$shims" | head -1)")"
echo "## one berth task of 10 containers (one shim: $(echo "$shims" | wc -l) process)"
echo "| RSS | anonymous | PSS | USS | threads |"
echo "|---:|---:|---:|---:|---:|"
echo "| $(mib "$rss") | $(mib "$anon") | $(mib "$pss") | $(mib "$uss") | $th |"
stop_all
