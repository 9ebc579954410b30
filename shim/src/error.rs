//! The shim's error type and its mapping onto ttrpc status codes. containerd turns the gRPC
//! code back into its errdefs (NotFound, AlreadyExists, FailedPrecondition, ...) and acts
//! on them — e.g. a Kill answered with NotFound means "process already finished" — so the
//! code matters as much as the message.

use containerd_shim_protos::ttrpc::{self, Code};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error(transparent)]
    Runtime(#[from] berth::container::Error),
    /// Making, changing or removing a task cgroup.
    #[error("task cgroup: {0}")]
    TaskCgroup(#[from] berth::task::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(what: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Error::Io {
            what: what.into(),
            source: source.into(),
        }
    }

    fn code(&self) -> Code {
        use berth::container::Error as R;
        use berth::state::StateError as S;
        match self {
            Error::NotFound(_) | Error::Runtime(R::State(S::NotFound(_))) => Code::NOT_FOUND,
            Error::AlreadyExists(_) | Error::Runtime(R::State(S::Exists(_))) => {
                Code::ALREADY_EXISTS
            }
            Error::FailedPrecondition(_) | Error::Runtime(R::WrongState { .. }) => {
                Code::FAILED_PRECONDITION
            }
            Error::InvalidArgument(_)
            | Error::TaskCgroup(berth::task::Error::Invalid(_))
            | Error::Runtime(R::Invalid(_) | R::Spec(_) | R::State(S::InvalidId(_))) => {
                Code::INVALID_ARGUMENT
            }
            Error::Unimplemented(_) => Code::UNIMPLEMENTED,
            _ => Code::UNKNOWN,
        }
    }
}

impl From<Error> for ttrpc::Error {
    fn from(e: Error) -> Self {
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), e.to_string()))
    }
}
