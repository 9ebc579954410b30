//! The kernel side of a container: what runs inside the new process between clone and the
//! final execve. Raw syscalls live in [`sys`]; everything else builds on nix and pathrs.

pub mod capabilities;
pub mod console;
pub mod devices;
pub mod dmz;
pub mod exe;
pub mod exec;
pub mod identity;
pub mod mount_options;
pub mod namespaces;
pub mod procfs;
pub mod rlimits;
pub mod rootfs;
pub mod seccomp;
pub mod sys;

use std::io;

/// Metadata of the inode a pathrs handle refers to (for a handle from `resolve_nofollow`
/// on a symlink: the symlink itself). statx on the fd works for O_PATH handles.
pub fn handle_metadata(h: &pathrs::Handle) -> io::Result<std::fs::Metadata> {
    use std::os::fd::AsFd;
    std::fs::File::from(h.as_fd().try_clone_to_owned()?).metadata()
}

/// A failure while setting up a container process, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{0}")]
    Invalid(String),
}

impl SetupError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        SetupError::Invalid(msg.into())
    }
}

/// Adds "what was being done" to io and nix errors.
pub trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, SetupError>;
}

impl<T> Context<T> for Result<T, io::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, SetupError> {
        self.map_err(|source| SetupError::Io {
            what: what(),
            source,
        })
    }
}

impl<T> Context<T> for Result<T, nix::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, SetupError> {
        self.map_err(|e| SetupError::Io {
            what: what(),
            source: io::Error::from(e),
        })
    }
}

impl<T> Context<T> for Result<T, pathrs::error::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, SetupError> {
        self.map_err(|e| SetupError::Io {
            what: what(),
            source: match e.kind() {
                pathrs::error::ErrorKind::OsError(Some(errno)) => {
                    io::Error::from_raw_os_error(errno)
                }
                _ => io::Error::other(e.to_string()),
            },
        })
    }
}
