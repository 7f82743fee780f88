//! 8-bit weights and the matmul that reads them once for a whole block of tokens.
//!
//! Values are ggml Q8_0 blocks: 32 signed bytes `q` and an f16 scale `d` (value = `d · q`).
//! In memory, rows are interleaved in groups of four: for each group and each block, the four
//! rows' scales (8 bytes) then their four 32-byte quant runs, so the kernel streams one
//! contiguous buffer. Activations are quantized the same way (per 32 values, per token), so the
//! inner product of one block is an integer dot product (AVX2 `maddubs`) scaled by `d_w · d_x`.
//!
//! Batch-1 decoding is bound by the bytes of weight read per token. [`Q8Matrix::matmul`] walks
//! the weight once and, for every block it loads, updates all token columns (in groups of
//! [`MAX_COLS`] while the block sits in cache), so scoring a block of γ + 1 positions costs far
//! less than γ + 1 decode steps.

use rayon::prelude::*;

/// Values per quantization block.
pub const QK: usize = 32;
/// Bytes of one row-major Q8_0 block: f16 scale + 32 × i8.
pub const BLOCK_BYTES: usize = 2 + QK;
/// Rows interleaved in one group.
const GROUP: usize = 4;
/// Bytes of one block of a row group: 4 scales + 4 × 32 quants.
const GROUP_BLOCK_BYTES: usize = GROUP * BLOCK_BYTES;
/// The most token columns one kernel pass handles; larger inputs run in groups of this.
pub const MAX_COLS: usize = 8;

/// A `[rows, cols]` matrix of Q8_0 blocks (rows interleaved by four, zero-padded to a multiple).
#[derive(Clone)]
pub struct Q8Matrix {
    rows: usize,
    cols: usize,
    data: Vec<u8>,
}

impl std::fmt::Debug for Q8Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Q8Matrix[{} x {}]", self.rows, self.cols)
    }
}

impl Q8Matrix {
    /// Quantize a row-major `[rows, cols]` f32 matrix (`cols` a multiple of 32).
    pub fn from_f32(rows: usize, cols: usize, values: &[f32]) -> Result<Self, String> {
        if cols % QK != 0 {
            return Err(format!("8-bit weights need a column count divisible by {QK}, got {cols}"));
        }
        if values.len() != rows * cols {
            return Err(format!("expected {rows} x {cols} = {} values, got {}", rows * cols, values.len()));
        }
        let nb = cols / QK;
        let mut data = vec![0u8; rows * nb * BLOCK_BYTES];
        data.par_chunks_mut(nb * BLOCK_BYTES).zip(values.par_chunks(cols)).for_each(|(dst, src)| {
            for (blk, x) in dst.chunks_exact_mut(BLOCK_BYTES).zip(src.chunks_exact(QK)) {
                let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d16 = f32_to_f16(amax / 127.0);
                blk[..2].copy_from_slice(&d16.to_le_bytes());
                // Quantize against the scale as stored (f16), like ggml.
                let d = f16_to_f32(d16);
                let id = if d > 0.0 { 1.0 / d } else { 0.0 };
                for (q, v) in blk[2..].iter_mut().zip(x) {
                    *q = round_i8((v * id).clamp(-127.0, 127.0)) as u8;
                }
            }
        });
        Ok(Self::from_row_major(rows, cols, &data))
    }

    /// Wrap raw row-major Q8_0 bytes as stored in a GGUF file (`rows` rows of `cols` values).
    pub fn from_q8_0_bytes(rows: usize, cols: usize, data: Vec<u8>) -> Result<Self, String> {
        if cols % QK != 0 || data.len() != rows * (cols / QK) * BLOCK_BYTES {
            return Err(format!("Q8_0 data of {} bytes does not hold {rows} x {cols} values", data.len()));
        }
        Ok(Self::from_row_major(rows, cols, &data))
    }

    /// Interleave row-major Q8_0 rows by four.
    fn from_row_major(rows: usize, cols: usize, src: &[u8]) -> Self {
        let nb = cols / QK;
        let groups = rows.div_ceil(GROUP);
        let mut data = vec![0u8; groups * nb * GROUP_BLOCK_BYTES];
        data.par_chunks_mut(nb * GROUP_BLOCK_BYTES).enumerate().for_each(|(g, dst)| {
            for lane in 0..GROUP {
                let r = g * GROUP + lane;
                if r >= rows {
                    break;
                }
                let row = &src[r * nb * BLOCK_BYTES..(r + 1) * nb * BLOCK_BYTES];
                for (b, blk) in row.chunks_exact(BLOCK_BYTES).enumerate() {
                    let o = b * GROUP_BLOCK_BYTES;
                    dst[o + 2 * lane..o + 2 * lane + 2].copy_from_slice(&blk[..2]);
                    let q = o + 2 * GROUP + QK * lane;
                    dst[q..q + QK].copy_from_slice(&blk[2..]);
                }
            }
        });
        Self { rows, cols, data }
    }

    /// Row-major Q8_0 bytes of all rows.
    fn to_row_major(&self) -> Vec<u8> {
        let nb = self.cols / QK;
        let mut out = vec![0u8; self.rows * nb * BLOCK_BYTES];
        for (r, row) in out.chunks_exact_mut(nb * BLOCK_BYTES).enumerate() {
            let (g, lane) = (r / GROUP, r % GROUP);
            for (b, blk) in row.chunks_exact_mut(BLOCK_BYTES).enumerate() {
                let o = (g * nb + b) * GROUP_BLOCK_BYTES;
                blk[..2].copy_from_slice(&self.data[o + 2 * lane..o + 2 * lane + 2]);
                let q = o + 2 * GROUP + QK * lane;
                blk[2..].copy_from_slice(&self.data[q..q + QK]);
            }
        }
        out
    }

    /// Concatenate matrices of equal column count along the rows.
    pub fn stack_rows(parts: &[Q8Matrix]) -> Result<Self, String> {
        let cols = parts.first().map(|m| m.cols).unwrap_or(0);
        if let Some(m) = parts.iter().find(|m| m.cols != cols) {
            return Err(format!("cannot stack a matrix of {} columns onto {cols}", m.cols));
        }
        let rows = parts.iter().map(|m| m.rows).sum();
        let raw: Vec<u8> = parts.iter().flat_map(|m| m.to_row_major()).collect();
        Ok(Self::from_row_major(rows, cols, &raw))
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Bytes of weight read by one pass.
    pub fn byte_len(&self) -> usize {
        self.data.len()
    }

    /// Decode row `r` into `out` (`cols` values).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let nb = self.cols / QK;
        let (g, lane) = (r / GROUP, r % GROUP);
        for (b, o) in out.chunks_exact_mut(QK).enumerate() {
            let base = (g * nb + b) * GROUP_BLOCK_BYTES;
            let d = f16_to_f32(u16::from_le_bytes([self.data[base + 2 * lane], self.data[base + 2 * lane + 1]]));
            let q = &self.data[base + 2 * GROUP + QK * lane..base + 2 * GROUP + QK * (lane + 1)];
            for (v, q) in o.iter_mut().zip(q) {
                *v = d * (*q as i8) as f32;
            }
        }
    }

    /// `out[t, r] = Σ_c x[t, c] · W[r, c]` for `k` tokens: `x` is `[k, cols]`, `out` `[k, rows]`.
    ///
    /// Parallel over chunks of row groups; each chunk is read from memory once and applied to
    /// every token column.
    pub fn matmul(&self, x: &[f32], k: usize, out: &mut [f32]) {
        assert_eq!(x.len(), k * self.cols, "Q8Matrix::matmul input shape");
        assert_eq!(out.len(), k * self.rows, "Q8Matrix::matmul output shape");
        if k == 0 {
            return;
        }
        let acts = QuantizedActs::new(x, k, self.cols);
        let nb = self.cols / QK;
        let group_bytes = nb * GROUP_BLOCK_BYTES;
        let groups = self.data.len() / group_bytes;
        let threads = rayon::current_num_threads().max(1);
        let groups_per_task = (groups / (threads * 16)).clamp(1, 64);
        let run = |dst: &mut [f32]| {
            dst.par_chunks_mut(groups_per_task * GROUP * k)
                .zip(self.data.par_chunks(groups_per_task * group_bytes))
                .for_each(|(dst, w)| {
                    let mut c0 = 0;
                    while c0 < k {
                        let kc = (k - c0).min(MAX_COLS);
                        kernel::groups(w, nb, &acts, c0, kc, dst, k);
                        c0 += kc;
                    }
                });
        };
        if k == 1 && self.rows == groups * GROUP {
            // One token and no padding rows: `out` already has the kernel's layout.
            run(out);
            return;
        }
        // Row-major [groups * 4, k] scratch so that tasks write disjoint contiguous chunks.
        let mut tmp = vec![0f32; groups * GROUP * k];
        run(&mut tmp);
        rows_to_columns(&tmp, self.rows, k, out);
    }
}

/// The kernels' scratch `tmp` (`[≥ rows, k]`, a row's k values together) → `out` (`[k, rows]`).
pub(super) fn rows_to_columns(tmp: &[f32], rows: usize, k: usize, out: &mut [f32]) {
    for r in 0..rows {
        for t in 0..k {
            out[t * rows + r] = tmp[r * k + t];
        }
    }
}

/// Token activations quantized to Q8_0-style blocks (scale per 32 values per token).
pub(crate) struct QuantizedActs {
    /// `[k, nb]` scales.
    pub d: Vec<f32>,
    /// `[k, cols]` quantized values.
    pub q: Vec<i8>,
}

impl QuantizedActs {
    fn new(x: &[f32], k: usize, cols: usize) -> Self {
        let nb = cols / QK;
        let mut d = vec![0f32; k * nb];
        let mut q = vec![0i8; k * cols];
        let quantize = |(xs, (qs, ds)): (&[f32], (&mut [i8], &mut [f32]))| {
            for ((xb, qb), db) in xs.chunks_exact(QK).zip(qs.chunks_exact_mut(QK)).zip(ds.iter_mut()) {
                let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
                let s = amax / 127.0;
                let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
                for (qv, v) in qb.iter_mut().zip(xb) {
                    *qv = round_i8(v * inv);
                }
                *db = s;
            }
        };
        if k >= 8 {
            x.par_chunks(cols).zip(q.par_chunks_mut(cols).zip(d.par_chunks_mut(nb))).for_each(quantize);
        } else {
            x.chunks(cols).zip(q.chunks_mut(cols).zip(d.chunks_mut(nb))).for_each(quantize);
        }
        Self { d, q }
    }
}

/// Round to nearest (ties to even) for |v| ≤ 127 without a libm call: adding 1.5·2²³ leaves the
/// rounded integer in the low mantissa bits.
#[inline(always)]
fn round_i8(v: f32) -> i8 {
    const MAGIC: f32 = 12_582_912.0;
    ((v + MAGIC) - MAGIC) as i8
}

mod kernel {
    use super::{GROUP, GROUP_BLOCK_BYTES, QK, QuantizedActs, f16_to_f32};

    /// Columns `c0 .. c0 + kc` of `dst` (`[4 · groups_in_chunk, stride]`) from the row groups in `w`.
    pub fn groups(w: &[u8], nb: usize, acts: &QuantizedActs, c0: usize, kc: usize, dst: &mut [f32], stride: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
                && std::is_x86_feature_detected!("f16c")
            {
                // SAFETY: the features the function is compiled for were detected above.
                unsafe {
                    match kc {
                        1 => return avx2::groups::<1>(w, nb, acts, c0, dst, stride),
                        2 => return avx2::groups::<2>(w, nb, acts, c0, dst, stride),
                        3 => return avx2::groups::<3>(w, nb, acts, c0, dst, stride),
                        4 => return avx2::groups::<4>(w, nb, acts, c0, dst, stride),
                        5 => return avx2::groups::<5>(w, nb, acts, c0, dst, stride),
                        6 => return avx2::groups::<6>(w, nb, acts, c0, dst, stride),
                        7 => return avx2::groups::<7>(w, nb, acts, c0, dst, stride),
                        8 => return avx2::groups::<8>(w, nb, acts, c0, dst, stride),
                        _ => {}
                    }
                }
            }
        }
        scalar(w, nb, acts, c0, kc, dst, stride)
    }

    fn scalar(w: &[u8], nb: usize, acts: &QuantizedActs, c0: usize, kc: usize, dst: &mut [f32], stride: usize) {
        let cols = nb * QK;
        for (g, grp) in w.chunks_exact(nb * GROUP_BLOCK_BYTES).enumerate() {
            for lane in 0..GROUP {
                for t in c0..c0 + kc {
                    let mut acc = 0f32;
                    for (b, blk) in grp.chunks_exact(GROUP_BLOCK_BYTES).enumerate() {
                        let dw = f16_to_f32(u16::from_le_bytes([blk[2 * lane], blk[2 * lane + 1]]));
                        let wq = &blk[2 * GROUP + QK * lane..2 * GROUP + QK * (lane + 1)];
                        let xq = &acts.q[t * cols + b * QK..t * cols + (b + 1) * QK];
                        let dot: i32 = wq.iter().zip(xq).map(|(a, b)| (*a as i8) as i32 * (*b as i32)).sum();
                        acc += dw * acts.d[t * nb + b] * dot as f32;
                    }
                    dst[(g * GROUP + lane) * stride + t] = acc;
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod avx2 {
        use super::super::{GROUP, GROUP_BLOCK_BYTES, QK, QuantizedActs};
        use std::arch::x86_64::*;

        /// How far ahead of the block being multiplied the weight stream is prefetched. The
        /// hardware prefetcher alone left one core reading at ~16 GB/s; asking for the lines
        /// 2 KiB ahead brought it to ~20 GB/s (a standalone copy of this loop over 200 MB, k = 1).
        const PREFETCH_BYTES: usize = 2048;

        /// The AVX2 kernel for `K` token columns over interleaved groups of four rows. The four
        /// rows' integer block sums are folded into one vector with two horizontal adds
        /// (`[r0 r1 r2 r3 | r0 r1 r2 r3]`), so each column costs one convert and one FMA per
        /// block for all four rows.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn groups<const K: usize>(
            w: &[u8],
            nb: usize,
            acts: &QuantizedActs,
            c0: usize,
            dst: &mut [f32],
            stride: usize,
        ) {
            unsafe {
                let cols = nb * QK;
                let group_bytes = nb * GROUP_BLOCK_BYTES;
                let n_groups = w.len() / group_bytes;
                let ones = _mm256_set1_epi16(1);
                let xq = acts.q.as_ptr().add(c0 * cols);
                let xd = acts.d.as_ptr().add(c0 * nb);
                for g in 0..n_groups {
                    let base = w.as_ptr().add(g * group_bytes);
                    let mut acc = [_mm256_setzero_ps(); K];
                    for b in 0..nb {
                        let blk = base.add(b * GROUP_BLOCK_BYTES);
                        // A hint only: prefetching past the end of the buffer cannot fault.
                        let ahead = blk.wrapping_add(PREFETCH_BYTES) as *const i8;
                        _mm_prefetch::<_MM_HINT_T0>(ahead);
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(128));
                        let d = _mm_cvtph_ps(_mm_loadl_epi64(blk as *const __m128i));
                        let dw = _mm256_set_m128(d, d); // [d0 d1 d2 d3 | d0 d1 d2 d3]
                        let q = blk.add(2 * GROUP);
                        let w0 = _mm256_loadu_si256(q as *const __m256i);
                        let w1 = _mm256_loadu_si256(q.add(QK) as *const __m256i);
                        let w2 = _mm256_loadu_si256(q.add(2 * QK) as *const __m256i);
                        let w3 = _mm256_loadu_si256(q.add(3 * QK) as *const __m256i);
                        let a0 = _mm256_sign_epi8(w0, w0);
                        let a1 = _mm256_sign_epi8(w1, w1);
                        let a2 = _mm256_sign_epi8(w2, w2);
                        let a3 = _mm256_sign_epi8(w3, w3);
                        for t in 0..K {
                            let x = _mm256_loadu_si256(xq.add(t * cols + b * QK) as *const __m256i);
                            let q0 = _mm256_madd_epi16(_mm256_maddubs_epi16(a0, _mm256_sign_epi8(x, w0)), ones);
                            let q1 = _mm256_madd_epi16(_mm256_maddubs_epi16(a1, _mm256_sign_epi8(x, w1)), ones);
                            let q2 = _mm256_madd_epi16(_mm256_maddubs_epi16(a2, _mm256_sign_epi8(x, w2)), ones);
                            let q3 = _mm256_madd_epi16(_mm256_maddubs_epi16(a3, _mm256_sign_epi8(x, w3)), ones);
                            let h = _mm256_hadd_epi32(_mm256_hadd_epi32(q0, q1), _mm256_hadd_epi32(q2, q3));
                            let scale = _mm256_mul_ps(dw, _mm256_broadcast_ss(&*xd.add(t * nb + b)));
                            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(h), scale, acc[t]);
                        }
                    }
                    for t in 0..K {
                        let v = _mm_add_ps(_mm256_castps256_ps128(acc[t]), _mm256_extractf128_ps(acc[t], 1));
                        let mut four = [0f32; 4];
                        _mm_storeu_ps(four.as_mut_ptr(), v);
                        for (i, x) in four.iter().enumerate() {
                            dst[(g * GROUP + i) * stride + c0 + t] = *x;
                        }
                    }
                }
            }
        }
    }
}

/// IEEE half → single precision.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = if exp == 0 {
        if man == 0 {
            sign
        } else {
            // Subnormal: renormalise.
            let mut e = 127 - 15 + 1;
            let mut m = man;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((m & 0x3ff) << 13)
        }
    } else if exp == 0x1f {
        sign | 0x7f80_0000 | (man << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (man << 13)
    };
    f32::from_bits(bits)
}

/// Single → IEEE half precision, rounding to nearest even (finite inputs below 65504).
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rest = m & ((1u32 << shift) - 1);
        let mut out = m >> shift;
        if rest > half || (rest == half && out & 1 == 1) {
            out += 1;
        }
        return sign | out as u16;
    }
    let mut out = ((e as u32) << 10) | (man >> 13);
    let rest = man & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && out & 1 == 1) {
        out += 1;
    }
    sign | out as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transformer::test_values::lcg;

    #[test]
    fn f16_roundtrip() {
        for v in [0.0f32, 1.0, -2.5, 0.000123, 65000.0, 1e-6, 3.14159] {
            let back = f16_to_f32(f32_to_f16(v));
            assert!((back - v).abs() <= v.abs() * 1e-3 + 1e-7, "{v} -> {back}");
        }
    }

    #[test]
    fn matmul_matches_dequantized_reference_for_every_block_width() {
        let (rows, cols) = (37, 96); // 37: the last group of four is padded
        let w = lcg(rows * cols, 1);
        let m = Q8Matrix::from_f32(rows, cols, &w).unwrap();
        let mut deq = vec![0f32; rows * cols];
        for r in 0..rows {
            m.dequantize_row(r, &mut deq[r * cols..(r + 1) * cols]);
        }
        for k in [1usize, 2, 3, 5, 6, 8, 9, 13] {
            let x = lcg(k * cols, 7 + k as u64);
            let mut out = vec![0f32; k * rows];
            m.matmul(&x, k, &mut out);
            for t in 0..k {
                for r in 0..rows {
                    let exact: f32 = (0..cols).map(|c| x[t * cols + c] * deq[r * cols + c]).sum();
                    let got = out[t * rows + r];
                    // activation quantization error: ≤ 0.5/127 of each block's max per value
                    assert!((got - exact).abs() < 0.05, "k={k} t={t} r={r}: {got} vs {exact}");
                }
            }
            // columns are independent: a block equals single columns run one at a time
            for t in 0..k {
                let mut one = vec![0f32; rows];
                m.matmul(&x[t * cols..(t + 1) * cols], 1, &mut one);
                assert_eq!(&one[..], &out[t * rows..(t + 1) * rows]);
            }
        }
    }

    #[test]
    fn stacking_and_raw_q8_0_keep_every_row() {
        let (a, b) = (lcg(5 * 64, 3), lcg(7 * 64, 4));
        let (ma, mb) = (Q8Matrix::from_f32(5, 64, &a).unwrap(), Q8Matrix::from_f32(7, 64, &b).unwrap());
        let st = Q8Matrix::stack_rows(&[ma.clone(), mb.clone()]).unwrap();
        assert_eq!((st.rows(), st.cols()), (12, 64));
        let raw = Q8Matrix::from_q8_0_bytes(5, 64, ma.to_row_major()).unwrap();
        let (mut x, mut y) = (vec![0f32; 64], vec![0f32; 64]);
        for r in 0..12 {
            st.dequantize_row(r, &mut x);
            if r < 5 {
                ma.dequantize_row(r, &mut y);
                let mut z = vec![0f32; 64];
                raw.dequantize_row(r, &mut z);
                assert_eq!(y, z);
                // within half a quantization step of the source
                let amax = a[r * 64..r * 64 + 32].iter().fold(0f32, |m, v| m.max(v.abs()));
                assert!((y[0] - a[r * 64]).abs() <= amax / 127.0);
            } else {
                mb.dequantize_row(r - 5, &mut y);
            }
            assert_eq!(x, y, "row {r}");
        }
        assert!(Q8Matrix::from_q8_0_bytes(5, 64, vec![0; 10]).is_err());
        assert!(Q8Matrix::from_f32(2, 33, &[0.0; 66]).is_err());
    }
}
