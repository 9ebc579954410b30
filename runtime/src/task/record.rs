//! The task's state document, `<root>/tasks/<id>/task.json`, written atomically by the process
//! running the task (attached CLI or detached supervisor) whenever something changes, and read by
//! `task ls` / `task describe`. Field names and status words follow ECS's DescribeTasks.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Error, TaskPaths};

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
    pub containers: Vec<ContainerRecord>,
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

    /// A task whose process died without recording its end (killed, host crash) is reported
    /// as stopped rather than forever running.
    fn reconcile(&mut self) {
        if self.last_status != TaskStatus::Stopped && !process_alive(self.supervisor_pid) {
            self.last_status = TaskStatus::Stopped;
            self.stopped_reason
                .get_or_insert_with(|| "Task supervisor exited unexpectedly".into());
            for c in &mut self.containers {
                if c.last_status != "STOPPED" {
                    c.last_status = "STOPPED".into();
                }
            }
        }
    }

    pub fn container(&self, name: &str) -> Option<&ContainerRecord> {
        self.containers.iter().find(|c| c.name == name)
    }
}

fn process_alive(pid: i32) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
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
