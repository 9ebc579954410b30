//! `run`/`exec` in the foreground with `process.terminal: true` and no --console-socket:
//! berth receives the pty master itself and relays it to its own stdin/stdout, like runc.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// A temporary console socket that berth itself listens on.
pub struct ConsoleListener {
    pub path: PathBuf,
    listener: UnixListener,
}

impl ConsoleListener {
    pub fn new(state_root: &std::path::Path) -> Result<ConsoleListener> {
        std::fs::create_dir_all(state_root)?;
        let path = state_root.join(format!(".console-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .with_context(|| format!("console socket {}", path.display()))?;
        Ok(ConsoleListener { path, listener })
    }

    /// The pty master the container process sent.
    pub fn receive_master(&self) -> Result<OwnedFd> {
        let (conn, _) = self.listener.accept().context("console socket: accept")?;
        berth::sync::Channel::recv_fd(conn.as_fd())
            .context("console socket: receiving the pty master")
    }
}

impl Drop for ConsoleListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Puts our stdin terminal in raw mode for the relay and restores it on drop.
struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        }
        RawMode { saved }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, t);
        }
    }
}

/// Gives the pty our terminal's size (also called before `start`, so the program's first
/// look at its size sees ours).
pub fn copy_winsize(master: &OwnedFd) {
    // SAFETY: TIOCGWINSZ writes into a winsize we own; stdin may not be a tty (then the
    // ioctl fails and nothing is copied).
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0 {
        let _ = berth::linux::sys::set_window_size(master.as_fd(), ws.ws_row, ws.ws_col);
    }
}

/// Relays between our stdio and the pty master until `pid` exits; returns its exit code.
pub fn relay(master: OwnedFd, pid: Pid) -> i32 {
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGWINCH,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        mask.add(s);
    }
    let _ = mask.thread_block();
    let sfd = SignalFd::new(&mask).ok();
    let _raw = RawMode::enter();
    copy_winsize(&master);
    let mut master_file = std::fs::File::from(master);
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    loop {
        if let Ok(status) = waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            let code = match status {
                WaitStatus::Exited(_, c) => Some(c),
                WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
                _ => None,
            };
            if let Some(code) = code {
                // Drain what the program wrote before exiting.
                while let Ok(n) = nix::unistd::read(master_file.as_raw_fd(), &mut buf) {
                    if n == 0 || std::io::stdout().write_all(&buf[..n]).is_err() {
                        break;
                    }
                    if !matches!(poll(&mut [PollFd::new(master_file.as_fd(), PollFlags::POLLIN)], PollTimeout::ZERO), Ok(n) if n > 0)
                    {
                        break;
                    }
                }
                let _ = std::io::stdout().flush();
                return code;
            }
        }
        let stdin = std::io::stdin();
        let mut fds = vec![PollFd::new(master_file.as_fd(), PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        if let Some(s) = &sfd {
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
        }
        if poll(&mut fds, PollTimeout::from(200u16)).is_err() {
            continue;
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let sig_idx = if stdin_open { 2 } else { 1 };
        if ready[0] {
            match master_file.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
                // EIO: the last holder of the pty's peer is gone; the process is exiting.
                _ => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
        if stdin_open && ready.get(1).copied().unwrap_or(false) {
            match std::io::stdin().read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let _ = master_file.write_all(&buf[..n]);
                }
            }
        }
        if ready.get(sig_idx).copied().unwrap_or(false) {
            if let Some(Ok(Some(info))) = sfd.as_ref().map(|s| s.read_signal()) {
                let signo = info.ssi_signo as i32;
                if signo == Signal::SIGWINCH as i32 {
                    if let Ok(m) = master_file.try_clone() {
                        copy_winsize(&OwnedFd::from(m));
                    }
                } else if signo != Signal::SIGCHLD as i32 {
                    if let Ok(sig) = Signal::try_from(signo) {
                        let _ = kill(pid, sig);
                    }
                }
            }
        }
    }
}
