//! Q4_K weights read as the GGUF file stores them, with the 8-bit kernels' exactness.
//!
//! A ggml Q4_K super-block holds 256 values of one row: f16 `d` and `dmin`, eight 6-bit
//! (scale, min) pairs packed in 12 bytes, and 128 bytes of 4-bit quants. Value `l` of sub-block `j`
//! (32 values each) is `d·sc_j · q − dmin·m_j` with `q` in 0..15: the low nibbles of bytes
//! `32c .. 32c + 32` are sub-block `2c`, their high nibbles sub-block `2c + 1`.
//!
//! The 8-bit path ([`super::q8`]) requantizes such a file to Q8_0, 8.5 bits a weight; reading the
//! 4-bit blocks directly costs 4.6, and batch-1 decoding is bound by those bytes. The weights are
//! then exactly the file's (no second rounding); activations are quantized per 32 values as in the
//! 8-bit path.
//!
//! In memory, rows are interleaved in groups ([`Layout`]) as in the 8-bit matrices: for each group
//! and super-block, the group's `d`s, `dmin`s, the unpacked 6-bit scales and mins (one byte each,
//! sub-block major), then the quant bytes in runs of four per row, the rows' runs side by side. One
//! run register holds four quants of sub-block `2c` (low nibbles) and four of `2c + 1` (high
//! nibbles) for every row of the group, the operand `vpdpbusd` multiplies (unsigned weights,
//! signed activations, no offset to correct).
//!
//! Every path computes, for each output, over the sub-blocks `j` of every super-block in order:
//! `acc = fma(dot_j, (d·sc_j)·dx_b, acc)` then `acc = fma(−(dmin·m_j), Σx_b·dx_b, acc)`, where `b` is
//! the activation block under sub-block `j`, `dot_j` its exact integer dot product (below 2¹⁶) and
//! `Σx_b` the sum of its quantized activations. `d·sc_j` and `dmin·m_j` are exact in f32 (an f16
//! times a 6-bit integer). So all paths give bit-identical results, and a column's result does not
//! depend on how many columns share the call.

use rayon::prelude::*;

use crate::cpu::{self, Q8Path};
use crate::gguf::scale_min_k4;

use super::q8::{ColumnPasses, Out, QK, QuantizedActs, f16_to_f32, grouped_matmul};

/// Values per super-block.
pub const QK_K: usize = 256;
/// Bytes of one ggml `block_q4_K`.
pub const BLOCK_BYTES: usize = 144;
/// Sub-blocks (of [`QK`] values) per super-block.
const SUBS: usize = QK_K / QK;

/// How rows are interleaved in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Eight rows per group (AVX2, AVX-VNNI, portable): one run of the group is one ymm.
    Rows8,
    /// Sixteen rows per group (AVX-512 VNNI): one run of the group is one zmm.
    Rows16,
}

impl Layout {
    /// The layout a kernel path reads.
    pub(crate) fn for_path(p: Q8Path) -> Self {
        match p {
            // No AMX kernel reads 4-bit weights: the AMX path runs the AVX-512 VNNI kernel here.
            Q8Path::Avx512Vnni | Q8Path::Amx => Layout::Rows16,
            Q8Path::AvxVnni | Q8Path::Avx2 | Q8Path::Portable => Layout::Rows8,
        }
    }
    /// Rows per group.
    const fn group(self) -> usize {
        match self {
            Layout::Rows8 => 8,
            Layout::Rows16 => 16,
        }
    }
    /// Bytes of one super-block of a row group: `d`, `dmin` (f16), 8 scales, 8 mins, 128 quants
    /// per row.
    const fn block_bytes(self) -> usize {
        self.group() * (4 + 2 * SUBS + QK_K / 2)
    }
    const fn dmin_offset(self) -> usize {
        2 * self.group()
    }
    const fn scale_offset(self, j: usize) -> usize {
        self.group() * (4 + j)
    }
    const fn min_offset(self, j: usize) -> usize {
        self.group() * (4 + SUBS + j)
    }
    const fn quants_offset(self) -> usize {
        self.group() * (4 + 2 * SUBS)
    }
    /// Offset within a group block of quant byte `i` (0..128, ggml's `qs` order) of row `lane`.
    #[inline(always)]
    fn quant_offset(self, lane: usize, i: usize) -> usize {
        self.quants_offset() + (i / 4) * 4 * self.group() + 4 * lane + i % 4
    }
}

/// A `[rows, cols]` matrix of Q4_K super-blocks (rows interleaved in groups, zero-padded to a
/// multiple; a padding row has `d = dmin = 0`).
#[derive(Clone)]
pub struct Q4kMatrix {
    rows: usize,
    cols: usize,
    layout: Layout,
    data: Vec<u8>,
}

impl std::fmt::Debug for Q4kMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Q4kMatrix[{} x {}]", self.rows, self.cols)
    }
}

impl Q4kMatrix {
    /// Wrap row-major ggml Q4_K blocks as stored in a GGUF file (`rows` rows of `cols` values,
    /// `cols` a multiple of 256; stacked tensors are their blocks concatenated).
    pub fn from_q4_k_bytes(rows: usize, cols: usize, data: &[u8]) -> Result<Self, String> {
        Self::from_q4_k_bytes_in(rows, cols, data, Layout::for_path(cpu::q8_path()))
    }

    pub(crate) fn from_q4_k_bytes_in(rows: usize, cols: usize, src: &[u8], layout: Layout) -> Result<Self, String> {
        if cols % QK_K != 0 {
            return Err(format!("Q4_K weights need a column count divisible by {QK_K}, got {cols}"));
        }
        let nsb = cols / QK_K;
        if rows.checked_mul(nsb * BLOCK_BYTES) != Some(src.len()) {
            return Err(format!("Q4_K data of {} bytes does not hold {rows} x {cols} values", src.len()));
        }
        let (g_rows, gbb) = (layout.group(), layout.block_bytes());
        let mut data = vec![0u8; rows.div_ceil(g_rows) * nsb * gbb];
        if nsb > 0 {
            data.par_chunks_mut(nsb * gbb).enumerate().for_each(|(g, dst)| {
                for lane in 0..g_rows {
                    let r = g * g_rows + lane;
                    if r >= rows {
                        break;
                    }
                    let row = &src[r * nsb * BLOCK_BYTES..(r + 1) * nsb * BLOCK_BYTES];
                    for (sb, blk) in row.chunks_exact(BLOCK_BYTES).enumerate() {
                        let o = &mut dst[sb * gbb..(sb + 1) * gbb];
                        o[2 * lane..2 * lane + 2].copy_from_slice(&blk[0..2]);
                        o[layout.dmin_offset() + 2 * lane..layout.dmin_offset() + 2 * lane + 2].copy_from_slice(&blk[2..4]);
                        for j in 0..SUBS {
                            let (sc, m) = scale_min_k4(j, &blk[4..16]);
                            o[layout.scale_offset(j) + lane] = sc;
                            o[layout.min_offset(j) + lane] = m;
                        }
                        for (i, q) in blk[16..].iter().enumerate() {
                            o[layout.quant_offset(lane, i)] = *q;
                        }
                    }
                }
            });
        }
        Ok(Self { rows, cols, layout, data })
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

    /// Decode row `r` into `out` (`cols` values), with ggml's rounding (`d·sc · q − dmin·m`).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let (l, g_rows, gbb) = (self.layout, self.layout.group(), self.layout.block_bytes());
        let (g, lane) = (r / g_rows, r % g_rows);
        let nsb = self.cols / QK_K;
        for (sb, o) in out.chunks_exact_mut(QK_K).enumerate() {
            let blk = &self.data[(g * nsb + sb) * gbb..(g * nsb + sb + 1) * gbb];
            let d = f16_to_f32(u16::from_le_bytes([blk[2 * lane], blk[2 * lane + 1]]));
            let dmin = f16_to_f32(u16::from_le_bytes([blk[l.dmin_offset() + 2 * lane], blk[l.dmin_offset() + 2 * lane + 1]]));
            for (j, y) in o.chunks_exact_mut(QK).enumerate() {
                let (ds, dm) = (d * blk[l.scale_offset(j) + lane] as f32, dmin * blk[l.min_offset(j) + lane] as f32);
                for (c, v) in y.iter_mut().enumerate() {
                    *v = ds * nibble(blk[l.quant_offset(lane, 32 * (j / 2) + c)], j) as f32 - dm;
                }
            }
        }
    }

    /// `out[t, r] = Σ_c x[t, c] · W[r, c]` for `k` tokens: `x` is `[k, cols]`, `out` `[k, rows]`.
    pub fn matmul(&self, x: &[f32], k: usize, out: &mut [f32]) {
        let path = cpu::q8_path();
        // A matrix built for another path (only tests do that) runs the portable kernel.
        let path = if Layout::for_path(path) == self.layout { path } else { Q8Path::Portable };
        self.matmul_on(path, x, k, out);
    }

    /// [`Self::matmul`] on a given kernel path (which must read this matrix's layout, or be
    /// the portable one, and must be supported by the CPU).
    pub(crate) fn matmul_on(&self, path: Q8Path, x: &[f32], k: usize, out: &mut [f32]) {
        assert_eq!(x.len(), k * self.cols, "Q4kMatrix::matmul input shape");
        assert_eq!(out.len(), k * self.rows, "Q4kMatrix::matmul output shape");
        assert!(
            path == Q8Path::Portable || Layout::for_path(path) == self.layout,
            "the {} kernel cannot read a Q4_K {:?} matrix",
            path.name(),
            self.layout
        );
        let group_bytes = self.group_bytes();
        let (rows, cols) = (self.rows, self.cols);
        grouped_matmul(rows, cols, self.data.len() / group_bytes, group_bytes, k, ColumnPasses::Vector, out, || SubBlockActs::new(x, k, cols), |acts, g0, g1, c0, kc, dst| {
            // SAFETY: `grouped_matmul` hands each task's rows to that task alone, inside `out`.
            unsafe { self.pass(path, g0, g1, acts, c0, kc, dst) }
        });
    }

    /// Bytes of one row group (all its super-blocks).
    fn group_bytes(&self) -> usize {
        (self.cols / QK_K) * self.layout.block_bytes()
    }

    /// Row groups `g0 .. g1` for columns `c0 .. c0 + kc` (at most [`super::q8::MAX_COLS`]).
    ///
    /// # Safety
    /// As [`super::q8::Q8Matrix`]'s: `dst` valid for those rows, written by no other thread;
    /// `path` supported by the CPU and reading this layout (or portable).
    #[allow(clippy::too_many_arguments)]
    unsafe fn pass(&self, path: Q8Path, g0: usize, g1: usize, acts: &SubBlockActs, c0: usize, kc: usize, dst: Out) {
        let (nsb, group_bytes) = (self.cols / QK_K, self.group_bytes());
        let w = &self.data[g0 * group_bytes..g1 * group_bytes];
        unsafe { kernel::groups(path, self.layout, w, nsb, acts, c0, kc, dst, g0 * self.layout.group()) };
    }
}

/// Quant `q` (0..15) of sub-block `j` in a quant byte: even sub-blocks in the low nibble.
#[inline(always)]
fn nibble(byte: u8, j: usize) -> u8 {
    if j % 2 == 0 { byte & 0x0F } else { byte >> 4 }
}

/// Activations quantized per 32 values ([`QuantizedActs`]) and, per block, `Σx · dx`: what the
/// minimum term of a sub-block multiplies.
pub(crate) struct SubBlockActs {
    acts: QuantizedActs,
    /// `[k, nb]`: the block's sum of quantized values times its scale.
    sum_scaled: Vec<f32>,
}

impl SubBlockActs {
    fn new(x: &[f32], k: usize, cols: usize) -> Self {
        let acts = QuantizedActs::new(x, k, cols);
        // `bias` is −128 · Σx, so the division is exact.
        let sum_scaled = acts.bias.iter().zip(&acts.d).map(|(b, d)| ((-b / 128) as f32) * d).collect();
        Self { acts, sum_scaled }
    }
}

mod kernel {
    use super::{Layout, Out, QK, QK_K, Q8Path, SUBS, SubBlockActs, f16_to_f32, nibble};

    /// Columns `c0 .. c0 + kc` of the output rows `row0 ..` from the row groups in `w`, on `path`.
    ///
    /// # Safety
    /// `dst` must be valid for every (column, row) written, and no other thread may write them;
    /// `path` must be supported by the CPU and read `layout` (or be portable).
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn groups(
        path: Q8Path,
        layout: Layout,
        w: &[u8],
        nsb: usize,
        acts: &SubBlockActs,
        c0: usize,
        kc: usize,
        dst: Out,
        row0: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        unsafe {
            macro_rules! by_k {
                ($m:ident) => {
                    match kc {
                        1 => return $m::groups::<1>(w, nsb, acts, c0, dst, row0),
                        2 => return $m::groups::<2>(w, nsb, acts, c0, dst, row0),
                        3 => return $m::groups::<3>(w, nsb, acts, c0, dst, row0),
                        4 => return $m::groups::<4>(w, nsb, acts, c0, dst, row0),
                        5 => return $m::groups::<5>(w, nsb, acts, c0, dst, row0),
                        6 => return $m::groups::<6>(w, nsb, acts, c0, dst, row0),
                        7 => return $m::groups::<7>(w, nsb, acts, c0, dst, row0),
                        8 => return $m::groups::<8>(w, nsb, acts, c0, dst, row0),
                        _ => {}
                    }
                };
            }
            match path {
                Q8Path::Avx2 => by_k!(avx2),
                Q8Path::AvxVnni => by_k!(avxvnni),
                Q8Path::Avx512Vnni | Q8Path::Amx => by_k!(vnni),
                Q8Path::Portable => {}
            }
        }
        let _ = path;
        unsafe { portable(layout, w, nsb, acts, c0, kc, dst, row0) }
    }

    /// The reference: one output at a time, in the exact arithmetic every path follows.
    #[allow(clippy::too_many_arguments)]
    unsafe fn portable(layout: Layout, w: &[u8], nsb: usize, acts: &SubBlockActs, c0: usize, kc: usize, dst: Out, row0: usize) {
        let (cols, nb) = (nsb * QK_K, nsb * SUBS);
        let (g_rows, gbb) = (layout.group(), layout.block_bytes());
        let (xq, xd, xs) = (&acts.acts.q, &acts.acts.d, &acts.sum_scaled);
        for (g, grp) in w.chunks_exact(nsb * gbb).enumerate() {
            for lane in 0..g_rows {
                for t in c0..c0 + kc {
                    let mut acc = 0f32;
                    for (sb, blk) in grp.chunks_exact(gbb).enumerate() {
                        let half = |o: usize| f16_to_f32(u16::from_le_bytes([blk[o + 2 * lane], blk[o + 2 * lane + 1]]));
                        let (d, dmin) = (half(0), half(layout.dmin_offset()));
                        for j in 0..SUBS {
                            let ds = d * blk[layout.scale_offset(j) + lane] as f32;
                            let dm = dmin * blk[layout.min_offset(j) + lane] as f32;
                            let b = sb * SUBS + j;
                            let x = &xq[t * cols + b * QK..t * cols + (b + 1) * QK];
                            let dot: i32 = x
                                .iter()
                                .enumerate()
                                .map(|(c, xv)| nibble(blk[layout.quant_offset(lane, 32 * (j / 2) + c)], j) as i32 * *xv as i32)
                                .sum();
                            acc = (dot as f32).mul_add(ds * xd[t * nb + b], acc);
                            acc = (-dm).mul_add(xs[t * nb + b], acc);
                        }
                    }
                    unsafe { dst.put(t, row0 + g * g_rows + lane, acc) };
                }
            }
        }
    }

    /// How far ahead the weight stream is prefetched: the 8-bit kernels' distances (2 KiB on
    /// ymm, 8 KiB on zmm, measured in `super::super::q8`).
    #[cfg(target_arch = "x86_64")]
    const PREFETCH_BYTES: usize = 2048;
    #[cfg(target_arch = "x86_64")]
    const VNNI_PREFETCH_BYTES: usize = 8192;

    #[cfg(target_arch = "x86_64")]
    mod vnni {
        use super::super::{Layout, Out, QK, QK_K, SUBS, SubBlockActs};
        use super::VNNI_PREFETCH_BYTES;
        use std::arch::x86_64::*;

        const L: Layout = Layout::Rows16;
        const G: usize = 16;
        const GBB: usize = L.block_bytes();

        /// The AVX-512 VNNI kernel for `K` token columns over groups of sixteen rows. Not an
        /// instance of the ymm macro below: the 8-bit kernels measured one text over both widths
        /// 10–80 % slower at k = 64 on the AVX-512 path (see `q8`'s AVX-VNNI kernel).
        ///
        /// Per pair of sub-blocks, eight zmm loads give 16 rows × 32 quant bytes; masking and
        /// shifting split them into both sub-blocks' nibbles once for all columns, and each
        /// column's two integer dot products are eight `vpdpbusd`s each (two chains of four).
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
        pub unsafe fn groups<const K: usize>(w: &[u8], nsb: usize, acts: &SubBlockActs, c0: usize, dst: Out, row0: usize) {
            unsafe {
                let (cols, nb) = (nsb * QK_K, nsb * SUBS);
                let group_bytes = nsb * GBB;
                let n_groups = w.len() / group_bytes;
                let xq = acts.acts.q.as_ptr().add(c0 * cols);
                let xd = acts.acts.d.as_ptr().add(c0 * nb);
                let xs = acts.sum_scaled.as_ptr().add(c0 * nb);
                let low = _mm512_set1_epi8(0x0F);
                let scales = |p: *const u8| _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(p as *const __m128i)));
                for g in 0..n_groups {
                    let base = w.as_ptr().add(g * group_bytes);
                    let mut acc = [_mm512_setzero_ps(); K];
                    for sb in 0..nsb {
                        let blk = base.add(sb * GBB);
                        if c0 == 0 {
                            let ahead = blk.wrapping_add(VNNI_PREFETCH_BYTES) as *const i8;
                            for l in 0..GBB.div_ceil(64) {
                                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * l));
                            }
                        }
                        let d = _mm512_cvtph_ps(_mm256_loadu_si256(blk as *const __m256i));
                        let dmin = _mm512_cvtph_ps(_mm256_loadu_si256(blk.add(L.dmin_offset()) as *const __m256i));
                        for c in 0..SUBS / 2 {
                            let (j0, j1) = (2 * c, 2 * c + 1);
                            let ds0 = _mm512_mul_ps(d, scales(blk.add(L.scale_offset(j0))));
                            let ds1 = _mm512_mul_ps(d, scales(blk.add(L.scale_offset(j1))));
                            let dm0 = _mm512_mul_ps(dmin, scales(blk.add(L.min_offset(j0))));
                            let dm1 = _mm512_mul_ps(dmin, scales(blk.add(L.min_offset(j1))));
                            let q = blk.add(L.quant_offset(0, 32 * c));
                            let mut lo = [_mm512_setzero_si512(); 8];
                            let mut hi = [_mm512_setzero_si512(); 8];
                            for r in 0..8 {
                                let v = _mm512_loadu_si512(q.add(64 * r) as *const __m512i);
                                lo[r] = _mm512_and_si512(v, low);
                                hi[r] = _mm512_and_si512(_mm512_srli_epi16::<4>(v), low);
                            }
                            let (b0, b1) = (sb * SUBS + j0, sb * SUBS + j1);
                            for t in 0..K {
                                let x0 = xq.add(t * cols + b0 * QK) as *const i32;
                                let x1 = xq.add(t * cols + b1 * QK) as *const i32;
                                let bc = |p: *const i32, r: usize| _mm512_set1_epi32(p.add(r).read_unaligned());
                                let (mut s0, mut s0b) = (_mm512_setzero_si512(), _mm512_setzero_si512());
                                let (mut s1, mut s1b) = (_mm512_setzero_si512(), _mm512_setzero_si512());
                                for r in 0..4 {
                                    s0 = _mm512_dpbusd_epi32(s0, lo[r], bc(x0, r));
                                    s0b = _mm512_dpbusd_epi32(s0b, lo[r + 4], bc(x0, r + 4));
                                    s1 = _mm512_dpbusd_epi32(s1, hi[r], bc(x1, r));
                                    s1b = _mm512_dpbusd_epi32(s1b, hi[r + 4], bc(x1, r + 4));
                                }
                                let (s0, s1) = (_mm512_add_epi32(s0, s0b), _mm512_add_epi32(s1, s1b));
                                let i0 = t * nb + b0;
                                let mut a = acc[t];
                                a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), _mm512_mul_ps(ds0, _mm512_set1_ps(*xd.add(i0))), a);
                                a = _mm512_fnmadd_ps(dm0, _mm512_set1_ps(*xs.add(i0)), a);
                                a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), _mm512_mul_ps(ds1, _mm512_set1_ps(*xd.add(i0 + 1))), a);
                                a = _mm512_fnmadd_ps(dm1, _mm512_set1_ps(*xs.add(i0 + 1)), a);
                                acc[t] = a;
                            }
                        }
                    }
                    let r = row0 + g * G;
                    let live = dst.rows.saturating_sub(r).min(G);
                    let mask: __mmask16 = if live == G { !0 } else { (1u16 << live) - 1 };
                    for (t, a) in acc.iter().enumerate() {
                        // Masked-off lanes (padding rows) are neither written nor touched.
                        _mm512_mask_storeu_ps(dst.ptr.add((c0 + t) * dst.rows + r), mask, *a);
                    }
                }
            }
        }
    }

    /// The eight-row kernels on ymm registers. They differ only in how one sub-block's integer
    /// dot products are formed (`$dot`, given the eight nibble registers `$w` and the column's
    /// 32 activation bytes `$x` as eight `i32`s): `vpdpbusd` (AVX-VNNI), or `maddubs` summed in
    /// 16 bits then one `madd` (AVX2; each 16-bit lane sums 16 products of at most 15 · 127, so
    /// below 2¹⁵).
    #[cfg(target_arch = "x86_64")]
    macro_rules! ymm_kernel {
        ($name:ident, $features:literal, |$w:ident, $x:ident| $dot:block) => {
            mod $name {
                use super::super::{Layout, Out, QK, QK_K, SUBS, SubBlockActs};
                use super::PREFETCH_BYTES;
                use std::arch::x86_64::*;

                const L: Layout = Layout::Rows8;
                const G: usize = 8;
                const GBB: usize = L.block_bytes();

                #[target_feature(enable = $features)]
                pub unsafe fn groups<const K: usize>(w: &[u8], nsb: usize, acts: &SubBlockActs, c0: usize, dst: Out, row0: usize) {
                    unsafe {
                        let (cols, nb) = (nsb * QK_K, nsb * SUBS);
                        let group_bytes = nsb * GBB;
                        let n_groups = w.len() / group_bytes;
                        let xq = acts.acts.q.as_ptr().add(c0 * cols);
                        let xd = acts.acts.d.as_ptr().add(c0 * nb);
                        let xs = acts.sum_scaled.as_ptr().add(c0 * nb);
                        let low = _mm256_set1_epi8(0x0F);
                        let scales = |p: *const u8| _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p as *const __m128i)));
                        for g in 0..n_groups {
                            let base = w.as_ptr().add(g * group_bytes);
                            let mut acc = [_mm256_setzero_ps(); K];
                            for sb in 0..nsb {
                                let blk = base.add(sb * GBB);
                                if c0 == 0 {
                                    let ahead = blk.wrapping_add(PREFETCH_BYTES) as *const i8;
                                    for l in 0..GBB.div_ceil(64) {
                                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * l));
                                    }
                                }
                                let d = _mm256_cvtph_ps(_mm_loadu_si128(blk as *const __m128i));
                                let dmin = _mm256_cvtph_ps(_mm_loadu_si128(blk.add(L.dmin_offset()) as *const __m128i));
                                for c in 0..SUBS / 2 {
                                    let (j0, j1) = (2 * c, 2 * c + 1);
                                    let ds0 = _mm256_mul_ps(d, scales(blk.add(L.scale_offset(j0))));
                                    let ds1 = _mm256_mul_ps(d, scales(blk.add(L.scale_offset(j1))));
                                    let dm0 = _mm256_mul_ps(dmin, scales(blk.add(L.min_offset(j0))));
                                    let dm1 = _mm256_mul_ps(dmin, scales(blk.add(L.min_offset(j1))));
                                    let q = blk.add(L.quant_offset(0, 32 * c));
                                    let mut lo = [_mm256_setzero_si256(); 8];
                                    let mut hi = [_mm256_setzero_si256(); 8];
                                    for r in 0..8 {
                                        let v = _mm256_loadu_si256(q.add(32 * r) as *const __m256i);
                                        lo[r] = _mm256_and_si256(v, low);
                                        hi[r] = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low);
                                    }
                                    let (b0, b1) = (sb * SUBS + j0, sb * SUBS + j1);
                                    for t in 0..K {
                                        let s0 = {
                                            let ($w, $x) = (&lo, xq.add(t * cols + b0 * QK) as *const i32);
                                            $dot
                                        };
                                        let s1 = {
                                            let ($w, $x) = (&hi, xq.add(t * cols + b1 * QK) as *const i32);
                                            $dot
                                        };
                                        let i0 = t * nb + b0;
                                        let mut a = acc[t];
                                        a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_mul_ps(ds0, _mm256_set1_ps(*xd.add(i0))), a);
                                        a = _mm256_fnmadd_ps(dm0, _mm256_set1_ps(*xs.add(i0)), a);
                                        a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_mul_ps(ds1, _mm256_set1_ps(*xd.add(i0 + 1))), a);
                                        a = _mm256_fnmadd_ps(dm1, _mm256_set1_ps(*xs.add(i0 + 1)), a);
                                        acc[t] = a;
                                    }
                                }
                            }
                            let r = row0 + g * G;
                            for (t, a) in acc.iter().enumerate() {
                                let col = c0 + t;
                                if r + G <= dst.rows {
                                    _mm256_storeu_ps(dst.ptr.add(col * dst.rows + r), *a);
                                } else {
                                    let mut eight = [0f32; G];
                                    _mm256_storeu_ps(eight.as_mut_ptr(), *a);
                                    for (i, v) in eight.iter().enumerate() {
                                        dst.put(col, r + i, *v);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
    }

    #[cfg(target_arch = "x86_64")]
    ymm_kernel!(avxvnni, "avx2,avxvnni,fma,f16c", |w, x| {
        let bc = |r: usize| _mm256_set1_epi32(x.add(r).read_unaligned());
        let (mut s, mut s2) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        for r in 0..4 {
            s = _mm256_dpbusd_avx_epi32(s, w[r], bc(r));
            s2 = _mm256_dpbusd_avx_epi32(s2, w[r + 4], bc(r + 4));
        }
        _mm256_add_epi32(s, s2)
    });

    #[cfg(target_arch = "x86_64")]
    ymm_kernel!(avx2, "avx2,fma,f16c", |w, x| {
        let bc = |r: usize| _mm256_set1_epi32(x.add(r).read_unaligned());
        let mut s16 = _mm256_maddubs_epi16(w[0], bc(0));
        for r in 1..8 {
            s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(w[r], bc(r)));
        }
        _mm256_madd_epi16(s16, _mm256_set1_epi16(1))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::{GgmlType, dequantize_into};

    /// Random but valid Q4_K blocks: f16 `d`/`dmin` of moderate size, every scale byte and quant
    /// byte arbitrary (so every 6-bit scale and min and every nibble occurs).
    fn random_q4_k(rows: usize, cols: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) as u32
        };
        let mut out = Vec::with_capacity(rows * cols / QK_K * BLOCK_BYTES);
        for _ in 0..rows * cols / QK_K {
            let d = half::f16::from_f32((next() % 1000) as f32 * 1e-5 + 1e-4);
            let dmin = half::f16::from_f32((next() % 1000) as f32 * 1e-5);
            out.extend_from_slice(&d.to_le_bytes());
            out.extend_from_slice(&dmin.to_le_bytes());
            for _ in 0..BLOCK_BYTES - 4 {
                out.push(next() as u8);
            }
        }
        out
    }

    fn lcg(n: usize, seed: u64) -> Vec<f32> {
        crate::transformer::test_values::lcg(n, seed)
    }

    #[test]
    fn rows_decode_to_the_files_values_bit_for_bit() {
        let (rows, cols) = (19, 512);
        let raw = random_q4_k(rows, cols, 5);
        let mut want = vec![0f32; rows * cols];
        dequantize_into(GgmlType::Q4_K, &raw, &mut want).unwrap();
        for layout in [Layout::Rows8, Layout::Rows16] {
            let m = Q4kMatrix::from_q4_k_bytes_in(rows, cols, &raw, layout).unwrap();
            let mut got = vec![0f32; cols];
            for r in 0..rows {
                m.dequantize_row(r, &mut got);
                let same = got.iter().zip(&want[r * cols..(r + 1) * cols]).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{layout:?} row {r}");
            }
        }
        assert!(Q4kMatrix::from_q4_k_bytes(2, 300, &[0; 10]).is_err());
        assert!(Q4kMatrix::from_q4_k_bytes(2, 256, &raw[..BLOCK_BYTES]).is_err());
    }

    #[test]
    fn matmul_matches_the_dequantized_weights() {
        let (rows, cols) = (21, 768);
        let raw = random_q4_k(rows, cols, 9);
        let m = Q4kMatrix::from_q4_k_bytes(rows, cols, &raw).unwrap();
        let mut deq = vec![0f32; rows * cols];
        dequantize_into(GgmlType::Q4_K, &raw, &mut deq).unwrap();
        for k in [1usize, 3, 8, 11] {
            let x = lcg(k * cols, 40 + k as u64);
            let mut out = vec![0f32; k * rows];
            m.matmul(&x, k, &mut out);
            for t in 0..k {
                for r in 0..rows {
                    let row = &deq[r * cols..(r + 1) * cols];
                    let exact: f64 = (0..cols).map(|c| x[t * cols + c] as f64 * row[c] as f64).sum();
                    let scale: f64 = (0..cols).map(|c| (x[t * cols + c] as f64 * row[c] as f64).abs()).sum();
                    let got = out[t * rows + r] as f64;
                    // activation quantization: ≤ 0.5/127 of each block's max per value
                    assert!((got - exact).abs() <= 0.01 * scale + 1e-6, "k={k} t={t} r={r}: {got} vs {exact}");
                }
            }
        }
    }

    /// Every path the CPU has, on the layout it reads, against the portable path: bit for bit,
    /// for k = 1…64 and row counts that are not multiples of 8 or 16; each column alone and
    /// inside every block (block invariance).
    #[test]
    fn every_path_equals_the_portable_path_bit_for_bit() {
        let have = cpu::features().q8_paths();
        let skipped: Vec<&str> = Q8Path::ALL.iter().filter(|p| !have.contains(p)).map(|p| p.name()).collect();
        let mut runs: Vec<(Q8Path, Layout)> = vec![(Q8Path::Portable, Layout::Rows8), (Q8Path::Portable, Layout::Rows16)];
        runs.extend(have.iter().filter(|p| **p != Q8Path::Portable).map(|p| (*p, Layout::for_path(*p))));
        let names: Vec<String> = runs.iter().map(|(p, l)| format!("{} on {l:?}", p.name())).collect();
        println!("q4k paths exercised: {}", names.join(", "));
        if skipped.is_empty() {
            println!("q4k paths skipped: none");
        } else {
            println!("SKIPPED (this CPU lacks the features): q4k paths {}", skipped.join(", "));
        }
        for (rows, cols) in [(1usize, 256usize), (7, 512), (17, 256), (37, 768), (64, 256)] {
            let raw = random_q4_k(rows, cols, rows as u64 * 7 + cols as u64);
            let mats: Vec<Q4kMatrix> = runs.iter().map(|(_, l)| Q4kMatrix::from_q4_k_bytes_in(rows, cols, &raw, *l).unwrap()).collect();
            let xs = lcg(64 * cols, 500 + rows as u64);
            let singles: Vec<Vec<f32>> = (0..64)
                .map(|t| {
                    let mut one = vec![0f32; rows];
                    mats[0].matmul_on(Q8Path::Portable, &xs[t * cols..(t + 1) * cols], 1, &mut one);
                    one
                })
                .collect();
            for k in 1..=64usize {
                for ((path, layout), m) in runs.iter().zip(&mats) {
                    let mut out = vec![f32::NAN; k * rows];
                    m.matmul_on(*path, &xs[..k * cols], k, &mut out);
                    for t in 0..k {
                        for r in 0..rows {
                            let (got, want) = (out[t * rows + r], singles[t][r]);
                            assert!(
                                got.to_bits() == want.to_bits(),
                                "{} on {layout:?}, {rows}x{cols}, k={k}, column {t}, row {r}: {got} != {want}",
                                path.name()
                            );
                        }
                    }
                }
            }
        }
    }
}
