//! The hyper-parameters of a llama / qwen2 decoder, read from GGUF metadata or an HF `config.json`.

use serde::{Deserialize, Serialize};

use super::error::LoadError;

/// How rotary embeddings pair up the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RopeStyle {
    /// Dimension `i` rotates with `i + d/2` (HF `rotate_half`, llama.cpp NEOX; qwen2 everywhere,
    /// and llama in HF checkpoints).
    SplitHalf,
    /// Dimension `2i` rotates with `2i + 1` (llama.cpp NORM). GGUF llama files use it: the
    /// converter permutes the rows of `attn_q`/`attn_k` so that interleaved pairs on the stored
    /// weights equal HF's split-half rotation on the original ones.
    Interleaved,
}

/// The architecture families this decoder covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Llama,
    Qwen2,
}

impl Arch {
    pub fn parse(name: &str) -> Option<Arch> {
        match name {
            "llama" | "mistral" | "LlamaForCausalLM" | "MistralForCausalLM" => Some(Arch::Llama),
            "qwen2" | "Qwen2ForCausalLM" => Some(Arch::Qwen2),
            _ => None,
        }
    }
}

/// Everything the forward pass needs to know about the model's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransformerConfig {
    pub arch: Arch,
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub ffn_dim: usize,
    pub vocab_size: usize,
    pub rope_theta: f32,
    pub rms_eps: f32,
    pub context_length: usize,
    pub rope_style: RopeStyle,
    /// Q, K and V projections carry biases (qwen2).
    pub qkv_bias: bool,
    /// The output projection is the token embedding (no separate `lm_head`).
    pub tied_embeddings: bool,
}

/// Architecture limits: sizes beyond these are corrupt or hostile files, not models (the largest
/// open models have 126 layers, d_model 16 384, 128 heads, head_dim 256, ffn 53 248, vocab 256 000).
/// Checked before anything is allocated from them.
pub mod limits {
    pub const MAX_LAYERS: usize = 1024;
    pub const MAX_D_MODEL: usize = 1 << 17;
    pub const MAX_HEADS: usize = 1024;
    pub const MAX_HEAD_DIM: usize = 1024;
    pub const MAX_FFN_DIM: usize = 1 << 20;
    pub const MAX_VOCAB: usize = 1 << 22;
    pub const MAX_CONTEXT: usize = 1 << 30;
}

impl TransformerConfig {
    /// Check the invariants the forward pass relies on, and the architecture [`limits`].
    pub fn validate(&self, source: &str) -> Result<(), LoadError> {
        let bad = |reason: String| Err(LoadError::Config { file: source.to_string(), reason });
        use limits::*;
        for (field, value, max) in [
            ("n_layers (block_count / num_hidden_layers)", self.n_layers, MAX_LAYERS),
            ("d_model (embedding_length / hidden_size)", self.d_model, MAX_D_MODEL),
            ("n_heads (attention.head_count / num_attention_heads)", self.n_heads, MAX_HEADS),
            ("n_kv_heads (attention.head_count_kv / num_key_value_heads)", self.n_kv_heads, MAX_HEADS),
            ("head_dim (attention.key_length / head_dim)", self.head_dim, MAX_HEAD_DIM),
            ("ffn_dim (feed_forward_length / intermediate_size)", self.ffn_dim, MAX_FFN_DIM),
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("context_length (context_length / max_position_embeddings)", self.context_length, MAX_CONTEXT),
        ] {
            if value > max {
                return bad(format!("{field} = {value} is over the architecture limit of {max}"));
            }
        }
        for (field, value) in [("rms_eps (layer_norm_rms_epsilon / rms_norm_eps)", self.rms_eps), ("rope_theta (rope.freq_base / rope_theta)", self.rope_theta)] {
            if !(value.is_finite() && value > 0.0) {
                return bad(format!("{field} = {value}: expected a positive finite number"));
            }
        }
        if self.n_layers == 0 || self.d_model == 0 || self.n_heads == 0 || self.n_kv_heads == 0 {
            return bad(format!("zero-sized dimension in {self:?}"));
        }
        if self.n_heads % self.n_kv_heads != 0 {
            return bad(format!(
                "head count {} is not a multiple of the key/value head count {}",
                self.n_heads, self.n_kv_heads
            ));
        }
        if self.head_dim % 2 != 0 {
            return bad(format!("head dimension {} must be even for rotary embeddings", self.head_dim));
        }
        if self.vocab_size == 0 || self.ffn_dim == 0 || self.context_length == 0 {
            return bad("vocabulary, feed-forward size and context length must be positive".into());
        }
        Ok(())
    }

    /// Read the config from GGUF metadata. `get_num(key)` / `get_str(key)` return a value or `None`;
    /// `vocab_size` comes from the tokenizer's token list or the embedding tensor.
    pub fn from_gguf(
        source: &str,
        arch_name: &str,
        get_num: &dyn Fn(&str) -> Option<f64>,
        get_str: &dyn Fn(&str) -> Option<String>,
        vocab_size: usize,
        tied_embeddings: bool,
        qkv_bias: bool,
    ) -> Result<Self, LoadError> {
        let arch = Arch::parse(arch_name).ok_or_else(|| LoadError::UnsupportedArch {
            file: source.to_string(),
            arch: arch_name.to_string(),
            supported: super::arch::supported_architectures(),
        })?;
        let need = |k: &str| -> Result<f64, LoadError> {
            let key = format!("{arch_name}.{k}");
            get_num(&key).ok_or_else(|| LoadError::Config {
                file: source.to_string(),
                reason: format!("metadata key '{key}' is missing or not a number"),
            })
        };
        // A size must be a whole, non-negative number: never rounded or wrapped into range
        // (`validate` then checks it against the architecture limits).
        let whole = |k: &str, v: f64| -> Result<usize, LoadError> {
            if v >= 0.0 && v.fract() == 0.0 && v < 2f64.powi(63) {
                Ok(v as usize)
            } else {
                Err(LoadError::Config { file: source.to_string(), reason: format!("metadata key '{arch_name}.{k}' = {v} is not a whole non-negative number") })
            }
        };
        let need_int = |k: &str| need(k).and_then(|v| whole(k, v));
        let opt_int = |k: &str| get_num(&format!("{arch_name}.{k}")).map(|v| whole(k, v)).transpose();
        if let Some(kind) = get_str(&format!("{arch_name}.rope.scaling.type")).filter(|k| *k != "none") {
            return Err(LoadError::Config {
                file: source.to_string(),
                reason: format!("rope scaling '{kind}' is not supported (plain RoPE only)"),
            });
        }
        let d_model = need_int("embedding_length")?;
        let n_heads = need_int("attention.head_count")?;
        let n_kv_heads = opt_int("attention.head_count_kv")?.unwrap_or(n_heads);
        let head_dim = opt_int("attention.key_length")?.unwrap_or(if n_heads > 0 { d_model / n_heads } else { 0 });
        let cfg = TransformerConfig {
            arch,
            n_layers: need_int("block_count")?,
            d_model,
            n_heads,
            n_kv_heads,
            head_dim,
            ffn_dim: need_int("feed_forward_length")?,
            vocab_size,
            rope_theta: get_num(&format!("{arch_name}.rope.freq_base")).unwrap_or(10_000.0) as f32,
            rms_eps: need("attention.layer_norm_rms_epsilon")? as f32,
            context_length: need_int("context_length")?,
            rope_style: match arch {
                Arch::Llama => RopeStyle::Interleaved,
                Arch::Qwen2 => RopeStyle::SplitHalf,
            },
            qkv_bias,
            tied_embeddings,
        };
        cfg.validate(source)?;
        Ok(cfg)
    }

    /// Read the config from a Hugging Face `config.json`.
    pub fn from_hf_json(source: &str, json: &str) -> Result<Self, LoadError> {
        let raw: HfConfig = serde_json::from_str(json).map_err(|e| LoadError::Config {
            file: source.to_string(),
            reason: format!("not a valid config.json: {e}"),
        })?;
        let arch_name = raw
            .model_type
            .clone()
            .or_else(|| raw.architectures.as_ref().and_then(|a| a.first().cloned()))
            .unwrap_or_default();
        let arch = Arch::parse(&arch_name).ok_or_else(|| LoadError::UnsupportedArch {
            file: source.to_string(),
            arch: arch_name.clone(),
            supported: super::arch::supported_architectures(),
        })?;
        let unsupported = |reason: String| LoadError::Config { file: source.to_string(), reason };
        if let Some(act) = raw.hidden_act.as_deref().filter(|a| *a != "silu") {
            return Err(unsupported(format!("hidden_act '{act}' is not supported (expected silu)")));
        }
        if let Some(scaling) = raw.rope_scaling.as_ref().filter(|v| !v.is_null()) {
            return Err(unsupported(format!("rope_scaling {scaling} is not supported (plain RoPE only)")));
        }
        let n_heads = raw.num_attention_heads;
        let cfg = TransformerConfig {
            arch,
            n_layers: raw.num_hidden_layers,
            d_model: raw.hidden_size,
            n_heads,
            n_kv_heads: raw.num_key_value_heads.unwrap_or(n_heads),
            head_dim: raw.head_dim.unwrap_or(if n_heads > 0 { raw.hidden_size / n_heads } else { 0 }),
            ffn_dim: raw.intermediate_size,
            vocab_size: raw.vocab_size,
            rope_theta: raw.rope_theta.unwrap_or(10_000.0) as f32,
            rms_eps: raw.rms_norm_eps.unwrap_or(1e-6) as f32,
            context_length: raw.max_position_embeddings.unwrap_or(4096),
            rope_style: RopeStyle::SplitHalf,
            qkv_bias: raw.attention_bias.unwrap_or(arch == Arch::Qwen2),
            tied_embeddings: raw.tie_word_embeddings.unwrap_or(false),
        };
        cfg.validate(source)?;
        Ok(cfg)
    }

    /// Query heads sharing one key/value head.
    pub fn group(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }
}

/// The fields of an HF `config.json` that matter here.
#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    architectures: Option<Vec<String>>,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    vocab_size: usize,
    rope_theta: Option<f64>,
    rms_norm_eps: Option<f64>,
    max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    hidden_act: Option<String>,
    rope_scaling: Option<serde_json::Value>,
}
