//! The components of [`super::BurnDecoder`] on burn tensors: [`Linear`], [`Norm`], [`RopeTables`],
//! [`Attention`] and [`Mlp`], each with a loader and a `forward`, on whatever device the tensors
//! live (flex, wgpu, cuda) and at the engine's dtype.

use burn::tensor::activation::{gelu_approximate, relu, silu};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, Tensor, TensorData};

use super::cache::LayerCache;
use super::spec::DecoderSpec;
use super::TensorEngine;
use crate::transformer::weights::{WeightSource, expect};
use crate::transformer::{Activation, LoadError, RopeStyle};

/// Upload host values (row-major, `shape`) at the engine's dtype.
pub(crate) fn upload<const D: usize>(e: &TensorEngine, data: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
    Tensor::from_data(TensorData::new(data, shape), (&e.device, e.dtype))
}

/// `y = x · Wᵀ + b` with `W` kept as `[in, out]` on the device (transposed once at load).
pub struct Linear {
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
}

impl Linear {
    /// Load and stack along the output dimension the `[out_i, d_in]` matrices `parts` (a fused
    /// Q/K/V or gate/up projection: one matmul instead of several), with their biases if given.
    pub fn load(
        src: &dyn WeightSource,
        parts: &[(String, usize)],
        d_in: usize,
        biases: Option<&[String]>,
        e: &TensorEngine,
    ) -> Result<Self, LoadError> {
        let d_out: usize = parts.iter().map(|(_, r)| r).sum();
        // Host transpose into [d_in, d_out]: each part fills its own column range.
        let mut t = vec![0f32; d_in * d_out];
        let mut col0 = 0;
        for (name, rows) in parts {
            let w = expect(src, name, &[*rows, d_in])?.data;
            for r in 0..*rows {
                for (c, &v) in w[r * d_in..(r + 1) * d_in].iter().enumerate() {
                    t[c * d_out + col0 + r] = v;
                }
            }
            col0 += rows;
        }
        let bias = match biases {
            None => None,
            Some(names) => {
                let mut b = Vec::with_capacity(d_out);
                for (name, (_, rows)) in names.iter().zip(parts) {
                    b.extend(expect(src, name, &[*rows])?.data);
                }
                Some(upload(e, b, [d_out]))
            }
        };
        Ok(Self { weight: upload(e, t, [d_in, d_out]), bias })
    }

    /// Shapes: `x: [k, d_in]` → `[k, d_out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let y = x.matmul(self.weight.clone());
        match &self.bias {
            Some(b) => y + b.clone().unsqueeze::<2>(),
            None => y,
        }
    }

    pub fn weight_bytes(&self) -> usize {
        self.weight.shape().num_elements() * self.weight.dtype().size()
    }
}

/// RMSNorm over the last dimension, computed in f32 (as the references do) and cast back.
pub struct Norm {
    /// The effective scale (`1 + w` for a unit-offset norm), f32.
    scale: Tensor<1>,
    eps: f32,
}

impl Norm {
    /// Load tensor `name` (`[width]`); `unit_offset`: the stored weight is an offset from one.
    pub fn load(src: &dyn WeightSource, name: &str, width: usize, eps: f32, unit_offset: bool, e: &TensorEngine) -> Result<Self, LoadError> {
        let mut w = expect(src, name, &[width])?.data;
        if unit_offset {
            w.iter_mut().for_each(|v| *v += 1.0);
        }
        Ok(Self { scale: Tensor::from_data(TensorData::new(w, [width]), (&e.device, DType::F32)), eps })
    }

    /// [`Norm::load`] with a decoder spec's epsilon and norm form.
    pub fn load_spec(src: &dyn WeightSource, name: &str, width: usize, spec: &DecoderSpec, e: &TensorEngine) -> Result<Self, LoadError> {
        Self::load(src, name, width, spec.rms_eps, spec.norm_unit_offset, e)
    }

    /// Shapes: `x: [..., width]` → the same.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dtype = x.dtype();
        let x = x.cast(DType::F32);
        let inv_rms = (x.clone().powi_scalar(2).mean_dim(D - 1) + self.eps as f64).sqrt().recip();
        (x * inv_rms * self.scale.clone().unsqueeze::<D>()).cast(dtype)
    }
}

/// cos/sin of one RoPE base at the positions of one forward, `[k, head_dim / 2]` each.
pub struct RopeTables {
    style: RopeStyle,
    cos: Tensor<2>,
    sin: Tensor<2>,
}

impl RopeTables {
    /// The tables for positions `pos0 .. pos0 + k`, computed in f64 as the references do
    /// (θ^(-2i/d) · p), rounded once to f32, then to the engine's dtype.
    pub fn new(style: RopeStyle, theta: f32, head_dim: usize, pos0: usize, k: usize, e: &TensorEngine) -> Self {
        let half = head_dim / 2;
        let (mut cos, mut sin) = (Vec::with_capacity(k * half), Vec::with_capacity(k * half));
        for p in pos0..pos0 + k {
            for i in 0..half {
                let a = p as f64 * (theta as f64).powf(-((2 * i) as f64) / head_dim as f64);
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        Self { style, cos: upload(e, cos, [k, half]), sin: upload(e, sin, [k, half]) }
    }

    /// Shapes: `x: [k, heads, head_dim]` → the same, rotated.
    pub fn apply(&self, x: Tensor<3>) -> Tensor<3> {
        let [k, h, hd] = x.dims();
        let half = hd / 2;
        match self.style {
            RopeStyle::SplitHalf => {
                let (cos, sin) = (self.cos.clone().unsqueeze_dim::<3>(1), self.sin.clone().unsqueeze_dim::<3>(1));
                let x1 = x.clone().narrow(2, 0, half);
                let x2 = x.narrow(2, half, half);
                let r1 = x1.clone() * cos.clone() - x2.clone() * sin.clone();
                let r2 = x2 * cos + x1 * sin;
                Tensor::cat(vec![r1, r2], 2)
            }
            RopeStyle::Interleaved => {
                let (cos, sin) = (self.cos.clone().reshape([k, 1, half, 1]), self.sin.clone().reshape([k, 1, half, 1]));
                let x = x.reshape([k, h, half, 2]);
                let a = x.clone().narrow(3, 0, 1);
                let b = x.narrow(3, 1, 1);
                let ra = a.clone() * cos.clone() - b.clone() * sin.clone();
                let rb = a * sin + b * cos;
                Tensor::cat(vec![ra, rb], 3).reshape([k, h, hd])
            }
        }
    }
}

/// Which keys each query of a forward sees: `true` masks. Shapes: `[1, 1, k, T]`.
pub fn visibility_mask(pos0: usize, k: usize, window: Option<usize>, e: &TensorEngine) -> Tensor<4, Bool> {
    let t = pos0 + k;
    let mut m = Vec::with_capacity(k * t);
    for i in 0..k {
        let q = pos0 + i;
        for j in 0..t {
            m.push(j > q || window.is_some_and(|w| q - j >= w));
        }
    }
    Tensor::from_data(TensorData::new(m, [1, 1, k, t]), &e.device)
}

/// How attention scores are formed: `softcap(scale · q·k + bias)`, masked where `mask` is true.
pub struct Scores<'a> {
    pub scale: f32,
    pub softcap: Option<f32>,
    /// `[1, 1, k, T]`.
    pub mask: Option<&'a Tensor<4, Bool>>,
    /// `[1, heads, k, T]` (T5's relative position bias).
    pub bias: Option<Tensor<4>>,
}

/// Attention of queries `[k, heads, head_dim]` over keys and values `[kv_heads, T, head_dim]`
/// (query head h reads key/value head h / (heads / kv_heads)). Shapes: → `[k, heads · head_dim]`.
pub fn attend(q: Tensor<3>, keys: Tensor<3>, values: Tensor<3>, s: &Scores) -> Tensor<2> {
    let [k, nh, hd] = q.dims();
    let [nkv, t, _] = keys.dims();
    let group = |x: Tensor<3>| x.unsqueeze_dim::<4>(1).expand([nkv, nh / nkv, t, hd]).reshape([1, nh, t, hd]);
    let q = q.swap_dims(0, 1).unsqueeze_dim::<4>(0);
    let options = AttentionModuleOptions { scale: Some(s.scale as f64), softcap: s.softcap.map(f64::from), is_causal: false };
    let mask = s.mask.map(|m| m.clone().expand([1, nh, k, t]));
    let out = attention(q, group(keys), group(values), mask, s.bias.clone(), options);
    out.reshape([nh, k, hd]).swap_dims(0, 1).reshape([k, nh * hd])
}

/// Grouped-query self-attention with a fused Q/K/V projection.
pub struct Attention {
    qkv: Linear,
    o: Linear,
    q_norm: Option<Norm>,
    k_norm: Option<Norm>,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    scale: f32,
    softcap: Option<f32>,
}

impl Attention {
    pub fn load(src: &dyn WeightSource, l: usize, spec: &DecoderSpec, e: &TensorEngine) -> Result<Self, LoadError> {
        let n = |w: &str| format!("blk.{l}.{w}");
        let (q_dim, kv_dim, d) = (spec.q_dim(), spec.kv_dim(), spec.d_model);
        let parts = [(n("attn_q.weight"), q_dim), (n("attn_k.weight"), kv_dim), (n("attn_v.weight"), kv_dim)];
        let biases = [n("attn_q.bias"), n("attn_k.bias"), n("attn_v.bias")];
        let qkv = Linear::load(src, &parts, d, spec.qkv_bias.then_some(&biases[..]), e)?;
        let o = Linear::load(src, &[(n("attn_output.weight"), d)], q_dim, None, e)?;
        let (q_norm, k_norm) = if spec.qk_norm {
            (
                Some(Norm::load_spec(src, &n("attn_q_norm.weight"), spec.head_dim, spec, e)?),
                Some(Norm::load_spec(src, &n("attn_k_norm.weight"), spec.head_dim, spec, e)?),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            qkv,
            o,
            q_norm,
            k_norm,
            n_heads: spec.n_heads,
            n_kv_heads: spec.n_kv_heads,
            head_dim: spec.head_dim,
            scale: spec.score_scale,
            softcap: spec.attn_softcap,
        })
    }

    /// Shapes: `x: [k, d]` → `[k, d]`; appends k positions to `cache`. `mask`: `[1, 1, k, T]`.
    pub fn forward(&self, x: Tensor<2>, cache: &mut LayerCache, pos0: usize, rope: &RopeTables, mask: &Tensor<4, Bool>) -> Tensor<2> {
        let k = x.dims()[0];
        let (nh, nkv, hd) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let qkv = self.qkv.forward(x);
        let mut q = qkv.clone().narrow(1, 0, nh * hd).reshape([k, nh, hd]);
        let mut kk = qkv.clone().narrow(1, nh * hd, nkv * hd).reshape([k, nkv, hd]);
        let v = qkv.narrow(1, (nh + nkv) * hd, nkv * hd).reshape([k, nkv, hd]);
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = qn.forward(q);
            kk = kn.forward(kk);
        }
        let q = rope.apply(q);
        let kk = rope.apply(kk);
        let (keys, values) = cache.append(pos0, kk.swap_dims(0, 1), v.swap_dims(0, 1));
        let scores = Scores { scale: self.scale, softcap: self.softcap, mask: Some(mask), bias: None };
        self.o.forward(attend(q, keys, values, &scores))
    }

    pub fn weight_bytes(&self) -> usize {
        self.qkv.weight_bytes() + self.o.weight_bytes()
    }
}

/// The feed-forward layer: gated `down(act(gate(x)) · up(x))` (gate and up fused into one
/// matmul) or plain `down(act(up(x)))` (original T5).
pub struct Mlp {
    /// `[d, 2 · ffn]` (gate | up) when gated, else `[d, ffn]`.
    up: Linear,
    down: Linear,
    ffn_dim: usize,
    activation: Activation,
    gated: bool,
}

impl Mlp {
    /// Load from `[ffn, d]` projections: `up` is `[gate, up]` (gated) or `[up]` (plain).
    pub fn load(src: &dyn WeightSource, up: &[String], down: &str, d: usize, ffn_dim: usize, activation: Activation, e: &TensorEngine) -> Result<Self, LoadError> {
        let parts: Vec<(String, usize)> = up.iter().map(|n| (n.clone(), ffn_dim)).collect();
        Ok(Self {
            up: Linear::load(src, &parts, d, None, e)?,
            down: Linear::load(src, &[(down.to_string(), d)], ffn_dim, None, e)?,
            ffn_dim,
            activation,
            gated: up.len() == 2,
        })
    }

    /// A decoder spec's gated MLP of layer `l` (GGUF names).
    pub fn load_spec(src: &dyn WeightSource, l: usize, spec: &DecoderSpec, e: &TensorEngine) -> Result<Self, LoadError> {
        let n = |w: &str| format!("blk.{l}.{w}");
        Self::load(src, &[n("ffn_gate.weight"), n("ffn_up.weight")], &n("ffn_down.weight"), spec.d_model, spec.ffn_dim, spec.activation, e)
    }

    /// Shapes: `x: [k, d]` → `[k, d]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let u = self.up.forward(x);
        let act = |t: Tensor<2>| match self.activation {
            Activation::Silu => silu(t),
            Activation::GeluTanh => gelu_approximate(t),
            Activation::Relu => relu(t),
        };
        let h = if self.gated {
            act(u.clone().narrow(1, 0, self.ffn_dim)) * u.narrow(1, self.ffn_dim, self.ffn_dim)
        } else {
            act(u)
        };
        self.down.forward(h)
    }

    pub fn weight_bytes(&self) -> usize {
        self.up.weight_bytes() + self.down.weight_bytes()
    }
}
