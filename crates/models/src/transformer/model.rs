//! The decoder: embedding, N pre-norm blocks (GQA attention + SwiGLU MLP), final norm, output head.

use std::sync::Arc;

use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Device, Tensor, TensorData};

use super::config::TransformerConfig;
use super::error::LoadError;
use super::kv_cache::KvCache;
use super::linear::{Linear, Precision, to_vec};
use super::f16::F16Matrix;
use super::q8::Q8Matrix;
use super::rope::Rope;
use super::weights::{WeightSource, expect, names};

/// How to build a [`Transformer`].
#[derive(Clone, Debug)]
pub struct TransformerOptions {
    pub precision: Precision,
    /// Longest sequence a session may hold (capped by the model's context length).
    pub max_seq_len: usize,
    pub device: Device,
}

impl Default for TransformerOptions {
    fn default() -> Self {
        Self { precision: Precision::Q8, max_seq_len: 4096, device: Device::flex() }
    }
}

enum Embedding {
    /// `[vocab, d]` row-major.
    F32(Vec<f32>),
    Q8(Arc<Q8Matrix>),
    F16(Arc<F16Matrix>),
}

struct Block {
    attn_norm: Tensor<1>,
    /// Q, K and V fused: `[d] -> [q_dim + 2 kv_dim]`.
    qkv: Linear,
    o: Linear,
    ffn_norm: Tensor<1>,
    /// gate and up fused: `[d] -> [2 ffn]`.
    gate_up: Linear,
    down: Linear,
}

/// A loaded llama / qwen2 decoder. Immutable: sequences run in [`super::TransformerSession`]s.
pub struct Transformer {
    pub(crate) name: String,
    pub(crate) cfg: TransformerConfig,
    pub(crate) eos: Vec<u32>,
    pub(crate) device: Device,
    precision: Precision,
    max_seq_len: usize,
    embed: Embedding,
    blocks: Vec<Block>,
    norm: Tensor<1>,
    lm_head: Linear,
    rope: Rope,
}

impl Transformer {
    /// Build from named tensors. `name` labels the model in errors and ledgers.
    pub fn from_source(
        name: &str,
        cfg: TransformerConfig,
        src: &dyn WeightSource,
        opts: &TransformerOptions,
    ) -> Result<Self, LoadError> {
        cfg.validate(&src.describe())?;
        super::checks::check_weights(&cfg, src)?;
        let device = &opts.device;
        let p = opts.precision;
        let (d, hd) = (cfg.d_model, cfg.head_dim);
        let (q_dim, kv_dim) = (cfg.n_heads * hd, cfg.n_kv_heads * hd);
        let lin_err = |tensor: &str| {
            let source = src.describe();
            let tensor = tensor.to_string();
            move |reason: String| LoadError::Format { file: source, reason: format!("tensor '{tensor}': {reason}") }
        };
        let vec1 = |data: Vec<f32>| -> Tensor<1> {
            let n = data.len();
            Tensor::from_data(TensorData::new(data, [n]), device)
        };

        // Embedding (and, when tied, the output head).
        let embed = match p {
            Precision::Q8 => {
                let m = match src.load_q8_0(names::EMBED)? {
                    Some(m) if m.rows() == cfg.vocab_size && m.cols() == d => m,
                    _ => {
                        let t = expect(src, names::EMBED, &[cfg.vocab_size, d])?;
                        Q8Matrix::from_f32(cfg.vocab_size, d, &t.data).map_err(lin_err(names::EMBED))?
                    }
                };
                Embedding::Q8(Arc::new(m))
            }
            Precision::F16 => {
                let t = expect(src, names::EMBED, &[cfg.vocab_size, d])?;
                Embedding::F16(Arc::new(F16Matrix::from_f32(cfg.vocab_size, d, &t.data).map_err(lin_err(names::EMBED))?))
            }
            Precision::F32 => Embedding::F32(expect(src, names::EMBED, &[cfg.vocab_size, d])?.data),
        };
        let tied = cfg.tied_embeddings || !src.contains(names::OUTPUT);
        let lm_head = if tied {
            match &embed {
                Embedding::Q8(m) => Linear::from_q8(m.clone(), None, device),
                Embedding::F16(m) => Linear::from_f16(m.clone(), None, device),
                Embedding::F32(rows) => {
                    Linear::from_rows(cfg.vocab_size, d, rows.clone(), None, p, device).map_err(lin_err(names::OUTPUT))?
                }
            }
        } else {
            load_linear(src, names::OUTPUT, None, cfg.vocab_size, d, p, device)?
        };

        let mut blocks = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let n = |w: &str| names::blk(l, w);
            let bias = |w: &str, len: usize| -> Result<Option<Vec<f32>>, LoadError> {
                if cfg.qkv_bias { Ok(Some(expect(src, &n(w), &[len])?.data)) } else { Ok(None) }
            };
            // Fuse Q, K, V (rows stacked) and gate, up.
            let qkv = fuse(
                src,
                &[(n("attn_q.weight"), q_dim), (n("attn_k.weight"), kv_dim), (n("attn_v.weight"), kv_dim)],
                d,
                match (bias("attn_q.bias", q_dim)?, bias("attn_k.bias", kv_dim)?, bias("attn_v.bias", kv_dim)?) {
                    (Some(a), Some(b), Some(c)) => Some([a, b, c].concat()),
                    _ => None,
                },
                p,
                device,
            )?;
            let gate_up = fuse(
                src,
                &[(n("ffn_gate.weight"), cfg.ffn_dim), (n("ffn_up.weight"), cfg.ffn_dim)],
                d,
                None,
                p,
                device,
            )?;
            blocks.push(Block {
                attn_norm: vec1(expect(src, &n("attn_norm.weight"), &[d])?.data),
                qkv,
                o: load_linear(src, &n("attn_output.weight"), None, d, q_dim, p, device)?,
                ffn_norm: vec1(expect(src, &n("ffn_norm.weight"), &[d])?.data),
                gate_up,
                down: load_linear(src, &n("ffn_down.weight"), None, d, cfg.ffn_dim, p, device)?,
            });
        }
        let norm = vec1(expect(src, names::OUTPUT_NORM, &[d])?.data);
        let max_seq_len = opts.max_seq_len.min(cfg.context_length).max(1);
        let rope = Rope::new(cfg.rope_style, hd, cfg.rope_theta, max_seq_len, device);
        Ok(Self {
            name: name.to_string(),
            cfg,
            eos: Vec::new(),
            device: device.clone(),
            precision: p,
            max_seq_len,
            embed,
            blocks,
            norm,
            lm_head,
            rope,
        })
    }

    /// Set the token ids that end a generation.
    pub fn with_eos(mut self, eos: Vec<u32>) -> Self {
        self.eos = eos;
        self
    }

    pub fn config(&self) -> &TransformerConfig {
        &self.cfg
    }
    pub fn precision(&self) -> Precision {
        self.precision
    }
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }
    pub fn model_name(&self) -> &str {
        &self.name
    }

    /// Bytes of weight one decode step reads (linear layers and output head).
    pub fn weight_bytes_per_token(&self) -> usize {
        let per_block: usize = self
            .blocks
            .iter()
            .map(|b| b.qkv.weight_bytes() + b.o.weight_bytes() + b.gate_up.weight_bytes() + b.down.weight_bytes())
            .sum();
        per_block + self.lm_head.weight_bytes()
    }

    /// An empty cache sized for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.cfg.n_layers, self.cfg.n_kv_heads, self.cfg.head_dim, self.max_seq_len, &self.device)
    }

    fn embed(&self, tokens: &[u32]) -> Tensor<2> {
        let d = self.cfg.d_model;
        let mut x = vec![0f32; tokens.len() * d];
        for (row, &t) in x.chunks_exact_mut(d).zip(tokens) {
            let t = t as usize;
            match &self.embed {
                Embedding::F32(w) => row.copy_from_slice(&w[t * d..(t + 1) * d]),
                Embedding::Q8(m) => m.dequantize_row(t, row),
                Embedding::F16(m) => m.dequantize_row(t, row),
            }
        }
        Tensor::from_data(TensorData::new(x, [tokens.len(), d]), &self.device)
    }

    /// Run `tokens` (already checked: in vocabulary, fitting the cache) at positions
    /// `cache.len() ..` and return the final-norm hidden states `[k, d]`. Advances the cache.
    pub(crate) fn forward_hidden(&self, tokens: &[u32], cache: &mut KvCache) -> Tensor<2> {
        let k = tokens.len();
        let pos = cache.len();
        let cfg = &self.cfg;
        let (nh, nkv, hd, g) = (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.group());
        let (q_dim, kv_dim, f) = (nh * hd, nkv * hd, cfg.ffn_dim);
        let total = pos + k;
        let scale = 1.0 / (hd as f32).sqrt();
        // Causal mask for the new rows, [1, g·k, total]: row (group j, token i) sees keys ≤ pos + i.
        let mask = (k > 1).then(|| {
            let mut m = vec![0f32; g * k * total];
            for r in 0..g * k {
                let i = r % k;
                for j in pos + i + 1..total {
                    m[r * total + j] = f32::NEG_INFINITY;
                }
            }
            Tensor::<3>::from_data(TensorData::new(m, [1, g * k, total]), &self.device)
        });

        let rope = self.rope.tables(pos, k);
        let mut x = self.embed(tokens);
        for (l, b) in self.blocks.iter().enumerate() {
            // Attention.
            let h = rms_norm(x.clone(), &b.attn_norm, cfg.rms_eps);
            let qkv = b.qkv.forward(h); // [k, q_dim + 2 kv_dim]
            let q: Tensor<3> = qkv.clone().slice([0..k, 0..q_dim]).reshape([k, nh, hd]);
            let kk: Tensor<3> = qkv.clone().slice([0..k, q_dim..q_dim + kv_dim]).reshape([k, nkv, hd]);
            let v: Tensor<3> = qkv.slice([0..k, q_dim + kv_dim..q_dim + 2 * kv_dim]).reshape([k, nkv, hd]);
            let q = self.rope.apply(q, &rope);
            let kk = self.rope.apply(kk, &rope);
            let (keys, values) = cache.write(l, kk.swap_dims(0, 1), v.swap_dims(0, 1)); // [nkv, total, hd]
            // Heads h = j·g + i share key/value head j: [nh, k, hd] -> [nkv, g·k, hd].
            let q: Tensor<3> = q.swap_dims(0, 1).reshape([nkv, g * k, hd]);
            let scores = q.matmul(keys.swap_dims(1, 2)).mul_scalar(scale); // [nkv, g·k, total]
            let scores = match &mask {
                Some(m) => scores + m.clone(),
                None => scores,
            };
            let att = softmax(scores, 2).matmul(values); // [nkv, g·k, hd]
            let att: Tensor<2> = att.reshape([nh, k, hd]).swap_dims(0, 1).reshape([k, q_dim]);
            x = x + b.o.forward(att);
            // MLP.
            let h = rms_norm(x.clone(), &b.ffn_norm, cfg.rms_eps);
            let gu = b.gate_up.forward(h); // [k, 2f]
            let gate = gu.clone().slice([0..k, 0..f]);
            let up = gu.slice([0..k, f..2 * f]);
            x = x + b.down.forward(silu(gate) * up);
        }
        cache.advance(k);
        rms_norm(x, &self.norm, cfg.rms_eps)
    }

    /// Logits `[rows, vocab]` of hidden states `[rows, d]`, read back to the host.
    pub(crate) fn logits(&self, hidden: Tensor<2>) -> Vec<f32> {
        to_vec(self.lm_head.forward(hidden))
    }
}

fn rms_norm(x: Tensor<2>, w: &Tensor<1>, eps: f32) -> Tensor<2> {
    let ms = x.clone().square().mean_dim(1); // [k, 1]
    x * ms.add_scalar(eps).sqrt().recip() * w.clone().unsqueeze_dim::<2>(0)
}

fn load_linear(
    src: &dyn WeightSource,
    name: &str,
    bias: Option<Vec<f32>>,
    d_out: usize,
    d_in: usize,
    p: Precision,
    device: &Device,
) -> Result<Linear, LoadError> {
    fuse(src, &[(name.to_string(), d_out)], d_in, bias, p, device)
}

/// Stack the rows of several `[out_i, d_in]` weights into one linear layer.
fn fuse(
    src: &dyn WeightSource,
    parts: &[(String, usize)],
    d_in: usize,
    bias: Option<Vec<f32>>,
    p: Precision,
    device: &Device,
) -> Result<Linear, LoadError> {
    let d_out: usize = parts.iter().map(|(_, o)| o).sum();
    let err = |name: &str, reason: String| LoadError::Format {
        file: src.describe(),
        reason: format!("tensor '{name}': {reason}"),
    };
    if p == Precision::Q8 {
        // Reuse the file's own 8-bit blocks where every part has them.
        let mut raw = Vec::new();
        for (name, out) in parts {
            match src.load_q8_0(name)? {
                Some(m) if m.rows() == *out && m.cols() == d_in => raw.push(m),
                _ => break,
            }
        }
        if raw.len() == parts.len() {
            let m = if raw.len() == 1 { raw.pop().unwrap() } else { Q8Matrix::stack_rows(&raw).map_err(|e| err(&parts[0].0, e))? };
            return Ok(Linear::from_q8(Arc::new(m), bias, device));
        }
    }
    let mut rows = Vec::with_capacity(d_out * d_in);
    for (name, out) in parts {
        rows.extend_from_slice(&expect(src, name, &[*out, d_in])?.data);
    }
    Linear::from_rows(d_out, d_in, rows, bias, p, device).map_err(|e| err(&parts[0].0, e))
}
