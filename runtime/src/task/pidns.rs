//! `pidMode: "task"`: one pid namespace shared by all the task's containers.
//!
//! A pid namespace dies with its init, so it needs a process of its own that outlives every
//! container: the holder, pid 1 of the namespace. It is a berth container in its own right
//! (`berth.pause` annotation, see init::reaper): berth's init, which execs nothing and only
//! reaps, pivoted into an empty read-only root with /proc and a tmpfs /dev, as nobody (65534) with no
//! capabilities, no_new_privs, its own mount/uts/ipc/cgroup namespaces and the task's netns.
//! That matters because the containers see it (`ps` shows it as pid 1) and one with
//! CAP_SYS_PTRACE could reach it: through it they find nothing they do not already have.
//!
//! Containers join by path, `/proc/<holder>/ns/pid`. The holder is a child of the process that
//! runs the task and is not reaped before teardown, so its pid cannot be reused meanwhile.
//! Its state lives in `<task>/pidns/`, apart from the containers' (no name can collide).

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use serde_json::json;

use super::{Error, TaskPaths};
use crate::container::{self, CreateOptions};
use crate::state::StateRoot;

/// The holder's container id in its own state root, and its cgroup below the task's. A dot
/// cannot appear in an ECS container name, so the cgroup never collides with a container's.
const HOLDER_ID: &str = "pidns";
pub(crate) const HOLDER_CGROUP: &str = "berth.pidns";

#[derive(Debug)]
pub struct PidHolder {
    dir: PathBuf,
    root: StateRoot,
    pid: Pid,
    /// `/proc/<pid>/ns/pid`
    ns: PathBuf,
}

fn dir(paths: &TaskPaths) -> PathBuf {
    paths.dir.join("pidns")
}

impl PidHolder {
    /// Creates and starts the holder; on error nothing of it is left.
    pub fn start(paths: &TaskPaths, task_id: &str, netns: &Path) -> Result<PidHolder, Error> {
        let dir = dir(paths);
        let made = Self::make(&dir, task_id, netns);
        if made.is_err() {
            remove_leftovers(&dir);
        }
        made
    }

    fn make(dir: &Path, task_id: &str, netns: &Path) -> Result<PidHolder, Error> {
        let bundle = dir.join("bundle");
        let rootfs = bundle.join("rootfs");
        for d in ["dev", "proc"] {
            fs::create_dir_all(rootfs.join(d))
                .map_err(|e| Error::io(format!("creating {}", rootfs.display()), e))?;
        }
        let spec = json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": {"uid": 65534, "gid": 65534},
                "args": ["berth-pidns-holder"],
                "env": [],
                "cwd": "/",
                "capabilities": {"bounding": [], "effective": [], "permitted": []},
                "noNewPrivileges": true,
            },
            "root": {"path": rootfs, "readonly": true},
            // berth's init resolves paths through /proc (pathrs, remounts by fd).
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc",
                        "options": ["nosuid", "noexec", "nodev"]},
                       {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                        "options": ["nosuid", "noexec", "mode=755", "size=64k"]}],
            "annotations": {crate::init::reaper::PAUSE_ANNOTATION: "true"},
            "linux": {
                "cgroupsPath": super::cgroup_path(task_id).join(HOLDER_CGROUP),
                "resources": {"devices": [{"allow": false, "access": "rwm"}]},
                "namespaces": [
                    {"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"},
                    {"type": "cgroup"}, {"type": "network", "path": netns},
                ],
                "maskedPaths": crate::spec::defaults::MASKED_PATHS,
                "readonlyPaths": crate::spec::defaults::READONLY_PATHS,
            }
        });
        let bytes = serde_json::to_vec_pretty(&spec)
            .map_err(|e| Error::Invalid(format!("encoding the pid holder's config.json: {e}")))?;
        fs::write(bundle.join("config.json"), bytes)
            .map_err(|e| Error::io("writing the pid holder's config.json", e))?;
        let root = StateRoot::new(dir.join("state"));
        let devnull = fs::File::open("/dev/null").map_err(|e| Error::io("/dev/null", e))?;
        let null = devnull.as_raw_fd();
        let opts = CreateOptions {
            id: HOLDER_ID.into(),
            bundle,
            stdio: Some([null, null, null]),
            ..Default::default()
        };
        let cerr = |e| Error::Container {
            container: "pidMode task: pid namespace holder".into(),
            source: Box::new(e),
        };
        let created = container::create(&root, &opts).map_err(cerr)?;
        let pid = created.pid;
        let holder = PidHolder {
            dir: dir.to_path_buf(),
            root,
            pid,
            ns: PathBuf::from(format!("/proc/{}/ns/pid", pid.as_raw())),
        };
        // From here on dropping `holder` kills, reaps and removes it.
        container::start(&holder.root, HOLDER_ID).map_err(cerr)?;
        tracing::debug!(pid = pid.as_raw(), "pid namespace holder running");
        Ok(holder)
    }

    /// The path containers join (linux.namespaces[].path).
    pub fn ns_path(&self) -> &Path {
        &self.ns
    }
}

impl Drop for PidHolder {
    fn drop(&mut self) {
        // SIGKILL ends the holder and with it whatever still runs in the namespace.
        if let Err(e) = container::delete(&self.root, HOLDER_ID, true) {
            tracing::warn!(error = %e, "removing the pid namespace holder");
            let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        }
        // Our child: reap it, or it stays a zombie of a long-lived supervisor.
        let _ = nix::sys::wait::waitpid(self.pid, None);
        remove_leftovers(&self.dir);
    }
}

fn remove_leftovers(dir: &Path) {
    let root = StateRoot::new(dir.join("state"));
    let _ = container::delete(&root, HOLDER_ID, true);
    if dir.exists() {
        if let Err(e) = fs::remove_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "removing the pid holder's files");
        }
    }
}

/// A holder left by a task whose process died (used by `task rm`): killed, its files removed.
pub fn cleanup_leftovers(paths: &TaskPaths) {
    remove_leftovers(&dir(paths));
}
