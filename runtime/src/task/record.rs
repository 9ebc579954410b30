//! The task's state document, `<root>/tasks/<id>/task.json`, written atomically by the process
//! running the task (attached CLI or detached supervisor) whenever something changes, and read by
//! `task ls` / `task describe`. Field names and status words follow ECS's DescribeTasks.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Error, TaskPaths};

/// stoppedReason of a task whose supervisor died before it recorded the end.
pub const REASON_SUPERVISOR_GONE: &str = "Task supervisor exited unexpectedly";

/// ECS lastStatus values a berth task goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskStatus {
    Provisioning,
    Pending,
    Running,
    Stopping,
    Stopped,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    pub id: String,
    pub family: String,
    pub definition: PathBuf,
    pub last_status: TaskStatus,
    /// The process running the task (the attached CLI or the detached supervisor).
    pub supervisor_pid: i32,
    /// Its start time (/proc/<pid>/stat field 22): a reused pid is not taken for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor_start_time: Option<u64>,
    pub detached: bool,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    /// ECS stopCode: EssentialContainerExited, UserInitiated, TaskFailedToStart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<String>,
    pub cgroup: String,
    /// The image store the rootfs overlays were prepared from (their leases live there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_root: Option<PathBuf>,
    pub containers: Vec<ContainerRecord>,
    /// Set by [`TaskRecord::load`]: the process running the task is gone without having
    /// recorded the end, so whatever it made is still there until `task stop`/`task rm`
    /// reclaims it ([`super::reclaim`]). Not stored.
    #[serde(skip)]
    pub orphaned: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    pub essential: bool,
    /// PENDING, RUNNING, STOPPED (ECS words).
    pub last_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// HEALTHY, UNHEALTHY, UNKNOWN; absent without a health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub restart_count: u32,
    /// stopTimeout in seconds: what `task stop` grants a container whose supervisor is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u64>,
}

impl TaskRecord {
    pub fn save(&self, paths: &TaskPaths) -> Result<(), Error> {
        let path = paths.record();
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Invalid(format!("encoding task.json: {e}")))?;
        fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&bytes))
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }

    pub fn load(paths: &TaskPaths, id: &str) -> Result<TaskRecord, Error> {
        let path = paths.record();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()))
            }
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        let mut record: TaskRecord = serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        record.reconcile();
        Ok(record)
    }

    /// A task whose process died without recording its end (SIGKILL, host crash) is marked
    /// orphaned and described from what is left in its cgroup: a container with no process is
    /// STOPPED, and once no container process is left the task is STOPPED too ("Task
    /// supervisor exited unexpectedly"). While some still run it stays RUNNING, which is the
    /// truth: `task stop` ends them (see docs/tasks.md).
    fn reconcile(&mut self) {
        if self.last_status == TaskStatus::Stopped || self.supervisor_alive() {
            return;
        }
        self.orphaned = true;
        let task_cgroup = super::cgroup_path(&self.id);
        for c in &mut self.containers {
            let live = !super::reclaim::cgroup_pids(&task_cgroup.join(&c.name)).is_empty();
            if !live && c.last_status != "STOPPED" {
                c.last_status = "STOPPED".into();
                c.pid = None;
            }
        }
        if !super::reclaim::running(&self.id) {
            self.last_status = TaskStatus::Stopped;
            self.stopped_reason
                .get_or_insert_with(|| REASON_SUPERVISOR_GONE.into());
        }
    }

    /// Whether the process that runs the task is still the one that wrote this record.
    pub fn supervisor_alive(&self) -> bool {
        if self.supervisor_pid <= 0 {
            return false;
        }
        // None for a zombie: a supervisor killed but not yet reaped is gone.
        match (
            crate::state::process_start_time(self.supervisor_pid),
            self.supervisor_start_time,
        ) {
            (None, _) => false,
            (Some(now), Some(recorded)) => now == recorded,
            // A record written before start times were kept: the pid alone.
            (Some(_), None) => true,
        }
    }

    pub fn container(&self, name: &str) -> Option<&ContainerRecord> {
        self.containers.iter().find(|c| c.name == name)
    }
}

/// Every task under the berth root, sorted by creation time.
pub fn list(berth_root: &Path) -> Vec<TaskRecord> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(super::tasks_dir(berth_root)) else {
        return out;
    };
    for entry in entries.flatten() {
        let id = entry.file_name().to_string_lossy().into_owned();
        if let Ok(r) = TaskRecord::load(&TaskPaths::new(berth_root, &id), &id) {
            out.push(r);
        }
    }
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    out
}
