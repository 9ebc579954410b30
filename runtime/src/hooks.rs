//! OCI hooks: run a program with the container state on stdin, within its timeout.

use std::io::Write;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use oci_spec::runtime::Hook;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("hooks.{kind}[{index}] {path}: {message}")]
    Failed {
        kind: &'static str,
        index: usize,
        path: String,
        message: String,
    },
}

/// Runs `hooks` in order; the first failure stops the list.
pub fn run_all(kind: &'static str, hooks: &[Hook], state_json: &str) -> Result<(), HookError> {
    for (index, h) in hooks.iter().enumerate() {
        run_one(h, state_json).map_err(|message| HookError::Failed {
            kind,
            index,
            path: h.path().display().to_string(),
            message,
        })?;
    }
    Ok(())
}

fn run_one(h: &Hook, state_json: &str) -> Result<(), String> {
    let args = h.args().as_deref().unwrap_or_default();
    let mut cmd = Command::new(h.path());
    if let Some(argv0) = args.first() {
        use std::os::unix::process::CommandExt;
        cmd.arg0(argv0);
    }
    cmd.args(args.iter().skip(1))
        .env_clear()
        .envs(h.env().iter().flatten().filter_map(|kv| kv.split_once('=')))
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its stdin; that is not a failure.
        let _ = stdin.write_all(state_json.as_bytes());
    }
    let timeout = h.timeout().map(|t| Duration::from_secs(t.max(1) as u64));
    if let Some(t) = timeout {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        if !wait_exit(pid, t) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {}s", t.as_secs()));
        }
    }
    let status = child.wait().map_err(|e| format!("wait: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("failed: {status}"))
    }
}

/// Waits until `pid` exits or `timeout` passes; true if it exited.
fn wait_exit(pid: nix::unistd::Pid, timeout: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let Ok(pidfd) = crate::linux::sys::pidfd_open(pid) else {
        return true;
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)), Ok(n) if n > 0)
}
