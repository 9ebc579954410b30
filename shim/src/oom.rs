//! OOM notifications for a container's memory cgroup.
//!
//! - cgroup v1: an eventfd registered on `memory.oom_control` through
//!   `cgroup.event_control`; the kernel signals it on every OOM in the cgroup, and once more
//!   when the cgroup is removed.
//! - cgroup v2: inotify on `memory.events`, whose `oom_kill` counter the kernel bumps (and
//!   whose modification it notifies) on every OOM kill.
//!
//! Both files also carry an `oom_kill` counter, which lets the shim check once more when the
//! container exits: the TaskOOM event is then published before TaskExit even if the
//! notification has not been read yet.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;

use crate::error::{Error, Result};
use crate::pollable::{self, Pollable};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

enum Source {
    /// The eventfd, and the oom_control file it is registered on (must stay open).
    V1 {
        event: AsyncFd<Pollable<OwnedFd>>,
        _control: File,
    },
    V2(AsyncFd<Pollable<Inotify>>),
}

pub struct Watcher {
    dir: PathBuf,
    source: Source,
}

/// The memory cgroup directory of the container whose cgroup path is `cgroup_path`.
pub fn memory_dir(cgroup_path: &Path, unified: bool) -> PathBuf {
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    if unified {
        Path::new(CGROUP_ROOT).join(rel)
    } else {
        Path::new(CGROUP_ROOT).join("memory").join(rel)
    }
}

/// The file with the `oom_kill` counter in a memory cgroup directory.
fn counter_file(dir: &Path, unified: bool) -> PathBuf {
    dir.join(if unified {
        "memory.events"
    } else {
        "memory.oom_control"
    })
}

/// OOM kills so far in the cgroup, None if the kernel does not count them (or it is gone).
pub fn oom_kills(dir: &Path, unified: bool) -> Option<u64> {
    let text = std::fs::read_to_string(counter_file(dir, unified)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

/// cgroup v1: whether the group is in an OOM condition right now.
pub fn under_oom(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("memory.oom_control"))
        .is_ok_and(|t| t.lines().any(|l| l.trim() == "under_oom 1"))
}

/// The flat `key value` lines of the cgroup's memory.events (cgroup v2).
pub fn memory_events(dir: &Path) -> std::collections::HashMap<String, u64> {
    std::fs::read_to_string(dir.join("memory.events"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

impl Watcher {
    pub fn new(dir: &Path, unified: bool) -> Result<Watcher> {
        let source = if unified {
            let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
                .map_err(|e| Error::io("inotify_init", e))?;
            let events = dir.join("memory.events");
            ino.add_watch(&events, AddWatchFlags::IN_MODIFY)
                .map_err(|e| Error::io(format!("watching {}", events.display()), e))?;
            Source::V2(pollable::register(ino).map_err(|e| Error::io("inotify", e))?)
        } else {
            let control_path = dir.join("memory.oom_control");
            let control = File::open(&control_path)
                .map_err(|e| Error::io(format!("opening {}", control_path.display()), e))?;
            let event = nix::sys::eventfd::EventFd::from_flags(
                nix::sys::eventfd::EfdFlags::EFD_CLOEXEC
                    | nix::sys::eventfd::EfdFlags::EFD_NONBLOCK,
            )
            .map_err(|e| Error::io("eventfd", e))?;
            let event: OwnedFd = event.into();
            let registration = format!("{} {}", event.as_raw_fd(), control.as_raw_fd());
            std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.event_control"))
                .and_then(|mut f| f.write_all(registration.as_bytes()))
                .map_err(|e| Error::io("registering for OOM notifications", e))?;
            Source::V1 {
                event: pollable::register(event).map_err(|e| Error::io("eventfd", e))?,
                _control: control,
            }
        };
        Ok(Watcher {
            dir: dir.to_path_buf(),
            source,
        })
    }

    /// Waits for the next notification. False once the cgroup is gone (stop watching).
    pub async fn next(&self) -> bool {
        let ok = match &self.source {
            Source::V1 { event, .. } => drain(event, read_u64).await,
            Source::V2(ino) => {
                drain(ino, |i| i.0.read_events().map(|_| ()).map_err(Into::into)).await
            }
        };
        ok && self.dir.exists()
    }
}

fn read_u64(fd: &Pollable<OwnedFd>) -> std::io::Result<()> {
    let mut buf = [0u8; 8];
    let fd: BorrowedFd<'_> = fd.0.as_fd();
    nix::unistd::read(fd.as_raw_fd(), &mut buf)
        .map(|_| ())
        .map_err(Into::into)
}

async fn drain<T: AsRawFd>(
    fd: &AsyncFd<T>,
    mut read: impl FnMut(&T) -> std::io::Result<()>,
) -> bool {
    loop {
        let Ok(mut ready) = fd.readable().await else {
            return false;
        };
        match ready.try_io(|f| read(f.get_ref())) {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "OOM watcher");
                return false;
            }
            Err(_would_block) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_parsing() {
        let dir = std::env::temp_dir().join(format!("berth-shim-oom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        std::fs::write(
            dir.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .ok();
        std::fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n",
        )
        .ok();
        assert_eq!(oom_kills(&dir, false), Some(2));
        assert_eq!(oom_kills(&dir, true), Some(1));
        assert_eq!(memory_events(&dir).get("max"), Some(&5));
        assert_eq!(oom_kills(Path::new("/nonexistent"), true), None);
        std::fs::remove_dir_all(&dir).ok();
    }
}
