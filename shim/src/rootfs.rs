//! The container's root filesystem: containerd hands the shim the snapshot's mounts (an
//! overlay for the overlayfs snapshotter, a bind for native) to mount at `<bundle>/rootfs`,
//! which config.json's `root.path` names. containerd-shim's helper knows the option
//! syntax (and compacts overlay lowerdirs longer than a page).

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
