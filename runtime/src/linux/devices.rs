//! Device nodes in the container's /dev: the OCI default set plus `linux.devices`, created
//! inside the rootfs by fd. In a user namespace mknod is not allowed, so the host's node is
//! bind-mounted instead (as runc does).

use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, Mode, SFlag};
use oci_spec::runtime::{LinuxDeviceType, Spec};
use pathrs::Root;

use super::rootfs::{create_file_target, fd_path};
use super::{Context, SetupError};

/// One device node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The devices every OCI container gets (runtime-spec "Default Devices").
pub fn defaults() -> Vec<Device> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(p, major, minor)| Device {
        path: p.into(),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// Defaults plus the spec's devices (a spec entry replaces a default at the same path).
pub fn wanted(spec: &Spec) -> Vec<Device> {
    let mut out = defaults();
    for d in spec
        .linux()
        .iter()
        .flat_map(|l| l.devices().iter().flatten())
    {
        let kind = match d.typ() {
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        };
        out.retain(|x| x.path != *d.path());
        out.push(Device {
            path: d.path().clone(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    out
}

/// Creates the device nodes and the standard /dev symlinks inside `rootfs`.
pub fn create_all(rootfs: &Path, devices: &[Device], bind: bool) -> Result<(), SetupError> {
    let root = Root::open(rootfs).ctx(|| "opening rootfs for /dev".into())?;
    // Refuse a /dev that is a symlink (CVE-2026-41579 class): nodes would land elsewhere.
    match root.resolve_nofollow("/dev") {
        Ok(h) => {
            let meta = super::handle_metadata(&h).ctx(|| "inspecting /dev".into())?;
            if !meta.is_dir() {
                return Err(SetupError::invalid(
                    "/dev in the rootfs is not a directory (a symlink?): refusing to create devices",
                ));
            }
        }
        Err(_) => {
            root.mkdir_all("/dev", &std::fs::Permissions::from_mode(0o755))
                .ctx(|| "creating /dev".into())?;
        }
    }
    for d in devices {
        create_one(&root, d, bind).map_err(|e| match e {
            SetupError::Io { what, source } => SetupError::Io {
                what: format!("device {}: {what}", d.path.display()),
                source,
            },
            other => other,
        })?;
    }
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        match root.create(link, &pathrs::InodeType::Symlink(target.into())) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    pathrs::error::ErrorKind::OsError(Some(libc::EEXIST))
                ) => {}
            Err(e) => return Err(e).ctx(|| format!("symlink {link}")),
        }
    }
    // /dev/ptmx must be the container's own devpts instance.
    if root.resolve_nofollow("/dev/pts/ptmx").is_ok() {
        let _ = root.remove_file("/dev/ptmx");
        root.create("/dev/ptmx", &pathrs::InodeType::Symlink("pts/ptmx".into()))
            .ctx(|| "symlink /dev/ptmx".into())?;
    }
    Ok(())
}

fn create_one(root: &Root, d: &Device, bind: bool) -> Result<(), SetupError> {
    if let Some(parent) = d.path.parent() {
        super::rootfs::dir_in_root(root, parent).ctx(|| "creating parent directory".into())?;
    }
    if bind {
        let host = std::fs::File::options()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open(&d.path)
            .ctx(|| "opening the host device to bind".into())?;
        let target = create_file_target(root, &d.path)?;
        return mount(
            Some(fd_path(host.as_fd()).as_str()),
            fd_path(target.as_fd()).as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| "bind-mounting host device".into());
    }
    let dev = makedev(d.major, d.minor);
    let perms = std::fs::Permissions::from_mode(d.mode & 0o7777);
    let inode = match d.kind {
        SFlag::S_IFBLK => pathrs::InodeType::BlockDevice(perms, dev),
        SFlag::S_IFIFO => pathrs::InodeType::Fifo(perms),
        _ => pathrs::InodeType::CharacterDevice(perms, dev),
    };
    match root.create(&d.path, &inode) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                pathrs::error::ErrorKind::OsError(Some(libc::EEXIST))
            ) =>
        {
            // An image may ship its own node: replace it, unless it already is the same.
            let h = root
                .resolve_nofollow(&d.path)
                .ctx(|| "resolving existing node".into())?;
            let meta = super::handle_metadata(&h).ctx(|| "inspecting existing node".into())?;
            let same = (meta.file_type().is_char_device() || meta.file_type().is_block_device())
                && meta.rdev() == dev;
            if !same {
                root.remove_file(&d.path)
                    .ctx(|| "removing existing file".into())?;
                root.create(&d.path, &inode).ctx(|| "mknod".into())?;
            }
        }
        Err(e) => return Err(e).ctx(|| "mknod".into()),
    }
    // An O_PATH handle on the node itself (not followed): chmod/chown through its
    // /proc/self/fd link act on exactly this inode.
    let f = root
        .resolve_nofollow(&d.path)
        .ctx(|| "resolving node".into())?;
    // umask may have trimmed the mode; set exactly what the spec asked for.
    nix::sys::stat::fchmodat(
        None,
        fd_path(f.as_fd()).as_str(),
        Mode::from_bits_truncate(d.mode & 0o7777),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .ctx(|| "chmod".into())?;
    nix::unistd::fchownat(
        None,
        fd_path(f.as_fd()).as_str(),
        Some(nix::unistd::Uid::from_raw(d.uid)),
        Some(nix::unistd::Gid::from_raw(d.gid)),
        nix::fcntl::AtFlags::empty(),
    )
    .ctx(|| "chown".into())
}
