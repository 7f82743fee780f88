//! Rotary position embeddings with the model's θ, in split-half or interleaved pairing.

use burn::tensor::{Device, Tensor, TensorData};

use super::config::RopeStyle;

/// Precomputed cos/sin tables, `[max_positions, head_dim / 2]`.
pub(crate) struct Rope {
    style: RopeStyle,
    half: usize,
    cos: Tensor<2>,
    sin: Tensor<2>,
}

impl Rope {
    pub fn new(style: RopeStyle, head_dim: usize, theta: f32, max_positions: usize, device: &Device) -> Self {
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for p in 0..max_positions {
            for i in 0..half {
                // Computed in f64 as the references do (θ^(-2i/d) · p), then rounded once.
                let inv = (theta as f64).powf(-((2 * i) as f64) / head_dim as f64);
                let a = p as f64 * inv;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        Self {
            style,
            half,
            cos: Tensor::from_data(TensorData::new(cos, [max_positions, half]), device),
            sin: Tensor::from_data(TensorData::new(sin, [max_positions, half]), device),
        }
    }

    /// The cos/sin rows of positions `start .. start + k`, shaped `[k, 1, head_dim / 2]` to
    /// broadcast over heads. Computed once per forward and shared by every layer's Q and K.
    pub fn tables(&self, start: usize, k: usize) -> RopeTables {
        let h = self.half;
        RopeTables {
            cos: self.cos.clone().slice([start..start + k, 0..h]).unsqueeze_dim::<3>(1),
            sin: self.sin.clone().slice([start..start + k, 0..h]).unsqueeze_dim::<3>(1),
        }
    }

    /// Rotate `x` (`[k, heads, head_dim]`) with the tables of its positions.
    pub fn apply(&self, x: Tensor<3>, t: &RopeTables) -> Tensor<3> {
        let [k, heads, hd] = x.dims();
        let h = self.half;
        let (cos, sin) = (t.cos.clone(), t.sin.clone());
        match self.style {
            RopeStyle::SplitHalf => {
                let x1 = x.clone().slice([0..k, 0..heads, 0..h]);
                let x2 = x.slice([0..k, 0..heads, h..hd]);
                let r1 = x1.clone() * cos.clone() - x2.clone() * sin.clone();
                let r2 = x2 * cos + x1 * sin;
                Tensor::cat(vec![r1, r2], 2)
            }
            RopeStyle::Interleaved => {
                let pairs: Tensor<4> = x.reshape([k, heads, h, 2]);
                let x1: Tensor<3> = pairs.clone().slice([0..k, 0..heads, 0..h, 0..1]).reshape([k, heads, h]);
                let x2: Tensor<3> = pairs.slice([0..k, 0..heads, 0..h, 1..2]).reshape([k, heads, h]);
                let r1 = x1.clone() * cos.clone() - x2.clone() * sin.clone();
                let r2 = x1 * sin + x2 * cos;
                Tensor::stack::<4>(vec![r1, r2], 3).reshape([k, heads, hd])
            }
        }
    }
}

/// cos/sin of the positions of one forward pass.
pub(crate) struct RopeTables {
    cos: Tensor<3>,
    sin: Tensor<3>,
}
