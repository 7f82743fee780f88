//! GGUF files as a [`WeightSource`], and the llama-family decoder built from one.

use std::path::Path;

use crate::gguf::{Array, GgmlType, GgufFile, Value};

use super::config::TransformerConfig;
use super::error::LoadError;
use super::arch::Transformer;
use super::options::TransformerOptions;
use super::q8::Q8Matrix;
use super::weights::{HostTensor, WeightSource, names};

/// A GGUF file as a [`WeightSource`]: tensors dequantized on demand, Q8_0 and Q4_K tensors passed
/// through.
pub struct GgufSource<'f> {
    file: &'f GgufFile,
}

impl<'f> GgufSource<'f> {
    pub fn new(file: &'f GgufFile) -> Self {
        Self { file }
    }
}

impl WeightSource for GgufSource<'_> {
    fn describe(&self) -> String {
        self.file.path().display().to_string()
    }
    fn contains(&self, name: &str) -> bool {
        self.file.tensor(name).is_some()
    }
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.file.tensor(name).map(|t| t.shape())
    }
    fn load_f32(&self, name: &str) -> Result<HostTensor, LoadError> {
        let info = self
            .file
            .tensor(name)
            .ok_or_else(|| LoadError::MissingTensor { file: self.describe(), tensor: name.to_string() })?;
        let shape = info.shape();
        let data = self.file.dequantize(name)?;
        Ok(HostTensor { shape, data })
    }
    fn load_q8_0(&self, name: &str) -> Result<Option<Q8Matrix>, LoadError> {
        let Some(info) = self.file.tensor(name) else { return Ok(None) };
        if info.ggml_type != GgmlType::Q8_0 || info.dims.len() != 2 {
            return Ok(None);
        }
        let shape = info.shape();
        let bytes = self.file.tensor_data(name)?.to_vec();
        super::checks::check_q8_0_scales(&self.describe(), name, &bytes)?;
        Q8Matrix::from_q8_0_bytes(shape[0], shape[1], bytes)
            .map(Some)
            .map_err(|reason| LoadError::Format { file: self.describe(), reason: format!("tensor '{name}': {reason}") })
    }
    fn load_q4_k(&self, name: &str) -> Result<Option<Vec<u8>>, LoadError> {
        let Some(info) = self.file.tensor(name) else { return Ok(None) };
        if info.ggml_type != GgmlType::Q4_K || info.dims.len() != 2 {
            return Ok(None);
        }
        let bytes = self.file.tensor_data(name)?.to_vec();
        super::checks::check_q4_k_scales(&self.describe(), name, &bytes)?;
        Ok(Some(bytes))
    }
}

/// The decoder config a GGUF file describes.
pub fn gguf_config(file: &GgufFile) -> Result<TransformerConfig, LoadError> {
    let source = file.path().display().to_string();
    let arch = file.architecture()?.to_string();
    let vocab = match file.get("tokenizer.ggml.tokens").and_then(Value::as_array) {
        Some(tokens) => tokens.len(),
        None => file
            .tensor(names::EMBED)
            .map(|t| t.shape()[0])
            .ok_or_else(|| LoadError::MissingTensor { file: source.clone(), tensor: names::EMBED.into() })?,
    };
    let tied = file.tensor(names::OUTPUT).is_none();
    let qkv_bias = file.tensor("blk.0.attn_q.bias").is_some();
    let get = |k: &str| file.get(k).and_then(Value::as_f64);
    let get_str = |k: &str| file.get(k).and_then(Value::as_str).map(String::from);
    TransformerConfig::from_gguf(&source, &arch, &get, &get_str, vocab, tied, qkv_bias)
}

/// Token ids that end a generation: the file's EOS plus the chat end-of-turn tokens it defines.
/// An EOS id outside the vocabulary is an error (never truncated to 32 bits).
pub fn gguf_eos_ids(file: &GgufFile, vocab_size: usize) -> Result<Vec<u32>, LoadError> {
    let key = "tokenizer.ggml.eos_token_id";
    let mut eos: Vec<u32> = match file.get(key) {
        None => Vec::new(),
        Some(_) => vec![file.get_bounded(key, vocab_size.saturating_sub(1) as u64, &format!("the vocabulary has {vocab_size} tokens"))? as u32],
    };
    if let Some(tokens) = file.get("tokenizer.ggml.tokens").and_then(Value::as_array).and_then(Array::as_strs) {
        for (i, t) in tokens.iter().enumerate() {
            if matches!(t, "<|im_end|>" | "<|endoftext|>" | "<|eot_id|>" | "<|end_of_text|>") && !eos.contains(&(i as u32)) {
                eos.push(i as u32);
            }
        }
    }
    Ok(eos)
}

/// Load the llama-family decoder stored in the GGUF file at `path` (any architecture:
/// [`super::load_model`]).
pub fn load_gguf(path: &Path, name: &str, opts: &TransformerOptions) -> Result<Transformer, LoadError> {
    let file = GgufFile::open(path)?;
    load_gguf_file(&file, name, opts)
}

/// Load the llama-family decoder from an open GGUF file.
pub fn load_gguf_file(file: &GgufFile, name: &str, opts: &TransformerOptions) -> Result<Transformer, LoadError> {
    let cfg = gguf_config(file)?;
    let eos = gguf_eos_ids(file, cfg.vocab_size)?;
    Ok(Transformer::from_source(name, cfg, &GgufSource::new(file), opts)?.with_eos(eos))
}
