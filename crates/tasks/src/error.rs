//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading data, building prompts, scoring or running code.
/// Messages name the file, line and field involved, and say what was expected.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("unknown task `{name}`; known tasks: {known}")]
    UnknownTask { name: String, known: String },
    #[error("unknown metric `{name}`; known metrics: {known}")]
    UnknownMetric { name: String, known: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Parse { path: PathBuf, line: usize, message: String },
    #[error("{path}:{line}: missing field `{field}` (expected {expected})")]
    MissingField { path: PathBuf, line: usize, field: String, expected: String },
    #[error("{path}: file is empty (expected at least one JSON object per line)")]
    Empty { path: PathBuf },
    #[error("{0}")]
    Mismatch(String),
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("dataset `{dataset}`: {message}")]
    Fetch { dataset: String, message: String },
    #[error("sandbox: {0}")]
    Sandbox(String),
}

impl TaskError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TaskError::Io { path: path.into(), source }
    }
}

pub type Result<T, E = TaskError> = std::result::Result<T, E>;

/// A serde_json error without its "at line 1 column N" suffix (the caller names the file line).
pub(crate) fn json_reason(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
