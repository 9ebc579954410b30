//! The OCI runtime spec (`config.json`) as berth reads it: loading with field paths in
//! every parse error, and validation of everything berth can check before it touches the
//! host. `create` calls [`load_bundle`] first, so a bad bundle fails before any state
//! directory, cgroup or process exists.

pub mod defaults;
mod load;
mod validate;

pub use load::{load_bundle, parse_config, Bundle};
pub use validate::validate;

use std::fmt;

/// A problem with the spec, naming the JSON path of the offending field.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config.json: {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config.json: {0}")]
    Invalid(FieldError),
}

/// One invalid field: `linux.namespaces[2].type: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl From<FieldError> for SpecError {
    fn from(e: FieldError) -> Self {
        SpecError::Invalid(e)
    }
}
