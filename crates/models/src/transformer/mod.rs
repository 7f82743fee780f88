//! A decoder-only transformer (llama, qwen2) in burn with its own KV cache and 8-bit or f16 linear
//! layers.

pub(crate) mod checks;
mod config;
mod error;
pub mod f16;
mod gguf_load;
mod kv_cache;
mod linear;
mod load;
mod model;
pub mod q8;
mod rope;
mod session;
mod weights;

pub use config::{Arch, RopeStyle, TransformerConfig};
pub use error::LoadError;
pub use gguf_load::{GgufSource, gguf_config, gguf_eos_ids, load_gguf, load_gguf_file};
pub use kv_cache::KvCache;
pub use linear::Precision;
pub use load::load_model;
pub use model::{Transformer, TransformerOptions};
pub use session::TransformerSession;
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
