#!/usr/bin/env bash
# berth VM harness: run one command inside a throw-away qemu guest that is a
# pure cgroup v2 system, and exit with the command's exit status.
#
#   integration/vm/run.sh [options] -- CMD [ARGS...]
#
# The guest boots Debian's generic kernel (downloaded with apt-get download,
# extracted into a cache, never installed) with a tiny busybox initramfs
# that mounts the host's / read-only over virtio-9p as the lower layer of an
# overlay root, so host-built (glibc, dynamically linked) binaries run at
# their host paths. See docs/vm.md for the full story and measured times.
#
# Options:
#   --timeout SECS   kill the guest after SECS seconds (default 600)
#   --mem MB         guest RAM (default 2048); /tmp is a tmpfs of half of it
#   --smp N          vCPUs (default 2)
#   --results DIR    host dir shared read-write with the guest at the same
#                    path, exported to the command as BERTH_VM_RESULTS
#                    (default: $BERTH_VM_RESULTS, else <cache>/results)
#   --env NAME[=VAL] pass one more variable (repeatable); by default PATH,
#                    HOME, USER, LOGNAME, LANG, LC_*, TZ, RUST_*, CARGO_* and
#                    BERTH_* are passed from the host environment (TERM
#                    only if stdout is a terminal, else TERM=dumb)
#   --cwd DIR        directory to run CMD in (default: current directory)
#   --accel A        qemu accelerator (default tcg; kvm does not boot on the
#                    nested-PVM /dev/kvm of our dev machines)
#   --keep           keep the per-run directory (console log, script)
#   --refresh-kernel re-resolve and re-download the kernel package
#
# Environment: BERTH_VM_CACHE (cache dir, default <repo>/target/vm),
# BERTH_VM_KERNEL_PKG (kernel package, default: what linux-image-amd64
# depends on), BERTH_VM_PRELOAD (modules to load before CMD, default
# "overlay"), BERTH_VM_CPU (qemu -cpu model, default max).
#
# Exit status: CMD's status; 124 if the timeout hit; 125 if the guest failed
# to boot or the harness failed before CMD ran.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd -P)
CACHE=${BERTH_VM_CACHE:-$REPO/target/vm}

# Bump when the initramfs layout changes in a way the hash below misses.
INITRAMFS_FORMAT=1
# Modules loaded in the initramfs, in this order (dependencies are added
# from modules.dep). Anything built into the kernel is skipped.
INITRAMFS_MODULES=(virtio_pci 9pnet_virtio 9p overlay)

TIMEOUT=600
MEM=2048
SMP=2
RESULTS=${BERTH_VM_RESULTS:-}
CWD=$PWD
ACCEL=tcg
KEEP=0
REFRESH_KERNEL=0
EXTRA_ENV=()

log() { echo "berth-vm: $*" >&2; }
die() {
	log "error: $*"
	exit 125
}

usage() {
	sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
	exit "${1:-125}"
}

while [[ $# -gt 0 ]]; do
	case $1 in
	--timeout) TIMEOUT=${2:?--timeout needs a value}; shift 2 ;;
	--mem) MEM=${2:?--mem needs a value}; shift 2 ;;
	--smp) SMP=${2:?--smp needs a value}; shift 2 ;;
	--results) RESULTS=${2:?--results needs a value}; shift 2 ;;
	--env) EXTRA_ENV+=("${2:?--env needs a value}"); shift 2 ;;
	--cwd) CWD=${2:?--cwd needs a value}; shift 2 ;;
	--accel) ACCEL=${2:?--accel needs a value}; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--refresh-kernel) REFRESH_KERNEL=1; shift ;;
	-h | --help) usage 0 ;;
	--) shift; break ;;
	*) log "unknown option: $1"; usage ;;
	esac
done
[[ $# -gt 0 ]] || { log "no command given"; usage; }
[[ $TIMEOUT =~ ^[0-9]+$ && $MEM =~ ^[0-9]+$ && $SMP =~ ^[0-9]+$ ]] ||
	die "--timeout, --mem and --smp take positive integers"

[[ -d $CWD ]] || die "--cwd $CWD: no such directory"
CWD=$(cd "$CWD" && pwd)

START=$SECONDS

# ---------------------------------------------------------------- host tools

APT_UPDATED=0
apt_update_once() {
	if [[ $APT_UPDATED == 0 ]]; then
		log "apt-get update"
		apt-get update -qq >&2 || die "apt-get update failed"
		APT_UPDATED=1
	fi
}

# Install missing Debian packages. CI runs on fresh machines where only the
# base system is present. The initramfs needs a *static* busybox: the
# dynamic one from the "busybox" package would need libc in the initramfs.
ensure_pkgs() {
	local pkg missing=()
	for pkg in "$@"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
	done
	[[ ${#missing[@]} -gt 0 ]] || return 0
	[[ $(id -u) == 0 ]] || die "missing packages ${missing[*]} and not root to install them"
	apt_update_once
	log "apt-get install ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 ||
		die "cannot install ${missing[*]}"
}
ensure_pkgs qemu-system-x86 busybox-static
BUSYBOX=/bin/busybox
[[ -x $BUSYBOX ]] || die "$BUSYBOX missing after installing busybox-static"

mkdir -p "$CACHE/runs"
CACHE=$(cd "$CACHE" && pwd -P)

# ------------------------------------------------------------------- kernel
#
# Debian's generic kernel (not -cloud: that one has no 9p). Extracted with
# dpkg -x, so nothing on the host changes. Cached per package version; once
# cached, no apt command runs again unless --refresh-kernel is given, so
# repeated runs are fast and work offline.

resolve_kernel_pkg() {
	if [[ -n ${BERTH_VM_KERNEL_PKG:-} ]]; then
		echo "$BERTH_VM_KERNEL_PKG"
		return
	fi
	local dep
	dep=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }') || true
	if [[ -z $dep ]]; then
		apt_update_once
		dep=$(apt-cache depends linux-image-amd64 | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
	fi
	[[ -n $dep ]] || die "cannot resolve the package behind linux-image-amd64"
	echo "$dep"
}

prepare_kernel() {
	local current=$CACHE/kernel.current kdir
	if [[ $REFRESH_KERNEL == 0 && -s $current ]]; then
		kdir=$CACHE/$(cat "$current")
		if [[ -f $kdir/.complete ]]; then
			KDIR=$kdir
			return
		fi
	fi
	local pkg ver name tmp
	pkg=$(resolve_kernel_pkg)
	ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | awk '$1 == "Version:" { print $2; exit }') || true
	if [[ -z $ver ]]; then
		apt_update_once
		ver=$(apt-cache show --no-all-versions "$pkg" | awk '$1 == "Version:" { print $2; exit }')
	fi
	[[ -n $ver ]] || die "no candidate version for $pkg"
	name="kernel-${pkg}_${ver//[^A-Za-z0-9.+-]/_}"
	kdir=$CACHE/$name
	if [[ ! -f $kdir/.complete ]]; then
		log "fetching $pkg $ver (first run only)"
		rm -rf "$kdir" "$kdir.tmp"
		tmp=$kdir.tmp
		mkdir -p "$tmp/deb"
		# Run as root, apt would warn that _apt cannot write here; downloading
		# unsandboxed into our own directory is exactly what we want.
		(cd "$tmp/deb" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver" >&2) ||
			die "apt-get download $pkg=$ver failed"
		dpkg -x "$tmp"/deb/*.deb "$tmp/root" || die "dpkg -x failed"
		rm -rf "$tmp/deb"
		local vmlinuz kver
		vmlinuz=$(find "$tmp/root/boot" -name 'vmlinuz-*' | head -n 1)
		[[ -n $vmlinuz ]] || die "no vmlinuz in $pkg"
		kver=${vmlinuz##*/vmlinuz-}
		[[ -d $tmp/root/lib/modules/$kver ]] || die "no lib/modules/$kver in $pkg"
		# The .deb ships no modules.dep (postinst runs depmod). Generate it:
		# busybox depmod writes the text modules.dep that both our initramfs
		# module ordering and busybox modprobe in the guest read; if the host
		# has kmod, its depmod adds the binary indexes kmod's modprobe needs.
		"$BUSYBOX" depmod -b "$tmp/root" "$kver" || die "depmod failed"
		if command -v depmod >/dev/null; then
			depmod -b "$tmp/root" "$kver" || log "warning: kmod depmod failed"
		fi
		echo "$kver" >"$tmp/kver"
		ln -s "root/boot/vmlinuz-$kver" "$tmp/vmlinuz"
		touch "$tmp/.complete"
		mv "$tmp" "$kdir"
	fi
	echo "$name" >"$current.tmp"
	mv "$current.tmp" "$current"
	KDIR=$kdir
}

# qemu can boot an uncompressed vmlinux ELF directly through the PVH entry
# point (CONFIG_PVH=y in Debian's kernels). That skips the in-guest
# decompression of the bzImage, which under TCG costs ~2.5 s of every boot
# (measured: 5.4 s -> 2.8 s for "run.sh -- true"). The payload is found by
# its compression magic, as the kernel's scripts/extract-vmlinux does.
# Falls back to the bzImage if anything about that fails.
prepare_vmlinux() {
	BOOT_IMAGE=$KDIR/vmlinuz
	[[ -s $KDIR/vmlinux ]] && { BOOT_IMAGE=$KDIR/vmlinux; return; }
	[[ -e $KDIR/vmlinux.unavailable ]] && return
	local config magic dec off
	config=$(echo "$KDIR"/root/boot/config-*)
	if ! grep -qx 'CONFIG_PVH=y' "$config" 2>/dev/null; then
		touch "$KDIR/vmlinux.unavailable"
		return
	fi
	if grep -qx 'CONFIG_KERNEL_XZ=y' "$config"; then
		magic='\xfd7zXZ\x00'
		if command -v xz >/dev/null; then dec=(xz -dcq --single-stream); else dec=("$BUSYBOX" xzcat); fi
	elif grep -qx 'CONFIG_KERNEL_ZSTD=y' "$config" && command -v zstd >/dev/null; then
		magic='\x28\xb5\x2f\xfd'
		dec=(zstd -dcq)
	elif grep -qx 'CONFIG_KERNEL_GZIP=y' "$config"; then
		magic='\x1f\x8b\x08'
		dec=(gzip -dcq)
	else
		touch "$KDIR/vmlinux.unavailable"
		return
	fi
	off=$(LC_ALL=C grep -obUaP "$magic" "$KDIR/vmlinuz" | head -n 1 | cut -d: -f1) || true
	# Decompressors complain about the bytes after the payload; the output
	# is checked for an ELF header instead of trusting their exit status.
	if [[ -n $off ]]; then
		tail -c "+$((off + 1))" "$KDIR/vmlinuz" | "${dec[@]}" >"$KDIR/vmlinux.tmp" 2>/dev/null || true
	fi
	if [[ -s $KDIR/vmlinux.tmp ]] && [[ $(head -c 4 "$KDIR/vmlinux.tmp" | od -An -c | tr -d ' ') == '177ELF' ]]; then
		mv "$KDIR/vmlinux.tmp" "$KDIR/vmlinux"
		BOOT_IMAGE=$KDIR/vmlinux
	else
		log "warning: could not extract vmlinux, booting the bzImage (slower)"
		rm -f "$KDIR/vmlinux.tmp"
		touch "$KDIR/vmlinux.unavailable"
	fi
}

# ---------------------------------------------------------------- initramfs

# Print, dependencies first, the modules.dep paths of the named modules.
# modules.dep lines are "path: dep1 dep2 ..."; we recurse instead of
# trusting the order of the dependency list.
module_load_order() { # module_load_order MODDIR NAME...
	local moddir=$1
	shift
	awk -v want="$*" '
		{
			path = $1; sub(/:$/, "", path)
			n = path; sub(/.*\//, "", n); sub(/\.ko(\.[a-z]+)?$/, "", n)
			gsub(/-/, "_", n)
			byname[n] = path
			deps[path] = ""
			for (i = 2; i <= NF; i++) deps[path] = deps[path] " " $i
		}
		function visit(p,   d, k, i) {
			if (p in seen) return
			seen[p] = 1
			k = split(deps[p], d, " ")
			for (i = 1; i <= k; i++) visit(d[i])
			print p
		}
		END {
			k = split(want, w, " ")
			for (i = 1; i <= k; i++) {
				n = w[i]; gsub(/-/, "_", n)
				if (n in byname) visit(byname[n])
			}
		}' "$moddir/modules.dep"
}

prepare_initramfs() {
	local kver moddir order hash tmp m
	kver=$(cat "$KDIR/kver")
	moddir=$KDIR/root/lib/modules/$kver
	order=$(module_load_order "$moddir" "${INITRAMFS_MODULES[@]}")
	for m in virtio_pci 9pnet_virtio 9p; do
		grep -q "/$m\.ko" <<<"$order" || grep -q "/$m\.ko" "$moddir/modules.builtin" ||
			die "kernel $kver has module $m neither as module nor built in"
	done
	# Rebuild whenever anything that goes into the image changes (this
	# script included: it decides the module list and the layout).
	hash=$({
		echo "format $INITRAMFS_FORMAT $kver"
		echo "$order"
		cat "${BASH_SOURCE[0]}" "$SCRIPT_DIR/guest-init.sh" "$SCRIPT_DIR/guest-stage2.sh" "$BUSYBOX"
	} | sha256sum | cut -c1-16)
	INITRAMFS=$KDIR/initramfs-$hash.cpio
	[[ -s $INITRAMFS ]] && return
	log "building initramfs ($INITRAMFS)"
	tmp=$(mktemp -d "$CACHE/initramfs.XXXXXX")
	mkdir -p "$tmp"/{bin,etc,proc,sys,dev,modules}
	cp "$BUSYBOX" "$tmp/bin/busybox"
	ln -s busybox "$tmp/bin/sh"
	install -m 0755 "$SCRIPT_DIR/guest-init.sh" "$tmp/init"
	install -m 0755 "$SCRIPT_DIR/guest-stage2.sh" "$tmp/stage2"
	echo "KVER='$kver'" >"$tmp/etc/berth-vm.conf"
	: >"$tmp/modules/load.list"
	while read -r m; do
		[[ -n $m ]] || continue
		cp "$moddir/$m" "$tmp/modules/"
		echo "${m##*/}" >>"$tmp/modules/load.list"
	done <<<"$order"
	# Uncompressed: decompressing costs more than reading under TCG.
	(cd "$tmp" && find . | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc 2>/dev/null) >"$INITRAMFS.tmp" ||
		die "cpio failed"
	mv "$INITRAMFS.tmp" "$INITRAMFS"
	rm -rf "$tmp"
	# Drop images built from older inputs.
	find "$KDIR" -maxdepth 1 -name 'initramfs-*.cpio' ! -name "${INITRAMFS##*/}" -delete
}

# Kernel and initramfs preparation is serialised between concurrent runs.
exec 9>"$CACHE/.lock"
flock 9
prepare_kernel
prepare_vmlinux
prepare_initramfs
flock -u 9
exec 9>&-
KVER=$(cat "$KDIR/kver")
PREP_SECS=$((SECONDS - START))

# ------------------------------------------------------------------ per run

# Run dirs of failed runs are kept for inspection; drop those older than a day.
find "$CACHE/runs" -mindepth 1 -maxdepth 1 -name 'run.*' -mmin +1440 -exec rm -rf {} + 2>/dev/null || true
RUN_DIR=$(mktemp -d "$CACHE/runs/run.XXXXXX")
if [[ -z $RESULTS ]]; then RESULTS=$CACHE/results; fi
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd -P)

QEMU_PGID=
PRINTER_PID=
# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	# qemu runs in its own process group (timeout(1) makes one); kill the
	# whole group so nothing outlives us, then the console printer.
	if [[ -n $QEMU_PGID ]] && kill -0 "$QEMU_PGID" 2>/dev/null; then
		kill -TERM -- "-$QEMU_PGID" 2>/dev/null || true
		sleep 1
		kill -KILL -- "-$QEMU_PGID" 2>/dev/null || true
	fi
	if [[ -n $PRINTER_PID ]]; then
		kill "$PRINTER_PID" 2>/dev/null || true
	fi
	if [[ $KEEP == 1 || $rc != "${CMD_STATUS:-x}" ]]; then
		# Anything but a clean pass-through of the command's status: keep the
		# evidence.
		[[ -d $RUN_DIR ]] && log "run dir kept: $RUN_DIR"
	else
		rm -rf "$RUN_DIR"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# Single-quote a string for sh.
shq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

{
	echo "RUN_DIR=$(shq "$RUN_DIR")"
	echo "RESULTS_DIR=$(shq "$RESULTS")"
	echo "MODULES_DIR=$(shq "$KDIR/root/lib/modules/$KVER")"
	echo "PRELOAD_MODULES=$(shq "${BERTH_VM_PRELOAD-overlay}")"
	# Host dirs under /tmp, /var/tmp, /run that must stay visible although
	# the guest mounts fresh tmpfs there (see guest-init.sh).
	n=0
	declare -A seen=()
	keep=("$REPO" "$CWD" "${CARGO_TARGET_DIR:-}")
	if [[ $1 == /* ]]; then keep+=("$(dirname "$1")"); fi
	for p in "${keep[@]}"; do
		[[ -n $p && -d $p ]] || continue
		p=$(cd "$p" && pwd -P)
		[[ -z ${seen[$p]:-} ]] || continue
		seen[$p]=1
		case $p in
		/tmp/* | /var/tmp/* | /run/*)
			n=$((n + 1))
			echo "KEEP_PATH_$n=$(shq "$p")"
			;;
		esac
	done
	echo "KEEP_COUNT=$n"
} >"$RUN_DIR/guest.conf"

# The command script: a clean environment made of the variables we pass,
# then cd, then exec the command so its status is the script's status.
{
	echo "# generated by integration/vm/run.sh"
	while IFS= read -r name; do
		case $name in
		PATH | HOME | USER | LOGNAME | LANG | LC_* | TZ | RUST_* | CARGO_* | BERTH_*)
			echo "export $name=$(shq "${!name}")"
			;;
		esac
	done < <(compgen -e | grep -E '^[A-Za-z_][A-Za-z0-9_]*$')
	for kv in "${EXTRA_ENV[@]}"; do
		name=${kv%%=*}
		[[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "bad --env name: $name"
		if [[ $kv == *=* ]]; then
			echo "export $name=$(shq "${kv#*=}")"
		elif [[ -n ${!name+set} ]]; then
			echo "export $name=$(shq "${!name}")"
		fi
	done
	# In the guest stdout is always a tty (the serial console), so programs
	# colour their output; only keep that if our own stdout is a terminal.
	if [[ -t 1 ]]; then
		echo "export TERM=$(shq "${TERM:-dumb}")"
	else
		echo "export TERM=dumb"
	fi
	echo "export BERTH_VM=1"
	echo "export BERTH_VM_RESULTS=$(shq "$RESULTS")"
	echo "export BERTH_VM_KERNEL=$(shq "$KVER")"
	echo "cd $(shq "$CWD") 2>/dev/null || { echo 'berth-vm: warning: working directory missing in the guest, running in /' >&2; cd /; }"
	printf 'exec'
	for a in "$@"; do printf ' %s' "$(shq "$a")"; done
	echo
} >"$RUN_DIR/cmd.sh"

# qemu splits -fsdev/-device options on commas; a literal comma is ",,".
qesc() { printf '%s' "${1//,/,,}"; }

# shellcheck disable=SC2054 # the commas are qemu's, not array separators
QEMU=(
	qemu-system-x86_64
	-nodefaults -no-user-config -no-reboot
	-accel "$ACCEL"
	-machine pc -cpu "${BERTH_VM_CPU:-max}" -smp "$SMP" -m "$MEM"
	-display none -nic none
	-serial stdio
	-kernel "$BOOT_IMAGE" -initrd "$INITRAMFS"
	# panic=-1: reboot at once on panic, and -no-reboot turns that into a
	# qemu exit. cgroup_no_v1=all: nothing can mount a v1 hierarchy.
	-append "console=ttyS0 quiet panic=-1 cgroup_no_v1=all mitigations=off"
	# multidevs=remap: the host / spans several filesystems; remap inode
	# numbers so they cannot collide inside the guest.
	-fsdev "local,id=fsroot,path=/,security_model=none,readonly=on,multidevs=remap"
	-device virtio-9p-pci,fsdev=fsroot,mount_tag=hostroot
	-fsdev "local,id=fsrun,path=$(qesc "$RUN_DIR"),security_model=none"
	-device virtio-9p-pci,fsdev=fsrun,mount_tag=berthrun
	-fsdev "local,id=fsres,path=$(qesc "$RESULTS"),security_model=none"
	-device virtio-9p-pci,fsdev=fsres,mount_tag=berthresults
)

CONSOLE=$RUN_DIR/console.log
FIFO=$RUN_DIR/console.fifo
mkfifo "$FIFO"
# The guest's serial line ends lines with CRLF; strip the CR so logs and
# test output look normal. sed -u keeps the output live.
sed -u 's/\r$//' <"$FIFO" | tee "$CONSOLE" &
PRINTER_PID=$!

log "booting $KVER (accel=$ACCEL, ${MEM} MiB, $SMP vCPUs, timeout ${TIMEOUT}s; prep ${PREP_SECS}s)"
BOOT_START=$SECONDS
# timeout(1) puts qemu in a new process group (killed as a whole by
# cleanup) and enforces the hard limit even if this script is SIGKILLed.
# stdin is /dev/null so qemu never puts a terminal into raw mode.
timeout -k 10 "$TIMEOUT" "${QEMU[@]}" </dev/null >"$FIFO" 2>&1 &
QEMU_PGID=$!
QEMU_RC=0
wait "$QEMU_PGID" || QEMU_RC=$?
QEMU_PGID=
wait "$PRINTER_PID" || true
PRINTER_PID=
ELAPSED=$((SECONDS - BOOT_START))

STATUS=
if [[ -s $RUN_DIR/status ]]; then
	STATUS=$(tr -dc '0-9' <"$RUN_DIR/status")
fi
if [[ -z $STATUS ]]; then
	# Fall back to the console marker (e.g. if the share write got lost).
	STATUS=$(sed -n 's/^BERTH_VM_EXIT_STATUS=\([0-9]\{1,3\}\)$/\1/p' "$CONSOLE" | tail -n 1)
fi
if [[ -z $STATUS ]]; then
	if [[ $QEMU_RC == 124 ]]; then
		log "TIMEOUT: guest killed after ${TIMEOUT}s (console above, log in $CONSOLE)"
		exit 124
	fi
	log "FAILED: guest exited (qemu status $QEMU_RC) without reporting a command status after ${ELAPSED}s"
	log "console log: $CONSOLE"
	exit 125
fi
log "command exited with status $STATUS (qemu ${ELAPSED}s, total $((SECONDS - START))s)"
CMD_STATUS=$STATUS
exit "$STATUS"
