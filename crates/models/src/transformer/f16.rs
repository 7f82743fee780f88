//! f16 weights and the matmul that widens them to f32 on the fly (F16C) and multiplies in f32.
//!
//! Why a second low-precision path beside [`super::q8`]: the 8-bit kernel makes one decode step
//! cheap (1.06 bytes per weight), but a block of several token columns is compute-bound at 2.6–2.8
//! steps on the 2-core machines here. Half precision keeps the activations in f32 (no activation
//! rounding, closer to the f32 reference) and reads twice the bytes per step, so a step is
//! bandwidth-bound with compute to spare and a block of 6 costs 1.7–1.8 steps: the regime where
//! speculative methods pay off in wall clock (spec_decode 1.11× the f16 verifier alone), though q8
//! without a drafter stays faster in absolute terms. `BENCHMARKS.md` measures both.
//!
//! Rows are stored row-major (`[rows, cols]`, `cols` a multiple of 8). The kernel walks a tile of
//! `R` rows × `K` token columns, converting each 8-wide run of weights once and using it for every
//! column, with `R · K ≤ 12` f32 accumulators held in registers.

use rayon::prelude::*;

use super::q8::{f16_to_f32, f32_to_f16, rows_to_columns};

/// Values per vector (one 256-bit register of f32).
const LANES: usize = 8;
/// The most token columns one kernel pass handles; larger inputs run in groups of this. Six is
/// the widest tile (2 rows × 6 columns) whose accumulators and operands fit the 16 registers.
pub const MAX_COLS: usize = 6;

/// A `[rows, cols]` matrix of IEEE half-precision weights.
#[derive(Clone)]
pub struct F16Matrix {
    rows: usize,
    cols: usize,
    data: Vec<u16>,
}

impl std::fmt::Debug for F16Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "F16Matrix[{} x {}]", self.rows, self.cols)
    }
}

impl F16Matrix {
    /// Round a row-major `[rows, cols]` f32 matrix to half precision (nearest even).
    pub fn from_f32(rows: usize, cols: usize, values: &[f32]) -> Result<Self, String> {
        if !cols.is_multiple_of(LANES) {
            return Err(format!("f16 weights need a column count divisible by {LANES}, got {cols}"));
        }
        if values.len() != rows * cols {
            return Err(format!("expected {rows} x {cols} = {} values, got {}", rows * cols, values.len()));
        }
        if let Some(i) = values.iter().position(|v| v.is_finite() && v.abs() > 65504.0) {
            return Err(format!("value {} at row {} column {} does not fit in f16", values[i], i / cols, i % cols));
        }
        let mut data = vec![0u16; rows * cols];
        data.par_chunks_mut(1 << 16).zip(values.par_chunks(1 << 16)).for_each(|(dst, src)| convert::to_f16(src, dst));
        Ok(Self { rows, cols, data })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Bytes of weight read by one pass.
    pub fn byte_len(&self) -> usize {
        self.data.len() * 2
    }

    /// Widen row `r` into `out` (`cols` values).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        for (o, h) in out.iter_mut().zip(&self.data[r * self.cols..(r + 1) * self.cols]) {
            *o = f16_to_f32(*h);
        }
    }

    /// `out[t, r] = Σ_c x[t, c] · W[r, c]` for `k` tokens: `x` is `[k, cols]`, `out` `[k, rows]`.
    ///
    /// Parallel over chunks of rows; each chunk is read from memory once per group of
    /// [`MAX_COLS`] token columns.
    pub fn matmul(&self, x: &[f32], k: usize, out: &mut [f32]) {
        assert_eq!(x.len(), k * self.cols, "F16Matrix::matmul input shape");
        assert_eq!(out.len(), k * self.rows, "F16Matrix::matmul output shape");
        if k == 0 || self.rows == 0 {
            return;
        }
        let threads = rayon::current_num_threads().max(1);
        // Multiples of 24 rows keep every tile shape (8, 4, 3 or 2 rows) whole inside a chunk.
        let rows_per_task = (self.rows / (threads * 16)).clamp(24, 768).next_multiple_of(24);
        let cols = self.cols;
        let run = |dst: &mut [f32]| {
            dst.par_chunks_mut(rows_per_task * k).enumerate().for_each(|(i, dst)| {
                let r0 = i * rows_per_task;
                let n = dst.len() / k;
                let w = &self.data[r0 * cols..(r0 + n) * cols];
                let mut c0 = 0;
                while c0 < k {
                    let kc = (k - c0).min(MAX_COLS);
                    kernel::rows(w, cols, &x[c0 * cols..(c0 + kc) * cols], kc, dst, k, c0);
                    c0 += kc;
                }
            });
        };
        if k == 1 {
            run(out);
            return;
        }
        // Row-major [rows, k] scratch so that tasks write disjoint contiguous chunks.
        let mut tmp = vec![0f32; self.rows * k];
        run(&mut tmp);
        rows_to_columns(&tmp, self.rows, k, out);
    }
}

mod convert {
    use super::f32_to_f16;

    /// Round f32 → f16 (nearest even), with F16C where the CPU has it.
    pub fn to_f16(src: &[f32], dst: &mut [u16]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("f16c") && std::is_x86_feature_detected!("avx") {
                // SAFETY: the features the function is compiled for were detected above.
                unsafe { f16c(src, dst) };
                return;
            }
        }
        for (d, s) in dst.iter_mut().zip(src) {
            *d = f32_to_f16(*s);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx,f16c")]
    unsafe fn f16c(src: &[f32], dst: &mut [u16]) {
        use std::arch::x86_64::*;
        let n = src.len().min(dst.len());
        let whole = n / 8 * 8;
        unsafe {
            for i in (0..whole).step_by(8) {
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(src.as_ptr().add(i)));
                _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, h);
            }
        }
        for i in whole..n {
            dst[i] = f32_to_f16(src[i]);
        }
    }
}

mod kernel {
    use super::f16_to_f32;

    /// Columns `c0 .. c0 + kc` of `dst` (`[n_rows, stride]`) for the rows in `w` (`[n_rows, cols]`);
    /// `x` holds the `kc` token columns (`[kc, cols]`).
    pub fn rows(w: &[u16], cols: usize, x: &[f32], kc: usize, dst: &mut [f32], stride: usize, c0: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            // One path for the whole process, whatever `kc`: the f32 sums of different paths
            // differ in the last bits, and a column's result must not depend on its batch.
            if crate::cpu::f16_path() == crate::cpu::F16Path::Avx2 {
                // SAFETY: the path is only chosen where its features were detected.
                unsafe {
                    if crate::cpu::features().avx512vl {
                        // The same arithmetic with 32 vector registers (EVEX encoding): wider
                        // tiles, fewer loads per FMA, the same bits (each accumulator still sums
                        // its row and column in the same order).
                        match kc {
                            1 => return avx2::tiles_vl::<8, 1>(w, cols, x, dst, stride, c0),
                            2 => return avx2::tiles_vl::<8, 2>(w, cols, x, dst, stride, c0),
                            3 => return avx2::tiles_vl::<6, 3>(w, cols, x, dst, stride, c0),
                            4 => return avx2::tiles_vl::<4, 4>(w, cols, x, dst, stride, c0),
                            5 => return avx2::tiles_vl::<4, 5>(w, cols, x, dst, stride, c0),
                            6 => return avx2::tiles_vl::<4, 6>(w, cols, x, dst, stride, c0),
                            _ => {}
                        }
                    }
                    match kc {
                        // Tile shapes measured fastest on the AVX2 machines here (one column
                        // needs eight rows in flight to keep the loads busy).
                        1 => return avx2::tiles::<8, 1>(w, cols, x, dst, stride, c0),
                        2 => return avx2::tiles::<4, 2>(w, cols, x, dst, stride, c0),
                        3 => return avx2::tiles::<4, 3>(w, cols, x, dst, stride, c0),
                        4 => return avx2::tiles::<3, 4>(w, cols, x, dst, stride, c0),
                        5 => return avx2::tiles::<2, 5>(w, cols, x, dst, stride, c0),
                        6 => return avx2::tiles::<2, 6>(w, cols, x, dst, stride, c0),
                        _ => {}
                    }
                }
            }
        }
        scalar(w, cols, x, kc, dst, stride, c0)
    }

    /// The portable path (CPUs without AVX2/FMA/F16C), also the tests' check on the SIMD one.
    pub(super) fn scalar(w: &[u16], cols: usize, x: &[f32], kc: usize, dst: &mut [f32], stride: usize, c0: usize) {
        for (r, row) in w.chunks_exact(cols).enumerate() {
            for t in 0..kc {
                let xs = &x[t * cols..(t + 1) * cols];
                dst[r * stride + c0 + t] = row.iter().zip(xs).map(|(h, v)| f16_to_f32(*h) * v).sum();
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    pub(super) mod avx2 {
        use std::arch::x86_64::*;

        /// The body of [`tiles`] and [`tiles_vl`] (a macro so that it is compiled inside each,
        /// with each one's registers).
        macro_rules! all_tiles {
            ($R:ident, $K:ident, $w:ident, $cols:ident, $x:ident, $dst:ident, $stride:ident, $c0:ident) => {{
                let n_rows = $w.len() / $cols;
                let whole = n_rows / $R * $R;
                unsafe {
                    for r in (0..whole).step_by($R) {
                        tile::<$R, $K>($w, $cols, $x, $dst, $stride, $c0, r);
                    }
                    for r in whole..n_rows {
                        tile::<1, $K>($w, $cols, $x, $dst, $stride, $c0, r);
                    }
                }
            }};
        }

        /// All rows of `w` in tiles of `R` rows (the remainder one row at a time) × `K` columns.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn tiles<const R: usize, const K: usize>(
            w: &[u16],
            cols: usize,
            x: &[f32],
            dst: &mut [f32],
            stride: usize,
            c0: usize,
        ) {
            all_tiles!(R, K, w, cols, x, dst, stride, c0)
        }

        /// [`tiles`] compiled with AVX-512VL as well, so that the tiles may use 32 registers.
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
        pub unsafe fn tiles_vl<const R: usize, const K: usize>(
            w: &[u16],
            cols: usize,
            x: &[f32],
            dst: &mut [f32],
            stride: usize,
            c0: usize,
        ) {
            all_tiles!(R, K, w, cols, x, dst, stride, c0)
        }

        /// Rows `r .. r + R`: each 8-wide run of weights is widened once and multiplied into all
        /// `K` columns; the `R · K` accumulators are summed horizontally at the end of the row.
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn tile<const R: usize, const K: usize>(
            w: &[u16],
            cols: usize,
            x: &[f32],
            dst: &mut [f32],
            stride: usize,
            c0: usize,
            r: usize,
        ) {
            unsafe {
                let wp = w.as_ptr().add(r * cols);
                let xp = x.as_ptr();
                let mut acc = [[_mm256_setzero_ps(); K]; R];
                for j in (0..cols).step_by(8) {
                    if j % 32 == 0 {
                        // One cache line of each row, 1 KiB ahead (a hint: cannot fault).
                        for i in 0..R {
                            _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(i * cols + j + 512) as *const i8);
                        }
                    }
                    let mut wv = [_mm256_setzero_ps(); R];
                    for (i, v) in wv.iter_mut().enumerate() {
                        *v = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(i * cols + j) as *const __m128i));
                    }
                    for t in 0..K {
                        let xv = _mm256_loadu_ps(xp.add(t * cols + j));
                        for i in 0..R {
                            acc[i][t] = _mm256_fmadd_ps(wv[i], xv, acc[i][t]);
                        }
                    }
                }
                for i in 0..R {
                    for t in 0..K {
                        let a = acc[i][t];
                        let v = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
                        let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
                        let v = _mm_add_ss(v, _mm_shuffle_ps(v, v, 1));
                        dst[(r + i) * stride + c0 + t] = _mm_cvtss_f32(v);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transformer::test_values::lcg;

    #[test]
    fn matmul_matches_widened_reference_for_every_block_width() {
        // 37 rows: every tile shape leaves a remainder; 13 tasks' worth of columns per row.
        let (rows, cols) = (37, 104);
        let w = lcg(rows * cols, 1);
        let m = F16Matrix::from_f32(rows, cols, &w).unwrap();
        let mut wide = vec![0f32; rows * cols];
        for r in 0..rows {
            m.dequantize_row(r, &mut wide[r * cols..(r + 1) * cols]);
            for c in 0..cols {
                // rounding to f16: ≤ 2⁻¹¹ relative
                let (a, b) = (wide[r * cols + c], w[r * cols + c]);
                assert!((a - b).abs() <= b.abs() / 2048.0 + 1e-7, "row {r} col {c}: {a} vs {b}");
            }
        }
        println!("f16 path exercised: {}", crate::cpu::f16_path().name());
        for k in (1usize..=20).chain([33, 64]) {
            let x = lcg(k * cols, 7 + k as u64);
            let mut out = vec![0f32; k * rows];
            m.matmul(&x, k, &mut out);
            for t in 0..k {
                for r in 0..rows {
                    let exact: f64 = (0..cols).map(|c| x[t * cols + c] as f64 * wide[r * cols + c] as f64).sum();
                    let got = out[t * rows + r] as f64;
                    assert!((got - exact).abs() < 1e-4, "k={k} t={t} r={r}: {got} vs {exact}");
                }
            }
            // a block equals its columns run one at a time, bit for bit (one path per process,
            // every tile shape sums a column in the same order)
            for t in 0..k {
                let mut one = vec![0f32; rows];
                m.matmul(&x[t * cols..(t + 1) * cols], 1, &mut one);
                for r in 0..rows {
                    assert_eq!(one[r].to_bits(), out[t * rows + r].to_bits(), "k={k} t={t} r={r}");
                }
            }
        }
    }

    #[test]
    fn simd_tiles_equal_the_portable_path() {
        let (rows, cols) = (29, 48);
        let m = F16Matrix::from_f32(rows, cols, &lcg(rows * cols, 11)).unwrap();
        for kc in 1..=MAX_COLS {
            let x = lcg(kc * cols, 20 + kc as u64);
            let (mut a, mut b) = (vec![0f32; rows * kc], vec![0f32; rows * kc]);
            kernel::rows(&m.data, cols, &x, kc, &mut a, kc, 0);
            kernel::scalar(&m.data, cols, &x, kc, &mut b, kc, 0);
            for (i, (p, q)) in a.iter().zip(&b).enumerate() {
                assert!((p - q).abs() <= 1e-5 * (1.0 + q.abs()), "kc={kc} index {i}: {p} vs {q}");
            }
        }
    }

    /// The 32-register tiles (AVX-512VL) must give the AVX2 tiles' bits: both are the one f16
    /// path of a process, so which of them runs must not show in the results.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn wide_tiles_equal_the_avx2_tiles_bit_for_bit() {
        let f = crate::cpu::features();
        if !(f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512vl) {
            println!("SKIPPED: this CPU lacks AVX2/FMA/F16C or AVX-512VL; the 32-register f16 tiles were not run");
            return;
        }
        let (rows, cols) = (53, 72);
        let m = F16Matrix::from_f32(rows, cols, &lcg(rows * cols, 12)).unwrap();
        for kc in 1..=MAX_COLS {
            let x = lcg(kc * cols, 40 + kc as u64);
            let (mut a, mut b) = (vec![0f32; rows * kc], vec![0f32; rows * kc]);
            // SAFETY: the features were checked above.
            unsafe {
                match kc {
                    1 => kernel::avx2::tiles::<8, 1>(&m.data, cols, &x, &mut a, kc, 0),
                    2 => kernel::avx2::tiles::<4, 2>(&m.data, cols, &x, &mut a, kc, 0),
                    3 => kernel::avx2::tiles::<4, 3>(&m.data, cols, &x, &mut a, kc, 0),
                    4 => kernel::avx2::tiles::<3, 4>(&m.data, cols, &x, &mut a, kc, 0),
                    5 => kernel::avx2::tiles::<2, 5>(&m.data, cols, &x, &mut a, kc, 0),
                    _ => kernel::avx2::tiles::<2, 6>(&m.data, cols, &x, &mut a, kc, 0),
                }
            }
            // SAFETY: as above (AVX-512VL checked too).
            unsafe {
                match kc {
                    1 => kernel::avx2::tiles_vl::<8, 1>(&m.data, cols, &x, &mut b, kc, 0),
                    2 => kernel::avx2::tiles_vl::<8, 2>(&m.data, cols, &x, &mut b, kc, 0),
                    3 => kernel::avx2::tiles_vl::<6, 3>(&m.data, cols, &x, &mut b, kc, 0),
                    4 => kernel::avx2::tiles_vl::<4, 4>(&m.data, cols, &x, &mut b, kc, 0),
                    5 => kernel::avx2::tiles_vl::<4, 5>(&m.data, cols, &x, &mut b, kc, 0),
                    _ => kernel::avx2::tiles_vl::<4, 6>(&m.data, cols, &x, &mut b, kc, 0),
                }
            }
            assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()), "kc={kc}");
        }
        println!("f16 tiles exercised: avx2 (16 registers) and avx512vl (32 registers)");
    }

    #[test]
    fn conversion_rounds_like_the_scalar_path_and_refuses_overflow() {
        let v = lcg(1003, 5).into_iter().map(|x| x * 300.0).collect::<Vec<_>>();
        let mut a = vec![0u16; v.len()];
        convert::to_f16(&v, &mut a);
        let b: Vec<u16> = v.iter().map(|x| f32_to_f16(*x)).collect();
        assert_eq!(a, b);
        assert!(F16Matrix::from_f32(1, 8, &[0.0, 1.0, 70000.0, 0.0, 0.0, 0.0, 0.0, 0.0]).unwrap_err().contains("column 2"));
        assert!(F16Matrix::from_f32(1, 12, &[0.0; 12]).is_err());
    }
}
