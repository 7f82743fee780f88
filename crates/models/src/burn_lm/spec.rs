//! A pre-norm decoder described as plain data: what an architecture file tells the burn forward.
//!
//! The llama family and Gemma 1–3 differ only in knobs (norm form, embedding scale, activation,
//! biases, q/k norms, post-norms, score scale, soft-caps, sliding windows, RoPE bases), so one
//! [`DecoderSpec`] and one forward ([`super::BurnDecoder`]) serve them all on every burn device.

use crate::transformer::{Activation, RopeStyle};

/// One layer's attention settings.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    /// Keys a query sees, itself included (`None`: every earlier position).
    pub window: Option<usize>,
    /// RoPE base θ of this layer.
    pub rope_theta: f32,
}

/// Everything the burn forward needs to know about a decoder-only model.
#[derive(Clone, Debug, PartialEq)]
pub struct DecoderSpec {
    /// The registry entry's first name (`llama`, `gemma`), for [`crate::transformer::ModelInfo`].
    pub architecture: &'static str,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub ffn_dim: usize,
    pub vocab_size: usize,
    pub context_length: usize,
    pub rms_eps: f32,
    /// Norm weights are stored as offsets from one (`(1 + w) · x / rms`, Gemma's HF checkpoints);
    /// `false` where the file stores the scale itself (llama; Gemma GGUF files).
    pub norm_unit_offset: bool,
    /// The embedding is multiplied by this (Gemma: √d).
    pub embed_scale: Option<f32>,
    pub activation: Activation,
    /// Q, K and V projections carry biases (`blk.N.attn_{q,k,v}.bias`: qwen2).
    pub qkv_bias: bool,
    /// Per-head RMSNorms on queries and keys before RoPE (`attn_{q,k}_norm`: Gemma 3).
    pub qk_norm: bool,
    /// A norm after attention and after the MLP (`post_attention_norm`, `post_ffw_norm`: Gemma 2/3).
    pub post_norms: bool,
    /// Attention scores are multiplied by this.
    pub score_scale: f32,
    pub attn_softcap: Option<f32>,
    pub final_softcap: Option<f32>,
    pub rope_style: RopeStyle,
    /// The head is the token embedding (else the source's `output.weight`).
    pub tied_head: bool,
    /// One entry per layer.
    pub layers: Vec<LayerSpec>,
    /// Token ids that end a generation.
    pub eos: Vec<u32>,
}

impl DecoderSpec {
    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
}
