//! The feed-forward layer: gated (`down(act(gate) · up)`, llama SwiGLU, Gemma GeGLU, T5 v1.1) or
//! plain (`down(act(up))`, original T5).

use rayon::prelude::*;

use super::matrix::Linear;
use super::ops::{Activation, Acts, PARALLEL_MIN_ELEMS};

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
            gate_times_up(self.act, u.as_slice(), h.as_mut_slice(), f);
            h
        } else {
            let mut h = u;
            let act = self.act;
            elementwise(h.as_mut_slice(), |v| v.iter_mut().for_each(|v| *v = act.apply(*v)));
            h
        };
        self.down.forward(&h)
    }
}

/// Elements per parallel task.
const TASK_ELEMS: usize = 4096;

/// `h[i, j] = act(u[i, j]) · u[i, f + j]` for the rows of `u` (`[rows, 2f]`, gate | up) into `h`
/// (`[rows, f]`). Element-wise, so splitting it over threads changes no bit; split because in a
/// prefill the activation's `exp` or `tanh` per element was serial time beside parallel matmuls
/// (about a tenth of a 0.5B 512-token prefill on two cores).
fn gate_times_up(act: Activation, u: &[f32], h: &mut [f32], f: usize) {
    let apply = |o: &mut [f32], gate: &[f32], up: &[f32]| {
        for ((o, g), v) in o.iter_mut().zip(gate).zip(up) {
            *o = act.apply(*g) * v;
        }
    };
    if f == 0 {
        return;
    }
    if h.len() < PARALLEL_MIN_ELEMS {
        for (o, ur) in h.chunks_mut(f).zip(u.chunks(2 * f)) {
            let (gate, up) = ur.split_at(f);
            apply(o, gate, up);
        }
        return;
    }
    // Column chunks of every row: a single row past the threshold (a large model's decode step) splits too.
    let chunk = TASK_ELEMS.min(f);
    h.par_chunks_mut(f).zip(u.par_chunks(2 * f)).for_each(|(o, ur)| {
        let (gate, up) = ur.split_at(f);
        o.par_chunks_mut(chunk).zip(gate.par_chunks(chunk).zip(up.par_chunks(chunk))).for_each(|(o, (g, v))| apply(o, g, v));
    });
}

/// `op` over `v` in chunks, on the pool when `v` is large (element-wise work only).
fn elementwise(v: &mut [f32], op: impl Fn(&mut [f32]) + Sync + Send) {
    if v.len() < PARALLEL_MIN_ELEMS {
        op(v);
    } else {
        v.par_chunks_mut(TASK_ELEMS).for_each(op);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transformer::test_values::lcg;

    /// The parallel split gives the serial loop's bits, on shapes below and above the threshold
    /// and with rows that do not divide into tasks.
    #[test]
    fn the_parallel_activation_has_the_serial_bits() {
        for act in [Activation::Silu, Activation::GeluTanh, Activation::Relu] {
            for (rows, f) in [(1, 7), (1, 8960), (3, 4864), (6, 8960), (64, 897)] {
                let u: Vec<f32> = lcg(rows * 2 * f, 11).into_iter().map(|v| 8.0 * v).collect();
                let mut h = vec![0f32; rows * f];
                gate_times_up(act, &u, &mut h, f);
                let want: Vec<f32> =
                    (0..rows * f).map(|i| act.apply(u[(i / f) * 2 * f + i % f]) * u[(i / f) * 2 * f + f + i % f]).collect();
                assert!(h.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{act:?} rows {rows} f {f}");
                let mut plain = u.clone();
                elementwise(&mut plain, |v| v.iter_mut().for_each(|v| *v = act.apply(*v)));
                assert!(plain.iter().zip(&u).all(|(a, b)| a.to_bits() == act.apply(*b).to_bits()), "{act:?} plain");
            }
        }
    }
}
