//! The architecture registry: one loader per architecture, keyed by GGUF `general.architecture`
//! or Hugging Face `model_type` (falling back to `architectures[0]`).
//!
//! Adding an architecture is one new file in this directory (its components, its loaders and a
//! `pub const ARCHITECTURE`) plus its line in the list below (and the `mod` line above it).

mod gemma;
mod llama;
pub(crate) mod t5;

pub use llama::{Llama, LlamaBlock, Transformer};

use std::path::Path;

use speccascade_core::LanguageModel;

use crate::gguf::GgufFile;
use crate::registry::ModelLocation;

use super::decoder::{CausalLm, DecoderLm};
use super::error::LoadError;
use super::options::TransformerOptions;

/// Every architecture this crate loads. One source of truth: dispatch and error messages read it.
pub const ARCHITECTURES: &[&Architecture] = &[&llama::ARCHITECTURE, &gemma::ARCHITECTURE, &t5::ARCHITECTURE];

/// How to load one architecture.
pub struct Architecture {
    /// GGUF `general.architecture` / HF `model_type` values this entry reads.
    pub names: &'static [&'static str],
    /// HF `architectures[0]` class names, for a `config.json` without `model_type`.
    pub hf_classes: &'static [&'static str],
    /// Build from an open GGUF file; `name` labels the model.
    pub from_gguf: fn(&GgufFile, &str, &TransformerOptions) -> Result<LoadedModel, LoadError>,
    /// Build from a Hugging Face directory (config.json, safetensors, tokenizer.json).
    pub from_hf_dir: fn(&Path, &str, &TransformerOptions) -> Result<LoadedModel, LoadError>,
}

/// A loaded model and what callers report about it.
pub struct LoadedModel {
    pub model: Box<dyn LanguageModel>,
    pub info: ModelInfo,
}

/// Facts about a loaded model beside the [`LanguageModel`] contract (benchmarks, logs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// The registry entry's first name (`llama` for the llama/mistral/qwen2 family).
    pub architecture: &'static str,
    /// Weight precision (`q8`, `f32`, `bf16` …).
    pub precision: String,
    /// Where the forward runs (`cpu` for the host kernels, else the device engine's label).
    pub device: String,
    /// Bytes of weight one decode step reads.
    pub weight_bytes_per_token: usize,
    /// Longest sequence a session may hold.
    pub max_seq_len: usize,
}

impl LoadedModel {
    /// Wrap a decoder-only model.
    pub fn decoder<M: CausalLm + 'static>(architecture: &'static str, m: DecoderLm<M>) -> Self {
        let info = ModelInfo {
            architecture,
            precision: m.precision().to_string(),
            device: "cpu".into(),
            weight_bytes_per_token: m.weight_bytes_per_token(),
            max_seq_len: m.max_seq_len(),
        };
        Self { model: Box::new(m), info }
    }

    /// Wrap a decoder on the device engine.
    pub fn burn(m: crate::burn_lm::BurnDecoder) -> Self {
        let info = ModelInfo {
            architecture: m.spec().architecture,
            precision: m.engine().dtype_name().into(),
            device: m.engine().label.clone(),
            weight_bytes_per_token: m.weight_bytes_per_token(),
            max_seq_len: m.max_seq_len(),
        };
        Self { model: Box::new(m), info }
    }
}

/// The supported architecture names, comma-separated (for error messages).
pub fn supported_architectures() -> String {
    ARCHITECTURES.iter().flat_map(|a| a.names.iter().copied()).collect::<Vec<_>>().join(", ")
}

/// The entry reading `name` (a `general.architecture`, `model_type` or HF class name).
pub fn architecture(name: &str) -> Option<&'static Architecture> {
    ARCHITECTURES.iter().copied().find(|a| a.names.contains(&name) || a.hf_classes.contains(&name))
}

fn unsupported(file: &str, arch: &str) -> LoadError {
    LoadError::UnsupportedArch { file: file.to_string(), arch: arch.to_string(), supported: supported_architectures() }
}

/// Load the model at `loc` (see [`crate::registry::resolve_model`]) through its architecture's
/// loader.
pub fn load_model(loc: &ModelLocation, opts: &TransformerOptions) -> Result<LoadedModel, LoadError> {
    let name = loc.display_name();
    match loc {
        ModelLocation::Gguf { path } => {
            let file = GgufFile::open(path)?;
            load_gguf_model(&file, &name, opts)
        }
        ModelLocation::HfDir { dir, .. } => {
            let path = dir.join("config.json");
            let file = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Io { path: file.clone(), source })?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| LoadError::Config { file: file.clone(), reason: format!("not valid JSON: {e}") })?;
            let arch = json
                .get("model_type")
                .and_then(|v| v.as_str())
                .or_else(|| json.get("architectures").and_then(|a| a.get(0)).and_then(|v| v.as_str()))
                .ok_or_else(|| LoadError::Config {
                    file: file.clone(),
                    reason: "neither \"model_type\" nor \"architectures\" names the architecture".into(),
                })?;
            let entry = architecture(arch).ok_or_else(|| unsupported(&file, arch))?;
            (entry.from_hf_dir)(dir, &name, opts)
        }
    }
}

/// Load the model in an open GGUF file through the loader of its `general.architecture`.
pub fn load_gguf_model(file: &GgufFile, name: &str, opts: &TransformerOptions) -> Result<LoadedModel, LoadError> {
    let arch = file.architecture()?;
    let entry = architecture(arch).ok_or_else(|| unsupported(&file.path().display().to_string(), arch))?;
    (entry.from_gguf)(file, name, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_one_entry() {
        let mut seen = std::collections::HashSet::new();
        for a in ARCHITECTURES {
            for n in a.names.iter().chain(a.hf_classes) {
                assert!(seen.insert(*n), "architecture name {n} is registered twice");
            }
        }
        assert!(architecture("qwen2").is_some() && architecture("MistralForCausalLM").is_some());
        assert!(architecture("gpt_neox").is_none());
        let e = unsupported("x/config.json", "gpt_neox").to_string();
        assert!(e.contains("'gpt_neox'") && e.contains("llama, mistral, qwen2"), "{e}");
    }
}
