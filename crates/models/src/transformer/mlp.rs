//! The feed-forward layer: gated (`down(act(gate) · up)`, llama SwiGLU, Gemma GeGLU, T5 v1.1) or
//! plain (`down(act(up))`, original T5).

use super::matrix::Linear;
use super::ops::{Activation, Acts};

pub struct Mlp {
    /// Gated: gate and up fused, `[d] -> [2 ffn]` (gate first). Plain: `[d] -> [ffn]`.
    up: Linear,
    down: Linear,
    act: Activation,
    gated: bool,
}

impl Mlp {
    /// `gate_up` holds the gate rows then the up rows (`2 ffn` outputs); `down` is `[ffn] -> [d]`.
    pub fn gated(gate_up: Linear, down: Linear, act: Activation) -> Self {
        assert_eq!(gate_up.d_out(), 2 * down.d_in(), "Mlp::gated: gate|up must have 2 × ffn outputs");
        Self { up: gate_up, down, act, gated: true }
    }

    /// `up: [d] -> [ffn]`, `down: [ffn] -> [d]`.
    pub fn plain(up: Linear, down: Linear, act: Activation) -> Self {
        assert_eq!(up.d_out(), down.d_in(), "Mlp::plain: up and down disagree on ffn");
        Self { up, down, act, gated: false }
    }

    /// Bytes of weight one forward reads.
    pub fn weight_bytes(&self) -> usize {
        self.up.weight().byte_len() + self.down.weight().byte_len()
    }

    /// Shapes: `[k, d]` → `[k, d]`.
    pub fn forward(&self, x: &Acts) -> Acts {
        let u = self.up.forward(x);
        let f = self.down.d_in();
        let h = if self.gated {
            let mut h = Acts::zeros(x.rows(), f);
            for i in 0..x.rows() {
                let (gate, up) = u.row(i).split_at(f);
                for ((o, g), v) in h.row_mut(i).iter_mut().zip(gate).zip(up) {
                    *o = self.act.apply(*g) * v;
                }
            }
            h
        } else {
            let mut h = u;
            h.as_mut_slice().iter_mut().for_each(|v| *v = self.act.apply(*v));
            h
        };
        self.down.forward(&h)
    }
}
