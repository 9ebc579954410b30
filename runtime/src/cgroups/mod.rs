//! The container's cgroup, through youki's libcgroups (cgroup v1, hybrid and v2). berth
//! decides the path and the order of operations; libcgroups knows the controller files.

use std::path::{Path, PathBuf};

use libcgroups::common::{
    create_cgroup_manager, AnyCgroupManager, CgroupConfig, CgroupManager, CgroupSetup,
    ControllerOpt, FreezerState,
};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Spec};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {message}")]
    Manager { path: String, message: String },
    #[error("--systemd-cgroup: berth has no systemd cgroup driver (and this host runs no systemd); use cgroupfs paths")]
    SystemdUnsupported,
}

/// The cgroup of one container.
pub struct Cgroup {
    pub path: PathBuf,
    manager: AnyCgroupManager,
}

/// The cgroup path a spec asks for, or berth's default `/berth/<id>`.
pub fn path_for(spec: &Spec, id: &str) -> PathBuf {
    match spec.linux().as_ref().and_then(|l| l.cgroups_path().as_ref()) {
        Some(p) if p.is_absolute() => p.clone(),
        Some(p) => Path::new("/").join(p),
        None => PathBuf::from("/berth").join(id),
    }
}

fn err(path: &Path, e: impl std::fmt::Display) -> CgroupError {
    CgroupError::Manager {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

impl Cgroup {
    /// A handle on the cgroup at `path` (creating nothing yet: v1 directories appear when the
    /// first task is added).
    pub fn open(path: &Path, id: &str) -> Result<Cgroup, CgroupError> {
        let manager = create_cgroup_manager(CgroupConfig {
            cgroup_path: path.to_path_buf(),
            systemd_cgroup: false,
            container_name: id.to_string(),
        })
        .map_err(|e| err(path, e))?;
        Ok(Cgroup {
            path: path.to_path_buf(),
            manager,
        })
    }

    pub fn add_task(&self, pid: Pid) -> Result<(), CgroupError> {
        self.manager.add_task(pid).map_err(|e| err(&self.path, e))
    }

    pub fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        let opt = ControllerOpt {
            resources,
            disable_oom_killer: resources
                .memory()
                .as_ref()
                .and_then(|m| m.disable_oom_killer())
                .unwrap_or(false),
            oom_score_adj: None,
            freezer_state: None,
        };
        self.manager.apply(&opt).map_err(|e| err(&self.path, e))
    }

    pub fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        let state = if frozen {
            FreezerState::Frozen
        } else {
            FreezerState::Thawed
        };
        self.manager.freeze(state).map_err(|e| err(&self.path, e))
    }

    pub fn pids(&self) -> Result<Vec<Pid>, CgroupError> {
        self.manager.get_all_pids().map_err(|e| err(&self.path, e))
    }

    pub fn stats(&self) -> Result<libcgroups::stats::Stats, CgroupError> {
        self.manager.stats().map_err(|e| err(&self.path, e))
    }

    /// Kills what is left and removes the cgroup in every hierarchy.
    pub fn remove(&self) -> Result<(), CgroupError> {
        self.manager.remove().map_err(|e| err(&self.path, e))
    }
}

/// The host's cgroup layout.
pub fn setup() -> Option<CgroupSetup> {
    libcgroups::common::get_cgroup_setup().ok()
}

/// True if the host is cgroup v2 only.
pub fn is_unified() -> bool {
    matches!(setup(), Some(CgroupSetup::Unified))
}

/// Whether the container's cgroup is frozen (paused), read straight from the freezer files.
pub fn is_frozen(path: &Path) -> bool {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let v2 = if is_unified() {
        Path::new("/sys/fs/cgroup").join(rel).join("cgroup.freeze")
    } else {
        PathBuf::new()
    };
    if !v2.as_os_str().is_empty() {
        return std::fs::read_to_string(v2).is_ok_and(|s| s.trim() == "1");
    }
    std::fs::read_to_string(
        Path::new("/sys/fs/cgroup/freezer")
            .join(rel)
            .join("freezer.state"),
    )
    .is_ok_and(|s| s.trim() == "FROZEN")
}

/// Every directory the container's cgroup occupies on this host (for leak checks and for
/// `kill --all` without a manager).
pub fn host_dirs(path: &Path) -> Vec<PathBuf> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let mut out = Vec::new();
    if is_unified() {
        out.push(Path::new("/sys/fs/cgroup").join(rel));
        return out;
    }
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_symlink() {
                continue;
            }
            out.push(p.join(rel));
        }
    }
    out
}
