//! RMSNorm over the last dimension, in llama's form `w · x / √(mean(x²) + ε)` or Gemma's
//! `(1 + w) · x / √(mean(x²) + ε)`.

use super::error::LoadError;
use super::ops::{Acts, sum_squares};
use super::weights::{WeightSource, expect};

/// RMSNorm with a learned scale of `width` values. Applied to a buffer whose rows are wider than
/// `width` (a multiple of it), it normalises every `width`-long run on its own: that is the
/// per-head q/k norm of Gemma 3 and Qwen 3 over `[k, heads · head_dim]`.
#[derive(Clone, Debug)]
pub struct RmsNorm {
    /// The effective scale (for Gemma, `1 + w`, added once at load time in f32 as the
    /// references do).
    scale: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    /// llama form: the scale as stored.
    pub fn new(weight: Vec<f32>, eps: f32) -> Self {
        Self { scale: weight, eps }
    }

    /// Gemma form: the stored weight is an offset from one.
    pub fn new_unit_offset(weight: Vec<f32>, eps: f32) -> Self {
        Self { scale: weight.into_iter().map(|w| 1.0 + w).collect(), eps }
    }

    /// Load tensor `name` (`[width]`) in llama form.
    pub fn load(src: &dyn WeightSource, name: &str, width: usize, eps: f32) -> Result<Self, LoadError> {
        Ok(Self::new(expect(src, name, &[width])?.data, eps))
    }

    pub fn width(&self) -> usize {
        self.scale.len()
    }

    /// Shapes: `x: [k, n · width]` → the same, each `width`-long run normalised.
    pub fn forward(&self, x: &Acts) -> Acts {
        let mut y = x.clone();
        self.forward_in_place(&mut y);
        y
    }

    /// [`RmsNorm::forward`] in place.
    pub fn forward_in_place(&self, x: &mut Acts) {
        let w = self.width();
        assert_eq!(x.cols() % w, 0, "RmsNorm: rows of {} values are not runs of {w}", x.cols());
        for run in x.as_mut_slice().chunks_exact_mut(w) {
            let r = 1.0 / (sum_squares(run) / w as f32 + self.eps).sqrt();
            for (v, s) in run.iter_mut().zip(&self.scale) {
                *v = *v * r * s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_each_run_and_applies_the_scale() {
        let x = Acts::new(1, 4, vec![3.0, 4.0, 6.0, 8.0]);
        let y = RmsNorm::new(vec![1.0, 2.0], 0.0).forward(&x);
        let (r, q) = (1.0 / (12.5f32).sqrt(), 1.0 / (50f32).sqrt());
        assert_eq!(y.as_slice(), &[3.0 * r, 4.0 * r * 2.0, 6.0 * q, 8.0 * q * 2.0]);
        let g = RmsNorm::new_unit_offset(vec![0.0, 1.0], 0.0).forward(&x);
        assert_eq!(g.as_slice(), y.as_slice());
    }
}
