//! [`BurnDecoder`]: a [`DecoderSpec`] on burn tensors, as a [`LanguageModel`] whose sessions keep
//! their KV cache on the device and bring logits back to the host once per call.
//!
//! Shapes: tokens `[k]` → embedding `[k, d]` (· scale) → N × [`Block`] → norm → head `[k, vocab]`
//! (→ soft-cap) → host.

use burn::tensor::{DType, Int, Tensor, TensorData};
use speccascade_core::{LanguageModel, Logits, ModelError, Session, TokenId, check_tokens};

use super::TensorEngine;
use super::cache::KvCache;
use super::layers::{Attention, Linear, Mlp, Norm, RopeTables, upload, visibility_mask};
use super::spec::DecoderSpec;
use crate::transformer::LoadError;
use crate::transformer::weights::{WeightSource, expect, names};

/// Longest block one forward runs; longer prompts are prefilled in chunks of this (bounds the
/// `[heads, k, T]` score tensor).
const PREFILL_CHUNK: usize = 256;

/// One pre-norm layer: `x += post(attn(norm(x))); x += post(mlp(norm(x)))` (post-norms where the
/// spec has them).
pub struct Block {
    attn_norm: Norm,
    attn: Attention,
    post_attn_norm: Option<Norm>,
    ffn_norm: Norm,
    mlp: Mlp,
    post_ffw_norm: Option<Norm>,
}

impl Block {
    fn load(src: &dyn WeightSource, l: usize, spec: &DecoderSpec, e: &TensorEngine) -> Result<Self, LoadError> {
        let n = |w: &str| names::blk(l, w);
        let d = spec.d_model;
        let post = |w: &str| -> Result<Option<Norm>, LoadError> {
            if spec.post_norms { Ok(Some(Norm::load_spec(src, &n(w), d, spec, e)?)) } else { Ok(None) }
        };
        Ok(Self {
            attn_norm: Norm::load_spec(src, &n("attn_norm.weight"), d, spec, e)?,
            attn: Attention::load(src, l, spec, e)?,
            post_attn_norm: post("post_attention_norm.weight")?,
            ffn_norm: Norm::load_spec(src, &n("ffn_norm.weight"), d, spec, e)?,
            mlp: Mlp::load_spec(src, l, spec, e)?,
            post_ffw_norm: post("post_ffw_norm.weight")?,
        })
    }

    /// Shapes: `x: [k, d]` → `[k, d]`.
    fn forward(&self, x: Tensor<2>, step: &Step, l: usize, cache: &mut KvCache) -> Tensor<2> {
        let (rope, mask) = step.layer(l);
        let mut h = self.attn.forward(self.attn_norm.forward(x.clone()), cache.layer_mut(l), step.pos0, rope, mask);
        if let Some(n) = &self.post_attn_norm {
            h = n.forward(h);
        }
        let x = x + h;
        let mut h = self.mlp.forward(self.ffn_norm.forward(x.clone()));
        if let Some(n) = &self.post_ffw_norm {
            h = n.forward(h);
        }
        x + h
    }
}

/// The per-forward inputs shared by layers: RoPE tables per distinct base and masks per distinct
/// window, built once and indexed by layer.
struct Step {
    pos0: usize,
    ropes: Vec<RopeTables>,
    masks: Vec<Tensor<4, burn::tensor::Bool>>,
    /// Per layer: (index into `ropes`, index into `masks`).
    of_layer: Vec<(usize, usize)>,
}

impl Step {
    fn new(spec: &DecoderSpec, pos0: usize, k: usize, e: &TensorEngine) -> Self {
        let (mut thetas, mut windows): (Vec<f32>, Vec<Option<usize>>) = (Vec::new(), Vec::new());
        let mut of_layer = Vec::with_capacity(spec.layers.len());
        for l in &spec.layers {
            let r = thetas.iter().position(|&t| t == l.rope_theta).unwrap_or_else(|| {
                thetas.push(l.rope_theta);
                thetas.len() - 1
            });
            let m = windows.iter().position(|&w| w == l.window).unwrap_or_else(|| {
                windows.push(l.window);
                windows.len() - 1
            });
            of_layer.push((r, m));
        }
        let ropes = thetas.iter().map(|&t| RopeTables::new(spec.rope_style, t, spec.head_dim, pos0, k, e)).collect();
        let masks = windows.iter().map(|&w| visibility_mask(pos0, k, w, e)).collect();
        Self { pos0, ropes, masks, of_layer }
    }

    fn layer(&self, l: usize) -> (&RopeTables, &Tensor<4, burn::tensor::Bool>) {
        let (r, m) = self.of_layer[l];
        (&self.ropes[r], &self.masks[m])
    }
}

/// A decoder-only model on a burn device. Immutable: sequences run in [`BurnSession`]s.
pub struct BurnDecoder {
    name: String,
    spec: DecoderSpec,
    engine: TensorEngine,
    /// `[vocab, d]`.
    embed: Tensor<2>,
    blocks: Vec<Block>,
    norm: Norm,
    /// `None`: the head is the embedding (tied).
    head: Option<Linear>,
    max_seq_len: usize,
}

impl BurnDecoder {
    /// Upload the weights `src` holds (canonical GGUF names) for `spec` to `engine`'s device.
    /// `max_seq_len`: the longest sequence a session may hold (capped by the context length).
    pub fn load(name: &str, spec: DecoderSpec, src: &dyn WeightSource, engine: TensorEngine, max_seq_len: usize) -> Result<Self, LoadError> {
        let e = &engine;
        let (d, vocab) = (spec.d_model, spec.vocab_size);
        let embed = upload(e, expect(src, names::EMBED, &[vocab, d])?.data, [vocab, d]);
        let head = if !spec.tied_head {
            Some(Linear::load(src, &[(names::OUTPUT.to_string(), vocab)], d, None, e)?)
        } else {
            None
        };
        let blocks = (0..spec.n_layers()).map(|l| Block::load(src, l, &spec, e)).collect::<Result<_, _>>()?;
        let norm = Norm::load_spec(src, names::OUTPUT_NORM, d, &spec, e)?;
        let max_seq_len = max_seq_len.min(spec.context_length).max(1);
        Ok(Self { name: name.to_string(), spec, engine, embed, blocks, norm, head, max_seq_len })
    }

    pub fn spec(&self) -> &DecoderSpec {
        &self.spec
    }
    pub fn engine(&self) -> &TensorEngine {
        &self.engine
    }
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// Bytes of weight one decode step reads (every block and the head).
    pub fn weight_bytes_per_token(&self) -> usize {
        let blocks: usize = self.blocks.iter().map(|b| b.attn.weight_bytes() + b.mlp.weight_bytes()).sum();
        let head = match &self.head {
            Some(h) => h.weight_bytes(),
            None => self.embed.shape().num_elements() * self.embed.dtype().size(),
        };
        blocks + head
    }

    /// Run `tokens` at positions `cache.len() ..`, advance the cache, and return the final hidden
    /// states `[k, d]` (still on the device).
    fn forward(&self, tokens: &[TokenId], cache: &mut KvCache) -> Tensor<2> {
        let (k, pos0) = (tokens.len(), cache.len());
        let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
        let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [k]), &self.engine.device);
        let mut x = self.embed.clone().select(0, ids);
        if let Some(s) = self.spec.embed_scale {
            x = x * s as f64;
        }
        let step = Step::new(&self.spec, pos0, k, &self.engine);
        for (l, block) in self.blocks.iter().enumerate() {
            x = block.forward(x, &step, l, cache);
        }
        cache.advance(k);
        self.norm.forward(x)
    }

    /// Logits `[rows, vocab]` of hidden states `[rows, d]`, f32 on the device.
    fn logits(&self, hidden: Tensor<2>) -> Tensor<2> {
        let logits = match &self.head {
            Some(h) => h.forward(hidden),
            None => hidden.matmul(self.embed.clone().transpose()),
        }
        .cast(DType::F32);
        match self.spec.final_softcap {
            Some(cap) => (logits / cap as f64).tanh() * cap as f64,
            None => logits,
        }
    }
}

/// A growing sequence with its KV cache on the device.
pub struct BurnSession<'a> {
    model: &'a BurnDecoder,
    cache: KvCache,
    tokens: Vec<TokenId>,
    prompt_len: usize,
    /// Seconds spent bringing logits back to the host (after the device finished computing them).
    transfer_s: f64,
}

impl<'a> BurnSession<'a> {
    fn new(model: &'a BurnDecoder) -> Self {
        Self { model, cache: KvCache::new(model.spec.n_layers(), model.max_seq_len), tokens: Vec::new(), prompt_len: 0, transfer_s: 0.0 }
    }

    fn to_host(&mut self, logits: Tensor<2>) -> Result<Vec<f32>, ModelError> {
        self.model.engine.to_host(&self.model.name, logits, &mut self.transfer_s)
    }

    /// Append `tokens`; return logits for all of them (`all_rows`) or only the last.
    fn run(&mut self, tokens: &[TokenId], all_rows: bool) -> Result<Logits, ModelError> {
        let vocab = self.model.spec.vocab_size;
        check_tokens(&self.model.name, vocab, tokens, "extend", self.tokens.len(), self.cache.capacity())?;
        let mut out = Vec::with_capacity(if all_rows { tokens.len() * vocab } else { vocab });
        let chunks: Vec<&[TokenId]> = tokens.chunks(PREFILL_CHUNK).collect();
        for (ci, chunk) in chunks.iter().enumerate() {
            let hidden = self.model.forward(chunk, &mut self.cache);
            self.tokens.extend_from_slice(chunk);
            if all_rows {
                let l = self.model.logits(hidden);
                out.extend(self.to_host(l)?);
            } else if ci + 1 == chunks.len() {
                let k = hidden.dims()[0];
                let l = self.model.logits(hidden.narrow(0, k - 1, 1));
                out.extend(self.to_host(l)?);
            }
        }
        let rows = if all_rows { tokens.len() } else { 1 };
        let logits = Logits::new(rows, vocab, out)?;
        logits.validate(&self.model.name, rows, vocab)?;
        Ok(logits)
    }
}

impl Session for BurnSession<'_> {
    fn len(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }

    fn extend(&mut self, tokens: &[TokenId]) -> Result<Logits, ModelError> {
        self.run(tokens, true)
    }

    fn truncate(&mut self, len: usize) -> Result<(), ModelError> {
        if len > self.len() {
            return Err(ModelError::BadTruncate { len, held: self.len() });
        }
        let keep = self.prompt_len + len;
        self.tokens.truncate(keep);
        self.cache.truncate(keep);
        Ok(())
    }

    fn transfer_s(&self) -> f64 {
        self.transfer_s
    }
}

impl LanguageModel for BurnDecoder {
    fn name(&self) -> &str {
        &self.name
    }
    fn vocab_size(&self) -> usize {
        self.spec.vocab_size
    }
    fn eos_ids(&self) -> &[TokenId] {
        &self.spec.eos
    }
    fn start<'a>(&'a self, prompt: &[TokenId]) -> Result<(Box<dyn Session + 'a>, Vec<f32>), ModelError> {
        if prompt.is_empty() {
            return Err(ModelError::Empty(format!("{}: prompt", self.name)));
        }
        let mut s = BurnSession::new(self);
        let logits = s.run(prompt, false)?;
        s.prompt_len = prompt.len();
        Ok((Box::new(s), logits.into_vec()))
    }
}
