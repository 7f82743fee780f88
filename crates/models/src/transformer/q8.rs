//! 8-bit weights and the matmul that reads them once for a whole block of tokens.
//!
//! Values are ggml Q8_0 blocks: 32 signed bytes `q` and an f16 scale `d` (value = `d · q`).
//! In memory, rows are interleaved in groups ([`Layout`]): for each group and each block, the
//! group's scales then its quants, so the kernel streams one contiguous buffer. The layout
//! follows the process's kernel path ([`crate::cpu::q8_path`]): groups of four rows with each
//! row's 32 bytes together for AVX2 `maddubs`, groups of sixteen rows with four bytes of each
//! row together for AVX-512 VNNI `vpdpbusd` (one zmm of weights = 16 rows × 4 bytes, so a
//! broadcast of 4 activation bytes updates 16 rows' integer sums with no horizontal adds), and
//! groups of eight rows the same way for AVX-VNNI (the VEX `vpdpbusd` on one ymm = 8 rows × 4
//! bytes, for CPUs that have VNNI without AVX-512). The AMX path reads the sixteen-row layout as
//! it is: one block of a group (eight 64-byte runs) is exactly the B operand of `tdpbsud`, so
//! a tile multiply gives 16 tokens × 16 rows of a block's integer dot products at once.
//!
//! Activations are quantized the same way (per 32 values, per token), so the inner product of one
//! block is an integer dot product scaled by `d_w · d_x`. Every path computes, for each output,
//! exactly `acc = fma(dot_b as f32, d_w,b · d_x,b, acc)` over the blocks `b` in order, with the
//! block's integer dot product complete before it is converted (it is below 2²⁴, so exact). So all
//! paths give bit-identical results, and a column's result does not depend on how many other
//! columns share the call (a position's logits are the same in prefill, alone or in a block).
//!
//! Batch-1 decoding is bound by the bytes of weight read per token. [`Q8Matrix::matmul`] walks
//! the weight once and, for every block it loads, updates all token columns (in groups of
//! [`MAX_COLS`] while the block sits in cache), so scoring a block of γ + 1 positions costs far
//! less than γ + 1 decode steps.

use rayon::prelude::*;

use crate::cpu::{self, Q8Path};

/// Values per quantization block.
pub const QK: usize = 32;
/// Bytes of one row-major Q8_0 block: f16 scale + 32 × i8.
pub const BLOCK_BYTES: usize = 2 + QK;
/// The most token columns one kernel pass handles; larger inputs run in groups of this.
pub const MAX_COLS: usize = 8;
/// The token columns of one AMX pass: the rows of one tile.
pub const AMX_COLS: usize = 16;
/// From this many token columns (of a call, or of the last pass of a larger call) the AMX path
/// multiplies with tiles; below it, with the AVX-512 VNNI kernel (the same bits either way). On
/// the Intel Xeon of 2026-12-04 (`q8_kernel`, three alternating rounds) VNNI was 5–25 % faster
/// at k = 6 and 8 on the 1.5B layers, and AMX 5–30 % faster at k = 16.
pub const AMX_MIN_COLS: usize = 9;
// A last pass below `AMX_MIN_COLS` must fit one vector pass.
const _: () = assert!(AMX_MIN_COLS <= MAX_COLS + 1 && AMX_MIN_COLS >= 1);

/// How rows are interleaved in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Four rows per group; each row's 32 quants of a block together (AVX2, portable).
    Rows4,
    /// Sixteen rows per group; runs of 4 quants, the 16 rows' runs side by side (AVX-512 VNNI).
    Rows16,
    /// Eight rows per group; runs of 4 quants, the 8 rows' runs side by side (AVX-VNNI).
    Rows8,
}

impl Layout {
    /// The layout a kernel path reads.
    pub(crate) fn for_path(p: Q8Path) -> Self {
        match p {
            Q8Path::Avx512Vnni | Q8Path::Amx => Layout::Rows16,
            Q8Path::AvxVnni => Layout::Rows8,
            Q8Path::Avx2 | Q8Path::Portable => Layout::Rows4,
        }
    }
    /// Rows per group.
    const fn group(self) -> usize {
        match self {
            Layout::Rows4 => 4,
            Layout::Rows8 => 8,
            Layout::Rows16 => 16,
        }
    }
    /// Quants of one row stored together.
    const fn run(self) -> usize {
        match self {
            Layout::Rows4 => QK,
            Layout::Rows8 | Layout::Rows16 => 4,
        }
    }
    /// Bytes of one block of a row group: the group's f16 scales, then its quants.
    const fn group_block_bytes(self) -> usize {
        self.group() * BLOCK_BYTES
    }
    /// What a stored quant byte is xor-ed with: the VNNI layouts keep `w + 128` (unsigned), the
    /// operand `vpdpbusd` multiplies, so that the kernel need not flip every weight it loads.
    const fn flip(self) -> u8 {
        match self {
            Layout::Rows4 => 0,
            Layout::Rows8 | Layout::Rows16 => 0x80,
        }
    }
    /// Offset within a group block of quant `c` (0..32) of row `lane`.
    #[inline(always)]
    fn quant_offset(self, lane: usize, c: usize) -> usize {
        let (g, run) = (self.group(), self.run());
        2 * g + (c / run) * g * run + lane * run + c % run
    }
}

/// A `[rows, cols]` matrix of Q8_0 blocks (rows interleaved in groups, zero-padded to a multiple).
#[derive(Clone)]
pub struct Q8Matrix {
    rows: usize,
    cols: usize,
    layout: Layout,
    data: Vec<u8>,
}

impl std::fmt::Debug for Q8Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Q8Matrix[{} x {}]", self.rows, self.cols)
    }
}

/// The layout this process's kernel reads.
fn default_layout() -> Layout {
    Layout::for_path(cpu::q8_path())
}

impl Q8Matrix {
    /// Quantize a row-major `[rows, cols]` f32 matrix (`cols` a multiple of 32).
    pub fn from_f32(rows: usize, cols: usize, values: &[f32]) -> Result<Self, String> {
        Self::from_f32_in(rows, cols, values, default_layout())
    }

    pub(crate) fn from_f32_in(rows: usize, cols: usize, values: &[f32], layout: Layout) -> Result<Self, String> {
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
        Ok(Self::from_row_major(rows, cols, &data, layout))
    }

    /// Wrap raw row-major Q8_0 bytes as stored in a GGUF file (`rows` rows of `cols` values).
    pub fn from_q8_0_bytes(rows: usize, cols: usize, data: Vec<u8>) -> Result<Self, String> {
        if cols % QK != 0 || data.len() != rows * (cols / QK) * BLOCK_BYTES {
            return Err(format!("Q8_0 data of {} bytes does not hold {rows} x {cols} values", data.len()));
        }
        Ok(Self::from_row_major(rows, cols, &data, default_layout()))
    }

    /// Interleave row-major Q8_0 rows into `layout`.
    fn from_row_major(rows: usize, cols: usize, src: &[u8], layout: Layout) -> Self {
        let nb = cols / QK;
        let (g_rows, gbb) = (layout.group(), layout.group_block_bytes());
        let groups = rows.div_ceil(g_rows);
        let mut data = vec![0u8; groups * nb * gbb];
        if nb > 0 {
            data.par_chunks_mut(nb * gbb).enumerate().for_each(|(g, dst)| {
                for lane in 0..g_rows {
                    let r = g * g_rows + lane;
                    if r >= rows {
                        break;
                    }
                    let row = &src[r * nb * BLOCK_BYTES..(r + 1) * nb * BLOCK_BYTES];
                    for (b, blk) in row.chunks_exact(BLOCK_BYTES).enumerate() {
                        let o = b * gbb;
                        dst[o + 2 * lane..o + 2 * lane + 2].copy_from_slice(&blk[..2]);
                        for c in 0..QK {
                            dst[o + layout.quant_offset(lane, c)] = blk[2 + c] ^ layout.flip();
                        }
                    }
                }
            });
        }
        Self { rows, cols, layout, data }
    }

    /// Row-major Q8_0 bytes of all rows.
    fn to_row_major(&self) -> Vec<u8> {
        let nb = self.cols / QK;
        let (g_rows, gbb) = (self.layout.group(), self.layout.group_block_bytes());
        let mut out = vec![0u8; self.rows * nb * BLOCK_BYTES];
        if nb == 0 {
            return out;
        }
        for (r, row) in out.chunks_exact_mut(nb * BLOCK_BYTES).enumerate() {
            let (g, lane) = (r / g_rows, r % g_rows);
            for (b, blk) in row.chunks_exact_mut(BLOCK_BYTES).enumerate() {
                let o = (g * nb + b) * gbb;
                blk[..2].copy_from_slice(&self.data[o + 2 * lane..o + 2 * lane + 2]);
                for c in 0..QK {
                    blk[2 + c] = self.data[o + self.layout.quant_offset(lane, c)] ^ self.layout.flip();
                }
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
        let layout = parts.first().map(|m| m.layout).unwrap_or_else(default_layout);
        Ok(Self::from_row_major(rows, cols, &raw, layout))
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
        let (g_rows, gbb) = (self.layout.group(), self.layout.group_block_bytes());
        let (g, lane) = (r / g_rows, r % g_rows);
        for (b, o) in out.chunks_exact_mut(QK).enumerate() {
            let base = (g * nb + b) * gbb;
            let d = f16_to_f32(u16::from_le_bytes([self.data[base + 2 * lane], self.data[base + 2 * lane + 1]]));
            for (c, v) in o.iter_mut().enumerate() {
                *v = d * ((self.data[base + self.layout.quant_offset(lane, c)] ^ self.layout.flip()) as i8) as f32;
            }
        }
    }

    /// `out[t, r] = Σ_c x[t, c] · W[r, c]` for `k` tokens: `x` is `[k, cols]`, `out` `[k, rows]`.
    ///
    /// Parallel over chunks of row groups; each chunk is read from memory once and applied to
    /// every token column.
    pub fn matmul(&self, x: &[f32], k: usize, out: &mut [f32]) {
        let path = cpu::q8_path();
        // A matrix built for another path (only tests do that) runs the portable kernel.
        let path = if Layout::for_path(path) == self.layout { path } else { Q8Path::Portable };
        self.matmul_on(path, x, k, out);
    }

    /// [`Self::matmul`] on a given kernel path (which must read this matrix's layout, or be
    /// the portable one, and must be supported by the CPU).
    pub(crate) fn matmul_on(&self, path: Q8Path, x: &[f32], k: usize, out: &mut [f32]) {
        assert_eq!(x.len(), k * self.cols, "Q8Matrix::matmul input shape");
        assert_eq!(out.len(), k * self.rows, "Q8Matrix::matmul output shape");
        assert!(
            path == Q8Path::Portable || Layout::for_path(path) == self.layout,
            "the {} kernel cannot read a {:?} matrix",
            path.name(),
            self.layout
        );
        let group_bytes = self.group_bytes();
        let (rows, cols) = (self.rows, self.cols);
        let widths = ColumnPasses::for_path(path);
        grouped_matmul(rows, cols, self.data.len() / group_bytes, group_bytes, k, widths, out, || QuantizedActs::new(x, k, cols).for_path(path, k, cols), |acts, g0, g1, c0, kc, dst| {
            // SAFETY: `grouped_matmul` hands each task's rows to that task alone, inside `out`.
            unsafe { self.pass(path, g0, g1, acts, c0, kc, dst) }
        });
    }

    /// Bytes of one row group (all its blocks).
    fn group_bytes(&self) -> usize {
        (self.cols / QK) * self.layout.group_block_bytes()
    }

    /// Row groups `g0 .. g1` for columns `c0 .. c0 + kc` (at most [`MAX_COLS`], or [`AMX_COLS`]
    /// on the AMX path).
    ///
    /// # Safety
    /// `dst` must be valid for those groups' rows in those columns, and no other thread may
    /// write them; `path` must be supported by the CPU and read this layout (or be portable).
    #[allow(clippy::too_many_arguments)]
    unsafe fn pass(&self, path: Q8Path, g0: usize, g1: usize, acts: &QuantizedActs, c0: usize, kc: usize, dst: Out) {
        let (nb, group_bytes) = (self.cols / QK, self.group_bytes());
        let w = &self.data[g0 * group_bytes..g1 * group_bytes];
        unsafe { kernel::groups(path, self.layout, w, nb, acts, c0, kc, dst, g0 * self.layout.group()) };
    }
}

#[cfg(test)]
impl Q8Matrix {
    /// [`Self::matmul_on`] as one task over every row group: the result must not depend on how
    /// `matmul_on` splits the groups into tasks (on a small matrix, one group per task).
    fn matmul_one_task(&self, path: Q8Path, x: &[f32], k: usize, out: &mut [f32]) {
        assert_eq!((x.len(), out.len()), (k * self.cols, k * self.rows));
        let acts = QuantizedActs::new(x, k, self.cols).for_path(path, k, self.cols);
        let groups = self.data.len() / self.group_bytes();
        let dst = Out { ptr: out.as_mut_ptr(), rows: self.rows };
        // SAFETY: `dst` is `out`, [k, rows], written by this one task only.
        ColumnPasses::for_path(path).each(k, |c0, kc| unsafe { self.pass(path, 0, groups, &acts, c0, kc, dst) });
    }
}

/// The driver both grouped matrices (8-bit and Q4_K, [`super::q4k`]) share: `out` (`[k, rows]`)
/// from `groups` row groups of `group_bytes` each. Empty shapes are handled here (no columns: an
/// all-zero output); otherwise the activations are made once (`acts`) and `pass(acts, g0, g1, c0,
/// kc, dst)` runs for every task's groups `g0 .. g1` ([`for_each_task`]) and every pass of the
/// columns (`passes`). `pass` must write only those groups' rows.
#[allow(clippy::too_many_arguments)]
pub(super) fn grouped_matmul<A: Sync>(
    rows: usize,
    cols: usize,
    groups: usize,
    group_bytes: usize,
    k: usize,
    passes: ColumnPasses,
    out: &mut [f32],
    acts: impl FnOnce() -> A,
    pass: impl Fn(&A, usize, usize, usize, usize, Out) + Sync + Send,
) {
    if k == 0 || rows == 0 {
        return;
    }
    if cols == 0 {
        out.fill(0.0);
        return;
    }
    let acts = acts();
    let dst = Out { ptr: out.as_mut_ptr(), rows };
    // `dst` points at `out`, which outlives the parallel loop; each task's rows are its own.
    for_each_task(groups, group_bytes, k, |g0, g1| passes.each(k, |c0, kc| pass(&acts, g0, g1, c0, kc, dst)));
}

/// How a call's `k` token columns are cut into kernel passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ColumnPasses {
    /// Passes of at most [`MAX_COLS`] (the vector kernels' register blocking).
    Vector,
    /// Passes of [`AMX_COLS`] (one tile of tokens); a last part below [`AMX_MIN_COLS`] runs in
    /// one vector pass.
    Amx,
}

impl ColumnPasses {
    pub(super) fn for_path(path: Q8Path) -> Self {
        if path == Q8Path::Amx { ColumnPasses::Amx } else { ColumnPasses::Vector }
    }

    /// `f(c0, kc)` for consecutive passes over `k` columns.
    pub(super) fn each(self, k: usize, mut f: impl FnMut(usize, usize)) {
        let width = match self {
            ColumnPasses::Vector => MAX_COLS,
            ColumnPasses::Amx => AMX_COLS,
        };
        let mut c0 = 0;
        while c0 < k {
            let kc = (k - c0).min(width);
            f(c0, kc);
            c0 += kc;
        }
    }
}

/// Run `task(g0, g1)` in parallel over `groups` row groups of `group_bytes` each, for `k` columns.
///
/// At least 8 tasks per thread where the matrix has the groups for it (both cores busy on small
/// matrices too, and the faster core takes more); at most ~400 KiB of weights per task, and
/// ~128 KiB when several passes of columns re-read the task's chunk, so that it stays in L2
/// between passes.
fn for_each_task(groups: usize, group_bytes: usize, k: usize, task: impl Fn(usize, usize) + Sync + Send) {
    let threads = rayon::current_num_threads().max(1);
    let cap_bytes = if k <= MAX_COLS { 400 << 10 } else { 128 << 10 };
    let cap = (cap_bytes / group_bytes.max(1)).max(1);
    let groups_per_task = (groups / (threads * 8)).clamp(1, cap);
    let n_tasks = groups.div_ceil(groups_per_task);
    (0..n_tasks).into_par_iter().for_each(|i| task(i * groups_per_task, ((i + 1) * groups_per_task).min(groups)));
}

/// Where the kernels write: `[k, rows]` row-major output shared by all tasks, each of which
/// writes a disjoint set of rows.
#[derive(Clone, Copy)]
pub(crate) struct Out {
    pub(super) ptr: *mut f32,
    pub(super) rows: usize,
}
// SAFETY: tasks write disjoint elements (see `Q8Matrix::matmul_on`).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// Write column `t`, row `r` (rows past the matrix, padding, are dropped).
    #[inline(always)]
    pub(super) unsafe fn put(self, t: usize, r: usize, v: f32) {
        if r < self.rows {
            unsafe { *self.ptr.add(t * self.rows + r) = v };
        }
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
    /// `[k, nb]` −128 × the block's sum of quantized values: the correction for kernels that
    /// multiply unsigned `w + 128` by signed activations (`vpdpbusd`).
    pub bias: Vec<i32>,
    /// For the AMX kernel ([`QuantizedActs::for_path`]), `q` again as tiles: for each pass of
    /// [`AMX_COLS`] tokens and each block, the tokens' 32 values of the block side by side
    /// (`[k / 16, nb, 16, 32]`, rows past `k` zero), so that a tile load reads 512 contiguous
    /// bytes instead of 16 lines `cols` apart (measured 11.5 against 18.7 ns a block, one core).
    pub tiles: Vec<i8>,
}

impl QuantizedActs {
    pub(super) fn new(x: &[f32], k: usize, cols: usize) -> Self {
        let nb = cols / QK;
        let mut d = vec![0f32; k * nb];
        let mut q = vec![0i8; k * cols];
        let mut bias = vec![0i32; k * nb];
        let quantize = |(xs, (qs, (ds, bs))): (&[f32], (&mut [i8], (&mut [f32], &mut [i32])))| {
            for (((xb, qb), db), bb) in xs.chunks_exact(QK).zip(qs.chunks_exact_mut(QK)).zip(ds.iter_mut()).zip(bs.iter_mut()) {
                let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
                let s = amax / 127.0;
                let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
                let mut sum = 0i32;
                for (qv, v) in qb.iter_mut().zip(xb) {
                    *qv = round_i8(v * inv);
                    sum += *qv as i32;
                }
                *db = s;
                *bb = -128 * sum;
            }
        };
        // Each token is quantized on its own, so splitting the work changes nothing. Split when
        // there are several tokens and enough values (a block's 6 × 8 960 inputs of a 1.5B
        // `ffn_down`: ~50 µs on one core, 28 times a forward); one token stays on this thread.
        if k >= 2 && k * cols >= super::ops::PARALLEL_MIN_ELEMS {
            x.par_chunks(cols)
                .zip(q.par_chunks_mut(cols).zip(d.par_chunks_mut(nb).zip(bias.par_chunks_mut(nb))))
                .for_each(quantize);
        } else {
            x.chunks(cols).zip(q.chunks_mut(cols).zip(d.chunks_mut(nb).zip(bias.chunks_mut(nb)))).for_each(quantize);
        }
        Self { d, q, bias, tiles: Vec::new() }
    }

    /// Add what `path`'s kernel reads beyond `q`, `d` and `bias` (the AMX tiles), for the
    /// `[k, cols]` activations these are.
    pub(super) fn for_path(mut self, path: Q8Path, k: usize, cols: usize) -> Self {
        if path != Q8Path::Amx || k < AMX_MIN_COLS || cols == 0 {
            return self;
        }
        let nb = cols / QK;
        let mut tiles = vec![0i8; k.div_ceil(AMX_COLS) * nb * AMX_COLS * QK];
        for (t, row) in self.q.chunks_exact(cols).enumerate() {
            let (p, lane) = (t / AMX_COLS, t % AMX_COLS);
            for (b, blk) in row.chunks_exact(QK).enumerate() {
                let o = ((p * nb + b) * AMX_COLS + lane) * QK;
                tiles[o..o + QK].copy_from_slice(blk);
            }
        }
        self.tiles = tiles;
        self
    }
}

/// Round to nearest (ties to even) for |v| ≤ 127 without a libm call: adding 1.5·2²³ leaves the
/// rounded integer in the low mantissa bits.
#[inline(always)]
pub(super) fn round_i8(v: f32) -> i8 {
    const MAGIC: f32 = 12_582_912.0;
    ((v + MAGIC) - MAGIC) as i8
}

mod kernel {
    use super::{Layout, Out, QK, Q8Path, QuantizedActs, f16_to_f32};

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
        nb: usize,
        acts: &QuantizedActs,
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
                        1 => return $m::groups::<1>(w, nb, acts, c0, dst, row0),
                        2 => return $m::groups::<2>(w, nb, acts, c0, dst, row0),
                        3 => return $m::groups::<3>(w, nb, acts, c0, dst, row0),
                        4 => return $m::groups::<4>(w, nb, acts, c0, dst, row0),
                        5 => return $m::groups::<5>(w, nb, acts, c0, dst, row0),
                        6 => return $m::groups::<6>(w, nb, acts, c0, dst, row0),
                        7 => return $m::groups::<7>(w, nb, acts, c0, dst, row0),
                        8 => return $m::groups::<8>(w, nb, acts, c0, dst, row0),
                        _ => {}
                    }
                };
            }
            match path {
                Q8Path::Avx2 => by_k!(avx2),
                Q8Path::Avx512Vnni => by_k!(vnni),
                Q8Path::Amx if kc < super::AMX_MIN_COLS => by_k!(vnni),
                Q8Path::Amx => match kc {
                    9 => return amx::groups::<9>(w, nb, acts, c0, dst, row0),
                    10 => return amx::groups::<10>(w, nb, acts, c0, dst, row0),
                    11 => return amx::groups::<11>(w, nb, acts, c0, dst, row0),
                    12 => return amx::groups::<12>(w, nb, acts, c0, dst, row0),
                    13 => return amx::groups::<13>(w, nb, acts, c0, dst, row0),
                    14 => return amx::groups::<14>(w, nb, acts, c0, dst, row0),
                    15 => return amx::groups::<15>(w, nb, acts, c0, dst, row0),
                    16 => return amx::groups::<16>(w, nb, acts, c0, dst, row0),
                    _ => {}
                },
                Q8Path::AvxVnni => by_k!(avxvnni),
                Q8Path::Portable => {}
            }
        }
        let _ = path;
        unsafe { portable(layout, w, nb, acts, c0, kc, dst, row0) }
    }

    /// The reference: one output at a time, in the exact arithmetic every path follows.
    #[allow(clippy::too_many_arguments)]
    unsafe fn portable(
        layout: Layout,
        w: &[u8],
        nb: usize,
        acts: &QuantizedActs,
        c0: usize,
        kc: usize,
        dst: Out,
        row0: usize,
    ) {
        let cols = nb * QK;
        let (g_rows, gbb) = (layout.group(), layout.group_block_bytes());
        for (g, grp) in w.chunks_exact(nb * gbb).enumerate() {
            for lane in 0..g_rows {
                for t in c0..c0 + kc {
                    let mut acc = 0f32;
                    for (b, blk) in grp.chunks_exact(gbb).enumerate() {
                        let dw = f16_to_f32(u16::from_le_bytes([blk[2 * lane], blk[2 * lane + 1]]));
                        let xq = &acts.q[t * cols + b * QK..t * cols + (b + 1) * QK];
                        let wq = |c: usize| ((blk[layout.quant_offset(lane, c)] ^ layout.flip()) as i8) as i32;
                        let dot: i32 = xq.iter().enumerate().map(|(c, x)| wq(c) * (*x as i32)).sum();
                        acc = (dot as f32).mul_add(dw * acts.d[t * nb + b], acc);
                    }
                    unsafe { dst.put(t, row0 + g * g_rows + lane, acc) };
                }
            }
        }
    }

    /// How far ahead of the block being multiplied the weight stream is prefetched. The
    /// hardware prefetcher alone left one core reading at ~16 GB/s; asking for the lines
    /// 2 KiB ahead brought it to ~20 GB/s (a standalone copy of the AVX2 loop over 200 MB, k = 1).
    #[cfg(target_arch = "x86_64")]
    const PREFETCH_BYTES: usize = 2048;

    /// The AVX-512 VNNI kernel asks further ahead: a block of 544 bytes is consumed faster there,
    /// and blocks of several columns interleave compute with the stream. On a Zen 5 (2026-12-02,
    /// `q8_kernel`, three alternating rounds) 8 KiB made the output head's k = 6 and k = 8 calls
    /// 5–43 % faster than 2 KiB in every round, with k = 1 unchanged within the noise.
    #[cfg(target_arch = "x86_64")]
    const VNNI_PREFETCH_BYTES: usize = 8192;

    #[cfg(target_arch = "x86_64")]
    mod avx2 {
        use super::super::{Layout, Out, QK, QuantizedActs};
        use super::PREFETCH_BYTES;
        use std::arch::x86_64::*;

        const G: usize = 4;
        const GBB: usize = Layout::Rows4.group_block_bytes();

        /// The AVX2 kernel for `K` token columns over interleaved groups of four rows. The four
        /// rows' integer block sums are folded into one vector with two horizontal adds and one
        /// add of the two halves, so each column costs one convert and one FMA per block for all
        /// four rows.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn groups<const K: usize>(w: &[u8], nb: usize, acts: &QuantizedActs, c0: usize, dst: Out, row0: usize) {
            unsafe {
                let cols = nb * QK;
                let group_bytes = nb * GBB;
                let n_groups = w.len() / group_bytes;
                let ones = _mm256_set1_epi16(1);
                let xq = acts.q.as_ptr().add(c0 * cols);
                let xd = acts.d.as_ptr().add(c0 * nb);
                for g in 0..n_groups {
                    let base = w.as_ptr().add(g * group_bytes);
                    let mut acc = [_mm_setzero_ps(); K];
                    for b in 0..nb {
                        let blk = base.add(b * GBB);
                        // A hint only: prefetching past the end of the buffer cannot fault.
                        let ahead = blk.wrapping_add(PREFETCH_BYTES) as *const i8;
                        _mm_prefetch::<_MM_HINT_T0>(ahead);
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(128));
                        let dw = _mm_cvtph_ps(_mm_loadl_epi64(blk as *const __m128i)); // [d0 d1 d2 d3]
                        let q = blk.add(2 * G);
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
                            // [r0 r1 r2 r3 | r0 r1 r2 r3]: the halves of each row's block sum.
                            let h = _mm256_hadd_epi32(_mm256_hadd_epi32(q0, q1), _mm256_hadd_epi32(q2, q3));
                            let dot = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
                            let scale = _mm_mul_ps(dw, _mm_set1_ps(*xd.add(t * nb + b)));
                            acc[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(dot), scale, acc[t]);
                        }
                    }
                    let r = row0 + g * G;
                    for (t, a) in acc.iter().enumerate() {
                        let col = c0 + t;
                        if r + G <= dst.rows {
                            _mm_storeu_ps(dst.ptr.add(col * dst.rows + r), *a);
                        } else {
                            let mut four = [0f32; G];
                            _mm_storeu_ps(four.as_mut_ptr(), *a);
                            for (i, v) in four.iter().enumerate() {
                                dst.put(col, r + i, *v);
                            }
                        }
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod vnni {
        use super::super::{Layout, Out, QK, QuantizedActs};
        use super::VNNI_PREFETCH_BYTES;
        use std::arch::x86_64::*;

        const G: usize = 16;
        const GBB: usize = Layout::Rows16.group_block_bytes();

        /// The AVX-512 VNNI kernel for `K` token columns over groups of sixteen rows.
        ///
        /// A block of a group is 16 f16 scales and eight 64-byte runs, run `j` holding bytes
        /// `4j .. 4j + 4` of each of the 16 rows. `vpdpbusd` multiplies unsigned by signed bytes,
        /// so the layout stores the weights as `w + 128` and each column's sum starts at −128 · Σ x of the block: the eight `vpdpbusd`s then leave
        /// the exact integer dot products of all 16 rows in one register, with no horizontal adds.
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
        pub unsafe fn groups<const K: usize>(w: &[u8], nb: usize, acts: &QuantizedActs, c0: usize, dst: Out, row0: usize) {
            unsafe {
                let cols = nb * QK;
                let group_bytes = nb * GBB;
                let n_groups = w.len() / group_bytes;
                let xq = acts.q.as_ptr().add(c0 * cols);
                let xd = acts.d.as_ptr().add(c0 * nb);
                let xb = acts.bias.as_ptr().add(c0 * nb);
                for g in 0..n_groups {
                    let base = w.as_ptr().add(g * group_bytes);
                    let mut acc = [_mm512_setzero_ps(); K];
                    for b in 0..nb {
                        let blk = base.add(b * GBB);
                        if c0 == 0 {
                            // The first pass over a chunk streams it from memory; later passes
                            // (more than 8 columns) find it in L2 and need no hints.
                            let ahead = blk.wrapping_add(VNNI_PREFETCH_BYTES) as *const i8;
                            for l in 0..GBB.div_ceil(64) {
                                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * l));
                            }
                        }
                        let dw = _mm512_cvtph_ps(_mm256_loadu_si256(blk as *const __m256i));
                        let q = blk.add(2 * G);
                        let mut wv = [_mm512_setzero_si512(); 8];
                        for (j, v) in wv.iter_mut().enumerate() {
                            *v = _mm512_loadu_si512(q.add(64 * j) as *const __m512i);
                        }
                        for t in 0..K {
                            let xp = xq.add(t * cols + b * QK) as *const i32;
                            // Two chains of four `vpdpbusd`s, then one add: the same exact
                            // integer sum, with half the dependent latency (k = 1 is
                            // latency-bound, not bandwidth-bound, with one chain of eight).
                            let mut s = _mm512_set1_epi32(*xb.add(t * nb + b));
                            let mut s2 = _mm512_setzero_si512();
                            for j in 0..4 {
                                s = _mm512_dpbusd_epi32(s, wv[j], _mm512_set1_epi32(xp.add(j).read_unaligned()));
                                s2 = _mm512_dpbusd_epi32(s2, wv[j + 4], _mm512_set1_epi32(xp.add(j + 4).read_unaligned()));
                            }
                            let s = _mm512_add_epi32(s, s2);
                            let scale = _mm512_mul_ps(dw, _mm512_set1_ps(*xd.add(t * nb + b)));
                            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, acc[t]);
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
    #[cfg(target_arch = "x86_64")]
    mod avxvnni {
        use super::super::{Layout, Out, QK, QuantizedActs};
        use super::PREFETCH_BYTES;
        use std::arch::x86_64::*;

        const G: usize = 8;
        const GBB: usize = Layout::Rows8.group_block_bytes();

        /// The AVX-VNNI kernel for `K` token columns over groups of eight rows: the AVX-512
        /// kernel's arithmetic on ymm registers (VEX `vpdpbusd`), for CPUs with VNNI but without
        /// AVX-512 (Alder Lake and later clients, Zen 5 parts without it enabled). A copy, not a
        /// macro over both widths: one macro text (with a partial store in place of the zmm mask
        /// store) measured 10–80 % slower at k = 64 on the AVX-512 path (Intel Xeon, 2026-12-02).
        ///
        /// A block of a group is 8 f16 scales and eight 32-byte runs, run `j` holding bytes
        /// `4j .. 4j + 4` of each of the 8 rows, stored as `w + 128`; each column's sum starts at
        /// −128 · Σ x of the block, so the eight `vpdpbusd`s leave the 8 rows' exact integer dot
        /// products in one register.
        #[target_feature(enable = "avx2,avxvnni,fma,f16c")]
        pub unsafe fn groups<const K: usize>(w: &[u8], nb: usize, acts: &QuantizedActs, c0: usize, dst: Out, row0: usize) {
            unsafe {
                let cols = nb * QK;
                let group_bytes = nb * GBB;
                let n_groups = w.len() / group_bytes;
                let xq = acts.q.as_ptr().add(c0 * cols);
                let xd = acts.d.as_ptr().add(c0 * nb);
                let xb = acts.bias.as_ptr().add(c0 * nb);
                for g in 0..n_groups {
                    let base = w.as_ptr().add(g * group_bytes);
                    let mut acc = [_mm256_setzero_ps(); K];
                    for b in 0..nb {
                        let blk = base.add(b * GBB);
                        if c0 == 0 {
                            let ahead = blk.wrapping_add(PREFETCH_BYTES) as *const i8;
                            for l in 0..GBB.div_ceil(64) {
                                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * l));
                            }
                        }
                        let dw = _mm256_cvtph_ps(_mm_loadu_si128(blk as *const __m128i));
                        let q = blk.add(2 * G);
                        let mut wv = [_mm256_setzero_si256(); 8];
                        for (j, v) in wv.iter_mut().enumerate() {
                            *v = _mm256_loadu_si256(q.add(32 * j) as *const __m256i);
                        }
                        for t in 0..K {
                            let xp = xq.add(t * cols + b * QK) as *const i32;
                            // Two chains of four, as in the AVX-512 kernel.
                            let mut s = _mm256_set1_epi32(*xb.add(t * nb + b));
                            let mut s2 = _mm256_setzero_si256();
                            for j in 0..4 {
                                s = _mm256_dpbusd_avx_epi32(s, wv[j], _mm256_set1_epi32(xp.add(j).read_unaligned()));
                                s2 = _mm256_dpbusd_avx_epi32(s2, wv[j + 4], _mm256_set1_epi32(xp.add(j + 4).read_unaligned()));
                            }
                            let s = _mm256_add_epi32(s, s2);
                            let scale = _mm256_mul_ps(dw, _mm256_set1_ps(*xd.add(t * nb + b)));
                            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc[t]);
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
    #[cfg(target_arch = "x86_64")]
    mod amx {
        use super::super::{AMX_COLS, Layout, Out, QK, QuantizedActs};
        use super::VNNI_PREFETCH_BYTES;
        use std::arch::asm;
        use std::arch::x86_64::*;

        const G: usize = 16;
        const GBB: usize = Layout::Rows16.group_block_bytes();

        /// The tile configuration `ldtilecfg` reads (palette 1): per tile, bytes per row and rows.
        #[repr(C, align(64))]
        struct TileConfig([u8; 64]);

        /// Blocks multiplied per batch: one C tile each (tmm4…tmm7).
        const BATCH: usize = 4;

        impl TileConfig {
            /// A = `k` tokens × 32 activation bytes (tmm0, tmm2), B = one block of a 16-row group,
            /// 8 × 64 bytes (tmm1, tmm3), and four C tiles of `k` × 16 integer sums (tmm4…tmm7).
            fn for_tokens(k: usize) -> Self {
                debug_assert!((1..=AMX_COLS).contains(&k));
                let mut c = [0u8; 64];
                c[0] = 1;
                let (a, b, sums) = ((QK as u16, k as u8), (64, 8), (64, k as u8));
                let tiles: [(u16, u8); 8] = [a, b, a, b, sums, sums, sums, sums];
                for (i, (colsb, rows)) in tiles.into_iter().enumerate() {
                    c[16 + 2 * i..18 + 2 * i].copy_from_slice(&colsb.to_le_bytes());
                    c[48 + i] = rows;
                }
                TileConfig(c)
            }
        }

        /// `BATCH` blocks of 16 tokens × 16 rows of integer sums, as `tilestored` writes them.
        #[repr(C, align(64))]
        struct Sums([i32; BATCH * AMX_COLS * G]);

        /// The AMX kernel for `K` (9…16) token columns over groups of sixteen rows.
        ///
        /// For each block of a group, `tdpbsud` multiplies the `K` tokens' 32 signed activation
        /// bytes (A, from `acts.tiles`) by the group's block as stored (B: run
        /// `j` is row `j` of the tile, 16 rows × 4 unsigned bytes `w + 128`), leaving `K × 16`
        /// exact integer sums Σ x · (w + 128). Each token's 16 sums then take the AVX-512 VNNI
        /// kernel's steps in its order: + (−128 · Σ x), convert, × (d_w · d_x), add to the
        /// token's f32 sums. So the bits equal every other path's.
        ///
        /// Blocks go four at a time into four C tiles, and the tile multiplies of the next four
        /// are issued before this four's float steps, so that the tile unit and the vector units
        /// work at once (one block at a time left both waiting on each store and reload).
        ///
        /// # Safety
        /// The CPU must have AMX-INT8 and AVX-512 (F, BW, VL) with F16C and FMA, and the process
        /// the tile permission ([`crate::cpu::features`] asks for it); `dst` as for the other kernels.
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
        pub unsafe fn groups<const K: usize>(w: &[u8], nb: usize, acts: &QuantizedActs, c0: usize, dst: Out, row0: usize) {
            unsafe {
                let group_bytes = nb * GBB;
                let n_groups = w.len() / group_bytes;
                let xd = acts.d.as_ptr().add(c0 * nb);
                let xb = acts.bias.as_ptr().add(c0 * nb);
                // This pass's tiles of activations: 16 × 32 bytes a block.
                debug_assert!(c0 % AMX_COLS == 0 && acts.tiles.len() >= (c0 / AMX_COLS + 1) * nb * AMX_COLS * QK);
                let xt = acts.tiles.as_ptr().add((c0 / AMX_COLS) * nb * AMX_COLS * QK);
                const TILE: usize = AMX_COLS * QK;
                let cfg = TileConfig::for_tokens(K);
                let mut sums = Sums([0; BATCH * AMX_COLS * G]);
                asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
                // Block `$b` of the group at `$base` into C tile `$c`, through A/B tiles `$a`/`$w`.
                macro_rules! multiply {
                    ($a:literal, $w:literal, $c:literal, $base:expr, $b:expr) => {
                        asm!(
                            concat!("tilezero tmm", $c),
                            concat!("tileloadd tmm", $a, ", [{a} + {sa}*1]"),
                            concat!("tileloadd tmm", $w, ", [{bw} + {sb}*1]"),
                            concat!("tdpbsud tmm", $c, ", tmm", $a, ", tmm", $w),
                            a = in(reg) xt.add($b * TILE), sa = in(reg) QK,
                            bw = in(reg) $base.add($b * GBB + 2 * G), sb = in(reg) 64usize,
                            options(nostack, readonly)
                        )
                    };
                }
                // The batch of blocks `b0 ..` (at most `BATCH`, the group's last may be short).
                macro_rules! multiply_batch {
                    ($base:expr, $b0:expr) => {{
                        let (base, b0) = ($base, $b0);
                        multiply!(0, 1, 4, base, b0);
                        if b0 + 1 < nb { multiply!(2, 3, 5, base, b0 + 1); }
                        if b0 + 2 < nb { multiply!(0, 1, 6, base, b0 + 2); }
                        if b0 + 3 < nb { multiply!(2, 3, 7, base, b0 + 3); }
                    }};
                }
                macro_rules! store {
                    ($c:literal, $i:expr) => {
                        asm!(
                            concat!("tilestored [{p} + {s}*1], tmm", $c),
                            p = in(reg) sums.0.as_mut_ptr().add($i * AMX_COLS * G), s = in(reg) 64usize,
                            options(nostack)
                        )
                    };
                }
                if n_groups > 0 {
                    multiply_batch!(w.as_ptr(), 0);
                }
                for g in 0..n_groups {
                    let base = w.as_ptr().add(g * group_bytes);
                    let mut acc = [_mm512_setzero_ps(); K];
                    let mut b0 = 0;
                    while b0 < nb {
                        let n_in = (nb - b0).min(BATCH);
                        store!(4, 0);
                        if n_in > 1 { store!(5, 1); }
                        if n_in > 2 { store!(6, 2); }
                        if n_in > 3 { store!(7, 3); }
                        // The next batch: of this group, or the next group's first.
                        if b0 + BATCH < nb {
                            multiply_batch!(base, b0 + BATCH);
                        } else if g + 1 < n_groups {
                            multiply_batch!(base.add(group_bytes), 0);
                        }
                        // The tile loads wait for their lines, so ask for those of the batch
                        // after next while this one is scaled: its weights (far ahead on the
                        // first pass, which streams them from memory; later passes find them
                        // in L2) and its four tiles of activations.
                        let ahead = if c0 == 0 { VNNI_PREFETCH_BYTES } else { 2 * BATCH * GBB };
                        let wp = base.add(b0 * GBB).wrapping_add(ahead) as *const i8;
                        for l in 0..(BATCH * GBB).div_ceil(64) {
                            _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(64 * l));
                        }
                        let next = (b0 + 2 * BATCH) % nb;
                        let xp = xt.add(next * TILE) as *const i8;
                        for l in 0..(BATCH * TILE).div_ceil(64) {
                            _mm_prefetch::<_MM_HINT_T0>(xp.wrapping_add(64 * l));
                        }
                        for i in 0..n_in {
                            let b = b0 + i;
                            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(base.add(b * GBB) as *const __m256i));
                            let c = sums.0.as_ptr().add(i * AMX_COLS * G);
                            for (t, a) in acc.iter_mut().enumerate() {
                                let s = _mm512_add_epi32(_mm512_load_si512(c.add(t * G) as *const __m512i), _mm512_set1_epi32(*xb.add(t * nb + b)));
                                let scale = _mm512_mul_ps(dw, _mm512_set1_ps(*xd.add(t * nb + b)));
                                *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, *a);
                            }
                        }
                        b0 += BATCH;
                    }
                    let r = row0 + g * G;
                    let live = dst.rows.saturating_sub(r).min(G);
                    let mask: __mmask16 = if live == G { !0 } else { (1u16 << live) - 1 };
                    for (t, a) in acc.iter().enumerate() {
                        // Masked-off lanes (padding rows) are neither written nor touched.
                        _mm512_mask_storeu_ps(dst.ptr.add((c0 + t) * dst.rows + r), mask, *a);
                    }
                }
                asm!("tilerelease", options(nostack, nomem));
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
        for v in [0.0f32, 1.0, -2.5, 0.000123, 65000.0, 1e-6, 3.25] {
            let back = f16_to_f32(f32_to_f16(v));
            assert!((back - v).abs() <= v.abs() * 1e-3 + 1e-7, "{v} -> {back}");
        }
    }

    #[test]
    fn matmul_matches_dequantized_reference_for_every_block_width() {
        let (rows, cols) = (37, 96); // 37: the last group is padded in either layout
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
        }
    }

    /// Every path the CPU has, on the layout it reads, against the portable path on the AVX2
    /// layout: bit for bit, for k = 1…64 and shapes whose rows are not a multiple of 4, 8 or 16.
    /// Also each column alone (k = 1) and inside every block: the same bits (block invariance);
    /// and the whole matrix as one task against `matmul_on`'s split into tasks.
    #[test]
    fn every_path_equals_the_portable_path_bit_for_bit() {
        let have = cpu::features().q8_paths();
        let skipped: Vec<&str> = Q8Path::ALL.iter().filter(|p| !have.contains(p)).map(|p| p.name()).collect();
        // Every (path, layout) pair a process can run: portable on both layouts.
        let mut runs: Vec<(Q8Path, Layout)> =
            vec![(Q8Path::Portable, Layout::Rows4), (Q8Path::Portable, Layout::Rows8), (Q8Path::Portable, Layout::Rows16)];
        runs.extend(have.iter().filter(|p| **p != Q8Path::Portable).map(|p| (*p, Layout::for_path(*p))));
        let names: Vec<String> = runs.iter().map(|(p, l)| format!("{} on {l:?}", p.name())).collect();
        println!("q8 paths exercised: {}", names.join(", "));
        if skipped.is_empty() {
            println!("q8 paths skipped: none");
        } else {
            println!("SKIPPED (this CPU lacks the features): q8 paths {}", skipped.join(", "));
        }
        for (rows, cols) in [(1usize, 32usize), (5, 64), (17, 96), (37, 160), (33, 32), (64, 128), (149, 64)] {
            let wv = lcg(rows * cols, rows as u64 * 31 + cols as u64);
            let mut mats: Vec<Q8Matrix> = Vec::new();
            for (_, l) in &runs {
                mats.push(Q8Matrix::from_f32_in(rows, cols, &wv, *l).unwrap());
            }
            // Include a weight of −128 (legal in a Q8_0 file, never produced by from_f32).
            let mut raw = mats[0].to_row_major();
            raw[2] = 0x80;
            let reference_raw = Q8Matrix::from_row_major(rows, cols, &raw, Layout::Rows4);
            let xs = lcg(64 * cols, 1000 + rows as u64);
            let mut singles: Vec<Vec<f32>> = Vec::new();
            for t in 0..64 {
                let mut one = vec![0f32; rows];
                mats[0].matmul_on(Q8Path::Portable, &xs[t * cols..(t + 1) * cols], 1, &mut one);
                singles.push(one);
            }
            for k in 1..=64usize {
                let x = &xs[..k * cols];
                for ((path, layout), m) in runs.iter().zip(&mats) {
                    let mut out = vec![f32::NAN; k * rows];
                    m.matmul_on(*path, x, k, &mut out);
                    let mut one_task = vec![f32::NAN; k * rows];
                    m.matmul_one_task(*path, x, k, &mut one_task);
                    assert!(
                        out.iter().zip(&one_task).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{} on {layout:?}, {rows}x{cols}, k={k}: one task over all groups differs",
                        path.name()
                    );
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
                    if k % 7 == 1 {
                        let m2 = Q8Matrix::from_row_major(rows, cols, &raw, *layout);
                        let (mut a, mut b) = (vec![0f32; k * rows], vec![0f32; k * rows]);
                        m2.matmul_on(*path, x, k, &mut a);
                        reference_raw.matmul_on(Q8Path::Portable, x, k, &mut b);
                        assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()), "{} with w = -128", path.name());
                    }
                }
            }
        }
    }

    #[test]
    fn stacking_and_raw_q8_0_keep_every_row() {
        for layout in [Layout::Rows4, Layout::Rows8, Layout::Rows16] {
            let (a, b) = (lcg(5 * 64, 3), lcg(7 * 64, 4));
            let (ma, mb) = (Q8Matrix::from_f32_in(5, 64, &a, layout).unwrap(), Q8Matrix::from_f32_in(7, 64, &b, layout).unwrap());
            let st = Q8Matrix::stack_rows(&[ma.clone(), mb.clone()]).unwrap();
            assert_eq!((st.rows(), st.cols()), (12, 64));
            let raw = Q8Matrix::from_row_major(5, 64, &ma.to_row_major(), layout);
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
                assert_eq!(x, y, "{layout:?} row {r}");
            }
        }
        let m = Q8Matrix::from_f32(5, 64, &lcg(5 * 64, 3)).unwrap();
        assert!(Q8Matrix::from_q8_0_bytes(5, 64, m.to_row_major()).is_ok());
        assert!(Q8Matrix::from_q8_0_bytes(5, 64, vec![0; 10]).is_err());
        assert!(Q8Matrix::from_f32(2, 33, &[0.0; 66]).is_err());
    }
}
