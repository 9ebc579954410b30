//! Reclaiming a task whose supervisor is gone (SIGKILL, OOM kill, host process crash).
//!
//! The process that runs a task (attached CLI or detached supervisor) is the only one that
//! tears its resources down ([`super::runner`]'s finish). If it dies first, the containers keep
//! running (reparented to the host's init) and everything the runner made stays: container
//! state and cgroups below the task cgroup, overlay rootfs mounts, namespace bind mounts,
//! volumes, the pid holder. `task stop` / `task rm` call [`reclaim`], which does what the
//! runner would have done, from what is on disk and in the cgroup tree rather than from the
//! dead process's memory:
//!
//! 1. SIGTERM each container's init, wait up to the longest recorded stopTimeout;
//! 2. SIGKILL every process left in the task cgroup, in every hierarchy, thawing frozen ones;
//! 3. `container::delete` each container (state dir, cgroup), remove the pid holder;
//! 4. tear down each overlay rootfs (and its lease in the image store), then lazily unmount
//!    anything still mounted under the task directory;
//! 5. namespace files, volumes, the whole task cgroup tree, bundles and container state;
//! 6. check that no process, cgroup directory or mount is left, and say which if one is.
//!
//! It must never run while a supervisor still runs the task (both would tear down the same
//! things): it refuses unless the record is STOPPED or [`super::TaskRecord::supervisor_alive`]
//! (which compares the pid's start time, so a reused pid is not taken for it) says it is gone.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::record::{TaskRecord, TaskStatus};
use super::{pidns, sandbox, Error, TaskPaths};
use crate::cgroups;
use crate::container;
use crate::image::{rootfs, Store};
use crate::state::StateRoot;

/// stopTimeout when the record has none (ECS's default).
const DEFAULT_STOP_TIMEOUT: u64 = 30;
/// How long SIGKILLed processes (and dying cgroups) get to go away.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Every live process in the cgroup at `path` or below it, in any hierarchy.
pub fn cgroup_pids(path: &Path) -> Vec<Pid> {
    let mut out = Vec::new();
    for dir in cgroups::host_dirs(path) {
        collect_pids(&dir, None, &mut out);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Whether any process of the task's containers still runs: a process in the task cgroup
/// other than the pid namespace holder (which is berth's, not a container's).
pub fn running(id: &str) -> bool {
    let mut out = Vec::new();
    for dir in cgroups::host_dirs(&super::cgroup_path(id)) {
        collect_pids(&dir, Some(pidns::HOLDER_CGROUP), &mut out);
        if !out.is_empty() {
            return true;
        }
    }
    false
}

fn collect_pids(dir: &Path, skip: Option<&str>, out: &mut Vec<Pid>) {
    let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) else {
        return;
    };
    out.extend(
        procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .map(Pid::from_raw),
    );
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if skip.is_some_and(|s| e.file_name() == s) {
            continue;
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&e.path(), None, out);
        }
    }
}

/// Removes everything the task `record` describes made, its supervisor being gone; task.json
/// and logs/ stay (the caller records the end, or removes the task). Idempotent: a task
/// cleanly stopped has nothing left and this finds nothing. `image_root` is where the rootfs
/// leases are when the record does not say.
pub fn reclaim(paths: &TaskPaths, record: &TaskRecord, image_root: &Path) -> Result<(), Error> {
    // A supervisor that recorded STOPPED has finished its teardown (it may still be exiting).
    if record.last_status != TaskStatus::Stopped && record.supervisor_alive() {
        return Err(Error::Invalid(format!(
            "task {}: its supervisor (pid {}) is running it: `berth task stop` first",
            record.id, record.supervisor_pid
        )));
    }
    // Two CLIs reclaiming one task (stop and rm at once) would race on the same unmounts.
    let _lock = lock_dir(&paths.dir)?;
    let id = record.id.as_str();
    let task_cgroup = super::cgroup_path(id);
    let containers = StateRoot::new(paths.containers());
    let names = containers.list().unwrap_or_default();

    stop_gracefully(&containers, &names, record);
    kill_everything(&task_cgroup);
    for name in &names {
        if let Err(e) = container::delete(&containers, name, true) {
            tracing::warn!(task = id, container = name, error = %e, "deleting container");
        }
    }
    pidns::cleanup_leftovers(paths);
    teardown_rootfs(paths, record.image_root.as_deref().unwrap_or(image_root));
    unmount_below(&paths.dir);
    sandbox::remove_namespaces_and_volumes(paths);
    remove_cgroup_tree(&task_cgroup);
    for dir in [paths.bundles(), paths.containers()] {
        if let Err(e) = fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "removing");
            }
        }
    }
    verify(paths, &task_cgroup)
}

/// The graceful part of a stop: SIGTERM to each container's init, then up to the longest
/// stopTimeout for them to exit. All at once: the stop order lives in the definition, which
/// the dead supervisor had planned and which may have changed since.
fn stop_gracefully(containers: &StateRoot, names: &[String], record: &TaskRecord) {
    let mut signalled = Vec::new();
    for name in names {
        let Ok(st) = containers.load(name) else {
            continue;
        };
        if container::kill(containers, name, Signal::SIGTERM).is_ok() {
            signalled.push(st);
        }
    }
    if signalled.is_empty() {
        return;
    }
    let grace = record
        .containers
        .iter()
        .map(|c| c.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT))
        .max()
        .unwrap_or(DEFAULT_STOP_TIMEOUT);
    tracing::info!(
        task = record.id,
        grace,
        "SIGTERM sent to the orphaned containers"
    );
    let deadline = Instant::now() + Duration::from_secs(grace);
    for st in &signalled {
        container::wait_exit(st, deadline.saturating_duration_since(Instant::now()));
    }
}

/// SIGKILLs every process in the task cgroup tree until none is left (a process may fork
/// between a read of cgroup.procs and the kill: hence the loop).
fn kill_everything(task_cgroup: &Path) {
    let deadline = Instant::now() + KILL_TIMEOUT;
    loop {
        let pids = cgroup_pids(task_cgroup);
        if pids.is_empty() {
            return;
        }
        for dir in cgroups::host_dirs(task_cgroup) {
            thaw_tree(&dir);
        }
        for pid in &pids {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        if Instant::now() > deadline {
            tracing::warn!(?pids, "processes survived SIGKILL");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A frozen (paused) process does not die of SIGKILL until thawed.
fn thaw_tree(dir: &Path) {
    let v1 = dir.join("freezer.state");
    if fs::read_to_string(&v1).is_ok_and(|s| s.trim() != "THAWED") {
        let _ = fs::write(&v1, "THAWED");
    }
    let v2 = dir.join("cgroup.freeze");
    if fs::read_to_string(&v2).is_ok_and(|s| s.trim() == "1") {
        let _ = fs::write(&v2, "0");
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                thaw_tree(&e.path());
            }
        }
    }
}

/// Each container's overlay (bundles/<name>/fs), through the image store when it is there so
/// that the rootfs's lease goes too; without the store, just the mount and upper/work (gc
/// drops a lease whose rootfs is no longer mounted).
fn teardown_rootfs(paths: &TaskPaths, image_root: &Path) {
    // Store::open would create a store where there is none.
    let store = if image_root.join("leases").is_dir() {
        Store::open(image_root).ok()
    } else {
        None
    };
    let Ok(entries) = fs::read_dir(paths.bundles()) else {
        return;
    };
    for e in entries.flatten() {
        let dir = e.path().join("fs");
        if !dir.exists() {
            continue;
        }
        let done = match &store {
            Some(store) => store.teardown_rootfs(&dir),
            None => rootfs::teardown(&dir),
        };
        if let Err(e) = done {
            tracing::warn!(dir = %dir.display(), error = %e, "tearing down rootfs");
        }
    }
}

/// Mount points in /proc/self/mountinfo at or below `dir`, in mount order.
fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    crate::linux::procfs::mountinfo()
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// The last resort against EBUSY in `task rm`: whatever is still mounted under the task
/// directory (a rootfs whose teardown failed, a mount of a kind berth does not expect) is
/// detached, newest first so stacked mounts go top down.
fn unmount_below(dir: &Path) {
    for m in mounts_below(dir).into_iter().rev() {
        tracing::warn!(mount = %m.display(), "detaching a mount left under the task");
        if let Err(e) = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH) {
            tracing::warn!(mount = %m.display(), error = %e, "unmounting");
        }
    }
}

/// Removes the task cgroup and every cgroup below it, in every hierarchy, children first.
fn remove_cgroup_tree(task_cgroup: &Path) {
    for dir in cgroups::host_dirs(task_cgroup) {
        remove_tree(&dir, Instant::now() + KILL_TIMEOUT);
    }
}

fn remove_tree(dir: &Path, deadline: Instant) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path(), deadline);
            }
        }
    }
    // EBUSY while a killed process is still leaving the cgroup: retry until the deadline.
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if Instant::now() > deadline => {
                tracing::warn!(dir = %dir.display(), error = %e, "removing cgroup");
                return;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// What is still there after the reclaim, as one error naming it.
fn verify(paths: &TaskPaths, task_cgroup: &Path) -> Result<(), Error> {
    let mut left = Vec::new();
    let pids = cgroup_pids(task_cgroup);
    if !pids.is_empty() {
        left.push(format!("processes {pids:?}"));
    }
    for dir in cgroups::host_dirs(task_cgroup) {
        if dir.exists() {
            left.push(format!("cgroup {}", dir.display()));
        }
    }
    for m in mounts_below(&paths.dir) {
        left.push(format!("mount {}", m.display()));
    }
    if left.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "task {}: could not remove {}",
            paths.dir.display(),
            left.join(", ")
        )))
    }
}

fn lock_dir(dir: &Path) -> Result<fs::File, Error> {
    let f = fs::File::open(dir).map_err(|e| Error::io(format!("opening {}", dir.display()), e))?;
    loop {
        match rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive) {
            Ok(()) => return Ok(f),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::io(format!("locking {}", dir.display()), e.into())),
        }
    }
}
