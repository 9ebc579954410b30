//! A task's cgroup on the host: one parent cgroup whose limits bound all of the task's
//! containers together (their own cgroups are its children). Used by the task runner
//! ([`super::sandbox`]) and by the containerd shim, which gives each pod / berth task one.
//!
//! The task cgroup never holds a process itself: on v1 libcgroups would create a cgroup's
//! directories only when a process is added, so they are made here; on v2 the controllers
//! must also be enabled for the children (and "no internal processes" holds).

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use super::Error;
use crate::cgroups::{self, Cgroup};

/// Makes the task cgroup at `path` (absolute, relative to the cgroup roots) and applies
/// `resources` to it. On failure the directories are removed again, unless something else
/// already lives below them.
pub fn create(path: &Path, id: &str, resources: &LinuxResources) -> Result<(), Error> {
    let made = make_dirs(path).and_then(|()| {
        Cgroup::open(path, id)
            .and_then(|cg| cg.apply(resources, &[]))
            .map_err(Error::from)
    });
    if let Err(e) = made {
        remove_if_empty(path);
        return Err(e);
    }
    tracing::debug!(cgroup = %path.display(), "task cgroup ready");
    Ok(())
}

/// Applies `resources` to an existing task cgroup (what they leave out stays as it is).
pub fn update(path: &Path, id: &str, resources: &LinuxResources) -> Result<(), Error> {
    Cgroup::open(path, id)?.apply(resources, &[])?;
    Ok(())
}

/// The task cgroup's directories. On v1 each hierarchy gets one; on v2 the controllers are
/// enabled along the path so the containers below can use them.
pub fn make_dirs(path: &Path) -> Result<(), Error> {
    if cgroups::is_unified() {
        let rel = path.strip_prefix("/").unwrap_or(path);
        let mut dir = PathBuf::from("/sys/fs/cgroup");
        for part in rel.components() {
            enable_controllers(&dir);
            dir.push(part);
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io(format!("creating {}", dir.display()), e)),
            }
        }
        enable_controllers(&dir);
        return Ok(());
    }
    cgroups::v1::V1Cgroup::new(path)
        .make_dirs()
        .map_err(|e| Error::io(format!("creating task cgroup {}", path.display()), e))
}

fn enable_controllers(dir: &Path) {
    let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    for c in ["cpu", "memory", "pids"] {
        if available.split_whitespace().any(|a| a == c) {
            let _ = fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"));
        }
    }
}

/// Kills whatever is left in the task cgroup and removes it (the task runner's teardown).
pub fn remove(path: &Path, id: &str) {
    match Cgroup::open(path, id).map(|cg| cg.remove()) {
        Ok(Ok(())) => {}
        Ok(Err(e)) | Err(e) => tracing::warn!(error = %e, "removing task cgroup"),
    }
    // libcgroups leaves hierarchies it does not manage (and the parent) alone.
    for dir in cgroups::host_dirs(path) {
        let _ = fs::remove_dir(&dir);
    }
}

/// Removes the task cgroup only if no container cgroup is left below it (rmdir alone: the
/// kernel refuses a cgroup with children or processes with EBUSY). Kills nothing, so it is
/// safe to call while another party may still use the cgroup. True if nothing is left.
pub fn remove_if_empty(path: &Path) -> bool {
    let mut gone = true;
    for dir in cgroups::host_dirs(path) {
        match fs::remove_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "task cgroup kept");
                gone = false;
            }
        }
    }
    gone
}
