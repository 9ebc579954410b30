//! The container's root filesystem: containerd hands the shim the snapshot's mounts (an
//! overlay for the overlayfs snapshotter, a bind for native) to mount at `<bundle>/rootfs`,
//! which config.json's `root.path` names. containerd-shim's helper knows the option
//! syntax (and compacts overlay lowerdirs longer than a page).

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use containerd_shim_protos::types::mount::Mount;
use nix::mount::MntFlags;

use crate::error::{Error, Result};

pub fn target(bundle: &Path) -> PathBuf {
    bundle.join("rootfs")
}

/// Mounts `mounts` in order at `<bundle>/rootfs`; on failure nothing stays mounted.
/// Runs on a throw-away thread (see [`crate::blocking`]): the helper may chdir.
pub fn mount(bundle: &Path, mounts: &[Mount]) -> Result<()> {
    if mounts.is_empty() {
        return Ok(());
    }
    let target = target(bundle);
    std::fs::create_dir_all(&target)
        .map_err(|e| Error::io(format!("creating {}", target.display()), e))?;
    for m in mounts {
        let fs_type = Some(m.type_.as_str()).filter(|s| !s.is_empty());
        let source = Some(m.source.as_str()).filter(|s| !s.is_empty());
        if let Err(e) = containerd_shim::mount::mount_rootfs(fs_type, source, &m.options, &target) {
            let _ = unmount(bundle);
            return Err(Error::Other(format!(
                "mounting the rootfs ({} {}): {e}",
                m.type_, m.source
            )));
        }
    }
    Ok(())
}

/// Unmounts everything stacked on `<bundle>/rootfs`. Idempotent: nothing mounted is fine.
pub fn unmount(bundle: &Path) -> Result<()> {
    let target = target(bundle);
    // Several rootfs mounts stack on one target; each umount peels one.
    for _ in 0..32 {
        match nix::mount::umount2(&target, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(Error::io(format!("unmounting {}", target.display()), e)),
        }
    }
    Ok(())
}

/// [`unmount`] for Delete, with the expensive part moved off the caller's path.
///
/// Detaching a mount is quick; tearing its superblock down is not: for an overlay with an
/// upper layer the kernel syncs the whole filesystem holding the upper dir (containerd's
/// snapshots, shared with everything else writing there), 3–5 ms on an idle host here and
/// 30 ms or more while others write. The teardown runs when the last reference to the
/// mount goes. So each mount is pinned by an `O_PATH` descriptor before it is detached, and
/// the descriptors are closed on a thread of their own: `<bundle>/rootfs` is empty when
/// this returns (containerd may remove the bundle right away), and the sync still happens,
/// just not while containerd waits for the Delete reply. The data is synced as before; a
/// shim that exits first closes the descriptors on its way out.
pub fn unmount_in_background(bundle: &Path) -> Result<()> {
    let target = target(bundle);
    let mut pinned: Vec<File> = Vec::new();
    let mut result = Ok(());
    for _ in 0..32 {
        // The mount on top of the target now; None if the open fails (then the umount
        // below does the teardown itself, as `unmount` would).
        let pin = File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(&target)
            .ok();
        match nix::mount::umount2(&target, MntFlags::MNT_DETACH) {
            Ok(()) => pinned.extend(pin),
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => break,
            Err(e) => {
                result = Err(Error::io(format!("unmounting {}", target.display()), e));
                break;
            }
        }
    }
    if !pinned.is_empty() {
        // If no thread can be started, the closure (and the descriptors) is dropped right
        // here: the teardown is then paid inline, as with `unmount`.
        let _ = std::thread::Builder::new()
            .name("rootfs teardown".into())
            .spawn(move || drop(pinned));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounted(path: &Path) -> bool {
        let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let p = path.to_str().expect("utf-8 path");
        info.lines().any(|l| l.split(' ').nth(4) == Some(p))
    }

    /// Two stacked mounts are gone when the call returns, and a second call (nothing left,
    /// as for the delete action after a Delete) is fine.
    #[test]
    fn unmount_in_background_detaches_every_layer_at_once() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to mount");
            return;
        }
        let bundle = std::env::temp_dir().join(format!("berth-rootfs-{}", std::process::id()));
        let target = target(&bundle);
        std::fs::create_dir_all(&target).expect("mkdir");
        for _ in 0..2 {
            nix::mount::mount(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            )
            .expect("mount tmpfs");
        }
        assert!(mounted(&target));
        unmount_in_background(&bundle).expect("unmount");
        assert!(!mounted(&target), "a layer is still mounted");
        unmount_in_background(&bundle).expect("nothing mounted is fine");
        std::fs::remove_dir_all(&bundle).expect("the bundle can be removed");
    }
}
