//! Waiting for a child (run / exec without --detach) while forwarding signals to it, as
//! runc does: the user's Ctrl-C goes to the container, not to berth.

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Exit code like a shell reports it: the code, or 128 + signal.
pub fn wait_forwarding(pid: Pid) -> i32 {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in FORWARDED {
        mask.add(*s);
    }
    let _ = mask.thread_block();
    let sfd = SignalFd::new(&mask).ok();
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) => {}
            Err(nix::Error::ECHILD) => return 255,
            Err(_) => {}
        }
        match &sfd {
            Some(fd) => {
                if let Ok(Some(info)) = fd.read_signal() {
                    let signo = info.ssi_signo as i32;
                    if signo != Signal::SIGCHLD as i32 {
                        if let Ok(sig) = Signal::try_from(signo) {
                            let _ = kill(pid, sig);
                        }
                    }
                }
            }
            None => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
}
