//! Starting a container process: clone into new namespaces, then re-exec from a sealed copy
//! of berth (see [`crate::linux::exe`]) with only the fds the plan names.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use nix::sched::CloneFlags;
use nix::unistd::Pid;

use super::Error;
use crate::init::INIT_ENV;
use crate::linux::sys::{self, Cloned};
use crate::sync::Channel;

pub struct Spawned {
    pub pid: Pid,
    pub channel: Channel,
}

/// Moves `fd` to a number ≥ `min`, so fds the container must inherit at fixed numbers
/// (stdio, --preserve-fds) are never taken by berth's own.
pub fn raise_fd(fd: OwnedFd, min: RawFd) -> Result<OwnedFd, Error> {
    if fd.as_raw_fd() >= min {
        return Ok(fd);
    }
    let new = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(min))
        .map_err(|e| Error::io("duplicating an fd", e.into()))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new fd that only we hold.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// How the cloned process becomes the container's set-up code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Re-executes berth from a sealed view ([`crate::linux::exe`]): always safe.
    Sealed,
    /// Runs the init right in the clone, no exec; only for a single-threaded caller and
    /// the cases [`crate::linux::dmz`] lists.
    Direct,
}

/// Spawns through `spawn_fn`, straight into the cgroup `target` (cgroup v2:
/// CLONE_INTO_CGROUP, see [`crate::cgroups::Cgroup::clone_target`]) where given and the
/// kernel allows it, else outside it for the caller to move it in. Returns whether the
/// process was born in the cgroup.
pub fn spawn_in_cgroup(
    target: Option<OwnedFd>,
    spawn_fn: impl Fn(Option<BorrowedFd<'_>>) -> Result<Spawned, Error>,
) -> Result<(Spawned, bool), Error> {
    if let Some(fd) = target {
        match spawn_fn(Some(fd.as_fd())) {
            Ok(s) => return Ok((s, true)),
            // Kernels before 5.7, or a cgroup that cannot take processes directly.
            Err(e) => tracing::debug!(error = %e, "CLONE_INTO_CGROUP refused: cloning outside"),
        }
    }
    Ok((spawn_fn(None)?, false))
}

/// Clones the container process, straight into `cgroup` if given (cgroup v2). `inherit` are
/// fds (besides the channel) that must survive into it. The caller must be single-threaded.
pub fn spawn(
    flags: CloneFlags,
    start: Start,
    cgroup: Option<BorrowedFd<'_>>,
    inherit: &[RawFd],
    min_fd: RawFd,
    stdio: Option<[RawFd; 3]>,
    wait_for_id_maps: bool,
) -> Result<Spawned, Error> {
    let (parent, child) = Channel::pair().map_err(|e| Error::io("socketpair", e))?;
    let child = raise_fd(child.into_owned_fd(), min_fd)?;
    let child_fd = child.as_raw_fd();
    // Everything the child needs is computed before clone: after it, the child only does
    // async-signal-safe work until it execs (or, `Direct`, runs on as a plain fork).
    let sealed = match start {
        Start::Sealed => {
            let env = [CString::new(format!("{INIT_ENV}={child_fd}")).unwrap_or_default()];
            Some(
                crate::linux::exe::SealedExec::new(&[c"berth-init"], &env)
                    .map_err(|e| Error::io("making a sealed copy of berth", e))?,
            )
        }
        Start::Direct => None,
    };
    // The failure report is framed now: the child must not allocate.
    let body = match start {
        Start::Sealed => &br#"{"Error":"re-executing berth from a sealed copy failed"}"#[..],
        Start::Direct => &br#"{"Error":"setting up the container process failed"}"#[..],
    };
    let mut failure = (body.len() as u32).to_le_bytes().to_vec();
    failure.extend_from_slice(body);
    match sys::clone_process(flags.bits(), cgroup) {
        Err(e) => Err(Error::io("clone", e)),
        Ok(Cloned::Parent(pid)) => {
            drop(child);
            Ok(Spawned {
                pid,
                channel: parent,
            })
        }
        Ok(Cloned::Child) => {
            drop(parent);
            let mut ok = true;
            if let Some(fds) = stdio {
                for (target, fd) in fds.iter().enumerate() {
                    if *fd != target as RawFd {
                        ok &= nix::unistd::dup2(*fd, target as RawFd).is_ok();
                    }
                }
            }
            // SAFETY: these fds are open (the caller holds them) and only flags change.
            let keep = |fd: RawFd| sys::clear_cloexec(unsafe { BorrowedFd::borrow_raw(fd) });
            ok &= keep(child_fd).is_ok();
            for fd in inherit {
                ok &= keep(*fd).is_ok();
            }
            if ok && wait_for_id_maps {
                // In a new user namespace, execve with an unmapped uid drops every
                // capability: wait for the parent to write uid_map/gid_map first.
                let mut byte = [0u8; 1];
                // SAFETY: child_fd is open for the rest of this process's short life.
                let fd = unsafe { BorrowedFd::borrow_raw(child_fd) };
                ok = matches!(nix::unistd::read(fd.as_raw_fd(), &mut byte), Ok(1));
                // execve keeps capabilities only for the namespace's root: become it now
                // (our host uid is not mapped inside).
                let root_g = nix::unistd::Gid::from_raw(0);
                let root_u = nix::unistd::Uid::from_raw(0);
                ok = ok
                    && nix::unistd::setresgid(root_g, root_g, root_g).is_ok()
                    && nix::unistd::setresuid(root_u, root_u, root_u).is_ok();
            }
            if ok {
                match &sealed {
                    Some(sealed) => {
                        let _ = sealed.exec();
                    }
                    None => {
                        // A panic must end this child here, not unwind into the CLI's
                        // frames (its rollback guard would tear the container down).
                        let fd = child.into_raw_fd();
                        let _ = std::panic::catch_unwind(|| crate::init::main(fd));
                        sys::exit_now(123);
                    }
                }
            }
            let _ = nix::unistd::write(
                // SAFETY: child_fd is open for the rest of this process's short life.
                unsafe { BorrowedFd::borrow_raw(child_fd) },
                &failure,
            );
            // SAFETY: _exit ends this forked child without running the parent's atexit
            // handlers or destructors, which belong to the parent.
            unsafe { libc::_exit(122) }
        }
    }
}
