//! The llama family: llama, mistral and qwen2 (pre-norm blocks of grouped-query self-attention
//! with RoPE and a SwiGLU MLP; qwen2 adds Q/K/V biases).
//!
//! Shapes: tokens `[k]` → embedding `[k, d]` → N × [`LlamaBlock`] → RMSNorm → head `[k, vocab]`.

use std::path::Path;
use std::sync::Arc;

use crate::burn_lm::{BurnDecoder, DecoderSpec, LayerSpec, TensorEngine};
use crate::gguf::GgufFile;
use crate::transformer::arch::{Architecture, LoadedModel};
use crate::transformer::attention::{HeadShape, ScoreRule, SelfAttention};
use crate::transformer::config::TransformerConfig;
use crate::transformer::decoder::{CausalLm, DecoderLm, DecoderMeta, advance_all, batch_rows, layer_caches};
use crate::transformer::error::LoadError;
use crate::transformer::kv_cache::{KvCache, LayerCache};
use crate::transformer::matrix::{Embedding, Linear, Matrix};
use crate::transformer::mlp::Mlp;
use crate::transformer::norm::RmsNorm;
use crate::transformer::ops::{Activation, Acts};
use crate::transformer::rope::Rope;
use crate::transformer::weights::{WeightSource, expect, names};
use crate::transformer::{GgufSource, TransformerOptions, gguf_config, gguf_eos_ids, load_gguf_file};

/// The registry entry (see [`super::ARCHITECTURES`]).
pub const ARCHITECTURE: Architecture = Architecture {
    names: &["llama", "mistral", "qwen2"],
    hf_classes: &["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"],
    from_gguf,
    from_hf_dir,
};

fn from_gguf(file: &GgufFile, name: &str, opts: &TransformerOptions) -> Result<LoadedModel, LoadError> {
    match &opts.engine {
        None => Ok(LoadedModel::decoder("llama", load_gguf_file(file, name, opts)?)),
        Some(engine) => {
            let cfg = gguf_config(file)?;
            let eos = gguf_eos_ids(file, cfg.vocab_size)?;
            on_device(name, cfg, eos, &GgufSource::new(file), engine, opts)
        }
    }
}

fn from_hf_dir(dir: &Path, name: &str, opts: &TransformerOptions) -> Result<LoadedModel, LoadError> {
    match &opts.engine {
        None => Ok(LoadedModel::decoder("llama", crate::safetensors_load::load_hf_dir(dir, name, opts)?)),
        Some(engine) => {
            let (cfg, src, eos) = crate::safetensors_load::hf_source(dir, opts)?;
            on_device(name, cfg, eos, &src, engine, opts)
        }
    }
}

/// The same model on the device engine ([`crate::burn_lm`]).
fn on_device(
    name: &str,
    cfg: TransformerConfig,
    eos: Vec<u32>,
    src: &dyn WeightSource,
    engine: &TensorEngine,
    opts: &TransformerOptions,
) -> Result<LoadedModel, LoadError> {
    cfg.validate(&src.describe())?;
    crate::transformer::checks::check_weights(&cfg, src)?;
    let spec = DecoderSpec {
        architecture: "llama",
        d_model: cfg.d_model,
        n_heads: cfg.n_heads,
        n_kv_heads: cfg.n_kv_heads,
        head_dim: cfg.head_dim,
        ffn_dim: cfg.ffn_dim,
        vocab_size: cfg.vocab_size,
        context_length: cfg.context_length,
        rms_eps: cfg.rms_eps,
        norm_unit_offset: false,
        embed_scale: None,
        activation: Activation::Silu,
        qkv_bias: cfg.qkv_bias,
        qk_norm: false,
        post_norms: false,
        score_scale: ScoreRule::scaled(cfg.head_dim).scale,
        attn_softcap: None,
        final_softcap: None,
        rope_style: cfg.rope_style,
        tied_head: cfg.tied_embeddings || !src.contains(names::OUTPUT),
        layers: vec![LayerSpec { window: None, rope_theta: cfg.rope_theta }; cfg.n_layers],
        eos,
    };
    Ok(LoadedModel::burn(BurnDecoder::load(name, spec, src, engine.clone(), opts.max_seq_len)?))
}

/// A loaded llama-family decoder as a [`speccascade_core::LanguageModel`].
pub type Transformer = DecoderLm<Llama>;

/// One pre-norm block: `x += attn(norm(x)); x += mlp(norm(x))`.
pub struct LlamaBlock {
    attn_norm: RmsNorm,
    attn: SelfAttention,
    ffn_norm: RmsNorm,
    mlp: Mlp,
}

impl LlamaBlock {
    /// Load block `l` (GGUF tensor names, `blk.{l}.…`).
    fn load(
        src: &dyn WeightSource,
        cfg: &TransformerConfig,
        l: usize,
        rope: &Arc<Rope>,
        opts: &TransformerOptions,
    ) -> Result<Self, LoadError> {
        let (d, p) = (cfg.d_model, opts.precision);
        let shape = HeadShape { n_heads: cfg.n_heads, n_kv_heads: cfg.n_kv_heads, head_dim: cfg.head_dim };
        let (q_dim, kv_dim) = (shape.q_dim(), shape.kv_dim());
        let n = |w: &str| names::blk(l, w);
        let bias = |w: &str, len: usize| -> Result<Vec<f32>, LoadError> { Ok(expect(src, &n(w), &[len])?.data) };
        let qkv_bias = if cfg.qkv_bias {
            Some([bias("attn_q.bias", q_dim)?, bias("attn_k.bias", kv_dim)?, bias("attn_v.bias", kv_dim)?].concat())
        } else {
            None
        };
        let qkv = Linear::load(
            src,
            &[(n("attn_q.weight"), q_dim), (n("attn_k.weight"), kv_dim), (n("attn_v.weight"), kv_dim)],
            d,
            qkv_bias,
            p,
        )?;
        let o = Linear::load(src, &[(n("attn_output.weight"), d)], q_dim, None, p)?;
        let gate_up =
            Linear::load(src, &[(n("ffn_gate.weight"), cfg.ffn_dim), (n("ffn_up.weight"), cfg.ffn_dim)], d, None, p)?;
        let down = Linear::load(src, &[(n("ffn_down.weight"), d)], cfg.ffn_dim, None, p)?;
        Ok(Self {
            attn_norm: RmsNorm::load(src, &n("attn_norm.weight"), d, cfg.rms_eps)?,
            attn: SelfAttention::new(qkv, o, shape, ScoreRule::scaled(cfg.head_dim), Some(rope.clone())),
            ffn_norm: RmsNorm::load(src, &n("ffn_norm.weight"), d, cfg.rms_eps)?,
            mlp: Mlp::gated(gate_up, down, Activation::Silu),
        })
    }

    /// Shapes: `x: [Σ rows, d]` in place, the rows of several sequences one after another
    /// ([`SelfAttention::forward_many`]); appends `rows[i]` positions to `caches[i]`.
    pub fn forward(&self, x: &mut Acts, rows: &[usize], caches: &mut [&mut LayerCache]) {
        let h = self.attn.forward_many(&self.attn_norm.forward(x), rows, caches);
        x.add_assign(&h);
        let h = self.mlp.forward(&self.ffn_norm.forward(x));
        x.add_assign(&h);
    }

    fn weight_bytes(&self) -> usize {
        self.attn.weight_bytes() + self.mlp.weight_bytes()
    }
}

/// The weights of a llama-family decoder. Immutable: sequences run in sessions of [`DecoderLm`].
pub struct Llama {
    meta: DecoderMeta,
    cfg: TransformerConfig,
    embed: Embedding,
    blocks: Vec<LlamaBlock>,
    norm: RmsNorm,
    head: Linear,
}

impl Llama {
    /// Build from named tensors (GGUF names, see [`names`]).
    pub fn from_source(
        name: &str,
        cfg: TransformerConfig,
        src: &dyn WeightSource,
        opts: &TransformerOptions,
    ) -> Result<Self, LoadError> {
        cfg.validate(&src.describe())?;
        // Before a layer is allocated: every shape the config implies against the weights present.
        crate::transformer::checks::check_weights(&cfg, src)?;
        let (d, p) = (cfg.d_model, opts.precision);
        let embed = Embedding::new(Matrix::load(src, &[(names::EMBED.to_string(), cfg.vocab_size)], d, p)?);
        let head = if cfg.tied_embeddings || !src.contains(names::OUTPUT) {
            embed.tied_head()
        } else {
            Linear::load(src, &[(names::OUTPUT.to_string(), cfg.vocab_size)], d, None, p)?
        };
        let max_seq_len = opts.max_seq_len.min(cfg.context_length).max(1);
        let rope = Arc::new(Rope::new(cfg.rope_style, cfg.head_dim, cfg.rope_theta, max_seq_len));
        let blocks =
            (0..cfg.n_layers).map(|l| LlamaBlock::load(src, &cfg, l, &rope, opts)).collect::<Result<_, _>>()?;
        let norm = RmsNorm::load(src, names::OUTPUT_NORM, d, cfg.rms_eps)?;
        let meta = DecoderMeta {
            name: name.to_string(),
            vocab_size: cfg.vocab_size,
            eos: Vec::new(),
            max_seq_len,
            precision: p,
        };
        Ok(Self { meta, cfg, embed, blocks, norm, head })
    }

    pub fn config(&self) -> &TransformerConfig {
        &self.cfg
    }
}

impl DecoderLm<Llama> {
    /// [`Llama::from_source`] as a language model.
    pub fn from_source(
        name: &str,
        cfg: TransformerConfig,
        src: &dyn WeightSource,
        opts: &TransformerOptions,
    ) -> Result<Self, LoadError> {
        Ok(DecoderLm::new(Llama::from_source(name, cfg, src, opts)?))
    }
}

impl CausalLm for Llama {
    fn meta(&self) -> &DecoderMeta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut DecoderMeta {
        &mut self.meta
    }
    fn new_cache(&self) -> KvCache {
        KvCache::new(self.cfg.n_layers, self.cfg.n_kv_heads * self.cfg.head_dim, self.meta.max_seq_len)
    }
    fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Acts {
        self.forward_many(&[tokens], &mut [cache])
    }
    fn forward_many(&self, tokens: &[&[u32]], caches: &mut [&mut KvCache]) -> Acts {
        let (rows, flat) = batch_rows(tokens, caches);
        let mut x = self.embed.forward(&flat);
        for (l, block) in self.blocks.iter().enumerate() {
            block.forward(&mut x, &rows, &mut layer_caches(caches, l));
        }
        advance_all(caches, &rows);
        self.norm.forward_in_place(&mut x);
        x
    }
    fn logits(&self, hidden: &Acts) -> Acts {
        self.head.forward(hidden)
    }
    fn weight_bytes_per_token(&self) -> usize {
        self.blocks.iter().map(LlamaBlock::weight_bytes).sum::<usize>() + self.head.weight().byte_len()
    }
}
