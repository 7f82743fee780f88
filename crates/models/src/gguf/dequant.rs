//! Dequantization of ggml blocks to f32, one kernel per type, run over blocks in parallel.
//!
//! Layouts follow ggml's `block_*` structs (ggml-common.h); each kernel decodes one block and
//! evaluates the arithmetic in the same order as ggml's reference `dequantize_row_*` (and the
//! Python `gguf.quants` port), so results agree bit for bit in practice.

use super::types::{GgmlType, QK_K};
use half::{bf16, f16};
use rayon::prelude::*;

/// Decodes one block: `block.len() == block_bytes`, `out.len() == block_elems`.
pub(crate) type Kernel = fn(block: &[u8], out: &mut [f32]);

/// The kernel of `ty`, or `None` if this reader cannot decode it.
pub(crate) fn kernel(ty: GgmlType) -> Option<Kernel> {
    use GgmlType::*;
    Some(match ty {
        F32 => f32_block,
        F16 => f16_block,
        BF16 => bf16_block,
        F64 => f64_block,
        I8 => i8_block,
        I16 => i16_block,
        I32 => i32_block,
        Q4_0 => q4_0,
        Q4_1 => q4_1,
        Q5_0 => q5_0,
        Q5_1 => q5_1,
        Q8_0 => q8_0,
        Q8_1 => q8_1,
        Q2_K => q2_k,
        Q3_K => q3_k,
        Q4_K => q4_k,
        Q5_K => q5_k,
        Q6_K => q6_k,
        Q8_K => q8_k,
        IQ4_NL => iq4_nl,
        _ => return None,
    })
}

/// Blocks handed to one rayon task (a few KiB of output: enough to amortise scheduling).
const BLOCKS_PER_TASK: usize = 64;

/// Decode `data` (whole blocks of `ty`) into `out`; the caller has checked the lengths.
pub(crate) fn run(kernel: Kernel, ty: GgmlType, data: &[u8], out: &mut [f32]) {
    let (be, bb) = ty.block_layout();
    debug_assert_eq!(data.len() / bb * be, out.len());
    out.par_chunks_mut(be * BLOCKS_PER_TASK)
        .zip(data.par_chunks(bb * BLOCKS_PER_TASK))
        .for_each(|(o, d)| {
            for (ob, db) in o.chunks_exact_mut(be).zip(d.chunks_exact(bb)) {
                kernel(db, ob);
            }
        });
}

#[inline]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

fn f32_block(b: &[u8], o: &mut [f32]) {
    o[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
}
fn f16_block(b: &[u8], o: &mut [f32]) {
    o[0] = f16_at(b, 0);
}
fn bf16_block(b: &[u8], o: &mut [f32]) {
    o[0] = bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
}
fn f64_block(b: &[u8], o: &mut [f32]) {
    o[0] = f64::from_le_bytes(b[..8].try_into().unwrap()) as f32;
}
fn i8_block(b: &[u8], o: &mut [f32]) {
    o[0] = b[0] as i8 as f32;
}
fn i16_block(b: &[u8], o: &mut [f32]) {
    o[0] = i16::from_le_bytes([b[0], b[1]]) as f32;
}
fn i32_block(b: &[u8], o: &mut [f32]) {
    o[0] = i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32;
}

/// `block_q4_0 { d: f16, qs: [u8; 16] }`: x = (nibble - 8) · d; low nibbles first.
fn q4_0(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        o[j] = ((qs[j] & 0x0F) as i32 - 8) as f32 * d;
        o[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
    }
}

/// `block_q4_1 { d: f16, m: f16, qs: [u8; 16] }`: x = nibble · d + m.
fn q4_1(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qs = &b[4..20];
    for j in 0..16 {
        o[j] = (qs[j] & 0x0F) as f32 * d + m;
        o[j + 16] = (qs[j] >> 4) as f32 * d + m;
    }
}

/// `block_q5_0 { d: f16, qh: u32, qs: [u8; 16] }`: 5-bit values (high bit from `qh`) minus 16, times d.
fn q5_0(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    for j in 0..16 {
        let h0 = (((qh >> j) << 4) & 0x10) as u8;
        let h1 = ((qh >> (j + 12)) & 0x10) as u8;
        o[j] = (((qs[j] & 0x0F) | h0) as i32 - 16) as f32 * d;
        o[j + 16] = (((qs[j] >> 4) | h1) as i32 - 16) as f32 * d;
    }
}

/// `block_q5_1 { d: f16, m: f16, qh: u32, qs: [u8; 16] }`: x = q5 · d + m.
fn q5_1(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let qs = &b[8..24];
    for j in 0..16 {
        let h0 = (((qh >> j) << 4) & 0x10) as u8;
        let h1 = ((qh >> (j + 12)) & 0x10) as u8;
        o[j] = ((qs[j] & 0x0F) | h0) as f32 * d + m;
        o[j + 16] = ((qs[j] >> 4) | h1) as f32 * d + m;
    }
}

/// `block_q8_0 { d: f16, qs: [i8; 32] }`: x = q · d.
fn q8_0(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    for j in 0..32 {
        o[j] = b[2 + j] as i8 as f32 * d;
    }
}

/// `block_q8_1 { d: f16, s: f16, qs: [i8; 32] }`: x = q · d (`s` is a cached sum).
fn q8_1(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    for j in 0..32 {
        o[j] = b[4 + j] as i8 as f32 * d;
    }
}

/// `block_q2_K { scales: [u8; 16], qs: [u8; 64], d: f16, dmin: f16 }`.
fn q2_k(b: &[u8], o: &mut [f32]) {
    let scales = &b[0..16];
    let d = f16_at(b, 80);
    let min = f16_at(b, 82);
    let mut y = 0;
    let mut is = 0;
    for n in 0..2 {
        let q = &b[16 + 32 * n..16 + 32 * n + 32];
        for shift in [0u32, 2, 4, 6] {
            for half in 0..2 {
                let sc = scales[is];
                is += 1;
                let dl = d * (sc & 0x0F) as f32;
                let ml = min * (sc >> 4) as f32;
                for l in 0..16 {
                    o[y] = dl * ((q[l + 16 * half] >> shift) & 3) as f32 - ml;
                    y += 1;
                }
            }
        }
    }
}

/// `block_q3_K { hmask: [u8; 32], qs: [u8; 64], scales: [u8; 12], d: f16 }`.
fn q3_k(b: &[u8], o: &mut [f32]) {
    let hm = &b[0..32];
    let d_all = f16_at(b, 108);
    // Unpack sixteen 6-bit scales from 12 bytes (ggml's kmask1/kmask2 shuffle).
    let sb = &b[96..108];
    let aux0 = u32::from_le_bytes([sb[0], sb[1], sb[2], sb[3]]);
    let aux1 = u32::from_le_bytes([sb[4], sb[5], sb[6], sb[7]]);
    let tmp = u32::from_le_bytes([sb[8], sb[9], sb[10], sb[11]]);
    const K1: u32 = 0x0303_0303;
    const K2: u32 = 0x0f0f_0f0f;
    let aux = [
        (aux0 & K2) | ((tmp & K1) << 4),
        (aux1 & K2) | (((tmp >> 2) & K1) << 4),
        ((aux0 >> 4) & K2) | (((tmp >> 4) & K1) << 4),
        ((aux1 >> 4) & K2) | (((tmp >> 6) & K1) << 4),
    ];
    let mut scales = [0i8; 16];
    for (i, a) in aux.iter().enumerate() {
        for (k, byte) in a.to_le_bytes().iter().enumerate() {
            scales[4 * i + k] = *byte as i8;
        }
    }
    let mut y = 0;
    let mut is = 0;
    let mut m = 1u8;
    for n in 0..2 {
        let q = &b[32 + 32 * n..32 + 32 * n + 32];
        for shift in [0u32, 2, 4, 6] {
            for half in 0..2 {
                let dl = d_all * (scales[is] as i32 - 32) as f32;
                is += 1;
                for l in 0..16 {
                    let i = l + 16 * half;
                    let lo = ((q[i] >> shift) & 3) as i32;
                    let hi = if hm[i] & m != 0 { 0 } else { 4 };
                    o[y] = dl * (lo - hi) as f32;
                    y += 1;
                }
            }
            m <<= 1;
        }
    }
}

/// The j-th (scale, min) pair of a Q4_K/Q5_K block's 12 packed scale bytes (`get_scale_min_k4`).
#[inline]
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// `block_q4_K { d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128] }`.
fn q4_k(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let min = f16_at(b, 2);
    let scales = &b[4..16];
    for j in 0..4 {
        let q = &b[16 + 32 * j..16 + 32 * j + 32];
        let (sc1, m1) = scale_min_k4(2 * j, scales);
        let (sc2, m2) = scale_min_k4(2 * j + 1, scales);
        let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
        let y = &mut o[64 * j..64 * j + 64];
        for l in 0..32 {
            y[l] = d1 * (q[l] & 0x0F) as f32 - m1;
            y[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

/// `block_q5_K { d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128] }`.
fn q5_k(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let min = f16_at(b, 2);
    let scales = &b[4..16];
    let qh = &b[16..48];
    for j in 0..4 {
        let ql = &b[48 + 32 * j..48 + 32 * j + 32];
        let (sc1, m1) = scale_min_k4(2 * j, scales);
        let (sc2, m2) = scale_min_k4(2 * j + 1, scales);
        let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
        let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
        let y = &mut o[64 * j..64 * j + 64];
        for l in 0..32 {
            let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            y[l] = d1 * ((ql[l] & 0x0F) + h1) as f32 - m1;
            y[l + 32] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
        }
    }
}

/// `block_q6_K { ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16 }`.
fn q6_k(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 208);
    for n in 0..2 {
        let ql = &b[64 * n..64 * n + 64];
        let qh = &b[128 + 32 * n..128 + 32 * n + 32];
        let sc = &b[192 + 8 * n..192 + 8 * n + 8];
        let y = &mut o[128 * n..128 * n + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * sc[is] as i8 as f32 * q1 as f32;
            y[l + 32] = d * sc[is + 2] as i8 as f32 * q2 as f32;
            y[l + 64] = d * sc[is + 4] as i8 as f32 * q3 as f32;
            y[l + 96] = d * sc[is + 6] as i8 as f32 * q4 as f32;
        }
    }
}

/// `block_q8_K { d: f32, qs: [i8; 256], bsums: [i16; 16] }`: x = q · d.
fn q8_k(b: &[u8], o: &mut [f32]) {
    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    for j in 0..QK_K {
        o[j] = b[4 + j] as i8 as f32 * d;
    }
}

/// Non-linear 4-bit code book of IQ4_NL (`kvalues_iq4nl`).
const KVALUES_IQ4NL: [i8; 16] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/// `block_iq4_nl { d: f16, qs: [u8; 16] }`: x = d · codebook[nibble].
fn iq4_nl(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        o[j] = d * KVALUES_IQ4NL[(qs[j] & 0x0F) as usize] as f32;
        o[j + 16] = d * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as f32;
    }
}
