//! T5 (original and v1.1 / Flan-T5) on burn tensors: the encoder runs once per session, each
//! decoder layer's cross-attention keys and values are projected from its output once, and the
//! decoder's self-attention cache lives on the device. The configuration, the relative-position
//! buckets and the head rules are the CPU model's ([`crate::transformer::arch::t5`]).
//!
//! Shapes: encoder ids `[n]` → `[n, d]` → N_enc × [`EncoderBlock`] → norm `[n, d]`; decoder ids
//! `[k]` → `[k, d]` → N_dec × [`DecoderBlock`] → norm (× `d^-½`) → head `[k, vocab]` → host.

use burn::tensor::{Bool, Int, Tensor, TensorData};
use speccascade_core::{LanguageModel, Logits, ModelError, Session, TokenId, check_tokens};

use super::TensorEngine;
use super::cache::KvCache;
use super::layers::{Linear, Mlp, Norm, Scores, attend, upload, visibility_mask};
use crate::transformer::LoadError;
use crate::transformer::arch::t5::{T5Config, relative_bucket};
use crate::transformer::weights::{WeightSource, expect};

/// A relative-position bias table `[num_buckets, heads]`, kept on the host: each forward builds
/// its `[1, heads, k, T]` bias from it.
struct PositionBias {
    table: Vec<f32>,
    bidirectional: bool,
}

impl PositionBias {
    fn load(src: &dyn WeightSource, stack: &str, cfg: &T5Config, bidirectional: bool) -> Result<Self, LoadError> {
        let name = format!("{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
        Ok(Self { table: expect(src, &name, &[cfg.num_buckets, cfg.n_heads])?.data, bidirectional })
    }

    /// Bias of queries at `q0 .. q0 + k` over keys `0 .. t`.
    fn tensor(&self, cfg: &T5Config, q0: usize, k: usize, t: usize, e: &TensorEngine) -> Tensor<4> {
        let h = cfg.n_heads;
        let mut out = vec![0f32; h * k * t];
        for i in 0..k {
            for j in 0..t {
                let b = relative_bucket(j as i64 - (q0 + i) as i64, self.bidirectional, cfg.num_buckets, cfg.max_distance);
                for (hh, &v) in self.table[b * h..(b + 1) * h].iter().enumerate() {
                    out[(hh * k + i) * t + j] = v;
                }
            }
        }
        upload(e, out, [1, h, k, t])
    }
}

fn attention_layer(src: &dyn WeightSource, prefix: &str, cfg: &T5Config, e: &TensorEngine) -> Result<(Linear, Linear), LoadError> {
    let (d, inner) = (cfg.d_model, cfg.n_heads * cfg.d_kv);
    let qkv = Linear::load(src, &[(format!("{prefix}.q.weight"), inner), (format!("{prefix}.k.weight"), inner), (format!("{prefix}.v.weight"), inner)], d, None, e)?;
    let o = Linear::load(src, &[(format!("{prefix}.o.weight"), d)], inner, None, e)?;
    Ok((qkv, o))
}

fn mlp(src: &dyn WeightSource, prefix: &str, cfg: &T5Config, e: &TensorEngine) -> Result<Mlp, LoadError> {
    let up: Vec<String> = if cfg.gated { vec![format!("{prefix}.wi_0.weight"), format!("{prefix}.wi_1.weight")] } else { vec![format!("{prefix}.wi.weight")] };
    Mlp::load(src, &up, &format!("{prefix}.wo.weight"), cfg.d_model, cfg.d_ff, cfg.activation, e)
}

fn norm(src: &dyn WeightSource, name: &str, cfg: &T5Config, e: &TensorEngine) -> Result<Norm, LoadError> {
    Norm::load(src, name, cfg.d_model, cfg.eps, false, e)
}

/// `x += o(attend(qkv(norm(x))) + bias)`, then `x += mlp(norm(x))`.
struct EncoderBlock {
    attn_norm: Norm,
    qkv: Linear,
    o: Linear,
    ffn_norm: Norm,
    mlp: Mlp,
}

/// Self-attention (causal, biased), cross-attention over the encoder output, feed-forward.
struct DecoderBlock {
    self_norm: Norm,
    qkv: Linear,
    o: Linear,
    cross_norm: Norm,
    cross_q: Linear,
    /// K|V fused, applied to the encoder output once per session.
    cross_kv: Linear,
    cross_o: Linear,
    ffn_norm: Norm,
    mlp: Mlp,
}

/// A T5 on a burn device. Immutable: sequences run in [`BurnT5Session`]s.
pub struct BurnT5 {
    name: String,
    cfg: T5Config,
    engine: TensorEngine,
    max_seq_len: usize,
    /// `[vocab, d]`.
    embed: Tensor<2>,
    encoder: Vec<EncoderBlock>,
    encoder_norm: Norm,
    encoder_bias: PositionBias,
    decoder: Vec<DecoderBlock>,
    decoder_norm: Norm,
    decoder_bias: PositionBias,
    /// `None`: the head is the embedding.
    head: Option<Linear>,
}

impl BurnT5 {
    /// Upload a checkpoint's tensors (HF names: `shared.weight`, `encoder.block.{i}.layer.{j}.…`).
    pub fn load(name: &str, cfg: T5Config, src: &dyn WeightSource, engine: TensorEngine, max_seq_len: usize) -> Result<Self, LoadError> {
        let e = &engine;
        let (d, inner) = (cfg.d_model, cfg.n_heads * cfg.d_kv);
        let embed = upload(e, expect(src, "shared.weight", &[cfg.vocab_size, d])?.data, [cfg.vocab_size, d]);
        // The CPU model's rule: an untied head, or an lm_head present where no rescale ties it.
        let head = if !cfg.tied_head || (src.contains("lm_head.weight") && !cfg.scale_decoder_output) {
            Some(Linear::load(src, &[("lm_head.weight".to_string(), cfg.vocab_size)], d, None, e)?)
        } else {
            None
        };
        let mut encoder = Vec::with_capacity(cfg.n_encoder_layers);
        for i in 0..cfg.n_encoder_layers {
            let b = format!("encoder.block.{i}.layer");
            let (qkv, o) = attention_layer(src, &format!("{b}.0.SelfAttention"), &cfg, e)?;
            encoder.push(EncoderBlock {
                attn_norm: norm(src, &format!("{b}.0.layer_norm.weight"), &cfg, e)?,
                qkv,
                o,
                ffn_norm: norm(src, &format!("{b}.1.layer_norm.weight"), &cfg, e)?,
                mlp: mlp(src, &format!("{b}.1.DenseReluDense"), &cfg, e)?,
            });
        }
        let mut decoder = Vec::with_capacity(cfg.n_decoder_layers);
        for i in 0..cfg.n_decoder_layers {
            let b = format!("decoder.block.{i}.layer");
            let c = format!("{b}.1.EncDecAttention");
            let (qkv, o) = attention_layer(src, &format!("{b}.0.SelfAttention"), &cfg, e)?;
            decoder.push(DecoderBlock {
                self_norm: norm(src, &format!("{b}.0.layer_norm.weight"), &cfg, e)?,
                qkv,
                o,
                cross_norm: norm(src, &format!("{b}.1.layer_norm.weight"), &cfg, e)?,
                cross_q: Linear::load(src, &[(format!("{c}.q.weight"), inner)], d, None, e)?,
                cross_kv: Linear::load(src, &[(format!("{c}.k.weight"), inner), (format!("{c}.v.weight"), inner)], d, None, e)?,
                cross_o: Linear::load(src, &[(format!("{c}.o.weight"), d)], inner, None, e)?,
                ffn_norm: norm(src, &format!("{b}.2.layer_norm.weight"), &cfg, e)?,
                mlp: mlp(src, &format!("{b}.2.DenseReluDense"), &cfg, e)?,
            });
        }
        Ok(Self {
            name: name.to_string(),
            max_seq_len: max_seq_len.max(2),
            embed,
            encoder,
            encoder_norm: norm(src, "encoder.final_layer_norm.weight", &cfg, e)?,
            encoder_bias: PositionBias::load(src, "encoder", &cfg, true)?,
            decoder,
            decoder_norm: norm(src, "decoder.final_layer_norm.weight", &cfg, e)?,
            decoder_bias: PositionBias::load(src, "decoder", &cfg, false)?,
            head,
            cfg,
            engine,
        })
    }

    pub fn config(&self) -> &T5Config {
        &self.cfg
    }
    pub fn engine(&self) -> &TensorEngine {
        &self.engine
    }
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// Bytes of weight one decoder step reads (the encoder runs once per session).
    pub fn weight_bytes_per_token(&self) -> usize {
        let blocks: usize = self
            .decoder
            .iter()
            .map(|b| b.qkv.weight_bytes() + b.o.weight_bytes() + b.cross_q.weight_bytes() + b.cross_o.weight_bytes() + b.mlp.weight_bytes())
            .sum();
        let head = match &self.head {
            Some(h) => h.weight_bytes(),
            None => self.embed.shape().num_elements() * self.embed.dtype().size(),
        };
        blocks + head
    }

    fn embed(&self, ids: &[TokenId]) -> Tensor<2> {
        let ids: Vec<i32> = ids.iter().map(|&t| t as i32).collect();
        let n = ids.len();
        self.embed.clone().select(0, Tensor::<1, Int>::from_data(TensorData::new(ids, [n]), &self.engine.device))
    }

    fn heads(&self, x: Tensor<2>) -> Tensor<3> {
        let k = x.dims()[0];
        x.reshape([k, self.cfg.n_heads, self.cfg.d_kv])
    }

    /// The encoder's final hidden states `[n, d]`.
    fn encode(&self, ids: &[TokenId]) -> Tensor<2> {
        let (n, inner) = (ids.len(), self.cfg.n_heads * self.cfg.d_kv);
        let bias = self.encoder_bias.tensor(&self.cfg, 0, n, n, &self.engine);
        let scores = Scores { scale: 1.0, softcap: None, mask: None, bias: Some(bias) };
        let mut x = self.embed(ids);
        for b in &self.encoder {
            let qkv = b.qkv.forward(b.attn_norm.forward(x.clone()));
            let q = self.heads(qkv.clone().narrow(1, 0, inner));
            let k = self.heads(qkv.clone().narrow(1, inner, inner)).swap_dims(0, 1);
            let v = self.heads(qkv.narrow(1, 2 * inner, inner)).swap_dims(0, 1);
            x = x + b.o.forward(attend(q, k, v, &scores));
            x = x.clone() + b.mlp.forward(b.ffn_norm.forward(x));
        }
        self.encoder_norm.forward(x)
    }

    /// Decoder forward of `tokens` at positions `cache.len() ..`; returns f32 logits `[k, vocab]`.
    fn decode(&self, tokens: &[TokenId], cache: &mut KvCache, cross: &[(Tensor<3>, Tensor<3>)]) -> Tensor<2> {
        let (k, pos0, inner) = (tokens.len(), cache.len(), self.cfg.n_heads * self.cfg.d_kv);
        let t = pos0 + k;
        let mask: Tensor<4, Bool> = visibility_mask(pos0, k, None, &self.engine);
        let bias = self.decoder_bias.tensor(&self.cfg, pos0, k, t, &self.engine);
        let self_scores = Scores { scale: 1.0, softcap: None, mask: Some(&mask), bias: Some(bias) };
        let cross_scores = Scores { scale: 1.0, softcap: None, mask: None, bias: None };
        let mut x = self.embed(tokens);
        for (l, b) in self.decoder.iter().enumerate() {
            let qkv = b.qkv.forward(b.self_norm.forward(x.clone()));
            let q = self.heads(qkv.clone().narrow(1, 0, inner));
            let kk = self.heads(qkv.clone().narrow(1, inner, inner)).swap_dims(0, 1);
            let v = self.heads(qkv.narrow(1, 2 * inner, inner)).swap_dims(0, 1);
            let (keys, values) = cache.layer_mut(l).append(pos0, kk, v);
            x = x + b.o.forward(attend(q, keys, values, &self_scores));
            let q = self.heads(b.cross_q.forward(b.cross_norm.forward(x.clone())));
            let (ck, cv) = &cross[l];
            x = x + b.cross_o.forward(attend(q, ck.clone(), cv.clone(), &cross_scores));
            x = x.clone() + b.mlp.forward(b.ffn_norm.forward(x));
        }
        cache.advance(k);
        let mut x = self.decoder_norm.forward(x);
        if self.cfg.scale_decoder_output {
            x = x * (self.cfg.d_model as f64).powf(-0.5);
        }
        match &self.head {
            Some(h) => h.forward(x),
            None => x.matmul(self.embed.clone().transpose()),
        }
        .cast(burn::tensor::DType::F32)
    }

}

/// One decoding: the encoder's cross-attention keys and values, the decoder's cache (the start
/// token, then the continuation).
pub struct BurnT5Session<'a> {
    model: &'a BurnT5,
    /// Per decoder layer: encoder keys and values `[heads, n_enc, d_kv]`.
    cross: Vec<(Tensor<3>, Tensor<3>)>,
    cache: KvCache,
    tokens: Vec<TokenId>,
    transfer_s: f64,
}

impl Session for BurnT5Session<'_> {
    fn len(&self) -> usize {
        self.tokens.len()
    }

    fn extend(&mut self, tokens: &[TokenId]) -> Result<Logits, ModelError> {
        let m = self.model;
        // The decoder holds its start token, then the continuation.
        check_tokens(&m.name, m.cfg.vocab_size, tokens, "extend", 1 + self.tokens.len(), m.max_seq_len)?;
        let logits = m.decode(tokens, &mut self.cache, &self.cross);
        let values = m.engine.to_host(&m.name, logits, &mut self.transfer_s)?;
        self.tokens.extend_from_slice(tokens);
        let logits = Logits::new(tokens.len(), m.cfg.vocab_size, values)?;
        logits.validate(&m.name, tokens.len(), m.cfg.vocab_size)?;
        Ok(logits)
    }

    fn truncate(&mut self, len: usize) -> Result<(), ModelError> {
        if len > self.tokens.len() {
            return Err(ModelError::BadTruncate { len, held: self.tokens.len() });
        }
        self.tokens.truncate(len);
        self.cache.truncate(1 + len);
        Ok(())
    }

    fn transfer_s(&self) -> f64 {
        self.transfer_s
    }
}

impl LanguageModel for BurnT5 {
    fn name(&self) -> &str {
        &self.name
    }
    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }
    fn eos_ids(&self) -> &[TokenId] {
        &self.cfg.eos
    }
    fn start<'a>(&'a self, encoder_input: &[TokenId]) -> Result<(Box<dyn Session + 'a>, Vec<f32>), ModelError> {
        check_tokens(&self.name, self.cfg.vocab_size, encoder_input, "encoder input", 0, usize::MAX)?;
        let enc = self.encode(encoder_input);
        let inner = self.cfg.n_heads * self.cfg.d_kv;
        let cross = self
            .decoder
            .iter()
            .map(|b| {
                let kv = b.cross_kv.forward(enc.clone());
                (self.heads(kv.clone().narrow(1, 0, inner)).swap_dims(0, 1), self.heads(kv.narrow(1, inner, inner)).swap_dims(0, 1))
            })
            .collect();
        let mut s = BurnT5Session { model: self, cross, cache: KvCache::new(self.cfg.n_decoder_layers, self.max_seq_len), tokens: Vec::new(), transfer_s: 0.0 };
        let logits = self.decode(&[self.cfg.decoder_start_token_id], &mut s.cache, &s.cross);
        let first = self.engine.to_host(&self.name, logits, &mut s.transfer_s)?;
        Logits::new(1, self.cfg.vocab_size, first.clone())?.validate(&self.name, 1, self.cfg.vocab_size)?;
        Ok((Box::new(s), first))
    }
}
