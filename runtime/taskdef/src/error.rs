//! The crate's error type.

use std::fmt;

/// One thing wrong with a task definition, at a JSON path relative to the task definition object,
/// e.g. `containerDefinitions[1].dependsOn[0].containerName`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The JSON could not be read into the model: bad syntax, a wrong type, or a field ECS does not have.
    /// `path` is the JSON path inside the document (it starts with `taskDefinition.` for describe output).
    #[error("{path}: {message} (line {line}, column {column})")]
    Parse {
        path: String,
        message: String,
        line: usize,
        column: usize,
    },

    /// The definition was read but breaks rules; every problem found is listed, one per line.
    #[error("{}", join_lines(.0))]
    Invalid(Vec<Problem>),

    /// An environment file (see [`crate::parse_env_file`]) has a line that is not `NAME=VALUE`.
    #[error("line {line}: {message}")]
    EnvFile { line: usize, message: String },
}

impl Error {
    /// The validation problems, if this is a validation error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Error::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

fn join_lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
