//! A minimal init for the container (annotation `berth.init=true`, ECS
//! `linuxParameters.initProcessEnabled`): like docker-init/tini, but it is berth's own container
//! process, so no binary has to exist inside the image.
//!
//! Right before execve, once credentials, capabilities, no_new_privs and seccomp are in place,
//! the container process forks: the child execs the container's program, the parent stays as
//! the container's pid 1. The parent holds no fds but stdio, is not dumpable, forwards every
//! signal it receives to the child, reaps every zombie reparented to it and exits with the
//! child's status (128+n for a signal), which ends the pid namespace with it.
//!
//! The same loop without a child is the task's pid namespace holder ([`hold`]): pid 1 of a
//! shared pid namespace that only reaps, so that the namespace outlives any one container.

use std::convert::Infallible;

use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use crate::linux::sys::{self, Cloned};
use crate::linux::{Context, SetupError};

/// `"true"`: berth's init runs as the container's pid 1 and the program as its child.
pub const INIT_ANNOTATION: &str = "berth.init";
/// `"true"`: the container runs no program at all; berth's init stays as a reaper (a pause
/// process). process.args are not looked up or executed.
pub const PAUSE_ANNOTATION: &str = "berth.pause";

fn annotation_is_true(spec: &Spec, key: &str) -> bool {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(key))
        .is_some_and(|v| v == "true")
}

pub fn init_wanted(spec: &Spec) -> bool {
    annotation_is_true(spec, INIT_ANNOTATION)
}

pub fn pause_wanted(spec: &Spec) -> bool {
    annotation_is_true(spec, PAUSE_ANNOTATION)
}

/// Signals the kernel raises for a fault of the receiving thread itself: they stay unblocked
/// (blocked, a fault would kill init without a trace) and are never forwarded.
const SYNCHRONOUS: [Signal; 7] = [
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGABRT,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

fn waited_set() -> SigSet {
    let mut set = SigSet::all();
    for s in SYNCHRONOUS {
        set.remove(s);
    }
    set
}

/// Blocks every signal init waits for; returns the mask before, for the child to restore.
/// Blocked (rather than handled) signals are also what makes a pid namespace's init receive
/// signals sent from inside the namespace: the kernel drops them only for a default disposition.
fn block_signals() -> Result<SigSet, SetupError> {
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&waited_set()), Some(&mut old))
        .ctx(|| "init: blocking signals".into())?;
    Ok(old)
}

/// Forks; the child runs `exec` (which only returns on failure), this process becomes the
/// container's init. Never returns on success.
///
/// Must be called as the very last step before execve: the child inherits this process's
/// credentials, capabilities, no_new_privs and seccomp filter, so both sides run with exactly
/// what the container's process gets.
pub fn fork_and_exec(exec: impl FnOnce() -> SetupError) -> Result<Infallible, SetupError> {
    let old_mask = block_signals()?;
    // Orphans of the child must come to us also when we are not the pid namespace's init
    // (pidMode task, where the task's holder is).
    nix::sys::prctl::set_child_subreaper(true).ctx(|| "PR_SET_CHILD_SUBREAPER".into())?;
    match sys::clone_process(0, None).ctx(|| "init: fork".into())? {
        Cloned::Child => {
            // Its own process group (as tini does): a terminal's job-control signals go to the
            // program's group, not also to init, which would forward them a second time.
            let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
            // With a terminal, the program's group becomes its foreground group (SIGTTOU is
            // still blocked here, which tcsetpgrp from a background group needs).
            if nix::unistd::isatty(0).unwrap_or(false) {
                let _ = nix::unistd::tcsetpgrp(std::io::stdin(), nix::unistd::getpgrp());
            }
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
            let err = exec();
            eprintln!("berth-init: {err}");
            std::process::exit(127)
        }
        Cloned::Parent(child) => {
            become_quiet_init();
            let code = supervise(Some(child));
            std::process::exit(code)
        }
    }
}

/// The pid namespace holder: reaps forever, forwards nothing. Only SIGKILL (from outside the
/// namespace) ends it.
pub fn hold() -> Result<Infallible, SetupError> {
    block_signals()?;
    become_quiet_init();
    supervise(None);
    Err(SetupError::invalid(
        "pid namespace holder: reaper loop ended",
    ))
}

/// No fds but stdio (the container's program has its own copies of what it keeps), and not
/// dumpable: nobody in the container may ptrace it or open /proc/1/exe (berth's sealed copy)
/// or /proc/1/mem.
fn become_quiet_init() {
    let _ = nix::sys::prctl::set_dumpable(false);
    if close_from(3).is_err() {
        // Without close_range (old kernel, or a seccomp profile that refuses it).
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<i32> = dir
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .filter(|fd| *fd > 2)
                .collect();
            for fd in fds {
                let _ = nix::unistd::close(fd);
            }
        }
    }
}

/// Waits for signals: SIGCHLD reaps, anything else goes to `child`. Returns the child's exit
/// status once it is reaped (never without a child).
fn supervise(child: Option<Pid>) -> i32 {
    let set = waited_set();
    loop {
        let sig = match wait_signal(&set) {
            Ok(sig) => sig,
            Err(_) => continue, // EINTR
        };
        if sig != libc::SIGCHLD {
            if let Some(child) = child {
                // The child may be gone already (ESRCH): its exit is reaped below.
                let _ = send_signal(child, sig);
            }
            continue;
        }
        if let Some(code) = reap_all(child) {
            // Zombies that exited together with the child are reaped too before init goes.
            let _ = reap_all(None);
            return code;
        }
    }
}

/// Reaps every exited child without blocking; returns `child`'s status if it was among them.
fn reap_all(child: Option<Pid>) -> Option<i32> {
    let mut status = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => {
                if Some(pid) == child {
                    status = Some(code);
                }
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                if Some(pid) == child {
                    status = Some(128 + sig as i32);
                }
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return status,
            Ok(_) => {}
        }
    }
}

/// close_range(first, ~0, 0): really closes (not close-on-exec: init never execs).
fn close_from(first: u32) -> std::io::Result<()> {
    // SAFETY: only the fd table changes. Nothing in this process uses an fd above stdio any
    // more: init's remaining work is signals and waits (the sync channel's owner is never
    // dropped, the process ends with exit()).
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// sigwaitinfo(2) on `set` (blocked); the signal number, real-time ones included (which nix's
/// `Signal` cannot represent).
fn wait_signal(set: &SigSet) -> std::io::Result<i32> {
    // SAFETY: `set` is a valid sigset_t for the call's duration; a null siginfo is allowed.
    let r = unsafe { libc::sigwaitinfo(set.as_ref(), std::ptr::null_mut()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r)
}

/// kill(2) with any signal number (real-time ones included).
fn send_signal(pid: Pid, sig: i32) -> std::io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe { libc::kill(pid.as_raw(), sig) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
