use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::unistd::Pid;
use oci_spec::runtime::Process;

use super::ops::status;
use super::spawn::{raise_fd, spawn, spawn_in_cgroup, Start};
use super::Error;
use crate::cgroups::{self, Cgroup};
use crate::init::{InitPlan, Role};
use crate::linux::sys;
use crate::state::{self, StateRoot, Status};
use crate::sync::{FromChild, SyncError, ToChild};

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub id: String,
    pub process: Option<Process>,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    /// stdin, stdout, stderr for the container process (default: berth's own). The
    /// shim passes containerd's FIFOs here.
    pub stdio: Option<[RawFd; 3]>,
}

/// Namespaces to join, as clone flags: every one where the container's init differs from us.
fn differing_namespaces(pid: i32) -> i32 {
    let mut flags = 0;
    for (name, flag) in [
        ("user", libc::CLONE_NEWUSER),
        ("mnt", libc::CLONE_NEWNS),
        ("ipc", libc::CLONE_NEWIPC),
        ("uts", libc::CLONE_NEWUTS),
        ("net", libc::CLONE_NEWNET),
        ("cgroup", libc::CLONE_NEWCGROUP),
    ] {
        let theirs = std::fs::metadata(format!("/proc/{pid}/ns/{name}"));
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}"));
        use std::os::unix::fs::MetadataExt;
        if let (Ok(t), Ok(o)) = (theirs, ours) {
            if t.ino() != o.ino() || t.dev() != o.dev() {
                flags |= flag;
            }
        }
    }
    flags
}

/// `exec`: starts a process inside a created or running container. Returns its pid (a child
/// of this process).
pub fn exec(root: &StateRoot, opts: &ExecOptions) -> Result<Pid, Error> {
    let st = root.load(&opts.id)?;
    let status = status(root, &st);
    if !matches!(status, Status::Created | Status::Running) {
        return Err(Error::WrongState {
            id: opts.id.clone(),
            status,
            hint: "exec needs a created or running container".into(),
        });
    }
    let bundle = crate::spec::load_bundle(&st.bundle)?;
    let mut spec = bundle.spec.clone();
    let process = match &opts.process {
        Some(p) => p.clone(),
        None => return Err(Error::Invalid("exec: no process given".into())),
    };
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::Invalid(
            "exec: process.args: must name a program".into(),
        ));
    }
    let terminal = process.terminal().unwrap_or(false);
    spec.set_process(Some(process));

    let init_pid = Pid::from_raw(st.pid);
    let pidfd = sys::pidfd_open(init_pid).map_err(|e| Error::io("pidfd_open of init", e))?;
    if !state::is_alive(&st) {
        return Err(Error::WrongState {
            id: opts.id.clone(),
            status: Status::Stopped,
            hint: "exec needs a created or running container".into(),
        });
    }
    let console = match (&opts.console_socket, terminal) {
        (Some(p), _) => Some(
            UnixStream::connect(p)
                .map_err(|e| Error::io(format!("--console-socket {}", p.display()), e))?,
        ),
        (None, true) => {
            return Err(Error::Invalid(
                "process.terminal is true: --console-socket is required".into(),
            ))
        }
        (None, false) => None,
    };
    let min_fd = 3 + opts.preserve_fds as RawFd;
    let pidfd = raise_fd(pidfd, min_fd)?;
    let console = match console {
        Some(c) => Some(raise_fd(OwnedFd::from(c), min_fd)?),
        None => None,
    };

    // pid (and time) namespaces apply to children: enter them here, before clone.
    let join_pid = {
        use std::os::unix::fs::MetadataExt;
        let t = std::fs::metadata(format!("/proc/{}/ns/pid", st.pid)).map(|m| m.ino());
        let o = std::fs::metadata("/proc/self/ns/pid").map(|m| m.ino());
        matches!((t, o), (Ok(a), Ok(b)) if a != b)
    };
    if join_pid {
        nix::sched::setns(pidfd.as_fd(), CloneFlags::CLONE_NEWPID)
            .map_err(|e| Error::io("joining the container's pid namespace", e.into()))?;
    }
    let mut inherit: Vec<RawFd> = (3..min_fd).collect();
    inherit.push(pidfd.as_raw_fd());
    let console_fd = console.as_ref().map(|c| c.as_raw_fd());
    if let Some(c) = console_fd {
        inherit.push(c);
    }
    let cg = Cgroup::open(&st.cgroup_path, &st.id)?;
    // A cgroup that cannot be opened is left to the migration below to report.
    let target = cg.clone_target(false).ok().flatten();
    let (spawned, cloned_in) = spawn_in_cgroup(target, |target| {
        spawn(
            CloneFlags::empty(),
            Start::Sealed,
            target,
            &inherit,
            min_fd,
            opts.stdio,
            false,
        )
    })?;
    let pid = spawned.pid;
    tracing::debug!(pid = pid.as_raw(), cloned_in, "exec: cloned");
    let mut ch = spawned.channel;
    let kill_child = |pid: Pid| {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
    };
    let plan = InitPlan {
        role: Role::Exec,
        id: opts.id.clone(),
        spec,
        bundle: st.bundle.clone(),
        rootfs: st.rootfs.clone(),
        fifo: None,
        console_fd,
        preserve_fds: opts.preserve_fds,
        no_pivot: false,
        ns_pidfd: Some(pidfd.as_raw_fd()),
        join_flags: differing_namespaces(st.pid),
        hook_state: String::new(),
        unified_cgroups: cgroups::is_unified(),
        dmz_fd: None,
    };
    drop(console);
    let fail = |e: SyncError| Error::Setup(format!("exec: {e}"));
    if let Err(e) = ch.send(&ToChild::Plan(Box::new(plan))) {
        kill_child(pid);
        return Err(fail(e));
    }
    let join = match cg.prepare_join(pid, cloned_in) {
        Ok(files) => files,
        Err(e) => {
            kill_child(pid);
            return Err(e.into());
        }
    };
    if let Err(e) = super::create::send_cgroup(&mut ch, &join) {
        kill_child(pid);
        return Err(fail(e));
    }
    drop(join);
    // The channel closes when the process execs (close-on-exec); anything else is an error.
    match ch.recv::<FromChild>() {
        Err(SyncError::Closed) => {}
        Ok(FromChild::Error(msg)) => {
            kill_child(pid);
            return Err(Error::Setup(msg));
        }
        Ok(FromChild::Ready) => {}
        Ok(FromChild::Mounted) => {
            kill_child(pid);
            return Err(Error::Setup("exec: unexpected message Mounted".into()));
        }
        Err(e) => {
            kill_child(pid);
            return Err(fail(e));
        }
    }
    if let Some(p) = &opts.pid_file {
        super::create::write_pid_file(p, pid)?;
    }
    Ok(pid)
}
