//! Registering fds with tokio's reactor (pty masters, FIFOs, eventfd, inotify).

use std::os::fd::{AsFd, AsRawFd, RawFd};

use tokio::io::unix::AsyncFd;

/// An fd owner from std or nix, seen by tokio through its (stable) fd.
pub struct Pollable<T>(pub T);

impl<T: AsFd> AsRawFd for Pollable<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

pub fn register<T: AsFd>(inner: T) -> std::io::Result<AsyncFd<Pollable<T>>> {
    // SAFETY: `inner` owns (or borrows for its whole lifetime) one open fd, and `as_fd`
    // returns that same fd on every call; the AsyncFd owns `inner`, so the fd stays open
    // and unchanged until the AsyncFd is dropped.
    unsafe { AsyncFd::register(Pollable(inner)) }.map_err(std::io::Error::from)
}
