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
    /// The parent moved the child into the container's cgroup: what depends on it (the
    /// cgroup namespace, cgroup mounts, device nodes) may proceed.
    Joined,
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
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let fds = [fd.as_raw_fd()];
        let iov = [io::IoSlice::new(b"t")];
        sendmsg::<()>(
            sock.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )?;
        Ok(())
    }

    /// Receives an fd sent with [`Channel::send_fd`].
    pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        let mut buf = [0u8; 1];
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!(RawFd);
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                if let Some(&fd) = fds.first() {
                    // SAFETY: the kernel installed this fd for us just now.
                    return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no file descriptor in message",
        ))
    }
}
