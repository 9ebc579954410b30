//! ECS task definitions run as sandboxes: one task cgroup with the containers as children, one
//! network/UTS (and optionally IPC) namespace shared by all of them, containers started in
//! dependsOn order, health-checked, logged, and stopped together when an essential container ends.
//!
//! - [`record`]: the task's state document (`<root>/tasks/<id>/task.json`) that `ls`/`describe` read
//! - [`sandbox`]: task-level resources: task cgroup, shared namespaces, task volumes
//! - [`pidns`]: `pidMode: task`: the holder process of the task's shared pid namespace
//! - [`task_cgroup`]: the task cgroup on the host (also the shim's per-pod cgroup)
//! - [`bundle`]: one container's OCI bundle (config.json + overlay rootfs) from its plan
//! - [`runner`]: start order, dependency conditions, essential exits, restarts, stop order
//! - [`health`]: health checks through `container::exec`
//! - [`logs`]: json-file style log capture and attached-mode streaming
//! - [`ports`]: portMappings: host loopback listeners forwarding into the task's netns
//! - [`supervisor`]: detached tasks: a per-task subreaper process the CLI can leave behind
//! - [`reclaim`]: `task stop`/`rm` of a task whose supervisor died: everything it left goes
//!
//! docs/tasks.md in the repository records the decisions and measurements.

pub mod bundle;
pub mod health;
pub mod logs;
pub mod pidns;
pub mod ports;
pub mod reclaim;
pub mod record;
pub mod runner;
pub mod sandbox;
pub mod supervisor;
pub mod task_cgroup;

use std::io;
use std::path::{Path, PathBuf};

pub use record::{ContainerRecord, TaskRecord, TaskStatus};
pub use runner::{run, RunOptions, TaskOutcome};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The task definition is invalid; the text is berth_taskdef's path-precise message.
    #[error("{0}")]
    Definition(#[from] Box<berth_taskdef::Error>),
    #[error("container {container}: image {image}: {source}")]
    Image {
        container: String,
        image: String,
        source: Box<crate::image::Error>,
    },
    #[error("container {container}: {source}")]
    Container {
        container: String,
        source: Box<crate::container::Error>,
    },
    #[error(transparent)]
    Cgroup(#[from] Box<crate::cgroups::CgroupError>),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("task {0} does not exist")]
    NotFound(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
}

impl From<berth_taskdef::Error> for Error {
    fn from(e: berth_taskdef::Error) -> Self {
        Error::Definition(Box::new(e))
    }
}

impl From<crate::cgroups::CgroupError> for Error {
    fn from(e: crate::cgroups::CgroupError) -> Self {
        Error::Cgroup(Box::new(e))
    }
}

impl Error {
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// Where tasks live under the berth root: `<root>/tasks/<id>/`.
#[derive(Debug, Clone)]
pub struct TaskPaths {
    pub dir: PathBuf,
}

impl TaskPaths {
    pub fn new(berth_root: &Path, id: &str) -> TaskPaths {
        TaskPaths {
            dir: tasks_dir(berth_root).join(id),
        }
    }
    pub fn record(&self) -> PathBuf {
        self.dir.join("task.json")
    }
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
    pub fn log_file(&self, container: &str) -> PathBuf {
        self.logs().join(format!("{container}.log"))
    }
    /// The containers' state root (berth::state records, one per container name).
    pub fn containers(&self) -> PathBuf {
        self.dir.join("containers")
    }
    /// Bundles: config.json and the overlay rootfs of each container.
    pub fn bundles(&self) -> PathBuf {
        self.dir.join("bundles")
    }
    pub fn volumes(&self) -> PathBuf {
        self.dir.join("volumes")
    }
    pub fn namespaces(&self) -> PathBuf {
        self.dir.join("ns")
    }
}

pub fn tasks_dir(berth_root: &Path) -> PathBuf {
    berth_root.join("tasks")
}

/// The task cgroup: `/berth-tasks/<id>`, the containers' cgroups below it (as the ECS agent's
/// `/ecs/<task-id>`).
pub fn cgroup_path(id: &str) -> PathBuf {
    Path::new("/berth-tasks").join(id)
}

/// A fresh task id: the family plus 12 hex digits of randomness, a valid state id.
pub fn new_id(family: &str) -> String {
    let mut bytes = [0u8; 6];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| io::Read::read_exact(&mut f, &mut bytes));
    if random.is_err() {
        // Unique enough per host without /dev/urandom: pid and time.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes.copy_from_slice(&(t as u64 ^ u64::from(std::process::id())).to_le_bytes()[..6]);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let family: String = family
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    format!("{family}-{hex}")
}
