//! Health checks: the container definition's command run inside the container through
//! `container::exec`, every interval, killed after timeout; `retries` consecutive failures after
//! the start period make the container UNHEALTHY, one success makes it HEALTHY (Docker's rules,
//! which ECS uses). Failures during startPeriod do not count; a success then still counts.

use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::container::{exec, ExecOptions};
use crate::linux::sys;
use crate::state::StateRoot;
use berth_taskdef::plan::HealthCheckPlan;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn ecs(self) -> &'static str {
        match self {
            Health::Unknown => "UNKNOWN",
            Health::Healthy => "HEALTHY",
            Health::Unhealthy => "UNHEALTHY",
        }
    }
}

/// Counts results into a status.
#[derive(Debug)]
pub struct Tracker {
    plan: HealthCheckPlan,
    started: Instant,
    failures: u64,
    pub status: Health,
}

impl Tracker {
    pub fn new(plan: HealthCheckPlan, started: Instant) -> Tracker {
        Tracker {
            plan,
            started,
            failures: 0,
            status: Health::Unknown,
        }
    }

    pub fn record(&mut self, passed: bool, now: Instant) -> Health {
        if passed {
            self.failures = 0;
            self.status = Health::Healthy;
        } else if now.duration_since(self.started)
            >= Duration::from_secs(self.plan.start_period_secs)
        {
            self.failures += 1;
            if self.failures >= self.plan.retries {
                self.status = Health::Unhealthy;
            }
        }
        self.status
    }
}

/// Runs the check once; true if it exited 0 within the timeout.
pub fn check_once(
    root: &StateRoot,
    id: &str,
    process: &oci_spec::runtime::Process,
    plan: &HealthCheckPlan,
) -> bool {
    let mut process = process.clone();
    process.set_args(Some(plan.argv.clone()));
    process.set_terminal(Some(false));
    let devnull = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        Ok(f) => f,
        Err(_) => return false,
    };
    let fd = devnull.as_raw_fd();
    let opts = ExecOptions {
        id: id.to_string(),
        process: Some(process),
        stdio: Some([fd, fd, fd]),
        ..Default::default()
    };
    // exec joins the container's pid namespace for its children on the calling thread: keep that
    // off the runner's threads by running each check on a thread of its own.
    let root = root.clone();
    let pid = match std::thread::spawn(move || exec(&root, &opts)).join() {
        Ok(Ok(pid)) => pid,
        Ok(Err(e)) => {
            tracing::debug!(container = id, error = %e, "health check exec failed");
            return false;
        }
        Err(_) => return false,
    };
    drop(devnull);
    wait_with_timeout(pid, Duration::from_secs(plan.timeout_secs))
}

fn wait_with_timeout(pid: Pid, timeout: Duration) -> bool {
    if let Ok(pidfd) = sys::pidfd_open(pid) {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::from(ms)).unwrap_or(0);
        if ready == 0 {
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), Signal::SIGKILL as i32);
        }
    }
    matches!(waitpid(pid, None), Ok(WaitStatus::Exited(_, 0)))
}

/// Where a container's health lives for `describe` and the runner.
pub fn describe(h: Option<Health>) -> Option<String> {
    h.map(|h| h.ecs().to_string())
}

/// The exec'd process's identity for the checks: the container's config.json process.
pub fn container_process(bundle: &Path) -> Option<oci_spec::runtime::Process> {
    let spec = oci_spec::runtime::Spec::load(bundle.join("config.json")).ok()?;
    let mut process = spec.process().clone()?;
    // A check's output is read through pipes, also in a pseudoTerminal container.
    process.set_terminal(Some(false));
    Some(process)
}
