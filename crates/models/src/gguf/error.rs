//! Errors of the GGUF reader: every malformed input maps to one of these, never to a panic.

use std::path::PathBuf;

/// What went wrong while reading or decoding a GGUF file. Messages name the file, the
/// field or tensor, and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: bad magic {found:02x?}: expected \"GGUF\" (47 47 55 46); not a GGUF file")]
    BadMagic { path: PathBuf, found: [u8; 4] },
    #[error("{path}: unsupported GGUF version {version}: expected 2 or 3")]
    BadVersion { path: PathBuf, version: u32 },
    #[error("{path}: file truncated while reading {what} at byte {offset}: need {needed} bytes, file has {len}")]
    Truncated { path: PathBuf, what: String, offset: u64, needed: u64, len: u64 },
    #[error("{path}: invalid {what} at byte {offset}: {reason}")]
    Invalid { path: PathBuf, what: String, offset: u64, reason: String },
    #[error("{path}: tensor '{tensor}' has unsupported ggml type {type_name} (id {type_id}); supported: {supported}")]
    UnsupportedType { path: PathBuf, tensor: String, type_id: u32, type_name: String, supported: String },
    #[error("{path}: tensor '{tensor}' data [{start}, {end}) lies outside the file's data section (file is {len} bytes)")]
    OutOfBounds { path: PathBuf, tensor: String, start: u64, end: u64, len: u64 },
    #[error("{path}: no tensor named '{name}'")]
    NoSuchTensor { path: PathBuf, name: String },
    #[error("{path}: metadata key '{key}' is missing")]
    MissingKey { path: PathBuf, key: String },
    #[error("{path}: metadata key '{key}' has type {found}, expected {expected}")]
    WrongType { path: PathBuf, key: String, expected: &'static str, found: &'static str },
}

/// Result alias of the GGUF reader.
pub type Result<T> = std::result::Result<T, GgufError>;
