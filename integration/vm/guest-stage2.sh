#!/bin/sh
# berth VM harness: PID 1 of the guest after switch_root (busybox sh).
#
# Copied into the initramfs by run.sh, and from there to /run/berth-vm/ by
# guest-init.sh; never run on the host. Job: finish setting up the system
# (cgroup controllers, loopback, modprobe), run the per-run command script
# written by run.sh, record its exit status in the run share and on the
# console, and power the guest off.
#
# This script is PID 1: it must never exit (that panics the kernel), and it
# reaps orphans implicitly because it waits on the command.

BB=/run/berth-vm/busybox
PATH=/run/berth-vm/bin
export PATH
mkdir -p /run/berth-vm/bin
$BB --install -s /run/berth-vm/bin

poweroff_now() {
	sync
	poweroff -f
	echo o >/proc/sysrq-trigger
	sleep 10
}

# guest.conf lives in the run share, which init mounted at the host's path
# of the run dir; find it from the mount table (the 9p mount tagged
# berthrun) rather than passing paths on the kernel command line.
RUN_DIR=$(awk '$1 == "berthrun" && $3 == "9p" { print $2; exit }' /proc/mounts)
if [ -z "$RUN_DIR" ] || [ ! -r "$RUN_DIR/guest.conf" ]; then
	echo "berth-vm: stage2: run share not mounted"
	poweroff_now
fi
# shellcheck source=/dev/null
. "$RUN_DIR/guest.conf"

# Enable every controller the kernel offers for the whole tree, one at a
# time so that one refusal does not hide the others. The root cgroup is
# exempt from the "no internal processes" rule, so the command (which runs
# in the root cgroup) can create children with all controllers available.
# shellcheck disable=SC2013 # the file is one line of words
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
	echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null ||
		echo "berth-vm: warning: cannot enable cgroup controller $c"
done

hostname berth-vm
ip link set lo up 2>/dev/null || true

# The kernel autoloads modules (e.g. overlay, veth) through /sbin/modprobe.
# The host may not have kmod at all; then use busybox's modprobe, which
# reads the modules.dep that run.sh generated. The overlay root is
# writable, so the symlink only exists inside this guest.
if [ ! -e /sbin/modprobe ] && [ ! -e /usr/sbin/modprobe ]; then
	ln -s /run/berth-vm/busybox /usr/sbin/modprobe 2>/dev/null ||
		echo "berth-vm: warning: no modprobe in the guest"
fi
# Load the modules container tests commonly need up front, so tests do not
# depend on autoloading. Failures are not fatal (a module may be built in).
for m in $PRELOAD_MODULES; do
	modprobe "$m" 2>/dev/null || echo "berth-vm: warning: modprobe $m failed"
done

read -r up _ </proc/uptime
echo "berth-vm: guest ready after ${up}s, running command"

# The command runs with a clean environment: only what cmd.sh exports.
# stdin is /dev/null so that tests never block on the console.
# cmd.sh runs under the host's /bin/sh, not busybox: Debian's static busybox
# prefers its own applets over PATH (FEATURE_SH_STANDALONE), so under
# busybox sh "sh", "stat", "env", ... would silently be busybox applets
# instead of the host's tools.
env -i /bin/sh "$RUN_DIR/cmd.sh" </dev/null
status=$?

read -r up _ </proc/uptime
echo "$status" >"$RUN_DIR/status.tmp" && mv "$RUN_DIR/status.tmp" "$RUN_DIR/status"
echo "berth-vm: command finished at ${up}s"
# Marker parsed by run.sh if the status file is missing for any reason.
echo "BERTH_VM_EXIT_STATUS=$status"
poweroff_now
