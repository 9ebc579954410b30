//! The channel between the runtime (parent) and a container process it is setting up
//! (child): length-prefixed JSON frames over a unix socketpair. The child reports failures
//! as structured messages, so `create` fails with the child's real reason, and the parent
//! decides about cleanup.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::init::InitPlan;

/// Largest frame accepted; a spec with a big seccomp profile is well below this.
const MAX_FRAME: usize = 16 << 20;

/// Most fds passed in one message: one per cgroup v1 hierarchy is the largest use.
pub const MAX_FDS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("sync channel: {0}")]
    Io(#[from] io::Error),
    #[error("sync channel: bad message: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("sync channel: frame of {0} bytes is too large")]
    TooLarge(usize),
    #[error("the container process exited before reporting back")]
    Closed,
}

/// Parent → child.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToChild {
    Plan(Box<InitPlan>),
    /// The container's cgroup exists with its limits and device rules in place. With
    /// `join_fds > 0` that many fds of the cgroup's v1 `tasks` files follow (SCM_RIGHTS) and
    /// the child joins by writing "0" to each (see [`crate::cgroups::Joiner`]); with 0 the
    /// parent has already moved it. What depends on the cgroup (the cgroup namespace, cgroup
    /// mounts, device nodes) may then proceed.
    Cgroup {
        join_fds: usize,
    },
    /// The parent finished its part (id maps, cgroup, createRuntime hooks): go on.
    Go,
}

/// Child → parent.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromChild {
    /// Set-up is complete; the process is waiting for `start` (init) or has exec'd (exec:
    /// never sent, the socket closes on exec instead).
    Ready,
    /// The container's mounts and device nodes are in place (init only): the parent may
    /// run prestart and createRuntime hooks.
    Mounted,
    Error(String),
}

pub struct Channel {
    stream: UnixStream,
}

impl Channel {
    /// A connected pair, both ends close-on-exec.
    pub fn pair() -> io::Result<(Channel, Channel)> {
        let (a, b) = UnixStream::pair()?;
        Ok((Channel { stream: a }, Channel { stream: b }))
    }

    /// Adopts an inherited fd (the child side after its re-exec).
    ///
    /// # Safety
    /// `fd` must be an open unix stream socket owned by nobody else in this process.
    pub unsafe fn from_raw_fd(fd: RawFd) -> Channel {
        Channel {
            // SAFETY: guaranteed by the caller.
            stream: unsafe { UnixStream::from_raw_fd(fd) },
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    pub fn into_owned_fd(self) -> OwnedFd {
        self.stream.into()
    }

    pub fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), SyncError> {
        let body = serde_json::to_vec(msg)?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame)?;
        Ok(())
    }

    /// One raw byte: the "id maps written" signal a child waits for before its re-exec,
    /// while it can only make raw system calls.
    pub fn send_byte(&mut self) -> Result<(), SyncError> {
        self.stream.write_all(b"m")?;
        Ok(())
    }

    /// Receives one message; `Closed` if the peer is gone.
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<T, SyncError> {
        let mut len = [0u8; 4];
        if let Err(e) = self.stream.read_exact(&mut len) {
            return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
                SyncError::Closed
            } else {
                e.into()
            });
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(SyncError::TooLarge(len));
        }
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                SyncError::Closed
            } else {
                e.into()
            }
        })?;
        Ok(serde_json::from_slice(&body)?)
    }

    /// Sends an fd (SCM_RIGHTS) with a one-byte payload.
    pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
        Self::send_fds(sock, &[fd])
    }

    /// Receives an fd sent with [`Channel::send_fd`].
    pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
        Self::recv_fds(sock, 1)?.pop().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "no file descriptor in message")
        })
    }

    /// Sends fds (SCM_RIGHTS, at most [`MAX_FDS`]) with a one-byte payload. On a channel
    /// that also carries frames, the receiver reads exactly up to this byte with
    /// [`Channel::recv`], so the frame reads never consume it (and drop its fds).
    pub fn send_fds(sock: BorrowedFd<'_>, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        if fds.is_empty() || fds.len() > MAX_FDS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot pass {} file descriptors in one message", fds.len()),
            ));
        }
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let iov = [io::IoSlice::new(b"t")];
        sendmsg::<()>(
            sock.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&raw)],
            MsgFlags::empty(),
            None,
        )?;
        Ok(())
    }

    /// Receives exactly `n` fds sent with [`Channel::send_fds`].
    pub fn recv_fds(sock: BorrowedFd<'_>, n: usize) -> io::Result<Vec<OwnedFd>> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        let mut buf = [0u8; 1];
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
            return Err(io::Error::other(format!(
                "receiving {n} file descriptors: truncated (out of fds? see RLIMIT_NOFILE)"
            )));
        }
        let mut out = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                // SAFETY: the kernel installed these fds for us just now.
                out.extend(
                    fds.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        if out.len() != n {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected {n} file descriptors, got {}", out.len()),
            ));
        }
        Ok(out)
    }
}
