//! The container's cgroup, through youki's libcgroups (cgroup v1, hybrid and v2). berth
//! decides the path and the order of operations; libcgroups knows the controller files.
//! On a v2 host berth itself applies what libcgroups 0.7 gets wrong or leaves out ([`v2`])
//! and installs the eBPF device filter ([`devices_v2`]). On v1 the hot paths (join, device
//! list, pids.max, list, remove) are berth's own ([`v1`]); libcgroups' manager is built
//! only when something else is asked for.

mod bpf;
pub mod devices_v2;
pub mod v1;
pub mod v2;

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

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
    #[error(transparent)]
    Devices(#[from] devices_v2::DeviceError),
}

/// Where a v2-only host mounts its one hierarchy.
const V2_ROOT: &str = "/sys/fs/cgroup";

/// How long `remove` waits for killed processes to leave the cgroup.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The cgroup of one container.
pub struct Cgroup {
    pub path: PathBuf,
    id: String,
    /// libcgroups' manager, built on first use (costly on v1, see [`v1`]).
    manager: OnceLock<AnyCgroupManager>,
    /// The host is cgroup v2 only: the directory below.
    unified_dir: Option<PathBuf>,
    /// The host has v1 hierarchies: the cgroup's directories in them.
    v1: Option<v1::V1Cgroup>,
}

/// The cgroup path a spec asks for, or berth's default `/berth/<id>`.
pub fn path_for(spec: &Spec, id: &str) -> PathBuf {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
    {
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
    /// A handle on the cgroup at `path` (creating nothing yet: directories appear when the
    /// first task is added).
    pub fn open(path: &Path, id: &str) -> Result<Cgroup, CgroupError> {
        let unified = is_unified();
        Ok(Cgroup {
            path: path.to_path_buf(),
            id: id.to_string(),
            manager: OnceLock::new(),
            unified_dir: unified
                .then(|| Path::new(V2_ROOT).join(path.strip_prefix("/").unwrap_or(path))),
            v1: (!unified).then(|| v1::V1Cgroup::new(path)),
        })
    }

    fn manager(&self) -> Result<&AnyCgroupManager, CgroupError> {
        if let Some(m) = self.manager.get() {
            return Ok(m);
        }
        let m = create_cgroup_manager(CgroupConfig {
            cgroup_path: self.path.clone(),
            systemd_cgroup: false,
            container_name: self.id.clone(),
        })
        .map_err(|e| err(&self.path, e))?;
        Ok(self.manager.get_or_init(|| m))
    }

    /// On v2: opens the cgroup for clone3's CLONE_INTO_CGROUP, so the container process
    /// starts inside it, creating it first with `make` (`create`; `exec` joins an existing
    /// one and must not bring back a cgroup a concurrent `delete` removed). No migration
    /// happens at all then (see [`Cgroup::prepare_join`] for why that matters). `None` on v1.
    pub fn clone_target(&self, make: bool) -> Result<Option<OwnedFd>, CgroupError> {
        let Some(dir) = &self.unified_dir else {
            return Ok(None);
        };
        if make {
            v2::make_dir(Path::new(V2_ROOT), dir).map_err(|e| err(&self.path, e))?;
        }
        let fd = File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)
            .map_err(|e| err(&self.path, e))?;
        Ok(Some(fd.into()))
    }

    /// Creates the cgroup and gets `pid`, a freshly cloned single-threaded berth process, on
    /// its way in. On v1 the process joins itself: it gets the returned `tasks` files and
    /// writes "0" to each ([`join_self`]). A migration written by another process (or of a
    /// whole thread group) takes the kernel's global threadgroup lock for writing, and that
    /// waits for an RCU grace period — 5-10 ms after a quiet spell, on every `create` and
    /// `exec`. A thread moving only itself skips that lock (Linux 6.0+; older kernels just
    /// take it). On v2 the process was cloned into the cgroup (`cloned_in`, see
    /// [`Cgroup::clone_target`]) or the runtime moves it; the list is empty.
    pub fn prepare_join(&self, pid: Pid, cloned_in: bool) -> Result<Vec<File>, CgroupError> {
        match &self.v1 {
            Some(v1) => v1.tasks_files().map_err(|e| err(&self.path, e)),
            None if cloned_in => Ok(Vec::new()),
            None => {
                self.manager()?
                    .add_task(pid)
                    .map_err(|e| err(&self.path, e))?;
                Ok(Vec::new())
            }
        }
    }

    /// Applies the spec's limits when the container is created (after `prepare_join`). On v2
    /// the device filter is installed even when the spec has no resources: without one the
    /// container could open every device of the host.
    pub fn apply_spec(&self, spec: &Spec) -> Result<(), CgroupError> {
        let linux = spec.linux().as_ref();
        let resources = linux.and_then(|l| l.resources().as_ref());
        if let Some(r) = resources {
            self.apply_limits(r)?;
        }
        // Validated on every host, so a bad rule fails the same way everywhere.
        let rules = devices_v2::effective_rules(
            resources
                .and_then(|r| r.devices().as_deref())
                .unwrap_or_default(),
            linux
                .and_then(|l| l.devices().as_deref())
                .unwrap_or_default(),
        )?;
        self.set_devices(&rules)
    }

    fn set_devices(&self, rules: &[devices_v2::Rule]) -> Result<(), CgroupError> {
        if let Some(dir) = &self.unified_dir {
            return Ok(devices_v2::install(dir, rules)?);
        }
        if let Some(v1) = &self.v1 {
            // Default deny, as the v2 program is: v1 starts a new cgroup allowing all.
            let all = [devices_v2::Rule::DENY_ALL];
            let rules: Vec<_> = all.iter().chain(rules).copied().collect();
            v1.set_devices(&rules).map_err(|e| err(&self.path, e))?;
        }
        Ok(())
    }

    /// `update`: applies what `resources` sets, leaving the rest as it is. Devices are
    /// replaced only when given; `spec_devices` are the container's `linux.devices` (their
    /// paths drop default rules, as at create).
    pub fn apply(
        &self,
        resources: &LinuxResources,
        spec_devices: &[oci_spec::runtime::LinuxDevice],
    ) -> Result<(), CgroupError> {
        self.apply_limits(resources)?;
        if let Some(devices) = resources.devices() {
            let rules = devices_v2::effective_rules(devices, spec_devices)?;
            self.set_devices(&rules)?;
        }
        Ok(())
    }

    fn apply_limits(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(dir) = &self.unified_dir {
            let (rest, own) = v2::split(resources);
            self.apply_libcgroups(&rest)?;
            return v2::apply_own(dir, &own).map_err(|e| err(&self.path, e));
        }
        let Some(v1) = &self.v1 else {
            return self.apply_libcgroups(resources);
        };
        if let Some(p) = resources.pids() {
            v1.set_pids_max(p.limit()).map_err(|e| err(&self.path, e))?;
        }
        // The device list is written by the caller, after this, so that it wins over the
        // default allow list libcgroups writes whenever it runs.
        let mut rest = resources.clone();
        rest.set_devices(None).set_pids(None);
        if v1::needs_libcgroups(&rest) {
            self.apply_libcgroups(&rest)?;
        }
        Ok(())
    }

    fn apply_libcgroups(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
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
        self.manager()?.apply(&opt).map_err(|e| err(&self.path, e))
    }

    pub fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        let state = if frozen {
            FreezerState::Frozen
        } else {
            FreezerState::Thawed
        };
        self.manager()?
            .freeze(state)
            .map_err(|e| err(&self.path, e))
    }

    pub fn pids(&self) -> Result<Vec<Pid>, CgroupError> {
        match &self.v1 {
            Some(v1) => v1.pids().map_err(|e| err(&self.path, e)),
            None => self
                .manager()?
                .get_all_pids()
                .map_err(|e| err(&self.path, e)),
        }
    }

    pub fn stats(&self) -> Result<libcgroups::stats::Stats, CgroupError> {
        self.manager()?.stats().map_err(|e| err(&self.path, e))
    }

    /// Kills what is left and removes the cgroup in every hierarchy.
    pub fn remove(&self) -> Result<(), CgroupError> {
        if let Some(dir) = &self.unified_dir {
            return v2::remove(dir, REMOVE_TIMEOUT).map_err(|e| err(&self.path, e));
        }
        match &self.v1 {
            Some(v1) => v1.remove(REMOVE_TIMEOUT).map_err(|e| err(&self.path, e)),
            None => self.manager()?.remove().map_err(|e| err(&self.path, e)),
        }
    }
}

/// The container process's half of [`Cgroup::prepare_join`]: moves the calling thread
/// (the process must be single-threaded) into the cgroup of each `tasks` file.
pub fn join_self<F: AsFd>(tasks: &[F]) -> std::io::Result<()> {
    for f in tasks {
        rustix::io::write(f, b"0")?;
    }
    Ok(())
}

/// The host's cgroup layout (found once per process).
pub fn setup() -> Option<&'static CgroupSetup> {
    static SETUP: OnceLock<Option<CgroupSetup>> = OnceLock::new();
    SETUP
        .get_or_init(|| libcgroups::common::get_cgroup_setup().ok())
        .as_ref()
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
