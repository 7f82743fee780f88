//! One weight-matrix type for every precision, and the two layers built on it: [`Linear`]
//! (`y = x Wᵀ + b`) and [`Embedding`] (row lookup). A tied output head is a [`Linear`] over the
//! embedding's own [`Matrix`], shared, not copied.
//!
//! Every matmul computes each output `out[t, r]` from row `t` of the input and row `r` of the
//! weight alone, in an order that does not depend on how many rows the input holds: the 8-bit and
//! f16 kernels ([`super::q8`], [`super::f16`]) by construction, the f32 kernel here because each
//! output has the rounding of [`super::ops::dot`].

use std::sync::Arc;

use rayon::prelude::*;

use super::error::LoadError;
use super::f16::F16Matrix;
use super::ops::{Acts, fold_lanes};
use super::q4k::Q4kMatrix;
use super::q8::{Q8Matrix, rows_to_columns};
use super::weights::{WeightSource, expect};

/// Storage precision of the weight matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 weights, fixed-order host kernel: the reference path.
    F32,
    /// Q8_0 weights and activations, custom kernel: about 3.8× fewer bytes per token than f32.
    Q8,
    /// f16 weights, f32 activations, custom kernel: half the bytes of f32, closer to f32 than
    /// 8-bit, and blocks of several tokens cost fewer steps than with 8-bit (see [`super::f16`]).
    F16,
    /// The file's Q4_K tensors read natively, 4.6 bits a weight ([`super::q4k`]), and every
    /// other tensor (a GGUF file's Q6_K / Q5_0 ones, a fused projection whose parts are not all
    /// Q4_K, safetensors weights) at [`Precision::Q8`]. The Q4_K weights are exactly the file's.
    Q4k,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Q8 => "q8",
            Precision::F16 => "f16",
            Precision::Q4k => "q4k",
        })
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "q8" | "q8_0" | "int8" => Ok(Precision::Q8),
            "f16" => Ok(Precision::F16),
            "q4k" | "q4_k" => Ok(Precision::Q4k),
            other => Err(format!("unknown precision '{other}': expected q8, q4k, f16 or f32")),
        }
    }
}

enum Store {
    /// Row-major `[rows, cols]`.
    F32 {
        rows: usize,
        cols: usize,
        data: Vec<f32>,
    },
    Q8(Q8Matrix),
    F16(F16Matrix),
    Q4k(Q4kMatrix),
}

/// An immutable `[rows, cols]` weight matrix (PyTorch `[out, in]` order) in one of the
/// [`Precision`]s. Cloning shares the weights.
#[derive(Clone)]
pub struct Matrix {
    store: Arc<Store>,
}

impl std::fmt::Debug for Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Matrix[{} x {}, {}]", self.rows(), self.cols(), self.precision())
    }
}

impl Matrix {
    /// Build from row-major f32 values, converting to `precision` ([`Precision::Q4k`] keeps only
    /// a file's own Q4_K blocks, so f32 values are stored at [`Precision::Q8`]).
    pub fn from_f32(rows: usize, cols: usize, data: Vec<f32>, precision: Precision) -> Result<Self, String> {
        if data.len() != rows * cols {
            return Err(format!("expected {rows} x {cols} = {} values, got {}", rows * cols, data.len()));
        }
        let store = match precision {
            Precision::F32 => Store::F32 { rows, cols, data },
            Precision::Q8 | Precision::Q4k => Store::Q8(Q8Matrix::from_f32(rows, cols, &data)?),
            Precision::F16 => Store::F16(F16Matrix::from_f32(rows, cols, &data)?),
        };
        Ok(Self { store: Arc::new(store) })
    }

    /// Wrap ready 8-bit blocks.
    pub fn from_q8(m: Q8Matrix) -> Self {
        Self { store: Arc::new(Store::Q8(m)) }
    }

    /// Load the tensors `parts` (`(name, rows)`, each `[rows, cols]`) from `src` and stack their
    /// rows into one matrix (fused projections such as Q|K|V or gate|up). At [`Precision::Q4k`]
    /// the file's Q4_K blocks are used where every part has them; at [`Precision::Q8`] (and
    /// [`Precision::Q4k`] otherwise) the file's own Q8_0 blocks where every part has them.
    pub fn load(
        src: &dyn WeightSource,
        parts: &[(String, usize)],
        cols: usize,
        p: Precision,
    ) -> Result<Self, LoadError> {
        let err = |name: &str, reason: String| LoadError::Format {
            file: src.describe(),
            reason: format!("tensor '{name}': {reason}"),
        };
        if p == Precision::Q4k {
            let mut raw = Vec::new();
            let mut all = true;
            for (name, rows) in parts {
                match (src.load_q4_k(name)?, src.shape(name)) {
                    (Some(bytes), Some(shape)) if shape == [*rows, cols] => raw.extend_from_slice(&bytes),
                    _ => {
                        all = false;
                        break;
                    }
                }
            }
            if all {
                let rows = parts.iter().map(|(_, r)| r).sum();
                let m = Q4kMatrix::from_q4_k_bytes(rows, cols, &raw).map_err(|e| err(&parts[0].0, e))?;
                return Ok(Self { store: Arc::new(Store::Q4k(m)) });
            }
        }
        if matches!(p, Precision::Q8 | Precision::Q4k) {
            let mut raw = Vec::with_capacity(parts.len());
            for (name, rows) in parts {
                match src.load_q8_0(name)? {
                    Some(m) if m.rows() == *rows && m.cols() == cols => raw.push(m),
                    _ => break,
                }
            }
            if raw.len() == parts.len() {
                let m = if raw.len() == 1 {
                    raw.pop().expect("one part")
                } else {
                    Q8Matrix::stack_rows(&raw).map_err(|e| err(&parts[0].0, e))?
                };
                return Ok(Self::from_q8(m));
            }
        }
        let rows: usize = parts.iter().map(|(_, r)| r).sum();
        let mut data = Vec::with_capacity(rows * cols);
        for (name, r) in parts {
            data.extend_from_slice(&expect(src, name, &[*r, cols])?.data);
        }
        Self::from_f32(rows, cols, data, p).map_err(|e| err(&parts[0].0, e))
    }

    pub fn rows(&self) -> usize {
        match &*self.store {
            Store::F32 { rows, .. } => *rows,
            Store::Q8(m) => m.rows(),
            Store::F16(m) => m.rows(),
            Store::Q4k(m) => m.rows(),
        }
    }
    pub fn cols(&self) -> usize {
        match &*self.store {
            Store::F32 { cols, .. } => *cols,
            Store::Q8(m) => m.cols(),
            Store::F16(m) => m.cols(),
            Store::Q4k(m) => m.cols(),
        }
    }
    pub fn precision(&self) -> Precision {
        match &*self.store {
            Store::F32 { .. } => Precision::F32,
            Store::Q8(_) => Precision::Q8,
            Store::F16(_) => Precision::F16,
            Store::Q4k(_) => Precision::Q4k,
        }
    }
    /// Bytes of weight one matmul reads.
    pub fn byte_len(&self) -> usize {
        match &*self.store {
            Store::F32 { data, .. } => data.len() * 4,
            Store::Q8(m) => m.byte_len(),
            Store::F16(m) => m.byte_len(),
            Store::Q4k(m) => m.byte_len(),
        }
    }

    /// Row `r` as f32 into `out` (`cols` values): an embedding lookup.
    pub fn row(&self, r: usize, out: &mut [f32]) {
        match &*self.store {
            Store::F32 { cols, data, .. } => out.copy_from_slice(&data[r * cols..(r + 1) * cols]),
            Store::Q8(m) => m.dequantize_row(r, out),
            Store::F16(m) => m.dequantize_row(r, out),
            Store::Q4k(m) => m.dequantize_row(r, out),
        }
    }

    /// `out[t, r] = Σ_c x[t, c] · W[r, c]`: `x` is `[k, cols]`, `out` `[k, rows]`. Each output's
    /// value is independent of `k`.
    pub fn matmul(&self, x: &[f32], k: usize, out: &mut [f32]) {
        match &*self.store {
            Store::F32 { rows, cols, data } => f32_matmul(data, *rows, *cols, x, k, out),
            Store::Q8(m) => m.matmul(x, k, out),
            Store::F16(m) => m.matmul(x, k, out),
            Store::Q4k(m) => m.matmul(x, k, out),
        }
    }
}

/// `y = x Wᵀ + b` for `x: [k, in]`, `W: [out, in]`.
pub struct Linear {
    weight: Matrix,
    bias: Option<Vec<f32>>,
}

impl Linear {
    /// `bias`, when given, has `weight.rows()` values (checked by the loaders that build it).
    pub fn new(weight: Matrix, bias: Option<Vec<f32>>) -> Self {
        if let Some(b) = &bias {
            assert_eq!(b.len(), weight.rows(), "Linear::new: bias length");
        }
        Self { weight, bias }
    }

    /// [`Matrix::load`] of `parts`, with an optional bias.
    pub fn load(
        src: &dyn WeightSource,
        parts: &[(String, usize)],
        d_in: usize,
        bias: Option<Vec<f32>>,
        p: Precision,
    ) -> Result<Self, LoadError> {
        let weight = Matrix::load(src, parts, d_in, p)?;
        if let Some(b) = &bias
            && b.len() != weight.rows()
        {
            return Err(LoadError::TensorShape {
                file: src.describe(),
                tensor: format!("bias of {}", parts[0].0),
                expected: vec![weight.rows()],
                got: vec![b.len()],
            });
        }
        Ok(Self { weight, bias })
    }

    pub fn weight(&self) -> &Matrix {
        &self.weight
    }
    pub fn d_in(&self) -> usize {
        self.weight.cols()
    }
    pub fn d_out(&self) -> usize {
        self.weight.rows()
    }

    /// Shapes: `x: [k, in]` → `[k, out]`.
    pub fn forward(&self, x: &Acts) -> Acts {
        assert_eq!(x.cols(), self.d_in(), "Linear::forward: input has {} columns, weight {:?}", x.cols(), self.weight);
        let (k, d_out) = (x.rows(), self.d_out());
        let mut out = vec![0f32; k * d_out];
        self.weight.matmul(x.as_slice(), k, &mut out);
        if let Some(b) = &self.bias {
            for row in out.chunks_exact_mut(d_out) {
                for (y, b) in row.iter_mut().zip(b) {
                    *y += b;
                }
            }
        }
        Acts::new(k, d_out, out)
    }
}

/// A token embedding table `[vocab, d]`.
pub struct Embedding {
    table: Matrix,
}

impl Embedding {
    pub fn new(table: Matrix) -> Self {
        Self { table }
    }
    pub fn table(&self) -> &Matrix {
        &self.table
    }
    /// The tied output head: logits = h · tableᵀ, over the same weights.
    pub fn tied_head(&self) -> Linear {
        Linear::new(self.table.clone(), None)
    }
    /// Shapes: `tokens: [k]` (each `< vocab`, checked by the session) → `[k, d]`.
    pub fn forward(&self, tokens: &[u32]) -> Acts {
        let d = self.table.cols();
        let mut x = Acts::zeros(tokens.len(), d);
        for (i, &t) in tokens.iter().enumerate() {
            self.table.row(t as usize, x.row_mut(i));
        }
        x
    }
}

/// Lanes of the f32 kernel's partial sums (as in [`super::ops::dot`]).
const LANES: usize = 8;
/// Weight rows of one f32 tile.
const TILE_ROWS: usize = 4;
/// Token columns of one f32 tile: 4 × 3 × 8 partial sums fill twelve 8-wide registers.
const TILE_COLS: usize = 3;

/// f32 `out[t, r] = dot(x[t], W[r])` with the rounding of [`super::ops::dot`] for every output.
/// Parallel over chunks of weight rows; a chunk's rows are reused for every token column.
fn f32_matmul(w: &[f32], rows: usize, cols: usize, x: &[f32], k: usize, out: &mut [f32]) {
    assert_eq!(x.len(), k * cols, "f32 matmul input shape");
    assert_eq!(out.len(), k * rows, "f32 matmul output shape");
    if k == 0 || rows == 0 {
        return;
    }
    let threads = rayon::current_num_threads().max(1);
    let rows_per_task = (rows / (threads * 16)).clamp(TILE_ROWS, 256).next_multiple_of(TILE_ROWS);
    let run = |dst: &mut [f32]| {
        dst.par_chunks_mut(rows_per_task * k).enumerate().for_each(|(i, dst)| {
            let r0 = i * rows_per_task;
            let n = dst.len() / k;
            f32_rows(&w[r0 * cols..(r0 + n) * cols], cols, x, k, dst);
        });
    };
    if k == 1 {
        run(out);
        return;
    }
    // Row-major [rows, k] scratch so that tasks write disjoint contiguous chunks.
    let mut tmp = vec![0f32; rows * k];
    run(&mut tmp);
    rows_to_columns(&tmp, rows, k, out);
}

/// `dst[r · k + t] = dot(x[t], w[r])` for the rows of `w`.
fn f32_rows(w: &[f32], cols: usize, x: &[f32], k: usize, dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 was detected; the function is the same safe code compiled for it.
            return unsafe { f32_rows_avx2(w, cols, x, k, dst) };
        }
    }
    f32_rows_generic(w, cols, x, k, dst)
}

/// The same code with 8-wide registers. Float semantics do not change with the target feature
/// (no contraction into FMA), so the results equal the generic path's bit for bit.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn f32_rows_avx2(w: &[f32], cols: usize, x: &[f32], k: usize, dst: &mut [f32]) {
    f32_rows_generic(w, cols, x, k, dst)
}

#[inline(always)]
fn f32_rows_generic(w: &[f32], cols: usize, x: &[f32], k: usize, dst: &mut [f32]) {
    let n = w.len() / cols;
    let mut r = 0;
    while r < n {
        let nr = (n - r).min(TILE_ROWS);
        let mut t = 0;
        while t < k {
            let nt = (k - t).min(TILE_COLS);
            match (nr, nt) {
                (4, 3) => tile::<4, 3>(w, cols, x, r, t, k, dst),
                (4, 2) => tile::<4, 2>(w, cols, x, r, t, k, dst),
                (4, 1) => tile::<4, 1>(w, cols, x, r, t, k, dst),
                (_, 3) => (0..nr).for_each(|i| tile::<1, 3>(w, cols, x, r + i, t, k, dst)),
                (_, 2) => (0..nr).for_each(|i| tile::<1, 2>(w, cols, x, r + i, t, k, dst)),
                _ => (0..nr).for_each(|i| tile::<1, 1>(w, cols, x, r + i, t, k, dst)),
            }
            t += nt;
        }
        r += nr;
    }
}

/// Rows `r0 .. r0 + R` × tokens `t0 .. t0 + K`, each output with [`super::ops::dot`]'s rounding:
/// eight partial sums over 8-wide chunks, the pairwise fold, then the tail in sequence.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<const R: usize, const K: usize>(
    w: &[f32],
    cols: usize,
    x: &[f32],
    r0: usize,
    t0: usize,
    k: usize,
    dst: &mut [f32],
) {
    let full = cols / LANES * LANES;
    let wr: [&[f32]; R] = std::array::from_fn(|i| &w[(r0 + i) * cols..(r0 + i + 1) * cols]);
    let xt: [&[f32]; K] = std::array::from_fn(|j| &x[(t0 + j) * cols..(t0 + j + 1) * cols]);
    let mut acc = [[[0f32; LANES]; K]; R];
    let mut c = 0;
    while c < full {
        let wv: [&[f32; LANES]; R] = std::array::from_fn(|i| wr[i][c..c + LANES].try_into().expect("8 lanes"));
        let xv: [&[f32; LANES]; K] = std::array::from_fn(|j| xt[j][c..c + LANES].try_into().expect("8 lanes"));
        for i in 0..R {
            for j in 0..K {
                for l in 0..LANES {
                    acc[i][j][l] += xv[j][l] * wv[i][l];
                }
            }
        }
        c += LANES;
    }
    for i in 0..R {
        for j in 0..K {
            let mut tail = 0f32;
            for c in full..cols {
                tail += xt[j][c] * wr[i][c];
            }
            dst[(r0 + i) * k + t0 + j] = fold_lanes(&acc[i][j]) + tail;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transformer::ops::dot;
    use crate::transformer::test_values::lcg;

    /// Every precision: a row's outputs are the same bits whatever the number of rows in the call.
    #[test]
    fn matmul_outputs_do_not_depend_on_the_block_size() {
        let (rows, cols) = (37, 96);
        let w = lcg(rows * cols, 1);
        let x = lcg(11 * cols, 2);
        for p in [Precision::F32, Precision::F16, Precision::Q8] {
            let m = Matrix::from_f32(rows, cols, w.clone(), p).unwrap();
            let mut all = vec![0f32; 11 * rows];
            m.matmul(&x, 11, &mut all);
            for k in 1..=11 {
                for start in [0, 11 - k] {
                    let mut part = vec![0f32; k * rows];
                    m.matmul(&x[start * cols..(start + k) * cols], k, &mut part);
                    let want = &all[start * rows..(start + k) * rows];
                    let same = part.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{p}: rows {start}..{} of a block of {k} differ from the block of 11", start + k);
                }
            }
        }
    }

    #[test]
    fn f32_matmul_has_the_rounding_of_dot() {
        let (rows, cols) = (9, 45); // odd sizes: row and column tails
        let w = lcg(rows * cols, 3);
        let x = lcg(5 * cols, 4);
        let m = Matrix::from_f32(rows, cols, w.clone(), Precision::F32).unwrap();
        let mut out = vec![0f32; 5 * rows];
        m.matmul(&x, 5, &mut out);
        for t in 0..5 {
            for r in 0..rows {
                let want = dot(&x[t * cols..(t + 1) * cols], &w[r * cols..(r + 1) * cols]);
                assert_eq!(out[t * rows + r].to_bits(), want.to_bits(), "t {t} r {r}");
            }
        }
    }

    #[test]
    fn embedding_rows_and_tied_head_share_one_matrix() {
        let (vocab, d) = (8, 32);
        let w = lcg(vocab * d, 5);
        let e = Embedding::new(Matrix::from_f32(vocab, d, w.clone(), Precision::F32).unwrap());
        let x = e.forward(&[3, 0]);
        assert_eq!(x.row(0), &w[3 * d..4 * d]);
        let head = e.tied_head();
        let logits = head.forward(&x);
        assert_eq!(logits.cols(), vocab);
        assert_eq!(logits.row(0)[3].to_bits(), dot(&w[3 * d..4 * d], &w[3 * d..4 * d]).to_bits());
    }
}
