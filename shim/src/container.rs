//! One container the shim serves: its init, its execs, and the bookkeeping that keeps its
//! events in a sensible order for containerd.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use containerd_shim_protos::events::task::{TaskExit, TaskOOM};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::events::Publisher;
use crate::oom;
use crate::process::{lock, Process};

pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub cgroup_path: PathBuf,
    /// Whether berth made the container its own pid namespace: then the kernel kills every
    /// process in it when init dies; otherwise the shim does.
    pub own_pid_ns: bool,
    /// Whether the shim mounted `<bundle>/rootfs` (and must unmount it).
    pub rootfs_mounted: bool,
    /// The group's task cgroup this container's cgroup sits in, if any.
    pub task_cgroup: Option<PathBuf>,
    pub init: Arc<Process>,
    pub execs: Mutex<HashMap<String, Arc<Process>>>,
    /// Held across a lifecycle step and the event it publishes (Start → TaskStart, an exit
    /// → TaskExit, Delete → TaskDelete), so containerd sees them in causal order even when a
    /// process exits while its start is still being reported.
    pub lifecycle: Arc<tokio::sync::Mutex<()>>,
    pub started: AtomicBool,
    memory_dir: PathBuf,
    unified: bool,
    /// The oom_kill count already reported as TaskOOM.
    oom_reported: AtomicU64,
    pub oom_task: Mutex<Option<JoinHandle<()>>>,
}

pub struct NewContainer {
    pub id: String,
    pub bundle: PathBuf,
    pub cgroup_path: PathBuf,
    pub own_pid_ns: bool,
    pub rootfs_mounted: bool,
    pub task_cgroup: Option<PathBuf>,
    pub init: Arc<Process>,
    pub unified: bool,
}

impl Container {
    pub fn new(n: NewContainer) -> Container {
        let memory_dir = oom::memory_dir(&n.cgroup_path, n.unified);
        let oom_reported = oom::oom_kills(&memory_dir, n.unified).unwrap_or(0);
        Container {
            id: n.id,
            bundle: n.bundle,
            cgroup_path: n.cgroup_path,
            own_pid_ns: n.own_pid_ns,
            rootfs_mounted: n.rootfs_mounted,
            task_cgroup: n.task_cgroup,
            init: n.init,
            execs: Mutex::new(HashMap::new()),
            lifecycle: Arc::new(tokio::sync::Mutex::new(())),
            started: AtomicBool::new(false),
            memory_dir,
            unified: n.unified,
            oom_reported: AtomicU64::new(oom_reported),
            oom_task: Mutex::new(None),
        }
    }

    /// The init (exec id "") or an exec.
    pub fn process(&self, exec_id: &str) -> Result<Arc<Process>> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        lock(&self.execs)
            .get(exec_id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("exec {exec_id} of {} not found", self.id)))
    }

    pub fn is_paused(&self) -> bool {
        berth::cgroups::is_frozen(&self.cgroup_path)
    }

    /// Starts the OOM watcher task; without one (no memory cgroup) OOMs are still noticed
    /// from the counter when init exits.
    pub fn watch_oom(self: &Arc<Self>, events: Arc<Publisher>) {
        let watcher = match oom::Watcher::new(&self.memory_dir, self.unified) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(id = %self.id, error = %e, "no OOM notifications");
                return;
            }
        };
        let me = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            while watcher.next().await {
                let Some(c) = me.upgrade() else { break };
                c.report_oom(&events, true).await;
            }
        });
        *lock(&self.oom_task) = Some(task);
    }

    /// Publishes TaskOOM if the cgroup counted a kill not yet reported. A cgroup v1
    /// notification also counts where the kernel keeps no kill counter, and while the group
    /// sits under OOM without a kill (OOM killer disabled).
    pub async fn report_oom(&self, events: &Publisher, v1_notification: bool) {
        let count = oom::oom_kills(&self.memory_dir, self.unified);
        let publish = match count {
            Some(n) => {
                n > self.oom_reported.fetch_max(n, Ordering::SeqCst)
                    || (v1_notification && oom::under_oom(&self.memory_dir))
            }
            None => v1_notification,
        };
        if publish {
            events
                .publish(TaskOOM {
                    container_id: self.id.clone(),
                    ..Default::default()
                })
                .await;
        }
    }

    /// Publishes TaskExit for `p` once (the reaper's task and Delete both may try). Call with
    /// the lifecycle lock held.
    pub async fn publish_exit(&self, p: &Process, events: &Publisher) {
        let Some(exit) = p.exit() else { return };
        if p.exit_published.swap(true, Ordering::SeqCst) {
            return;
        }
        if p.exec_id.is_empty() {
            // An OOM kill of init must reach containerd before its exit.
            self.report_oom(events, false).await;
        }
        events
            .publish(TaskExit {
                container_id: self.id.clone(),
                id: if p.exec_id.is_empty() {
                    self.id.clone()
                } else {
                    p.exec_id.clone()
                },
                pid: p.pid().max(0) as u32,
                exit_status: exit.status,
                exited_at: Some(exit.timestamp()).into(),
                ..Default::default()
            })
            .await;
    }

    pub fn stop_oom_watch(&self) {
        if let Some(t) = lock(&self.oom_task).take() {
            t.abort();
        }
    }
}
