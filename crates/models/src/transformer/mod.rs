//! Decoder models on host kernels whose results do not depend on how positions are batched.
//!
//! Layout (one idea per file):
//! - [`ops`]: the activation buffer [`Acts`] and fixed-order primitives (dot, softmax, activations);
//! - components: [`matrix`] (one [`Matrix`] type for f32 / f16 / 8-bit / Q4_K weights, [`Linear`],
//!   [`Embedding`]), [`norm`] ([`RmsNorm`]), [`rope`] ([`Rope`]), [`attention`] ([`attend`],
//!   [`SelfAttention`]), [`mlp`] ([`Mlp`]), [`kv_cache`] ([`KvCache`]);
//! - [`decoder`]: the [`CausalLm`] trait an architecture implements and [`DecoderLm`], which makes
//!   it a [`speccascade_core::LanguageModel`];
//! - [`arch`]: the architecture registry and one file per architecture family;
//! - loading: [`weights`] (the [`WeightSource`] trait), [`gguf_load`], `crate::safetensors_load`.

pub mod arch;
pub mod attention;
pub(crate) mod checks;
mod config;
pub mod decoder;
mod error;
pub mod f16;
mod gguf_load;
pub mod kv_cache;
pub mod matrix;
pub mod mlp;
pub mod norm;
pub mod ops;
mod options;
pub mod q4k;
pub mod q8;
pub mod rope;
pub mod weights;

pub use arch::{
    ARCHITECTURES, Architecture, Llama, LlamaBlock, LoadedModel, ModelInfo, Transformer, architecture, load_gguf_model,
    load_model, supported_architectures,
};
pub use attention::{HeadShape, ScoreBias, ScoreRule, SelfAttention, Visible, attend};
pub use config::{Arch, RopeStyle, TransformerConfig};
pub use decoder::{CausalLm, DecoderLm, DecoderMeta, DecoderSession};
pub use error::LoadError;
pub use gguf_load::{GgufSource, gguf_config, gguf_eos_ids, load_gguf, load_gguf_file};
pub use kv_cache::{KvCache, LayerCache};
pub use matrix::{Embedding, Linear, Matrix, Precision};
pub use mlp::Mlp;
pub use norm::RmsNorm;
pub use ops::{Activation, Acts};
pub use options::TransformerOptions;
pub use rope::Rope;
pub use weights::{HostTensor, MemorySource, WeightSource};

/// Deterministic test inputs shared by the kernels' unit tests.
#[cfg(test)]
mod test_values {
    /// `n` values spread over [-1, 1) from a 64-bit LCG.
    pub fn lcg(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect()
    }
}
