//! The container lifecycle of the OCI runtime spec: create, start, state, kill, delete, plus
//! exec, pause/resume, update and the queries runc offers. Every operation works on a state
//! record under the state root and on the live system; a failed `create` removes everything
//! it made.

mod create;
mod exec;
mod ops;
mod spawn;
mod start_mode;

pub use create::{create, create_from, CreateOptions};
pub use exec::{exec, ExecOptions};
pub use ops::{
    delete, kill, kill_all, list, pause, pids, resume, start, stats, status, update, wait_exit,
};

use std::io;

use crate::cgroups::CgroupError;
use crate::hooks::HookError;
use crate::spec::SpecError;
use crate::state::{StateError, Status};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Hook(#[from] HookError),
    /// The container process reported a failure while setting itself up.
    #[error("{0}")]
    Setup(String),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("container {id} is {status}: {hint}")]
    WrongState {
        id: String,
        status: Status,
        hint: String,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
