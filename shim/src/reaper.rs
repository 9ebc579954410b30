//! Collecting exit statuses. The shim is a child subreaper: container inits and execs are its
//! children, and orphans inside containers that share the host pid namespace are
//! re-parented to it.
//!
//! A plain `waitpid(-1)` loop would steal the children the berth library waits for itself
//! while one of its calls runs on a worker thread (OCI hooks, a half-created container it
//! rolls back). So a reap pass
//! 1. waits for each tracked pid (inits and execs) individually — always safe;
//! 2. collects anything else with `waitpid(-1)` only while no library call is in flight
//!    ([`Reaper::busy`]); the guard's drop runs a pass, so nothing waits long.
//!
//! Passes run on the runtime thread only, and record the exit in the same synchronous step
//! as the wait (see [`crate::process`] for why that makes signalling race-free).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::Notify;

use crate::process::{lock, Process};

#[derive(Default)]
pub struct Reaper {
    tracked: Mutex<HashMap<i32, Arc<Process>>>,
    busy: AtomicUsize,
    kick: Notify,
}

/// Held while a library call that waits for its own children is in flight.
pub struct Busy<'a>(&'a Reaper);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
        self.0.kick.notify_one();
    }
}

impl Reaper {
    pub fn busy(&self) -> Busy<'_> {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(self)
    }

    /// Starts watching `process` (whose pid is set). Call before dropping the [`Busy`] guard
    /// of the call that created it, so a fast exit is not collected as a stranger's.
    pub fn track(&self, process: Arc<Process>) {
        lock(&self.tracked).insert(process.pid(), process);
        self.kick.notify_one();
    }

    /// Waits until a pass is due (a SIGCHLD arrived or a guard dropped).
    pub async fn kicked(&self) {
        self.kick.notified().await
    }

    /// One reap pass: the processes that exited, with their exit status recorded.
    pub fn reap(&self) -> Vec<Arc<Process>> {
        let mut exited = Vec::new();
        let mut tracked = lock(&self.tracked);
        let pids: Vec<i32> = tracked.keys().copied().collect();
        for pid in pids {
            match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(ws) => {
                    if let (Some(status), Some(p)) = (exit_status(ws), tracked.remove(&pid)) {
                        p.set_exited(status);
                        exited.push(p);
                    }
                }
                Err(Errno::ECHILD) => {
                    // Not our child any more (cannot happen unless someone else waited).
                    if let Some(p) = tracked.remove(&pid) {
                        tracing::warn!(pid, "exit status of a tracked process was lost");
                        p.set_exited(255);
                        exited.push(p);
                    }
                }
                Err(e) => tracing::warn!(pid, error = %e, "waitpid"),
            }
        }
        if self.busy.load(Ordering::SeqCst) == 0 {
            loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                    Ok(ws) => {
                        let Some(pid) = ws.pid() else { break };
                        if let (Some(status), Some(p)) =
                            (exit_status(ws), tracked.remove(&pid.as_raw()))
                        {
                            p.set_exited(status);
                            exited.push(p);
                        }
                    }
                    Err(Errno::EINTR) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "waitpid(-1)");
                        break;
                    }
                }
            }
        }
        exited
    }
}

/// The status containerd reports: the exit code, or 128 + the signal that killed it.
fn exit_status(ws: WaitStatus) -> Option<u32> {
    match ws {
        WaitStatus::Exited(_, code) => Some(code as u32),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as u32),
        _ => None,
    }
}

/// Makes this process the reaper of orphaned descendants.
pub fn set_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments only; no memory is passed.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
