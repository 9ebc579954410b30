//! Container state records under the state root (`/run/berth/<id>/state.json`), written
//! atomically (temp file + rename), and the status derived from the live system rather
//! than stored: a stored status goes stale the moment the container's process exits.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container id {0:?} is invalid: use 1-1024 characters of [A-Za-z0-9_+.-], not starting with '.'")]
    InvalidId(String),
    #[error("container {0} already exists")]
    Exists(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("state of container {id}: {source}")]
    Io { id: String, source: io::Error },
    #[error("state of container {id} is corrupt: {source}")]
    Corrupt {
        id: String,
        source: serde_json::Error,
    },
}

/// OCI status values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What berth remembers about a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub pid: i32,
    /// Start time of `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat): tells
    /// our process apart from a later one that reuses the pid.
    pub pid_start_time: u64,
    pub cgroup_path: PathBuf,
    pub created: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    #[serde(default)]
    pub owner: String,
    /// Whether berth created the container's pid namespace (then killing init kills all).
    #[serde(default)]
    pub own_pid_ns: bool,
    /// Whether the container had `run --rm`-like semantics; unused by the CLI so far.
    #[serde(default)]
    pub use_systemd: bool,
    /// The spec's poststart/poststop hooks, kept so that `start` and `delete` need not
    /// re-read and re-validate the bundle (which may also have changed or gone since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
}

/// The directory holding all container state.
#[derive(Debug, Clone)]
pub struct StateRoot {
    pub dir: PathBuf,
}

pub fn validate_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidId(id.to_string()))
    }
}

impl StateRoot {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateRoot { dir: dir.into() }
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Creates the container's directory; fails if it exists (the id is taken).
    pub fn create_dir(&self, id: &str) -> Result<PathBuf, StateError> {
        validate_id(id)?;
        let io_err = |source| StateError::Io {
            id: id.to_string(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.dir)
            .map_err(io_err)?;
        let dir = self.container_dir(id);
        match fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(StateError::Exists(id.to_string()))
            }
            Err(e) => Err(io_err(e)),
        }
    }

    pub fn save(&self, state: &ContainerState) -> Result<(), StateError> {
        let dir = self.container_dir(&state.id);
        let io_err = |source| StateError::Io {
            id: state.id.clone(),
            source,
        };
        let tmp = dir.join(".state.json.tmp");
        let body = serde_json::to_vec(state).map_err(|source| StateError::Corrupt {
            id: state.id.clone(),
            source,
        })?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err)?;
        f.write_all(&body).map_err(io_err)?;
        fs::rename(&tmp, dir.join(STATE_FILE)).map_err(io_err)?;
        Ok(())
    }

    pub fn load(&self, id: &str) -> Result<ContainerState, StateError> {
        validate_id(id)?;
        let path = self.container_dir(id).join(STATE_FILE);
        let body = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::NotFound(id.to_string()))
            }
            Err(source) => {
                return Err(StateError::Io {
                    id: id.to_string(),
                    source,
                })
            }
        };
        serde_json::from_slice(&body).map_err(|source| StateError::Corrupt {
            id: id.to_string(),
            source,
        })
    }

    pub fn remove(&self, id: &str) -> Result<(), StateError> {
        validate_id(id)?;
        match fs::remove_dir_all(self.container_dir(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Io {
                id: id.to_string(),
                source,
            }),
        }
    }

    /// Ids of all containers with a state record, sorted.
    pub fn list(&self) -> Result<Vec<String>, io::Error> {
        let mut ids = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(e),
        };
        for e in entries {
            let e = e?;
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if validate_id(&name).is_ok() && e.path().join(STATE_FILE).exists() {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }

    pub fn exec_fifo(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(EXEC_FIFO)
    }
}

/// Start time (clock ticks since boot) of a live, non-zombie process; None if it is gone.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // After "state" come fields 4..; starttime is field 22, i.e. 19 further.
    fields.nth(18)?.parse().ok()
}

/// Whether `state.pid` is still the process berth started.
pub fn is_alive(state: &ContainerState) -> bool {
    state.pid > 0 && process_start_time(state.pid) == Some(state.pid_start_time)
}

pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // civil_from_days (Howard Hinnant's algorithm)
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{:09}Z",
        now.subsec_nanos()
    )
}

/// Ensures `path` exists as a directory owned by root and not writable by others.
pub fn ensure_private_dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for good in ["a", "abc-1_2.3+x", "A"] {
            assert!(validate_id(good).is_ok(), "{good}");
        }
        for bad in ["", "../x", "a/b", ".hidden", "a b", "x\0"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn own_start_time_is_readable() {
        let me = std::process::id() as i32;
        assert!(process_start_time(me).is_some());
        assert!(process_start_time(i32::MAX).is_none());
    }

    #[test]
    fn rfc3339_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}

/// The state document of the runtime spec, as `berth state` prints it and hooks read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    /// runc adds these; containerd and podman read them.
    #[serde(default)]
    pub rootfs: PathBuf,
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub owner: String,
}

pub const OCI_VERSION: &str = "1.2.0";

impl OciState {
    pub fn new(state: &ContainerState, status: Status) -> Self {
        OciState {
            oci_version: OCI_VERSION.into(),
            id: state.id.clone(),
            status,
            pid: if status == Status::Stopped {
                0
            } else {
                state.pid
            },
            bundle: state.bundle.clone(),
            annotations: state.annotations.clone(),
            rootfs: state.rootfs.clone(),
            created: state.created.clone(),
            owner: state.owner.clone(),
        }
    }
}
