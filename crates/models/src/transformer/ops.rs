//! The host (CPU) implementation of the numeric primitives every architecture is written with:
//! the activation buffer [`Acts`], a fixed-order dot product, softmax, activations and soft-capping.
//!
//! Why fixed order: a position's logits must be a pure function of its prefix, bit for bit,
//! whether it is computed in a prefill, alone, or in a block of k positions (issue 10). Every
//! reduction here (and in the components built on it) runs over one row's own values in an order
//! set by the row's length alone, never by how many rows the call holds. Rust does not reassociate
//! or contract float operations, so the source order below *is* the rounding order, whatever
//! vector width the compiler picks.
//!
//! This module and the components ([`super::matrix`], [`super::norm`], [`super::rope`],
//! [`super::attention`], [`super::mlp`]) are the seam a device backend would replace: architecture
//! files touch activations only through them.

/// A row-major `[rows, cols]` f32 activation buffer: one row per token position.
#[derive(Clone, Debug, PartialEq)]
pub struct Acts {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Acts {
    /// Wrap `data` (`rows · cols` values). Panics on a length mismatch: shapes are the caller's
    /// invariant, never user input.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), rows * cols, "Acts::new: {} values for [{rows}, {cols}]", data.len());
        Self { rows, cols, data }
    }
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self { rows, cols, data: vec![0.0; rows * cols] }
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }
    /// Rows `start .. end` as a new buffer.
    pub fn slice_rows(&self, start: usize, end: usize) -> Acts {
        Acts::new(end - start, self.cols, self.data[start * self.cols..end * self.cols].to_vec())
    }
    /// Columns `start .. end` of every row as a new `[rows, end - start]` buffer.
    pub fn slice_cols(&self, start: usize, end: usize) -> Acts {
        let mut out = Vec::with_capacity(self.rows * (end - start));
        for r in 0..self.rows {
            out.extend_from_slice(&self.row(r)[start..end]);
        }
        Acts::new(self.rows, end - start, out)
    }
    /// `self += other` (residual connections).
    pub fn add_assign(&mut self, other: &Acts) {
        assert_eq!((self.rows, self.cols), (other.rows, other.cols), "Acts::add_assign shapes");
        for (a, b) in self.data.iter_mut().zip(&other.data) {
            *a += b;
        }
    }
    /// Multiply every value by `s` (e.g. Gemma's embedding scale √d).
    pub fn scale(&mut self, s: f32) {
        for v in &mut self.data {
            *v *= s;
        }
    }
}

/// Lanes of the fixed-order reductions.
const LANES: usize = 8;

/// `Σ a[i] · b[i]` in a fixed order: eight interleaved partial sums over the full 8-wide chunks,
/// folded pairwise, then the tail in sequence. Every dot product of the crate's host path (f32
/// matmul, attention scores) has exactly this rounding.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ta.iter().zip(tb) {
        tail += x * y;
    }
    fold_lanes(&acc) + tail
}

/// [`dot`] of `q` with four vectors at once, each with exactly [`dot`]'s rounding (the same
/// lanes, fold and tail per vector): four independent chains of additions instead of one, so
/// attention's scores are not bound by the latency of a single short reduction. Where the CPU
/// has AVX2, the same operations run on 256-bit registers (separate multiply and add, no FMA, so
/// the same bits).
#[inline]
pub fn dot4(q: &[f32], k: [&[f32]; 4]) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::features().avx2 {
        // SAFETY: AVX2 is present (detected once per process).
        return unsafe { dot4_avx2(q, k) };
    }
    dot4_body(q, k)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot4_avx2(q: &[f32], k: [&[f32]; 4]) -> [f32; 4] {
    dot4_body(q, k)
}

#[inline(always)]
pub(crate) fn dot4_body(q: &[f32], k: [&[f32]; 4]) -> [f32; 4] {
    let n = q.len();
    for kv in k {
        assert_eq!(kv.len(), n, "dot4: vector lengths");
    }
    let full = n - n % LANES;
    let mut acc = [[0f32; LANES]; 4];
    let mut c = 0;
    while c < full {
        let x = &q[c..c + LANES];
        for (a, kv) in acc.iter_mut().zip(k) {
            let y = &kv[c..c + LANES];
            for l in 0..LANES {
                a[l] += x[l] * y[l];
            }
        }
        c += LANES;
    }
    let mut out = [0f32; 4];
    for ((o, a), kv) in out.iter_mut().zip(&acc).zip(k) {
        let mut tail = 0f32;
        for (x, y) in q[full..].iter().zip(&kv[full..]) {
            tail += x * y;
        }
        *o = fold_lanes(a) + tail;
    }
    out
}

/// `Σ a[i]²` in the order of [`dot`].
#[inline]
pub fn sum_squares(a: &[f32]) -> f32 {
    dot(a, a)
}

/// The pairwise fold of eight partial sums shared by every fixed-order reduction.
#[inline(always)]
pub(crate) fn fold_lanes(acc: &[f32; LANES]) -> f32 {
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// `out += w · v` (the value accumulation of attention), element by element.
#[inline]
pub fn axpy(w: f32, v: &[f32], out: &mut [f32]) {
    for (o, x) in out.iter_mut().zip(v) {
        *o += w * x;
    }
}

/// Four [`axpy`]s in sequence, `out += w[0]·v[0]`, then `w[1]·v[1]`, …, element by element:
/// the same roundings in the same order, with each element kept in a register across the four.
#[inline]
pub fn axpy4(w: [f32; 4], v: [&[f32]; 4], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::features().avx2 {
        // SAFETY: AVX2 is present (detected once per process).
        return unsafe { axpy4_avx2(w, v, out) };
    }
    axpy4_body(w, v, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn axpy4_avx2(w: [f32; 4], v: [&[f32]; 4], out: &mut [f32]) {
    axpy4_body(w, v, out)
}

#[inline(always)]
pub(crate) fn axpy4_body(w: [f32; 4], v: [&[f32]; 4], out: &mut [f32]) {
    let n = out.len();
    for vv in v {
        assert_eq!(vv.len(), n, "axpy4: vector lengths");
    }
    for (c, o) in out.iter_mut().enumerate() {
        let mut a = *o;
        a += w[0] * v[0][c];
        a += w[1] * v[1][c];
        a += w[2] * v[2][c];
        a += w[3] * v[3][c];
        *o = a;
    }
}

/// Softmax of `x` in place: subtract the max, exponentiate, divide by the sum accumulated left to
/// right. Returns nothing; an all `-inf` row is left as NaN-free zeros.
pub fn softmax_in_place(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    if max == f32::NEG_INFINITY {
        x.iter_mut().for_each(|v| *v = 0.0);
        return;
    }
    let mut sum = 0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `cap · tanh(x / cap)` (Gemma 2's attention- and final-logit soft-capping).
#[inline]
pub fn soft_cap(x: f32, cap: f32) -> f32 {
    (x / cap).tanh() * cap
}

/// Element-wise work (activations, activation quantization) below this many values runs on the
/// calling thread: a decode step's single row is cheaper than handing it to the pool.
pub(crate) const PARALLEL_MIN_ELEMS: usize = 16 * 1024;

/// The activation of a feed-forward layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `x · σ(x)` (llama, qwen2, mistral).
    Silu,
    /// The tanh approximation of GELU (Gemma, T5 v1.1 / Flan-T5 `gelu_new`).
    GeluTanh,
    /// `max(x, 0)` (original T5).
    Relu,
}

impl Activation {
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Silu => x / (1.0 + (-x).exp()),
            Activation::GeluTanh => {
                const SQRT_2_OVER_PI: f32 = 0.797_884_6;
                0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
            }
            Activation::Relu => x.max(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transformer::test_values::lcg;

    #[test]
    fn dot_is_exact_on_small_integers_and_handles_tails() {
        for n in [0, 1, 7, 8, 9, 31, 64, 100] {
            let a: Vec<f32> = (0..n).map(|i| (i % 5) as f32 - 2.0).collect();
            let b: Vec<f32> = (0..n).map(|i| (i % 3) as f32).collect();
            let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert_eq!(dot(&a, &b), want, "n = {n}");
        }
    }

    #[test]
    fn dot4_and_axpy4_have_the_bits_of_dot_and_axpy() {
        for n in [0usize, 1, 7, 8, 9, 31, 64, 100, 128, 256] {
            let q = lcg(n, 11 + n as u64);
            let ks: Vec<Vec<f32>> = (0..4).map(|i| lcg(n, 100 * i + n as u64)).collect();
            let got = dot4(&q, [&ks[0], &ks[1], &ks[2], &ks[3]]);
            let portable = dot4_body(&q, [&ks[0], &ks[1], &ks[2], &ks[3]]);
            for i in 0..4 {
                assert_eq!(got[i].to_bits(), dot(&q, &ks[i]).to_bits(), "dot4, n = {n}, vector {i}");
                assert_eq!(portable[i].to_bits(), got[i].to_bits(), "dot4 without AVX2, n = {n}, vector {i}");
            }
            let w = [0.3f32, -1.7, 2.5e-3, 0.91];
            let (mut one, mut four) = (q.clone(), q.clone());
            for i in 0..4 {
                axpy(w[i], &ks[i], &mut one);
            }
            let mut portable = q.clone();
            axpy4(w, [&ks[0], &ks[1], &ks[2], &ks[3]], &mut four);
            axpy4_body(w, [&ks[0], &ks[1], &ks[2], &ks[3]], &mut portable);
            assert!(one.iter().zip(&four).all(|(a, b)| a.to_bits() == b.to_bits()), "axpy4, n = {n}");
            assert!(one.iter().zip(&portable).all(|(a, b)| a.to_bits() == b.to_bits()), "axpy4 without AVX2, n = {n}");
        }
    }

    #[test]
    fn softmax_sums_to_one_and_masks() {
        let mut x = lcg(37, 5);
        x[3] = f32::NEG_INFINITY;
        softmax_in_place(&mut x);
        assert_eq!(x[3], 0.0);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let mut all_masked = vec![f32::NEG_INFINITY; 4];
        softmax_in_place(&mut all_masked);
        assert_eq!(all_masked, vec![0.0; 4]);
    }

    #[test]
    fn activations_match_their_definitions() {
        assert!((Activation::Silu.apply(1.0) - 0.731_058_6).abs() < 1e-6);
        assert!((Activation::GeluTanh.apply(1.0) - 0.841_192).abs() < 1e-5);
        assert_eq!(Activation::Relu.apply(-2.0), 0.0);
        assert!((soft_cap(100.0, 30.0) - 30.0 * (100.0f32 / 30.0).tanh()).abs() < 1e-6);
    }
}
