//! Where a model's tensors come from: one trait over GGUF files and HF safetensors directories.
//!
//! Tensors are named the GGUF way (`token_embd.weight`, `blk.3.attn_q.weight`, ...) and handed out
//! row-major in PyTorch order (`[out, in]` for matrices); each source maps its own names.

use super::error::LoadError;
use super::q8::Q8Matrix;

/// A host tensor: shape (PyTorch order) and row-major f32 values.
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A provider of named model tensors.
pub trait WeightSource {
    /// The file or directory, for error messages.
    fn describe(&self) -> String;
    /// Whether tensor `name` exists.
    fn contains(&self, name: &str) -> bool;
    /// Tensor `name`'s shape (PyTorch order) from its header, without reading data; `None` where
    /// the source cannot tell cheaply.
    fn shape(&self, _name: &str) -> Option<Vec<usize>> {
        None
    }
    /// Tensor `name` as f32.
    fn load_f32(&self, name: &str) -> Result<HostTensor, LoadError>;
    /// Tensor `name` as 8-bit blocks without requantization, where the source stores it so.
    fn load_q8_0(&self, _name: &str) -> Result<Option<Q8Matrix>, LoadError> {
        Ok(None)
    }
    /// Tensor `name`'s raw ggml Q4_K blocks (row-major, 144 bytes per 256 values), where the
    /// source stores it so, its scales checked finite.
    fn load_q4_k(&self, _name: &str) -> Result<Option<Vec<u8>>, LoadError> {
        Ok(None)
    }
}

/// Canonical tensor names.
pub(crate) mod names {
    pub const EMBED: &str = "token_embd.weight";
    pub const OUTPUT: &str = "output.weight";
    pub const OUTPUT_NORM: &str = "output_norm.weight";
    pub fn blk(layer: usize, what: &str) -> String {
        format!("blk.{layer}.{what}")
    }
}

/// Load `name` and check its shape.
pub(crate) fn expect(src: &dyn WeightSource, name: &str, shape: &[usize]) -> Result<HostTensor, LoadError> {
    if !src.contains(name) {
        return Err(LoadError::MissingTensor { file: src.describe(), tensor: name.to_string() });
    }
    let t = src.load_f32(name)?;
    super::checks::check_finite(&src.describe(), name, &t.data)?;
    if t.shape != shape || t.data.len() != shape.iter().product::<usize>() {
        return Err(LoadError::TensorShape {
            file: src.describe(),
            tensor: name.to_string(),
            expected: shape.to_vec(),
            got: t.shape,
        });
    }
    Ok(t)
}

/// Tensors held in memory (tests, converters).
#[derive(Default)]
pub struct MemorySource {
    pub label: String,
    pub tensors: std::collections::HashMap<String, HostTensor>,
}

impl WeightSource for MemorySource {
    fn describe(&self) -> String {
        self.label.clone()
    }
    fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.tensors.get(name).map(|t| t.shape.clone())
    }
    fn load_f32(&self, name: &str) -> Result<HostTensor, LoadError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| LoadError::MissingTensor { file: self.label.clone(), tensor: name.to_string() })?;
        Ok(HostTensor { shape: t.shape.clone(), data: t.data.clone() })
    }
}
