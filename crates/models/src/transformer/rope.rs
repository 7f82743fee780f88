//! Rotary position embeddings with the model's θ, in split-half or interleaved pairing.

use super::config::RopeStyle;
use super::ops::Acts;

/// Precomputed cos/sin tables, `[max_positions, head_dim / 2]`. One per RoPE base (Gemma 3 has two:
/// local and global layers); layers hold it by `Arc`.
#[derive(Debug)]
pub struct Rope {
    style: RopeStyle,
    head_dim: usize,
    max_positions: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rope {
    pub fn new(style: RopeStyle, head_dim: usize, theta: f32, max_positions: usize) -> Self {
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
        Self { style, head_dim, max_positions, cos, sin }
    }

    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Rotate `x` (`[k, heads · head_dim]`, row `i` at position `pos0 + i`) in place.
    pub fn apply(&self, x: &mut Acts, pos0: usize) {
        let (hd, half) = (self.head_dim, self.head_dim / 2);
        assert_eq!(x.cols() % hd, 0, "Rope::apply: rows of {} values are not heads of {hd}", x.cols());
        assert!(pos0 + x.rows() <= self.max_positions, "Rope::apply: position beyond the table");
        for i in 0..x.rows() {
            let p = pos0 + i;
            let (cos, sin) = (&self.cos[p * half..(p + 1) * half], &self.sin[p * half..(p + 1) * half]);
            for head in x.row_mut(i).chunks_exact_mut(hd) {
                match self.style {
                    RopeStyle::SplitHalf => {
                        let (x1, x2) = head.split_at_mut(half);
                        for j in 0..half {
                            let (a, b) = (x1[j], x2[j]);
                            x1[j] = a * cos[j] - b * sin[j];
                            x2[j] = b * cos[j] + a * sin[j];
                        }
                    }
                    RopeStyle::Interleaved => {
                        for j in 0..half {
                            let (a, b) = (head[2 * j], head[2 * j + 1]);
                            head[2 * j] = a * cos[j] - b * sin[j];
                            head[2 * j + 1] = a * sin[j] + b * cos[j];
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_zero_is_the_identity_and_pairs_rotate() {
        let rope = Rope::new(RopeStyle::SplitHalf, 4, 10_000.0, 4);
        let mut x = Acts::new(2, 4, vec![1.0, 2.0, 3.0, 4.0, 1.0, 0.0, 0.0, 0.0]);
        rope.apply(&mut x, 0);
        assert_eq!(x.row(0), &[1.0, 2.0, 3.0, 4.0]);
        // Position 1, pair (0, 2) rotates by 1 radian.
        assert_eq!(x.row(1)[0], 1f64.cos() as f32);
        assert_eq!(x.row(1)[2], 1f64.sin() as f32);
    }
}
