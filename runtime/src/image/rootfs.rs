//! A container's root filesystem: an overlayfs mount whose lower layers are the cached,
//! shared image layers (top first) and whose upper/work dirs are fresh and private to the
//! container, all in one directory the caller names:
//!
//! ```text
//! DIR/rootfs   the mount point (what config.json's root.path names)
//! DIR/upper    the container's writes
//! DIR/work     overlayfs's scratch space
//! ```
//!
//! Starting a second container from the same image copies nothing: it is one mount.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, UnmountFlags};

use super::error::{Error, Result};

pub const MOUNT_DIR: &str = "rootfs";
pub const UPPER_DIR: &str = "upper";
pub const WORK_DIR: &str = "work";
/// Lower layer for an image without layers (overlayfs needs at least one).
const EMPTY_LOWER: &str = "empty-lower";

/// The kernel takes mount options as one page.
const OPTIONS_LIMIT: usize = 4095;

fn rootfs_err(dir: &Path, what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let dir = dir.to_path_buf();
    let what = what.into();
    move |source| Error::Rootfs { dir, what, source }
}

/// Mounts the overlay in `dir` (created if missing; it must not hold a previous rootfs).
/// `lowers` are layer directories, top layer first. Returns the mount point.
pub fn mount(dir: &Path, lowers: &[PathBuf]) -> Result<PathBuf> {
    fs::create_dir_all(dir).map_err(rootfs_err(dir, "creating the directory"))?;
    let upper = dir.join(UPPER_DIR);
    let work = dir.join(WORK_DIR);
    let target = dir.join(MOUNT_DIR);
    let mut builder = fs::DirBuilder::new();
    builder.mode(0o755);
    // upper first: its existence means "a rootfs lives here", so a stale one is refused
    // rather than silently reused with another container's writes in it.
    builder.create(&upper).map_err(|e| {
        let what = if e.kind() == io::ErrorKind::AlreadyExists {
            "a rootfs was already prepared here (tear it down first)"
        } else {
            "creating the upper dir"
        };
        rootfs_err(dir, what)(e)
    })?;
    let result = (|| {
        // The merged root takes its attributes from the upper dir's root: make it the usual
        // 0755 whatever the umask.
        fs::set_permissions(&upper, fs::Permissions::from_mode(0o755))
            .map_err(rootfs_err(dir, "chmod upper"))?;
        builder
            .create(&work)
            .map_err(rootfs_err(dir, "creating the work dir"))?;
        match builder.create(&target) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(rootfs_err(dir, "creating the mount point")(e))
            }
            _ => {}
        }
        let mut lowers = lowers.to_vec();
        if lowers.is_empty() {
            let empty = dir.join(EMPTY_LOWER);
            builder
                .create(&empty)
                .map_err(rootfs_err(dir, "creating an empty lower dir"))?;
            lowers.push(empty);
        }
        mount_overlay(dir, &lowers, &upper, &work, &target)
    })();
    if let Err(e) = result {
        let _ = remove_overlay_dirs(dir);
        return Err(e);
    }
    Ok(target)
}

fn mount_overlay(
    dir: &Path,
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<()> {
    // Paths go into a comma/colon-separated option string limited to a page. Plain paths keep
    // /proc/self/mountinfo readable; when they do not fit (deep images, long store paths) or
    // contain a separator, each layer is named by an O_PATH fd as /proc/self/fd/N instead,
    // about 16 bytes a layer, which overlayfs resolves at mount time.
    let mut pinned: Vec<OwnedFd> = Vec::new();
    let mut by_fd = |p: &Path| -> Result<String> {
        let fd = rustix::fs::open(
            p,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| rootfs_err(dir, format!("opening {}", p.display()))(e.into()))?;
        let s = format!("/proc/self/fd/{}", fd.as_raw_fd());
        pinned.push(fd);
        Ok(s)
    };
    let plain = |p: &Path| -> Option<String> {
        let s = p.to_str()?;
        (!s.contains([',', ':', '\\'])).then(|| s.to_string())
    };
    let mut lower_strs: Vec<Option<String>> = lowers.iter().map(|p| plain(p)).collect();
    let plain_len: usize = lower_strs
        .iter()
        .map(|s| s.as_ref().map_or(20, String::len) + 1)
        .sum();
    if plain_len + upper.as_os_str().len() + work.as_os_str().len() + 40 > OPTIONS_LIMIT {
        lower_strs.iter_mut().for_each(|s| *s = None);
    }
    let mut lowerdir = Vec::with_capacity(lowers.len());
    for (p, s) in lowers.iter().zip(lower_strs) {
        lowerdir.push(match s {
            Some(s) => s,
            None => by_fd(p)?,
        });
    }
    let upper_s = match plain(upper) {
        Some(s) => s,
        None => by_fd(upper)?,
    };
    let work_s = match plain(work) {
        Some(s) => s,
        None => by_fd(work)?,
    };
    let options = format!(
        "lowerdir={},upperdir={upper_s},workdir={work_s}",
        lowerdir.join(":")
    );
    if options.len() > OPTIONS_LIMIT {
        return Err(rootfs_err(
            dir,
            format!("mounting overlayfs with {} layers", lowers.len()),
        )(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many layers for one overlayfs mount",
        )));
    }
    let data = std::ffi::CString::new(options)
        .map_err(|e| rootfs_err(dir, "overlay options")(io::Error::other(e)))?;
    let r = rustix::mount::mount(
        "overlay",
        target,
        "overlay",
        MountFlags::empty(),
        Some(data.as_c_str()),
    );
    drop(pinned);
    match r {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::NODEV) => Err(Error::OverlayUnavailable {
            dir: dir.to_path_buf(),
            source: io::Error::from_raw_os_error(libc::ENODEV),
        }),
        Err(e) => Err(rootfs_err(
            dir,
            format!("mounting overlayfs ({} layers)", lowers.len()),
        )(e.into())),
    }
}

/// True if `path` is the root of a mount other than its parent's (st_dev differs).
pub fn is_mounted(path: &Path) -> bool {
    let (Ok(m), Some(Ok(p))) = (
        fs::symlink_metadata(path),
        path.parent().map(fs::symlink_metadata),
    ) else {
        return false;
    };
    m.dev() != p.dev()
}

/// Unmounts `dir`'s rootfs (if mounted) and removes what [`mount`] created in `dir`.
/// Idempotent. A busy mount is an error and then upper/work are left alone: removing the
/// upper dir under a live overlay would corrupt it.
pub fn teardown(dir: &Path) -> Result<()> {
    let target = dir.join(MOUNT_DIR);
    if is_mounted(&target) {
        match rustix::mount::unmount(&target, UnmountFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(rootfs_err(dir, "unmounting the rootfs")(e.into())),
        }
    }
    remove_overlay_dirs(dir)
}

fn remove_overlay_dirs(dir: &Path) -> Result<()> {
    for name in [UPPER_DIR, WORK_DIR, EMPTY_LOWER] {
        let p = dir.join(name);
        match fs::remove_dir_all(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(rootfs_err(dir, format!("removing {}", p.display()))(e))
            }
            _ => {}
        }
    }
    match fs::remove_dir(dir.join(MOUNT_DIR)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(rootfs_err(dir, "removing the mount point")(e))
        }
        _ => Ok(()),
    }
}

/// A mounted container rootfs. Dropping it unmounts and removes upper/work (errors are
/// logged); [`Rootfs::teardown`] does the same and reports them; [`Rootfs::keep`] leaves it
/// mounted for a later [`super::Store::teardown_rootfs`] (a detached task whose supervisor
/// outlives the process that prepared it).
#[derive(Debug)]
pub struct Rootfs {
    dir: PathBuf,
    path: PathBuf,
    /// The store's record that this mount uses its layers (protects them from GC).
    lease: PathBuf,
    unpacked_layers: usize,
    armed: bool,
}

impl Rootfs {
    pub(crate) fn new(
        dir: PathBuf,
        path: PathBuf,
        lease: PathBuf,
        unpacked_layers: usize,
    ) -> Rootfs {
        Rootfs {
            dir,
            path,
            lease,
            unpacked_layers,
            armed: true,
        }
    }

    /// The mount point: the container's root.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory holding the mount point and upper/work.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many layers had to be unpacked to prepare this rootfs (0: all were cached).
    pub fn unpacked_layers(&self) -> usize {
        self.unpacked_layers
    }

    pub fn teardown(mut self) -> Result<()> {
        self.armed = false;
        teardown_with_lease(&self.dir, &self.lease)
    }

    /// Leaves the rootfs mounted past this handle; returns the mount point.
    pub fn keep(mut self) -> PathBuf {
        self.armed = false;
        self.path.clone()
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = teardown_with_lease(&self.dir, &self.lease) {
                tracing::warn!("tearing down rootfs: {e}");
            }
        }
    }
}

/// Tears the rootfs down, then drops its lease (only once the layers are no longer in use).
pub(crate) fn teardown_with_lease(dir: &Path, lease: &Path) -> Result<()> {
    teardown(dir)?;
    match fs::remove_file(lease) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(rootfs_err(
            dir,
            format!("removing lease {}", lease.display()),
        )(e)),
        _ => Ok(()),
    }
}
