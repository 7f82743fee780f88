//! How to build a model: precision, longest sequence, and the burn device loaders stage on.

use burn::tensor::Device;

use super::matrix::Precision;

/// Options every architecture's loader takes.
#[derive(Clone, Debug)]
pub struct TransformerOptions {
    pub precision: Precision,
    /// Longest sequence a session may hold (capped by the model's context length).
    pub max_seq_len: usize,
    /// Where loaders that read through burn (the safetensors path) stage tensors; the forward
    /// pass runs on the host kernels unless `engine` says otherwise.
    pub device: Device,
    /// `Some`: run the model on burn tensors on this device ([`crate::burn_lm`]) instead of the
    /// host kernels; `precision` is then the engine's dtype, not a host [`Precision`].
    pub engine: Option<crate::burn_lm::TensorEngine>,
}

impl Default for TransformerOptions {
    fn default() -> Self {
        Self { precision: Precision::Q8, max_seq_len: 4096, device: Device::flex(), engine: None }
    }
}
