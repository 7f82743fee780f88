//! T5, the encoder-decoder: original T5 (`t5-small` … `t5-3b`: ReLU feed-forward, head tied to
//! the embedding with the decoder output rescaled by `d_model^-½`) and T5 v1.1 / Flan-T5
//! (gated tanh-GELU feed-forward, untied head, no rescale).
//!
//! - Attention scores are `q·k` (no `1/√d`) plus a learned relative position bias: bidirectional
//!   buckets in the encoder, unidirectional (the key's distance back from the query) in decoder
//!   self-attention, none in cross-attention. Each stack's first layer owns the table; every layer
//!   of the stack adds the same bias.
//! - Layer norms are RMSNorms without a unit offset, applied before each sub-layer.
//! - [`LanguageModel::start`] runs the encoder on the conditioning, projects the encoder output to
//!   each decoder layer's cross-attention keys and values once, and runs the decoder on
//!   `decoder_start_token_id`; the session then holds 0 continuation tokens.
//!
//! Shapes: encoder ids `[n]` → `[n, d]` → N_enc × [`EncoderBlock`] → norm `[n, d]`;
//! decoder ids `[k]` → `[k, d]` → N_dec × [`DecoderBlock`] → norm (× `d^-½`) → head `[k, vocab]`.
//!
//! Reference: transformers' modeling_t5.py (4.x; tests/paper_parity.rs compares with logits it
//! recorded). Candle's t5.rs is not: it buckets the decoder bidirectionally and scales the tied
//! head differently.

use std::path::Path;

use serde_json::Value as Json;
use speccascade_core::{LanguageModel, Logits, ModelError, Session, TokenId, check_tokens};

use crate::gguf::GgufFile;
use crate::hf_tensors::{HfTensors, as_size, cfg_err, eos_ids, read_config_json};
use crate::transformer::TransformerOptions;
use crate::transformer::arch::{Architecture, LoadedModel, ModelInfo};
use crate::transformer::attention::{HeadShape, ScoreRule, SelfAttention, Visible, attend};
use crate::transformer::error::LoadError;
use crate::transformer::kv_cache::KvCache;
use crate::transformer::matrix::{Embedding, Linear, Matrix, Precision};
use crate::transformer::mlp::Mlp;
use crate::transformer::norm::RmsNorm;
use crate::transformer::ops::{Activation, Acts};
use crate::transformer::weights::{WeightSource, expect};

/// The registry entry (see [`super::ARCHITECTURES`]).
pub const ARCHITECTURE: Architecture = Architecture {
    names: &["t5"],
    hf_classes: &["T5ForConditionalGeneration"],
    from_gguf,
    from_hf_dir,
};

fn from_gguf(
    file: &GgufFile,
    _name: &str,
    _opts: &TransformerOptions,
) -> Result<LoadedModel, LoadError> {
    Err(LoadError::Config {
        file: file.path().display().to_string(),
        reason: "T5 loads from a Hugging Face directory (config.json, model.safetensors, tokenizer.json), not GGUF".into(),
    })
}

fn from_hf_dir(
    dir: &Path,
    name: &str,
    opts: &TransformerOptions,
) -> Result<LoadedModel, LoadError> {
    let (file, json) = read_config_json(dir)?;
    let cfg = T5Config::from_hf_json(&file, &json)?;
    let tensors = HfTensors::open(dir)?;
    if let Some(engine) = &opts.engine {
        let m = crate::burn_lm::BurnT5::load(name, cfg, &tensors, engine.clone(), opts.max_seq_len)?;
        let info = ModelInfo {
            architecture: "t5",
            precision: engine.dtype_name().into(),
            device: engine.label.clone(),
            weight_bytes_per_token: m.weight_bytes_per_token(),
            max_seq_len: m.max_seq_len(),
        };
        return Ok(LoadedModel { model: Box::new(m), info });
    }
    let m = T5::from_source(name, cfg, &tensors, opts)?;
    let info = ModelInfo {
        architecture: "t5",
        precision: m.precision.to_string(),
        device: "cpu".into(),
        weight_bytes_per_token: m.weight_bytes_per_token(),
        max_seq_len: m.max_seq_len,
    };
    Ok(LoadedModel {
        model: Box::new(m),
        info,
    })
}

/// The hyper-parameters of a T5 checkpoint (HF `config.json`).
#[derive(Clone, Debug, PartialEq)]
pub struct T5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    /// Per-head width (`d_kv`); the attention's inner width is `n_heads · d_kv`.
    pub d_kv: usize,
    pub d_ff: usize,
    pub n_encoder_layers: usize,
    pub n_decoder_layers: usize,
    pub n_heads: usize,
    pub num_buckets: usize,
    pub max_distance: usize,
    pub eps: f32,
    pub activation: Activation,
    pub gated: bool,
    /// The head is the shared embedding (original T5) rather than `lm_head`.
    pub tied_head: bool,
    /// Multiply the decoder output by `d_model^-½` before the head (original T5).
    pub scale_decoder_output: bool,
    pub decoder_start_token_id: u32,
    pub eos: Vec<u32>,
}

impl T5Config {
    pub fn from_hf_json(file: &str, j: &Json) -> Result<Self, LoadError> {
        let num = |k: &str| j.get(k).filter(|v| !v.is_null()).and_then(Json::as_f64);
        let size = |k: &str| -> Result<usize, LoadError> {
            let v = num(k)
                .ok_or_else(|| cfg_err(file, format!("field '{k}' is missing or not a number")))?;
            as_size(file, &format!("field '{k}'"), v)
        };
        let size_or = |k: &str, d: usize| if num(k).is_some() { size(k) } else { Ok(d) };
        let proj = j
            .get("feed_forward_proj")
            .and_then(Json::as_str)
            .unwrap_or("relu");
        let (gated, act) = match proj.split_once('-') {
            Some(("gated", act)) => (true, act),
            None => (false, proj),
            Some(_) => {
                return Err(cfg_err(
                    file,
                    format!("feed_forward_proj '{proj}' is not 'ACT' or 'gated-ACT'"),
                ));
            }
        };
        let activation = match act {
            "relu" => Activation::Relu,
            // transformers maps "gated-gelu" to gelu_new, the tanh approximation.
            "gelu" if gated => Activation::GeluTanh,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            "silu" | "swish" => Activation::Silu,
            other => {
                return Err(cfg_err(
                    file,
                    format!(
                        "feed_forward_proj activation '{other}' is not supported (relu, gelu_new, silu)"
                    ),
                ));
            }
        };
        let tie = j
            .get("tie_word_embeddings")
            .and_then(Json::as_bool)
            .unwrap_or(true);
        // transformers 5 writes scale_decoder_outputs beside a forced tie_word_embeddings = true.
        let scale = j
            .get("scale_decoder_outputs")
            .and_then(Json::as_bool)
            .unwrap_or(tie);
        let n_encoder_layers = size("num_layers")?;
        let id = |k: &str, d: u32| -> Result<u32, LoadError> {
            Ok(if num(k).is_some() {
                u32::try_from(size(k)?).map_err(|_| cfg_err(file, format!("'{k}' is too large")))?
            } else {
                d
            })
        };
        let pad = id("pad_token_id", 0)?;
        let vocab_size = size("vocab_size")?;
        // T5's `</s>` is id 1 when the config names none.
        let eos = match eos_ids(file, j.get("eos_token_id"), vocab_size)? {
            ids if ids.is_empty() => vec![1],
            ids => ids,
        };
        let cfg = T5Config {
            vocab_size,
            d_model: size("d_model")?,
            d_kv: size("d_kv")?,
            d_ff: size("d_ff")?,
            n_encoder_layers,
            n_decoder_layers: size_or("num_decoder_layers", n_encoder_layers)?,
            n_heads: size("num_heads")?,
            num_buckets: size_or("relative_attention_num_buckets", 32)?,
            max_distance: size_or("relative_attention_max_distance", 128)?,
            eps: num("layer_norm_epsilon").unwrap_or(1e-6) as f32,
            activation,
            gated,
            tied_head: tie,
            scale_decoder_output: scale,
            decoder_start_token_id: id("decoder_start_token_id", pad)?,
            eos,
        };
        if cfg.vocab_size == 0
            || cfg.d_model == 0
            || cfg.d_kv == 0
            || cfg.d_ff == 0
            || cfg.n_heads == 0
        {
            return Err(cfg_err(file, format!("zero-sized dimension in {cfg:?}")));
        }
        if cfg.n_encoder_layers == 0 || cfg.n_decoder_layers == 0 {
            return Err(cfg_err(
                file,
                "num_layers and num_decoder_layers must be positive",
            ));
        }
        if cfg.num_buckets < 4 || cfg.max_distance < cfg.num_buckets / 4 + 1 {
            return Err(cfg_err(
                file,
                "relative_attention_num_buckets must be >= 4 and max_distance above num_buckets / 4",
            ));
        }
        if cfg.decoder_start_token_id as usize >= cfg.vocab_size {
            return Err(cfg_err(
                file,
                format!(
                    "decoder_start_token_id {} is outside the vocabulary",
                    cfg.decoder_start_token_id
                ),
            ));
        }
        Ok(cfg)
    }

    fn inner(&self) -> usize {
        self.n_heads * self.d_kv
    }
}

/// The bucket of a key at `rel = key − query` positions from its query (transformers'
/// `_relative_position_bucket`, with its f32 logarithm).
pub fn relative_bucket(
    rel: i64,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> usize {
    let mut nb = num_buckets as i64;
    let mut base = 0i64;
    let n = if bidirectional {
        nb /= 2;
        if rel > 0 {
            base = nb;
        }
        rel.abs()
    } else {
        (-rel).max(0)
    };
    let max_exact = nb / 2;
    if n < max_exact {
        return (base + n) as usize;
    }
    let log_ratio = (max_distance as f64 / max_exact as f64).ln() as f32;
    let large = max_exact
        + ((n as f32 / max_exact as f32).ln() / log_ratio * (nb - max_exact) as f32) as i64;
    (base + large.min(nb - 1)) as usize
}

/// A relative-position bias table `[num_buckets, n_heads]` (HF `relative_attention_bias`).
struct PositionBias {
    table: Vec<f32>,
    n_heads: usize,
    num_buckets: usize,
    max_distance: usize,
    bidirectional: bool,
}

impl PositionBias {
    /// `bias[(offset + rel) · heads + h]` for `rel` in `-back ..= forward`.
    fn by_offset(&self, back: usize, forward: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity((back + forward + 1) * self.n_heads);
        for rel in -(back as i64)..=forward as i64 {
            let b = relative_bucket(rel, self.bidirectional, self.num_buckets, self.max_distance);
            out.extend_from_slice(&self.table[b * self.n_heads..(b + 1) * self.n_heads]);
        }
        out
    }
}

/// Fused Q|K|V, output projection and the attention's head layout.
fn load_attention(
    src: &dyn WeightSource,
    prefix: &str,
    cfg: &T5Config,
    p: Precision,
) -> Result<(Linear, Linear), LoadError> {
    let (d, inner) = (cfg.d_model, cfg.inner());
    let qkv = Linear::load(
        src,
        &[
            (format!("{prefix}.q.weight"), inner),
            (format!("{prefix}.k.weight"), inner),
            (format!("{prefix}.v.weight"), inner),
        ],
        d,
        None,
        p,
    )?;
    let o = Linear::load(src, &[(format!("{prefix}.o.weight"), d)], inner, None, p)?;
    Ok((qkv, o))
}

fn load_mlp(
    src: &dyn WeightSource,
    prefix: &str,
    cfg: &T5Config,
    p: Precision,
) -> Result<Mlp, LoadError> {
    let (d, f) = (cfg.d_model, cfg.d_ff);
    let down = Linear::load(src, &[(format!("{prefix}.wo.weight"), d)], f, None, p)?;
    Ok(if cfg.gated {
        let gate_up = Linear::load(
            src,
            &[
                (format!("{prefix}.wi_0.weight"), f),
                (format!("{prefix}.wi_1.weight"), f),
            ],
            d,
            None,
            p,
        )?;
        Mlp::gated(gate_up, down, cfg.activation)
    } else {
        Mlp::plain(
            Linear::load(src, &[(format!("{prefix}.wi.weight"), f)], d, None, p)?,
            down,
            cfg.activation,
        )
    })
}

fn norm(src: &dyn WeightSource, name: &str, cfg: &T5Config) -> Result<RmsNorm, LoadError> {
    RmsNorm::load(src, name, cfg.d_model, cfg.eps)
}

fn bias_table(
    src: &dyn WeightSource,
    name: &str,
    cfg: &T5Config,
    bidirectional: bool,
) -> Result<PositionBias, LoadError> {
    Ok(PositionBias {
        table: expect(src, name, &[cfg.num_buckets, cfg.n_heads])?.data,
        n_heads: cfg.n_heads,
        num_buckets: cfg.num_buckets,
        max_distance: cfg.max_distance,
        bidirectional,
    })
}

/// `x += o(attend(qkv(norm(x))) + bias)` over the whole input, then `x += mlp(norm(x))`.
pub struct EncoderBlock {
    attn_norm: RmsNorm,
    qkv: Linear,
    o: Linear,
    ffn_norm: RmsNorm,
    mlp: Mlp,
}

/// Self-attention (causal, biased), cross-attention over the encoder output, feed-forward; each
/// pre-normed and added to the residual stream.
pub struct DecoderBlock {
    self_norm: RmsNorm,
    self_attn: SelfAttention,
    cross_norm: RmsNorm,
    cross_q: Linear,
    /// K|V fused, applied to the encoder output once per session.
    cross_kv: Linear,
    cross_o: Linear,
    ffn_norm: RmsNorm,
    mlp: Mlp,
}

/// A loaded T5. Immutable: sequences run in [`T5Session`]s.
pub struct T5 {
    name: String,
    cfg: T5Config,
    precision: Precision,
    max_seq_len: usize,
    embed: Embedding,
    encoder: Vec<EncoderBlock>,
    encoder_norm: RmsNorm,
    encoder_bias: PositionBias,
    decoder: Vec<DecoderBlock>,
    decoder_norm: RmsNorm,
    /// Decoder self-attention bias by distance back from the query, `[max_seq_len, heads]`.
    decoder_bias: Vec<f32>,
    head: Linear,
}

impl T5 {
    /// Build from HF tensor names (`shared.weight`, `encoder.block.{i}.layer.{j}.…`).
    pub fn from_source(
        name: &str,
        cfg: T5Config,
        src: &dyn WeightSource,
        opts: &TransformerOptions,
    ) -> Result<Self, LoadError> {
        let p = opts.precision;
        let d = cfg.d_model;
        let inner = cfg.inner();
        let shape = HeadShape {
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_heads,
            head_dim: cfg.d_kv,
        };
        let rule = ScoreRule {
            scale: 1.0,
            soft_cap: None,
            window: None,
        };
        let embed = Embedding::new(Matrix::load(
            src,
            &[("shared.weight".to_string(), cfg.vocab_size)],
            d,
            p,
        )?);
        let head =
            if !cfg.tied_head || (src.contains("lm_head.weight") && !cfg.scale_decoder_output) {
                Linear::load(
                    src,
                    &[("lm_head.weight".to_string(), cfg.vocab_size)],
                    d,
                    None,
                    p,
                )?
            } else {
                embed.tied_head()
            };
        let mut encoder = Vec::with_capacity(cfg.n_encoder_layers);
        for i in 0..cfg.n_encoder_layers {
            let b = format!("encoder.block.{i}.layer");
            let (qkv, o) = load_attention(src, &format!("{b}.0.SelfAttention"), &cfg, p)?;
            encoder.push(EncoderBlock {
                attn_norm: norm(src, &format!("{b}.0.layer_norm.weight"), &cfg)?,
                qkv,
                o,
                ffn_norm: norm(src, &format!("{b}.1.layer_norm.weight"), &cfg)?,
                mlp: load_mlp(src, &format!("{b}.1.DenseReluDense"), &cfg, p)?,
            });
        }
        let mut decoder = Vec::with_capacity(cfg.n_decoder_layers);
        for i in 0..cfg.n_decoder_layers {
            let b = format!("decoder.block.{i}.layer");
            let (qkv, o) = load_attention(src, &format!("{b}.0.SelfAttention"), &cfg, p)?;
            let c = format!("{b}.1.EncDecAttention");
            decoder.push(DecoderBlock {
                self_norm: norm(src, &format!("{b}.0.layer_norm.weight"), &cfg)?,
                self_attn: SelfAttention::new(qkv, o, shape, rule, None),
                cross_norm: norm(src, &format!("{b}.1.layer_norm.weight"), &cfg)?,
                cross_q: Linear::load(src, &[(format!("{c}.q.weight"), inner)], d, None, p)?,
                cross_kv: Linear::load(
                    src,
                    &[
                        (format!("{c}.k.weight"), inner),
                        (format!("{c}.v.weight"), inner),
                    ],
                    d,
                    None,
                    p,
                )?,
                cross_o: Linear::load(src, &[(format!("{c}.o.weight"), d)], inner, None, p)?,
                ffn_norm: norm(src, &format!("{b}.2.layer_norm.weight"), &cfg)?,
                mlp: load_mlp(src, &format!("{b}.2.DenseReluDense"), &cfg, p)?,
            });
        }
        let max_seq_len = opts.max_seq_len.max(2);
        let dec_table = bias_table(
            src,
            "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            &cfg,
            false,
        )?;
        // Distance back d = query − key ≥ 0 is rel = −d; by_offset lists rel = −(max−1) ..= 0.
        let mut decoder_bias = Vec::with_capacity(max_seq_len * cfg.n_heads);
        let by_rel = dec_table.by_offset(max_seq_len - 1, 0);
        for back in 0..max_seq_len {
            let row = max_seq_len - 1 - back;
            decoder_bias.extend_from_slice(&by_rel[row * cfg.n_heads..(row + 1) * cfg.n_heads]);
        }
        Ok(Self {
            name: name.to_string(),
            precision: p,
            max_seq_len,
            embed,
            encoder,
            encoder_norm: norm(src, "encoder.final_layer_norm.weight", &cfg)?,
            encoder_bias: bias_table(
                src,
                "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                &cfg,
                true,
            )?,
            decoder,
            decoder_norm: norm(src, "decoder.final_layer_norm.weight", &cfg)?,
            decoder_bias,
            head,
            cfg,
        })
    }

    /// Bytes of weight one decoder step reads (the encoder runs once per session).
    pub fn weight_bytes_per_token(&self) -> usize {
        let blocks: usize = self
            .decoder
            .iter()
            .map(|b| {
                b.self_attn.weight_bytes()
                    + b.cross_q.weight().byte_len()
                    + b.cross_o.weight().byte_len()
                    + b.mlp.weight_bytes()
            })
            .sum();
        blocks + self.head.weight().byte_len()
    }

    fn shape(&self) -> HeadShape {
        HeadShape {
            n_heads: self.cfg.n_heads,
            n_kv_heads: self.cfg.n_heads,
            head_dim: self.cfg.d_kv,
        }
    }

    /// The encoder's final hidden states `[n, d]`.
    fn encode(&self, ids: &[u32]) -> Acts {
        let n = ids.len();
        let heads = self.cfg.n_heads;
        let inner = self.cfg.inner();
        let table = self.encoder_bias.by_offset(n - 1, n - 1);
        let bias = move |h: usize, q: usize, k: usize| table[(k + n - 1 - q) * heads + h];
        let rule = ScoreRule {
            scale: 1.0,
            soft_cap: None,
            window: None,
        };
        let mut x = self.embed.forward(ids);
        for b in &self.encoder {
            let qkv = b.qkv.forward(&b.attn_norm.forward(&x));
            let q = qkv.slice_cols(0, inner);
            let (k, v) = (
                qkv.slice_cols(inner, 2 * inner),
                qkv.slice_cols(2 * inner, 3 * inner),
            );
            let att = attend(
                &q,
                k.as_slice(),
                v.as_slice(),
                self.shape(),
                rule,
                Visible::All,
                Some(&bias),
            );
            x.add_assign(&b.o.forward(&att));
            let h = b.mlp.forward(&b.ffn_norm.forward(&x));
            x.add_assign(&h);
        }
        self.encoder_norm.forward_in_place(&mut x);
        x
    }

    /// Decoder forward of `tokens` at positions `cache.len() ..`; returns logits `[k, vocab]`.
    fn decode(&self, tokens: &[u32], cache: &mut KvCache, cross: &[(Acts, Acts)]) -> Acts {
        let heads = self.cfg.n_heads;
        let table = &self.decoder_bias;
        let bias = move |h: usize, q: usize, k: usize| table[(q - k) * heads + h];
        let rule = ScoreRule {
            scale: 1.0,
            soft_cap: None,
            window: None,
        };
        let mut x = self.embed.forward(tokens);
        for (l, b) in self.decoder.iter().enumerate() {
            let h = b.self_attn.forward_biased(
                &b.self_norm.forward(&x),
                cache.layer_mut(l),
                Some(&bias),
            );
            x.add_assign(&h);
            let q = b.cross_q.forward(&b.cross_norm.forward(&x));
            let (ck, cv) = &cross[l];
            let att = attend(
                &q,
                ck.as_slice(),
                cv.as_slice(),
                self.shape(),
                rule,
                Visible::All,
                None,
            );
            x.add_assign(&b.cross_o.forward(&att));
            let h = b.mlp.forward(&b.ffn_norm.forward(&x));
            x.add_assign(&h);
        }
        cache.advance(tokens.len());
        self.decoder_norm.forward_in_place(&mut x);
        if self.cfg.scale_decoder_output {
            x.scale((self.cfg.d_model as f64).powf(-0.5) as f32);
        }
        self.head.forward(&x)
    }

}

/// One decoding of a T5 model: the encoder's cross-attention keys and values (computed once), the
/// decoder's self-attention cache (the start token, then the continuation).
pub struct T5Session<'a> {
    model: &'a T5,
    /// Per decoder layer: encoder keys and values `[n_enc, inner]`.
    cross: Vec<(Acts, Acts)>,
    cache: KvCache,
    /// Continuation tokens (the start token is not one).
    tokens: Vec<TokenId>,
}

impl Session for T5Session<'_> {
    fn len(&self) -> usize {
        self.tokens.len()
    }

    fn extend(&mut self, tokens: &[TokenId]) -> Result<Logits, ModelError> {
        let m = self.model;
        // The decoder holds its start token, then the continuation.
        check_tokens(&m.name, m.cfg.vocab_size, tokens, "extend", 1 + self.tokens.len(), m.max_seq_len)?;
        let logits = m.decode(tokens, &mut self.cache, &self.cross);
        self.tokens.extend_from_slice(tokens);
        let logits = Logits::new(tokens.len(), m.cfg.vocab_size, logits.into_vec())?;
        logits.validate(&m.name, tokens.len(), m.cfg.vocab_size)?;
        Ok(logits)
    }

    fn truncate(&mut self, len: usize) -> Result<(), ModelError> {
        if len > self.tokens.len() {
            return Err(ModelError::BadTruncate {
                len,
                held: self.tokens.len(),
            });
        }
        self.tokens.truncate(len);
        self.cache.truncate(1 + len);
        Ok(())
    }
}

impl LanguageModel for T5 {
    fn name(&self) -> &str {
        &self.name
    }
    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }
    fn eos_ids(&self) -> &[TokenId] {
        &self.cfg.eos
    }
    fn start<'a>(
        &'a self,
        encoder_input: &[TokenId],
    ) -> Result<(Box<dyn Session + 'a>, Vec<f32>), ModelError> {
        check_tokens(&self.name, self.cfg.vocab_size, encoder_input, "encoder input", 0, usize::MAX)?;
        let enc = self.encode(encoder_input);
        let inner = self.cfg.inner();
        let cross = self
            .decoder
            .iter()
            .map(|b| {
                let kv = b.cross_kv.forward(&enc);
                (kv.slice_cols(0, inner), kv.slice_cols(inner, 2 * inner))
            })
            .collect();
        let mut s = T5Session {
            model: self,
            cross,
            cache: KvCache::new(self.cfg.n_decoder_layers, inner, self.max_seq_len),
            tokens: Vec::new(),
        };
        let first = self
            .decode(&[self.cfg.decoder_start_token_id], &mut s.cache, &s.cross)
            .into_vec();
        Logits::new(1, self.cfg.vocab_size, first.clone())?.validate(
            &self.name,
            1,
            self.cfg.vocab_size,
        )?;
        Ok((Box::new(s), first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Buckets as transformers computes them (num_buckets 32, max_distance 128).
    #[test]
    fn buckets_match_transformers() {
        // torch: _relative_position_bucket(torch.tensor([...]), bidirectional, 32, 128)
        let rel = [
            -200i64, -128, -60, -20, -9, -8, -7, -1, 0, 1, 7, 8, 9, 20, 60, 128, 200,
        ];
        let bi = [
            15usize, 15, 13, 10, 8, 8, 7, 1, 0, 17, 23, 24, 24, 26, 29, 31, 31,
        ];
        let uni = [31usize, 31, 26, 17, 9, 8, 7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        for ((&r, &b), &u) in rel.iter().zip(&bi).zip(&uni) {
            assert_eq!(relative_bucket(r, true, 32, 128), b, "bidirectional {r}");
            assert_eq!(relative_bucket(r, false, 32, 128), u, "unidirectional {r}");
        }
    }
}
