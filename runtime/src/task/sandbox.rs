//! Task-level resources, made before any container and removed after the last one:
//!
//! * the task cgroup (`/berth-tasks/<id>`) with the task's cpu quota (or shares), memory limit and
//!   pids limit; the containers' cgroups are its children, so the budget covers all of them;
//! * the task's network and UTS namespaces (and IPC with `ipcMode: task`), made by a short-lived
//!   thread that unshares them, brings loopback up, sets the hostname and bind-mounts
//!   `/proc/thread-self/ns/*` onto files under the task directory. The bind mounts keep the
//!   namespaces alive without a pause process; containers join them by path (linux.namespaces[].path);
//! * with `pidMode: task`, the pid namespace holder ([`super::pidns`]);
//! * task-scoped volumes: empty directories shared by the containers that mount them.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
};

use super::pidns::PidHolder;
use super::task_cgroup::{make_dirs as make_cgroup_dirs, remove as remove_cgroup};
use super::{Error, TaskPaths};
use crate::cgroups::Cgroup;
use berth_taskdef::plan::{TaskCgroup, TaskCpu, VolumeSource};
use berth_taskdef::TaskPlan;

/// What a container needs to join the task.
#[derive(Debug)]
pub struct Sandbox {
    pub id: String,
    pub cgroup_path: PathBuf,
    /// Bind-mounted namespace files, by OCI namespace type ("network", "uts", "ipc").
    pub namespaces: Vec<(&'static str, PathBuf)>,
    /// Volume name → host directory.
    pub volumes: Vec<(String, PathBuf)>,
    /// pidMode task: pid 1 of the task's pid namespace.
    pid_holder: Option<PidHolder>,
    paths: TaskPaths,
    cgroup_made: bool,
}

impl Sandbox {
    /// Makes the task's resources; on error everything made so far is removed again.
    pub fn create(paths: &TaskPaths, id: &str, plan: &TaskPlan) -> Result<Sandbox, Error> {
        let mut sandbox = Sandbox {
            id: id.to_string(),
            cgroup_path: super::cgroup_path(id),
            namespaces: Vec::new(),
            volumes: Vec::new(),
            pid_holder: None,
            paths: paths.clone(),
            cgroup_made: false,
        };
        // Dropping `sandbox` on an early return undoes what is recorded in it.
        sandbox.make_cgroup(&plan.cgroup)?;
        sandbox.make_namespaces(plan)?;
        if plan.pid_mode.as_deref() == Some("task") {
            let netns = sandbox
                .namespace("network")
                .ok_or_else(|| Error::Invalid("task has no network namespace".into()))?;
            sandbox.pid_holder = Some(PidHolder::start(paths, id, netns)?);
        }
        sandbox.make_volumes(plan)?;
        Ok(sandbox)
    }

    fn make_cgroup(&mut self, values: &TaskCgroup) -> Result<(), Error> {
        let path = self.cgroup_path.clone();
        make_cgroup_dirs(&path)?;
        self.cgroup_made = true;
        let mut cpu = LinuxCpuBuilder::default();
        cpu = match values.cpu {
            TaskCpu::Quota {
                quota_us,
                period_us,
            } => cpu
                .quota(i64::try_from(quota_us).unwrap_or(i64::MAX))
                .period(period_us),
            TaskCpu::Shares { shares, .. } => cpu.shares(shares),
        };
        let mut resources = LinuxResourcesBuilder::default()
            .cpu(cpu.build().map_err(invalid)?)
            .pids(
                LinuxPidsBuilder::default()
                    .limit(i64::try_from(values.pids_limit).unwrap_or(i64::MAX))
                    .build()
                    .map_err(invalid)?,
            );
        if let Some(bytes) = values.memory_limit_bytes {
            resources = resources.memory(
                LinuxMemoryBuilder::default()
                    .limit(i64::try_from(bytes).unwrap_or(i64::MAX))
                    .build()
                    .map_err(invalid)?,
            );
        }
        let resources = resources.build().map_err(invalid)?;
        Cgroup::open(&path, &self.id)?.apply(&resources, &[])?;
        tracing::debug!(cgroup = %path.display(), "task cgroup ready");
        Ok(())
    }

    fn make_namespaces(&mut self, plan: &TaskPlan) -> Result<(), Error> {
        let dir = self.paths.namespaces();
        fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let mut kinds: Vec<(&'static str, &'static str, CloneFlags)> =
            vec![("uts", "uts", CloneFlags::CLONE_NEWUTS)];
        // networkMode none: still a namespace of the task's own, with loopback only.
        kinds.push(("network", "net", CloneFlags::CLONE_NEWNET));
        if plan.ipc_mode.as_deref() == Some("task") {
            kinds.push(("ipc", "ipc", CloneFlags::CLONE_NEWIPC));
        }
        let hostname = self.id.chars().take(63).collect::<String>();
        let targets: Vec<(&'static str, &'static str, PathBuf)> = kinds
            .iter()
            .map(|(oci, proc_name, _)| (*oci, *proc_name, dir.join(proc_name)))
            .collect();
        let flags = kinds
            .iter()
            .fold(CloneFlags::empty(), |acc, (_, _, f)| acc | *f);
        let to_mount = targets.clone();
        // A thread of its own: unshare changes only the calling thread's namespaces, and this
        // thread ends right after, so no other work of this process ever runs inside them.
        let made = std::thread::spawn(move || -> Result<Vec<(&'static str, PathBuf)>, Error> {
            unshare(flags).map_err(|e| Error::io("unshare(net, uts)", e.into()))?;
            nix::unistd::sethostname(&hostname).map_err(|e| Error::io("sethostname", e.into()))?;
            loopback_up().map_err(|e| Error::io("bringing loopback up", e))?;
            let mut done = Vec::new();
            for (oci, proc_name, target) in to_mount {
                fs::File::create(&target)
                    .map_err(|e| Error::io(format!("creating {}", target.display()), e))?;
                let source = format!("/proc/thread-self/ns/{proc_name}");
                if let Err(e) = mount(
                    Some(source.as_str()),
                    &target,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                ) {
                    let _ = fs::remove_file(&target);
                    return Err(Error::io(format!("bind-mounting {source}"), e.into()));
                }
                done.push((oci, target));
            }
            Ok(done)
        })
        .join()
        .map_err(|_| Error::Invalid("namespace thread panicked".into()))?;
        match made {
            Ok(done) => {
                self.namespaces = done;
                Ok(())
            }
            Err(e) => {
                // Mounts the thread made before failing are under `dir`: undo them.
                for (_, _, target) in targets {
                    unmount_ns_file(&target);
                }
                Err(e)
            }
        }
    }

    fn make_volumes(&mut self, plan: &TaskPlan) -> Result<(), Error> {
        for volume in &plan.volumes {
            let dir = match &volume.source {
                VolumeSource::Host { path } => PathBuf::from(path),
                VolumeSource::Task => {
                    let dir = self.paths.volumes().join(&volume.name);
                    fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o755)
                        .create(&dir)
                        .map_err(|e| Error::io(format!("creating volume {}", volume.name), e))?;
                    dir
                }
            };
            self.volumes.push((volume.name.clone(), dir));
        }
        Ok(())
    }

    pub fn namespace(&self, oci_type: &str) -> Option<&Path> {
        if oci_type == "pid" {
            return self.pid_holder.as_ref().map(|h| h.ns_path());
        }
        self.namespaces
            .iter()
            .find(|(t, _)| *t == oci_type)
            .map(|(_, p)| p.as_path())
    }

    pub fn volume(&self, name: &str) -> Option<&Path> {
        self.volumes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.as_path())
    }

    /// Removes everything (also what a crashed earlier run left: used by `task rm`).
    pub fn destroy(mut self) {
        self.teardown();
    }

    fn teardown(&mut self) {
        // First: the holder lives in the task cgroup and joined the task's netns.
        self.pid_holder = None;
        for (_, path) in self.namespaces.drain(..) {
            unmount_ns_file(&path);
        }
        let _ = fs::remove_dir(self.paths.namespaces());
        let volumes = self.paths.volumes();
        if volumes.exists() {
            if let Err(e) = fs::remove_dir_all(&volumes) {
                tracing::warn!(error = %e, "removing task volumes");
            }
        }
        if self.cgroup_made {
            self.cgroup_made = false;
            remove_cgroup(&self.cgroup_path, &self.id);
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// The namespace bind mounts and task volumes a task whose process died left (part of
/// [`super::reclaim`], which also does the containers, the pid holder and the cgroups).
pub fn remove_namespaces_and_volumes(paths: &TaskPaths) {
    if let Ok(entries) = fs::read_dir(paths.namespaces()) {
        for e in entries.flatten() {
            unmount_ns_file(&e.path());
        }
    }
    let _ = fs::remove_dir(paths.namespaces());
    if let Err(e) = fs::remove_dir_all(paths.volumes()) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(error = %e, "removing task volumes");
        }
    }
}

fn unmount_ns_file(path: &Path) {
    if let Err(e) = umount2(path, MntFlags::MNT_DETACH) {
        if e != nix::errno::Errno::EINVAL && e != nix::errno::Errno::ENOENT {
            tracing::warn!(path = %path.display(), error = %e, "unmounting namespace file");
        }
    }
    let _ = fs::remove_file(path);
}

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("task cgroup: {e}"))
}

/// SIOCSIFFLAGS IFF_UP on `lo` in the calling thread's network namespace.
fn loopback_up() -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain syscall with integer arguments; the returned fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifr_flags of the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: reading the union member SIOCGIFFLAGS just filled in.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
