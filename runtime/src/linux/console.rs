//! process.terminal: a pty allocated inside the container (its own devpts), whose master
//! goes to the caller through --console-socket and whose peer becomes the process's stdio.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::{sys, Context, SetupError};
use crate::sync::Channel;

/// Opens a new pty in the container's /dev/pts and hands the master to `socket`.
/// Returns the peer, to become stdio after `start`.
pub fn create(socket: BorrowedFd<'_>, size: Option<(u16, u16)>) -> Result<OwnedFd, SetupError> {
    let master = nix::fcntl::open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "opening /dev/ptmx in the container (is devpts mounted at /dev/pts?)".into())?;
    // SAFETY-free: nix returns a raw fd we now own.
    let master = owned(master);
    sys::unlock_pty(master.as_fd()).ctx(|| "unlocking the pty".into())?;
    // TIOCGPTPEER opens the peer by fd: no path lookup a container could redirect
    // (CVE-2025-52565).
    let peer = sys::open_pty_peer(master.as_fd()).ctx(|| "opening the pty peer".into())?;
    if let Some((rows, cols)) = size {
        sys::set_window_size(peer.as_fd(), rows, cols).ctx(|| "setting the console size".into())?;
    }
    Channel::send_fd(socket, master.as_fd())
        .ctx(|| "sending the pty master to --console-socket".into())?;
    Ok(peer)
}

fn owned(fd: std::os::fd::RawFd) -> OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` was just returned by open(2) and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Makes `peer` the controlling terminal and stdio of this (new session) process.
pub fn attach_stdio(peer: &OwnedFd) -> Result<(), SetupError> {
    let _ = nix::unistd::setsid();
    sys::set_controlling_tty(peer.as_fd()).ctx(|| "TIOCSCTTY".into())?;
    for target in 0..3 {
        nix::unistd::dup2(peer.as_raw_fd(), target).ctx(|| "dup2 of the pty onto stdio".into())?;
    }
    Ok(())
}
