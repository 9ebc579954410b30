//! One process the shim runs for containerd: a container's init (exec id "") or an exec.
//!
//! Its exit is recorded synchronously by the reaper on the runtime thread, in the same step
//! as the waitpid that frees the pid. Signals are sent from the runtime thread too, after
//! checking that no exit was recorded: an unreaped child's pid cannot be reused, so a kill
//! never hits a stranger (no pidfd needed).

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::SystemTime;

use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::stdio::{Io, StdioPaths};

#[derive(Debug, Clone, Copy)]
pub struct Exit {
    pub status: u32,
    pub at: SystemTime,
}

impl Exit {
    pub fn timestamp(&self) -> Timestamp {
        crate::time::from(self.at)
    }
}

pub struct Process {
    pub container_id: String,
    /// "" for the container's init.
    pub exec_id: String,
    pub stdio: StdioPaths,
    /// The process spec of an exec, from containerd's Exec request, until it is started.
    pub spec: Mutex<Option<oci_spec::runtime::Process>>,
    pid: Mutex<i32>,
    exit: watch::Sender<Option<Exit>>,
    /// The shim's end of the process's stdio (keep-alive fds, console copy tasks).
    pub io: Mutex<Option<Io>>,
    /// Whether TaskExit went out (exactly once, see [`crate::container`]).
    pub exit_published: AtomicBool,
    /// A `binary://` logger the shim started, not a container process: its exit is
    /// recorded (so it is never signalled after its pid is freed) but not reported.
    pub logger: bool,
}

impl Process {
    pub fn new(container_id: &str, exec_id: &str, stdio: StdioPaths) -> Process {
        Process {
            container_id: container_id.to_string(),
            exec_id: exec_id.to_string(),
            stdio,
            spec: Mutex::new(None),
            pid: Mutex::new(0),
            exit: watch::Sender::new(None),
            io: Mutex::new(None),
            exit_published: AtomicBool::new(false),
            logger: false,
        }
    }

    /// The logging binary of a process of `container_id`.
    pub fn logger(container_id: &str) -> Process {
        Process {
            logger: true,
            ..Process::new(container_id, "", StdioPaths::default())
        }
    }

    pub fn pid(&self) -> i32 {
        *lock(&self.pid)
    }

    pub fn set_pid(&self, pid: i32) {
        *lock(&self.pid) = pid;
    }

    pub fn exit(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// Called by the reaper when it collected the process's status.
    pub fn set_exited(&self, status: u32) {
        self.exit.send_replace(Some(Exit {
            status,
            at: SystemTime::now(),
        }));
    }

    pub async fn wait(&self) -> Exit {
        let mut rx = self.exit.subscribe();
        loop {
            if let Some(e) = *rx.borrow_and_update() {
                return e;
            }
            // The sender lives as long as self: changed() only fails if it is dropped.
            if rx.changed().await.is_err() {
                return Exit {
                    status: 255,
                    at: SystemTime::now(),
                };
            }
        }
    }

    /// Signals the process if it is still running (see the module comment for why this is
    /// race-free).
    pub fn signal(&self, sig: Signal) -> Result<()> {
        let pid = self.pid();
        if pid <= 0 {
            return Err(Error::FailedPrecondition(format!(
                "process {} of {} is not started",
                self.exec_id, self.container_id
            )));
        }
        if self.exit().is_some() {
            return Err(Error::NotFound("process already finished".into()));
        }
        nix::sys::signal::kill(Pid::from_raw(pid), sig).map_err(|e| match e {
            nix::errno::Errno::ESRCH => Error::NotFound("process already finished".into()),
            e => Error::io("kill", e),
        })
    }

    pub fn with_io<R>(&self, f: impl FnOnce(&mut Io) -> R) -> Option<R> {
        lock(&self.io).as_mut().map(f)
    }

    pub fn take_io(&self) -> Option<Io> {
        lock(&self.io).take()
    }
}

/// A poisoned lock only means another thread panicked mid-update; in this process a
/// panic aborts (release profile), so the data is never half-written in practice.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
