//! The container's filesystem: mounts, pivot_root, masked and read-only paths.
//!
//! Every path that comes from the container (mount destinations, masked paths, /dev entries)
//! is resolved inside the rootfs by fd with pathrs (openat2 RESOLVE_IN_ROOT, or its emulation
//! on old kernels), and mount(2) is then pointed at `/proc/self/fd/N` of that fd. A racing
//! process that swaps a directory for a symlink (CVE-2021-30465) therefore cannot redirect a
//! mount outside the rootfs: the fd already names the inode that was checked.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::statvfs::{fstatvfs, FsFlags};
use oci_spec::runtime::{Mount, Spec};
use pathrs::flags::OpenFlags;
use pathrs::{Handle, Root};

use super::mount_options::{self, MountOptions};
use super::{procfs, Context, SetupError};

/// What mounting needs besides the spec.
pub struct MountContext<'a> {
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    /// The container has its own cgroup namespace.
    pub cgroup_ns: bool,
    /// The host is cgroup v2 only.
    pub unified: bool,
}

pub fn fd_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn perm(mode: u32) -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(mode)
}

/// `dest` as a directory of the rootfs, made (with its parents, mode 0755) if missing.
/// Mount points nearly always exist already, or only their last component is missing (a
/// fresh /dev tmpfs has no pts, shm, mqueue): one RESOLVE_IN_ROOT lookup of it or of its
/// parent, plus mkdirat/openat of that one component relative to the parent's fd, does
/// where pathrs' mkdir_all re-verifies each step through procfs (≈40 syscalls a call).
/// Anything else (deeper paths missing, or not a directory) takes mkdir_all and its errors.
pub(crate) fn dir_in_root(root: &Root, dest: &Path) -> Result<Handle, pathrs::error::Error> {
    let is_dir = |h: &Handle| super::handle_metadata(h).is_ok_and(|m| m.is_dir());
    match root.resolve(dest) {
        Ok(h) if is_dir(&h) => return Ok(h),
        Ok(_) => {}
        Err(_) => {
            if let (Some(parent), Some(std::path::Component::Normal(name))) =
                (dest.parent(), dest.components().next_back())
            {
                if let Ok(p) = root.resolve(parent) {
                    if is_dir(&p) {
                        if let Ok(fd) = subdir(p.as_fd(), name) {
                            let h = Handle::from_fd(fd);
                            if is_dir(&h) {
                                return Ok(h);
                            }
                        }
                    }
                }
            }
        }
    }
    root.mkdir_all(dest, &perm(0o755))
}

/// Makes the host's mounts invisible to propagation from here, bind-mounts the rootfs onto
/// itself (pivot_root needs a mount point) and mounts everything the spec lists.
/// `before_cgroup` runs before the first cgroup mount (which must see the container's
/// cgroup and cgroup namespace).
pub fn prepare(
    spec: &Spec,
    ctx: &MountContext<'_>,
    before_cgroup: &mut dyn FnMut() -> Result<(), SetupError>,
) -> Result<(), SetupError> {
    let propagation = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(mount_options::propagation)
        .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    mount(None::<&str>, "/", None::<&str>, propagation, None::<&str>)
        .ctx(|| "setting propagation of / in the container's mount namespace".into())?;
    // pivot_root refuses a new root whose parent mount is shared.
    make_parent_private(ctx.rootfs)?;
    mount(
        Some(ctx.rootfs),
        ctx.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind-mounting rootfs {}", ctx.rootfs.display()))?;

    let root = Root::open(ctx.rootfs).ctx(|| format!("opening rootfs {}", ctx.rootfs.display()))?;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")) {
            before_cgroup()?;
        }
        mount_one(&root, m, ctx).map_err(|e| match e {
            SetupError::Io { what, source } => SetupError::Io {
                what: format!("mounts[{i}] ({}): {what}", m.destination().display()),
                source,
            },
            SetupError::Invalid(msg) => SetupError::Invalid(format!(
                "mounts[{i}] ({}): {msg}",
                m.destination().display()
            )),
        })?;
    }
    Ok(())
}

fn make_parent_private(rootfs: &Path) -> Result<(), SetupError> {
    // Walk up to the mount point that contains rootfs, as listed in mountinfo.
    let infos = procfs::mountinfo().ctx(|| "reading /proc/self/mountinfo".into())?;
    let mut best: Option<&procfs::MountInfo> = None;
    for m in &infos {
        if rootfs.starts_with(&m.mount_point)
            && best
                .is_none_or(|b| m.mount_point.as_os_str().len() >= b.mount_point.as_os_str().len())
        {
            best = Some(m);
        }
    }
    if let Some(m) = best {
        if m.optional.iter().any(|o| o.starts_with("shared:")) {
            mount(
                None::<&str>,
                &m.mount_point,
                None::<&str>,
                MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .ctx(|| format!("making {} private", m.mount_point.display()))?;
        }
    }
    Ok(())
}

fn mount_one(root: &Root, m: &Mount, ctx: &MountContext<'_>) -> Result<(), SetupError> {
    let opts = mount_options::parse(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("none");
    let dest = m.destination();
    if opts.bind || typ == "bind" {
        return bind_mount(root, m, &opts, ctx);
    }
    match typ {
        "cgroup" | "cgroup2" => return mount_cgroup(root, dest, &opts, ctx),
        "proc" | "sysfs" => ensure_real_dir(root, dest)?,
        _ => {}
    }
    let target = dir_in_root(root, dest).ctx(|| "creating mount point".into())?;
    let source = m
        .source()
        .as_ref()
        .map(|s| s.as_os_str().to_owned())
        .unwrap_or_else(|| typ.into());
    let data = opts.data_string();
    let flags = opts.flags & !MsFlags::MS_REMOUNT;
    let r = mount(
        Some(source.as_os_str()),
        fd_path(target.as_fd()).as_str(),
        Some(typ),
        flags,
        data.as_deref(),
    );
    match r {
        Ok(()) => {}
        // Without a network namespace of its own, a user-namespaced container may not mount
        // sysfs: bind the host's, read-only, as runc does.
        Err(nix::Error::EPERM) if typ == "sysfs" => {
            let host = File::options()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                .open("/sys")
                .ctx(|| "opening host /sys".into())?;
            mount(
                Some(fd_path(host.as_fd()).as_str()),
                fd_path(target.as_fd()).as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .ctx(|| "bind-mounting /sys".into())?;
            let top = root.resolve(dest).ctx(|| "re-resolving /sys".into())?;
            remount(top.as_fd(), flags | MsFlags::MS_RDONLY)?;
        }
        Err(e) => {
            return Err(SetupError::Io {
                what: format!("mount {typ} (options {:?})", data.unwrap_or_default()),
                source: e.into(),
            })
        }
    }
    let top = root
        .resolve(dest)
        .ctx(|| "re-resolving after mount".into())?;
    if typ == "proc" && !procfs::is_procfs(top.as_fd()) {
        return Err(SetupError::invalid(
            "what was mounted is not procfs: refusing to continue",
        ));
    }
    apply_propagation(top.as_fd(), &opts)
}

/// proc and sysfs must be mounted on a real directory, never through a symlink
/// (CVE-2019-19921, CVE-2023-27561).
fn ensure_real_dir(root: &Root, dest: &Path) -> Result<(), SetupError> {
    match root.resolve_nofollow(dest) {
        Ok(h) => {
            let meta = super::handle_metadata(&h).ctx(|| "inspecting mount point".into())?;
            if meta.file_type().is_symlink() {
                return Err(SetupError::invalid(format!(
                    "{} is a symlink in the rootfs: refusing to mount over it",
                    dest.display()
                )));
            }
            if !meta.is_dir() {
                return Err(SetupError::invalid(format!(
                    "{} is not a directory in the rootfs",
                    dest.display()
                )));
            }
            Ok(())
        }
        Err(e)
            if matches!(
                e.kind(),
                pathrs::error::ErrorKind::OsError(Some(libc::ENOENT))
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e).ctx(|| "resolving mount point".into()),
    }
}

fn bind_source(m: &Mount, ctx: &MountContext<'_>) -> Result<PathBuf, SetupError> {
    let src = m
        .source()
        .as_ref()
        .ok_or_else(|| SetupError::invalid("a bind mount needs a source"))?;
    Ok(if src.is_absolute() {
        src.clone()
    } else {
        ctx.bundle.join(src)
    })
}

fn bind_mount(
    root: &Root,
    m: &Mount,
    opts: &MountOptions,
    ctx: &MountContext<'_>,
) -> Result<(), SetupError> {
    let src_path = bind_source(m, ctx)?;
    let src = File::options()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(&src_path)
        .ctx(|| format!("opening bind source {}", src_path.display()))?;
    let is_dir = src
        .metadata()
        .ctx(|| format!("inspecting bind source {}", src_path.display()))?
        .is_dir();
    let dest = m.destination();
    let target = if is_dir {
        dir_in_root(root, dest).ctx(|| "creating mount point".into())?
    } else {
        create_file_target(root, dest)?
    };
    let mut flags = MsFlags::MS_BIND;
    if opts.recursive_bind {
        flags |= MsFlags::MS_REC;
    }
    mount(
        Some(fd_path(src.as_fd()).as_str()),
        fd_path(target.as_fd()).as_str(),
        None::<&str>,
        flags,
        None::<&str>,
    )
    .ctx(|| format!("bind-mounting {}", src_path.display()))?;
    let top = root
        .resolve(dest)
        .ctx(|| "re-resolving after mount".into())?;
    if opts.needs_remount() {
        remount(top.as_fd(), opts.flags | (flags & MsFlags::MS_REC))?;
    }
    apply_propagation(top.as_fd(), opts)
}

/// Creates an empty file to bind a file onto (parents as directories).
pub fn create_file_target(root: &Root, dest: &Path) -> Result<Handle, SetupError> {
    if let Some(parent) = dest.parent() {
        dir_in_root(root, parent).ctx(|| "creating parent of mount point".into())?;
    }
    match root.create_file(
        dest,
        OpenFlags::O_WRONLY | OpenFlags::O_CLOEXEC,
        &perm(0o644),
    ) {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                pathrs::error::ErrorKind::OsError(Some(libc::EEXIST))
            ) => {}
        Err(e) => return Err(e).ctx(|| "creating file mount point".into()),
    }
    root.resolve(dest).ctx(|| "resolving mount point".into())
}

/// Remounts a bind mount with `flags`, keeping the flags the kernel locked on it (a
/// user-namespaced remount that dropped nosuid/nodev/noexec would fail with EPERM).
pub fn remount(target: BorrowedFd<'_>, flags: MsFlags) -> Result<(), SetupError> {
    let locked = locked_flags(target)?;
    let flags = (flags | locked) & !(MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_REC);
    mount(
        None::<&str>,
        fd_path(target).as_str(),
        None::<&str>,
        flags | MsFlags::MS_REMOUNT | MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| "remounting with the requested flags".into())
}

fn locked_flags(target: BorrowedFd<'_>) -> Result<MsFlags, SetupError> {
    let st = fstatvfs(target).ctx(|| "statvfs of mount".into())?;
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    Ok(out)
}

fn apply_propagation(target: BorrowedFd<'_>, opts: &MountOptions) -> Result<(), SetupError> {
    if opts.propagation.is_empty() {
        return Ok(());
    }
    mount(
        None::<&str>,
        fd_path(target).as_str(),
        None::<&str>,
        opts.propagation,
        None::<&str>,
    )
    .ctx(|| "setting mount propagation".into())
}

/// /sys/fs/cgroup inside the container. With a cgroup namespace the kernel shows the
/// container's own cgroup as the root; without one, the container's cgroup directories are
/// bind-mounted, never the host's whole tree.
fn mount_cgroup(
    root: &Root,
    dest: &Path,
    opts: &MountOptions,
    ctx: &MountContext<'_>,
) -> Result<(), SetupError> {
    let ro = opts.flags.contains(MsFlags::MS_RDONLY);
    let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let target = dir_in_root(root, dest).ctx(|| "creating mount point".into())?;
    let own = procfs::own_cgroups().ctx(|| "reading /proc/self/cgroup".into())?;
    if ctx.unified {
        if ctx.cgroup_ns {
            let flags = if ro { base | MsFlags::MS_RDONLY } else { base };
            return mount(
                Some("cgroup2"),
                fd_path(target.as_fd()).as_str(),
                Some("cgroup2"),
                flags,
                None::<&str>,
            )
            .ctx(|| "mount cgroup2".into());
        }
        let rel = own.get("").cloned().unwrap_or_else(|| "/".into());
        bind_host_cgroup(target.as_fd(), Path::new("/sys/fs/cgroup"), &rel)?;
        let top = root
            .resolve(dest)
            .ctx(|| "re-resolving cgroup bind".into())?;
        return remount(
            top.as_fd(),
            if ro { base | MsFlags::MS_RDONLY } else { base },
        );
    }
    // v1 or hybrid: a tmpfs with one directory per hierarchy.
    mount(
        Some("tmpfs"),
        fd_path(target.as_fd()).as_str(),
        Some("tmpfs"),
        base,
        Some("mode=755"),
    )
    .ctx(|| "mount tmpfs for cgroup hierarchies".into())?;
    // The tmpfs is new and only this process can see it: its entries are made and opened
    // relative to its root, one component at a time, with no resolution to verify.
    let tmpfs = root
        .resolve(dest)
        .ctx(|| "re-resolving cgroup tmpfs".into())?;
    let infos = procfs::mountinfo().ctx(|| "reading /proc/self/mountinfo".into())?;
    for mi in infos.iter().filter(|mi| {
        (mi.fs_type == "cgroup" || mi.fs_type == "cgroup2")
            && mi.mount_point.starts_with("/sys/fs/cgroup/")
            && !mi.mount_point.starts_with(ctx.rootfs)
    }) {
        let Some(name) = mi.mount_point.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let key = if mi.fs_type == "cgroup2" {
            String::new()
        } else {
            procfs::hierarchy_key(&mi.super_options)
        };
        let Some(rel) = own.get(&key) else { continue };
        let t =
            subdir(tmpfs.as_fd(), name).ctx(|| format!("creating {}/{name}", dest.display()))?;
        let flags = if ro { base | MsFlags::MS_RDONLY } else { base };
        if ctx.cgroup_ns {
            let data = if mi.fs_type == "cgroup2" {
                None
            } else {
                Some(key.as_str())
            };
            mount(
                Some("cgroup"),
                fd_path(t.as_fd()).as_str(),
                Some(mi.fs_type.as_str()),
                flags,
                data,
            )
            .ctx(|| format!("mount cgroup hierarchy {name}"))?;
        } else {
            bind_host_cgroup(t.as_fd(), &mi.mount_point, rel)?;
            let top = subdir(tmpfs.as_fd(), name)
                .ctx(|| format!("re-opening {}/{name}", dest.display()))?;
            remount(top.as_fd(), flags)?;
        }
        if name.contains(',') {
            for part in name.split(',') {
                let _ = rustix::fs::symlinkat(name, tmpfs.as_fd(), part);
            }
        }
    }
    if ro {
        mount(
            None::<&str>,
            fd_path(tmpfs.as_fd()).as_str(),
            None::<&str>,
            base | MsFlags::MS_RDONLY | MsFlags::MS_REMOUNT,
            Some("mode=755"),
        )
        .ctx(|| "remount cgroup tmpfs read-only".into())?;
    }
    Ok(())
}

/// The directory `name` (one component) under `parent`, made if missing; never follows a
/// symlink.
fn subdir(
    parent: BorrowedFd<'_>,
    name: impl rustix::path::Arg + Copy,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{mkdirat, openat, Mode, OFlags};
    match mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(openat(
        parent,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Bind-mounts the host's cgroup directory `hierarchy`/`rel` onto `target`.
fn bind_host_cgroup(target: BorrowedFd<'_>, hierarchy: &Path, rel: &str) -> Result<(), SetupError> {
    let host = hierarchy.join(rel.trim_start_matches('/'));
    let src = File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(&host)
        .ctx(|| format!("opening {}", host.display()))?;
    mount(
        Some(fd_path(src.as_fd()).as_str()),
        fd_path(target).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| format!("bind-mounting {}", host.display()))
}

/// Switches the process's root to `rootfs` and detaches the old root.
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<(), SetupError> {
    if no_pivot {
        nix::unistd::chdir(rootfs).ctx(|| "chdir to rootfs".into())?;
        mount(
            Some(rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .ctx(|| "moving rootfs to /".into())?;
        nix::unistd::chroot(".").ctx(|| "chroot".into())?;
        return nix::unistd::chdir("/").ctx(|| "chdir /".into());
    }
    let old = File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open("/")
        .ctx(|| "opening old root".into())?;
    let new = File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(rootfs)
        .ctx(|| "opening new root".into())?;
    nix::unistd::fchdir(new.as_raw_fd()).ctx(|| "fchdir to new root".into())?;
    nix::unistd::pivot_root(".", ".").ctx(|| "pivot_root".into())?;
    nix::unistd::fchdir(old.as_raw_fd()).ctx(|| "fchdir to old root".into())?;
    // Unmounting must not propagate back to the host's mounts.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| "making old root a slave".into())?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "detaching old root".into())?;
    nix::unistd::chdir("/").ctx(|| "chdir /".into())
}

/// Masks and write-protects paths after pivot_root (paths are now container paths).
pub fn protect_paths(spec: &Spec) -> Result<(), SetupError> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let root = Root::open("/").ctx(|| "opening container root".into())?;
    let masked = linux.masked_paths().as_deref().unwrap_or_default();
    if !masked.is_empty() {
        let null = verified_dev_null(&root)?;
        for p in masked {
            mask_path(&root, p, null.as_fd())?;
        }
    }
    for p in linux.readonly_paths().iter().flatten() {
        let h = match root.resolve(p) {
            Ok(h) => h,
            Err(e)
                if matches!(
                    e.kind(),
                    pathrs::error::ErrorKind::OsError(Some(libc::ENOENT))
                ) =>
            {
                continue
            }
            Err(e) => return Err(e).ctx(|| format!("readonlyPaths: resolving {p}")),
        };
        mount(
            Some(fd_path(h.as_fd()).as_str()),
            fd_path(h.as_fd()).as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| format!("readonlyPaths: bind {p}"))?;
        let top = root
            .resolve(p)
            .ctx(|| format!("readonlyPaths: re-resolving {p}"))?;
        remount(
            top.as_fd(),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        )
        .map_err(|e| SetupError::invalid(format!("readonlyPaths: {p}: {e}")))?;
    }
    Ok(())
}

/// /dev/null, proven to be the real character device 1:3 before anything is bind-mounted
/// from it (CVE-2025-31133: a symlinked /dev/null made masking mount the target read-write).
fn verified_dev_null(root: &Root) -> Result<File, SetupError> {
    let h = root
        .resolve_nofollow("/dev/null")
        .ctx(|| "maskedPaths: resolving /dev/null".into())?;
    let f = File::from(
        h.as_fd()
            .try_clone_to_owned()
            .ctx(|| "maskedPaths: opening /dev/null".into())?,
    );
    let meta = f.metadata().ctx(|| "maskedPaths: stat /dev/null".into())?;
    use std::os::unix::fs::FileTypeExt;
    if !meta.file_type().is_char_device() || meta.rdev() != nix::sys::stat::makedev(1, 3) {
        return Err(SetupError::invalid(
            "maskedPaths: /dev/null in the container is not the null device (1:3): refusing to mask with it",
        ));
    }
    Ok(f)
}

fn mask_path(root: &Root, p: &str, null: BorrowedFd<'_>) -> Result<(), SetupError> {
    let h = match root.resolve_nofollow(p) {
        Ok(h) => h,
        Err(e)
            if matches!(
                e.kind(),
                pathrs::error::ErrorKind::OsError(Some(libc::ENOENT | libc::ENOTDIR))
            ) =>
        {
            return Ok(())
        }
        Err(e) => return Err(e).ctx(|| format!("maskedPaths: resolving {p}")),
    };
    let meta = super::handle_metadata(&h).ctx(|| format!("maskedPaths: stat {p}"))?;
    if meta.file_type().is_symlink() {
        // A symlink cannot be mounted over; what it points to is masked by its own entry.
        return Ok(());
    }
    if meta.is_dir() {
        mount(
            Some("tmpfs"),
            fd_path(h.as_fd()).as_str(),
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            Some("size=0,mode=0755"),
        )
        .ctx(|| format!("maskedPaths: tmpfs over {p}"))
    } else {
        mount(
            Some(fd_path(null).as_str()),
            fd_path(h.as_fd()).as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| format!("maskedPaths: /dev/null over {p}"))
    }
}

/// Remounts the container's / read-only (root.readonly).
pub fn readonly_root() -> Result<(), SetupError> {
    let root = File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open("/")
        .ctx(|| "opening /".into())?;
    remount(root.as_fd(), MsFlags::MS_RDONLY)
}
