#!/bin/sh
# berth VM harness: /init of the guest's initramfs (runs under busybox sh).
#
# Copied verbatim into the initramfs by run.sh; never run on the host.
# Job: load the few modules needed to reach the host's filesystem (the
# Debian generic kernel has virtio, 9p and overlayfs as modules), build the
# guest root as an overlay of the host's / (read-only 9p) with a tmpfs upper
# layer, mount the fresh pseudo filesystems (pure cgroup v2), then
# switch_root into it and hand over to stage2 (guest-stage2.sh) as PID 1.
#
# Why overlay instead of the plain read-only 9p root: the guest needs a few
# writable places that do not exist on the host (e.g. /lib/modules/<guest
# kernel>, mount points for the shares), and tests may write anywhere.
# Writes land in guest RAM and vanish at power-off; the host is never
# modified except through the two read-write shares (run dir, results dir).
#
# Why switch_root (not chroot): pivot_root(2), which container runtimes use,
# fails with EINVAL when the mount namespace root is the initramfs (rootfs
# has no parent mount). After switch_root "/" is the overlay mount.

/bin/busybox --install -s /bin
export PATH=/bin

# Called on any failure: show what we know and power off without writing an
# exit status, so the host reports a boot failure.
die() {
	echo "berth-vm: init: FATAL: $*"
	echo "berth-vm: ---- last kernel messages ----"
	dmesg | tail -n 40
	echo "berth-vm: BOOT FAILED"
	sync
	poweroff -f
	echo o >/proc/sysrq-trigger
	sleep 5
}

mount -t proc proc /proc || die "mount /proc"
mount -t sysfs sysfs /sys || die "mount /sys"
mount -t devtmpfs devtmpfs /dev || die "mount /dev"
# The kernel opened our stdio on /dev/console from its built-in initramfs
# (Debian's has the node); re-open it from devtmpfs in case a kernel did not.
exec </dev/console >/dev/console 2>&1

# shellcheck source=/dev/null
. /etc/berth-vm.conf || die "no /etc/berth-vm.conf in initramfs"

# load.list is produced on the host from modules.dep in dependency order
# (dependencies first). Modules that are built into the kernel are simply
# absent from the list.
while read -r mod; do
	[ -n "$mod" ] || continue
	insmod "/modules/$mod" || die "insmod $mod"
done </modules/load.list

# 9p options. msize: bigger messages make 9p much faster (the default is
# 8 KiB on 6.1). cache=loose on the read-only host root lets the guest cache
# lookups and file data, which matters a lot under TCG; the read-write
# shares use cache=mmap (no write-back caching: the host sees every write
# immediately, mmap still works).
P9="trans=virtio,version=9p2000.L,msize=${BERTH_VM_MSIZE:-512000}"

mkdir -p /lower /rw /newroot /share
mount -t 9p -o "$P9,ro,cache=loose" hostroot /lower || die "mount 9p hostroot"
mount -t 9p -o "$P9,cache=mmap" berthrun /share || die "mount 9p berthrun"

# guest.conf is written by run.sh for this run: RUN_DIR, RESULTS_DIR,
# MODULES_DIR, KEEP_COUNT/KEEP_PATH_<n> (host paths, which are also the
# paths inside the guest) and PRELOAD_MODULES.
# shellcheck source=/dev/null
. /share/guest.conf || die "cannot read guest.conf from the run share"

mount -t tmpfs -o mode=0755,size=50% overlay-upper /rw || die "mount tmpfs /rw"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work \
	berthroot /newroot || die "mount overlay root"

R=/newroot
# Fresh pseudo filesystems: never the host's.
mount --move /proc "$R/proc" || die "move /proc"
mount --move /sys "$R/sys" || die "move /sys"
mount --move /dev "$R/dev" || die "move /dev"
mkdir -p "$R/dev/pts" "$R/dev/shm" "$R/dev/mqueue"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$R/dev/pts" || die "mount devpts"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$R/dev/shm" || die "mount /dev/shm"
mount -t mqueue mqueue "$R/dev/mqueue" 2>/dev/null || true

# Pure cgroup v2: the kernel is booted with cgroup_no_v1=all, so nothing can
# mount a v1 hierarchy either. nsdelegate + memory_recursiveprot match what
# systemd uses on a modern host.
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 "$R/sys/fs/cgroup" \
	|| mount -t cgroup2 -o nsdelegate cgroup2 "$R/sys/fs/cgroup" || die "mount cgroup2"
mount -t bpf bpf "$R/sys/fs/bpf" 2>/dev/null || true

# Host directories the run needs (repo, working directory, the command's
# directory, CARGO_TARGET_DIR) that live under /tmp, /var/tmp or /run on the
# host would be hidden by the fresh tmpfs mounts below (CI may clone the
# repo under /tmp). run.sh lists those as KEEP_PATH_<n>: grab them from the
# overlay now (writable, copy-up) and put them back on top of the tmpfs.
mkdir -p /keep
i=0
p=
kept=" "
while [ "$i" -lt "${KEEP_COUNT:-0}" ]; do
	i=$((i + 1))
	eval "p=\$KEEP_PATH_$i"
	if [ -d "$R$p" ]; then
		mkdir -p "/keep/$i"
		mount --bind "$R$p" "/keep/$i" || die "bind $p"
		kept="$kept$i "
	fi
done

# Writable scratch space. /tmp gets half the RAM (tmpfs only uses what is
# written); tests create bundles and container state there. It must be a
# real tmpfs, not the overlay: overlayfs refuses overlayfs as upper layer,
# and container tests put overlay upper dirs in /tmp.
mount -t tmpfs -o mode=1777,size=50% tmp "$R/tmp" || die "mount /tmp"
mount -t tmpfs -o mode=0755,size=25% run "$R/run" || die "mount /run"
mount -t tmpfs -o mode=1777,size=25% vartmp "$R/var/tmp" || die "mount /var/tmp"

i=0
while [ "$i" -lt "${KEEP_COUNT:-0}" ]; do
	i=$((i + 1))
	eval "p=\$KEEP_PATH_$i"
	case $kept in
	*" $i "*)
		mkdir -p "$R$p"
		mount --move "/keep/$i" "$R$p" || die "restore $p"
		;;
	esac
done

# The per-run share (script, exit status) and the results share appear at
# the same paths as on the host, so paths can be passed around verbatim.
mkdir -p "$R$RUN_DIR" "$R$RESULTS_DIR" || die "mkdir share mount points"
mount --move /share "$R$RUN_DIR" || die "move run share"
mount -t 9p -o "$P9,cache=mmap" berthresults "$R$RESULTS_DIR" || die "mount 9p berthresults"

# The guest kernel's modules (extracted on the host into the cache) at
# /lib/modules/<guest version>, so modprobe works. The host has no such
# directory (and maybe no /lib/modules at all), hence the writable root.
# Bound from /lower, the raw host root, because the cache may be under a
# path that the tmpfs mounts above hide.
mkdir -p "$R/lib/modules/$KVER"
mount --bind "/lower$MODULES_DIR" "$R/lib/modules/$KVER" || die "bind /lib/modules/$KVER"

# Stage 2 runs from a tmpfs with its own busybox, so it depends on nothing
# on the host except the command it is asked to run.
mkdir -p "$R/run/berth-vm"
cp /bin/busybox /stage2 "$R/run/berth-vm/" || die "copy stage2"

exec switch_root "$R" /run/berth-vm/busybox sh /run/berth-vm/stage2
