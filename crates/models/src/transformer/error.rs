//! Errors raised while building a model from files; each names the file and what was expected.

/// A model could not be built from its files.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{file}: bad model config: {reason}")]
    Config { file: String, reason: String },
    #[error("{file}: unsupported architecture '{arch}' (supported: {supported})")]
    UnsupportedArch { file: String, arch: String, supported: String },
    #[error("{file}: tensor '{tensor}' is missing")]
    MissingTensor { file: String, tensor: String },
    #[error("{file}: tensor '{tensor}' has shape {got:?}, expected {expected:?}")]
    TensorShape { file: String, tensor: String, expected: Vec<usize>, got: Vec<usize> },
    #[error("{file}: {reason}")]
    Format { file: String, reason: String },
    #[error("{file}: tensor '{tensor}' holds {value} at element {index}: non-finite weights are refused")]
    NonFinite { file: String, tensor: String, index: usize, value: String },
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    #[error("device {device}: {reason}")]
    Device { device: String, reason: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}
