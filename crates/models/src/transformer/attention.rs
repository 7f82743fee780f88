//! Attention: the kernel over a key/value store ([`attend`]) and the self-attention layer built
//! on it ([`SelfAttention`]: fused Q|K|V projection, optional per-head q/k norms, RoPE, the KV
//! cache, output projection).
//!
//! Block invariance: each (query row, head) is computed on its own, over exactly the keys it may
//! see, in position order: scores by [`dot`], softmax left to right, values accumulated left to
//! right. Nothing depends on how many query rows the call holds, so a position's output is the same
//! bits in a prefill, alone, or in a block. Work is spread with rayon over (row, key/value head)
//! items, each computing the query heads that share those keys.

use std::sync::Arc;

use rayon::prelude::*;

use super::kv_cache::LayerCache;
use super::matrix::Linear;
use super::norm::RmsNorm;
use super::ops::{Acts, axpy, axpy4_body, dot, dot4_body, soft_cap, softmax_in_place};
#[cfg(doc)]
use super::ops::{axpy4, dot4};
use super::rope::Rope;

/// Head layout: `n_heads` query heads share `n_kv_heads` key/value heads (grouped-query
/// attention; query head `h` reads key/value head `h / (n_heads / n_kv_heads)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadShape {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

impl HeadShape {
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
    fn group(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }
}

/// How raw scores `q·k` become pre-softmax logits: `cap · tanh(scale · q·k / cap) + bias`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreRule {
    /// Multiplies `q·k`: `1/√head_dim` (llama), `query_pre_attn_scalar^-½` (Gemma 2/3), 1 (T5).
    pub scale: f32,
    /// Attention-logit soft-capping (Gemma 2).
    pub soft_cap: Option<f32>,
    /// Sliding window: a query at position p sees keys `p + 1 - window ..= p` (Gemma 2/3 local
    /// layers). Only meaningful with [`Visible::Causal`].
    pub window: Option<usize>,
}

impl ScoreRule {
    /// `1/√head_dim`, no cap, no window.
    pub fn scaled(head_dim: usize) -> Self {
        Self { scale: 1.0 / (head_dim as f32).sqrt(), soft_cap: None, window: None }
    }
}

/// Which keys a query row sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visible {
    /// Row `i` is the query at position `pos0 + i` and sees keys `..= pos0 + i` (decoders).
    Causal { pos0: usize },
    /// Every row sees every key (encoders, cross-attention).
    All,
}

/// An additive score bias `bias(head, query_position, key_position)` (T5's relative position
/// bias). For [`Visible::All`] the query position is the row index.
pub type ScoreBias<'a> = &'a (dyn Fn(usize, usize, usize) -> f32 + Sync);

/// Below this many multiply-adds a call runs on one thread (rayon's hand-off costs more).
const PARALLEL_WORK: usize = 1 << 15;

/// Attention of the query rows `q` (`[k, n_heads · head_dim]`) over `keys` / `values`
/// (`[n, n_kv_heads · head_dim]` each, row = key position). Returns `[k, n_heads · head_dim]`.
pub fn attend(
    q: &Acts,
    keys: &[f32],
    values: &[f32],
    shape: HeadShape,
    rule: ScoreRule,
    visible: Visible,
    bias: Option<ScoreBias<'_>>,
) -> Acts {
    let (nh, hd, kv_dim) = (shape.n_heads, shape.head_dim, shape.kv_dim());
    assert_eq!(q.cols(), shape.q_dim(), "attend: query width");
    assert_eq!(keys.len(), values.len(), "attend: keys and values differ in length");
    assert_eq!(keys.len() % kv_dim, 0, "attend: key rows");
    let n = keys.len() / kv_dim;
    let k = q.rows();
    if let Visible::Causal { pos0 } = visible {
        assert!(pos0 + k <= n, "attend: queries up to position {} but {n} keys", pos0 + k);
    }
    let group = shape.group();
    let mut out = Acts::zeros(k, nh * hd);
    // One item is a query row and query heads that read the same key/value head, computed
    // together so that each key and value row is fetched once for all of them: the whole group,
    // unless that leaves fewer than two items per thread (a decode step of a model with one or
    // two key/value heads), then the largest divisor of the group that gives them. A call too
    // small for the pool runs on this thread with whole groups.
    let work = k * nh * n * hd;
    let threads = if work < PARALLEL_WORK { 1 } else { rayon::current_num_threads() };
    let min_items = if threads == 1 { 1 } else { 2 * threads };
    let per_item = (1..=group).rev().find(|d| group % d == 0 && k * (nh / d) >= min_items).unwrap_or(1);
    let job = Job { q, keys, values, shape, rule, visible, bias, n, per_item };
    if threads == 1 {
        let mut scores = Vec::new();
        for (idx, o) in out.as_mut_slice().chunks_exact_mut(per_item * hd).enumerate() {
            job.item(&mut scores, idx, o);
        }
    } else {
        out.as_mut_slice()
            .par_chunks_exact_mut(per_item * hd)
            .enumerate()
            .for_each_init(Vec::new, |scores, (idx, o)| job.item(scores, idx, o));
    }
    out
}

/// The inputs of one [`attend`] call.
struct Job<'a, 'b> {
    q: &'a Acts,
    keys: &'a [f32],
    values: &'a [f32],
    shape: HeadShape,
    rule: ScoreRule,
    visible: Visible,
    bias: Option<ScoreBias<'b>>,
    /// Key positions.
    n: usize,
    /// Query heads per item (a divisor of the group).
    per_item: usize,
}

impl Job<'_, '_> {
    /// Item `idx` (query row `idx / (n_heads / per_item)`, and the `per_item` query heads from
    /// `(idx % (n_heads / per_item)) · per_item`, which share one key/value head) into `o`, their
    /// `per_item × head_dim` outputs. `scores` is scratch.
    fn item(&self, scores: &mut Vec<Vec<f32>>, idx: usize, o: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::features().avx2 {
            // SAFETY: AVX2 is present (detected once per process).
            return unsafe { self.item_avx2(scores, idx, o) };
        }
        self.item_body(scores, idx, o)
    }

    /// [`Self::item_body`] compiled for AVX2: the dot products and value sums inline into the
    /// loops over keys (the same operations as [`dot4`] / [`axpy4`] on AVX2, so the same bits).
    /// An AVX-512F build of the same body (16-lane value sums, the same bits) measured slower:
    /// 0.49 against 0.38 s of attention in the 0.5B's 512-token prefill (Intel Xeon, 2026-12-04).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn item_avx2(&self, scores: &mut Vec<Vec<f32>>, idx: usize, o: &mut [f32]) {
        self.item_body(scores, idx, o)
    }

    /// Each (row, head) of the item on its own, over exactly the keys it may see, in position
    /// order: scores four keys at a time ([`dot4`]: the bits of [`dot`] one key at a time), the
    /// softmax left to right, values four at a time ([`axpy4`]: the bits of [`axpy`] in order).
    #[inline(always)]
    fn item_body(&self, scores: &mut Vec<Vec<f32>>, idx: usize, o: &mut [f32]) {
        let (nh, hd, kv_dim) = (self.shape.n_heads, self.shape.head_dim, self.shape.kv_dim());
        let (group, per_item) = (self.shape.group(), self.per_item);
        let items_per_row = nh / per_item;
        let (i, h0) = (idx / items_per_row, (idx % items_per_row) * per_item);
        let kvh = h0 / group;
        let (qpos, lo, hi) = match self.visible {
            Visible::Causal { pos0 } => {
                let p = pos0 + i;
                let lo = self.rule.window.map_or(0, |w| (p + 1).saturating_sub(w));
                (p, lo, p + 1)
            }
            Visible::All => (i, 0, self.n),
        };
        let (keys, values, rule, bias) = (self.keys, self.values, self.rule, self.bias);
        let qrow = self.q.row(i);
        let key = |j: usize| &keys[j * kv_dim + kvh * hd..j * kv_dim + (kvh + 1) * hd];
        let value = |j: usize| &values[j * kv_dim + kvh * hd..j * kv_dim + (kvh + 1) * hd];
        let logit = |d: f32, h: usize, j: usize| {
            let mut s = d * rule.scale;
            if let Some(cap) = rule.soft_cap {
                s = soft_cap(s, cap);
            }
            if let Some(b) = bias {
                s += b(h, qpos, j);
            }
            s
        };
        scores.resize_with(per_item, Vec::new);
        for sc in scores.iter_mut() {
            sc.clear();
        }
        let heads = h0..h0 + per_item;
        debug_assert!(heads.end <= nh && o.len() == per_item * hd && (heads.end - 1) / group == kvh);
        let mut j = lo;
        while j + 4 <= hi {
            let ks = [key(j), key(j + 1), key(j + 2), key(j + 3)];
            for (h, sc) in heads.clone().zip(scores.iter_mut()) {
                let d = dot4_body(&qrow[h * hd..(h + 1) * hd], ks);
                for (x, dx) in d.into_iter().enumerate() {
                    sc.push(logit(dx, h, j + x));
                }
            }
            j += 4;
        }
        for j in j..hi {
            for (h, sc) in heads.clone().zip(scores.iter_mut()) {
                sc.push(logit(dot(&qrow[h * hd..(h + 1) * hd], key(j)), h, j));
            }
        }
        for sc in scores.iter_mut() {
            softmax_in_place(sc);
        }
        let full = (hi - lo) / 4 * 4;
        let mut j = lo;
        for c in (0..full).step_by(4) {
            let vs = [value(j), value(j + 1), value(j + 2), value(j + 3)];
            for (sc, oh) in scores.iter().zip(o.chunks_exact_mut(hd)) {
                axpy4_body([sc[c], sc[c + 1], sc[c + 2], sc[c + 3]], vs, oh);
            }
            j += 4;
        }
        for c in full..hi - lo {
            for (sc, oh) in scores.iter().zip(o.chunks_exact_mut(hd)) {
                axpy(sc[c], value(j), oh);
            }
            j += 1;
        }
    }
}

/// Causal self-attention over a KV cache: `o(attend(rope(norm(q)), rope(norm(k)), v))`.
pub struct SelfAttention {
    /// Q, K and V fused: `[d] -> [q_dim + 2 kv_dim]`.
    qkv: Linear,
    o: Linear,
    shape: HeadShape,
    rule: ScoreRule,
    rope: Option<Arc<Rope>>,
    qk_norm: Option<(RmsNorm, RmsNorm)>,
}

impl SelfAttention {
    /// `qkv` must have `q_dim + 2 kv_dim` outputs and `o` `q_dim` inputs.
    pub fn new(qkv: Linear, o: Linear, shape: HeadShape, rule: ScoreRule, rope: Option<Arc<Rope>>) -> Self {
        assert_eq!(qkv.d_out(), shape.q_dim() + 2 * shape.kv_dim(), "SelfAttention: fused qkv width");
        assert_eq!(o.d_in(), shape.q_dim(), "SelfAttention: output projection width");
        Self { qkv, o, shape, rule, rope, qk_norm: None }
    }

    /// Normalise every query and key head (width `head_dim`) before RoPE (Gemma 3, Qwen 3).
    pub fn with_qk_norms(mut self, q: RmsNorm, k: RmsNorm) -> Self {
        self.qk_norm = Some((q, k));
        self
    }

    /// Bytes of weight one forward reads.
    pub fn weight_bytes(&self) -> usize {
        self.qkv.weight().byte_len() + self.o.weight().byte_len()
    }

    /// Shapes: `x: [k, d]` at positions `cache.positions() ..` → `[k, d]`; appends k positions
    /// to `cache`.
    pub fn forward(&self, x: &Acts, cache: &mut LayerCache) -> Acts {
        self.forward_biased(x, cache, None)
    }

    /// [`SelfAttention::forward`] with an additive score bias (T5 decoder self-attention).
    pub fn forward_biased(&self, x: &Acts, cache: &mut LayerCache, bias: Option<ScoreBias<'_>>) -> Acts {
        self.o.forward(&self.attend_projected(&self.qkv.forward(x), cache, bias))
    }

    /// Several sequences in one pass: `x` is their rows one after another (`rows[i]` rows of
    /// sequence i, at positions `caches[i].positions() ..`). The projections run once over all
    /// rows, which is where batching pays (one read of the weights for every sequence); the
    /// attention itself runs per sequence against its own cache. The kernels are block
    /// invariant, so every row is the same bits as in a forward of its sequence alone.
    ///
    /// Shapes: `x: [Σ rows, d]` → `[Σ rows, d]`; appends `rows[i]` positions to `caches[i]`.
    pub fn forward_many(&self, x: &Acts, rows: &[usize], caches: &mut [&mut LayerCache]) -> Acts {
        assert_eq!(rows.len(), caches.len(), "SelfAttention::forward_many: one row count per cache");
        assert_eq!(rows.iter().sum::<usize>(), x.rows(), "SelfAttention::forward_many: rows of x");
        if let [cache] = caches {
            return self.forward(x, cache);
        }
        let qkv = self.qkv.forward(x);
        let mut att = Vec::with_capacity(x.rows() * self.shape.q_dim());
        let mut r0 = 0;
        for (cache, &n) in caches.iter_mut().zip(rows) {
            att.extend_from_slice(self.attend_projected(&qkv.slice_rows(r0, r0 + n), cache, None).as_slice());
            r0 += n;
        }
        self.o.forward(&Acts::new(x.rows(), self.shape.q_dim(), att))
    }

    /// Attention of one sequence's fused Q/K/V rows (`[k, q_dim + 2 kv_dim]`) against its cache,
    /// before the output projection.
    fn attend_projected(&self, qkv: &Acts, cache: &mut LayerCache, bias: Option<ScoreBias<'_>>) -> Acts {
        let (q_dim, kv_dim) = (self.shape.q_dim(), self.shape.kv_dim());
        let pos0 = cache.positions();
        let mut q = qkv.slice_cols(0, q_dim);
        let mut k = qkv.slice_cols(q_dim, q_dim + kv_dim);
        let v = qkv.slice_cols(q_dim + kv_dim, q_dim + 2 * kv_dim);
        if let Some((qn, kn)) = &self.qk_norm {
            qn.forward_in_place(&mut q);
            kn.forward_in_place(&mut k);
        }
        if let Some(rope) = &self.rope {
            rope.apply(&mut q, pos0);
            rope.apply(&mut k, pos0);
        }
        cache.append(&k, &v);
        attend(&q, cache.keys(), cache.values(), self.shape, self.rule, Visible::Causal { pos0 }, bias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transformer::test_values::lcg;

    fn naive(q: &[f32], keys: &[f32], values: &[f32], hd: usize, scale: f32) -> Vec<f32> {
        let n = keys.len() / hd;
        let s: Vec<f64> = (0..n)
            .map(|j| (0..hd).map(|c| q[c] as f64 * keys[j * hd + c] as f64).sum::<f64>() * scale as f64)
            .collect();
        let m = s.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
        let z: f64 = e.iter().sum();
        (0..hd).map(|c| (0..n).map(|j| e[j] / z * values[j * hd + c] as f64).sum::<f64>() as f32).collect()
    }

    #[test]
    fn causal_rows_match_a_naive_softmax_and_do_not_depend_on_the_block() {
        let shape = HeadShape { n_heads: 4, n_kv_heads: 2, head_dim: 16 };
        let n = 9;
        let keys = lcg(n * shape.kv_dim(), 1);
        let values = lcg(n * shape.kv_dim(), 2);
        let q = Acts::new(n, shape.q_dim(), lcg(n * shape.q_dim(), 3));
        let rule = ScoreRule::scaled(16);
        let all = attend(&q, &keys, &values, shape, rule, Visible::Causal { pos0: 0 }, None);
        // Row 5, head 3 (kv head 1) against a naive f64 softmax over keys 0..=5.
        let kv = |src: &[f32]| -> Vec<f32> { (0..6).flat_map(|j| src[j * 32 + 16..j * 32 + 32].to_vec()).collect() };
        let want = naive(&q.row(5)[48..64], &kv(&keys), &kv(&values), 16, rule.scale);
        for (a, b) in all.row(5)[48..64].iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // The same rows computed one at a time, or as blocks, are the same bits.
        for start in 0..n {
            for end in start + 1..=n {
                let part = attend(
                    &q.slice_rows(start, end),
                    &keys[..end * 32],
                    &values[..end * 32],
                    shape,
                    rule,
                    Visible::Causal { pos0: start },
                    None,
                );
                assert_eq!(part.as_slice(), all.slice_rows(start, end).as_slice(), "rows {start}..{end}");
            }
        }
    }

    /// One (row, head) at a time through the public `dot4` / `axpy4` — the arithmetic `attend`
    /// had before it grouped the heads that share keys — for a bit-for-bit comparison.
    fn one_head_at_a_time(q: &Acts, keys: &[f32], values: &[f32], shape: HeadShape, rule: ScoreRule, visible: Visible, bias: Option<ScoreBias<'_>>) -> Vec<f32> {
        use crate::transformer::ops::{axpy4, dot4};
        let (nh, hd, kv_dim) = (shape.n_heads, shape.head_dim, shape.kv_dim());
        let n = keys.len() / kv_dim;
        let mut out = vec![0f32; q.rows() * nh * hd];
        for (idx, o) in out.chunks_exact_mut(hd).enumerate() {
            let (i, h) = (idx / nh, idx % nh);
            let kvh = h / (nh / shape.n_kv_heads);
            let (qpos, lo, hi) = match visible {
                Visible::Causal { pos0 } => {
                    let p = pos0 + i;
                    (p, rule.window.map_or(0, |w| (p + 1).saturating_sub(w)), p + 1)
                }
                Visible::All => (i, 0, n),
            };
            let qh = &q.row(i)[h * hd..(h + 1) * hd];
            let key = |j: usize| &keys[j * kv_dim + kvh * hd..j * kv_dim + (kvh + 1) * hd];
            let value = |j: usize| &values[j * kv_dim + kvh * hd..j * kv_dim + (kvh + 1) * hd];
            let logit = |d: f32, j: usize| {
                let mut s = d * rule.scale;
                if let Some(cap) = rule.soft_cap {
                    s = soft_cap(s, cap);
                }
                if let Some(b) = bias {
                    s += b(h, qpos, j);
                }
                s
            };
            let mut scores = Vec::new();
            let mut j = lo;
            while j + 4 <= hi {
                let d = dot4(qh, [key(j), key(j + 1), key(j + 2), key(j + 3)]);
                for (x, dx) in d.into_iter().enumerate() {
                    scores.push(logit(dx, j + x));
                }
                j += 4;
            }
            for j in j..hi {
                scores.push(logit(dot(qh, key(j)), j));
            }
            softmax_in_place(&mut scores);
            let mut j = lo;
            for p in scores.chunks_exact(4) {
                axpy4([p[0], p[1], p[2], p[3]], [value(j), value(j + 1), value(j + 2), value(j + 3)], o);
                j += 4;
            }
            for &p in scores.chunks_exact(4).remainder() {
                axpy(p, value(j), o);
                j += 1;
            }
        }
        out
    }

    /// Grouping the query heads that share keys changes no bit: Qwen2.5-0.5B's 14 / 2 heads of
    /// 64 and other groupings, causal (with and without a window and soft cap), with a bias, and
    /// all-visible; row counts large enough to run in parallel.
    #[test]
    fn grouped_heads_give_the_bits_of_one_head_at_a_time() {
        let bias = |h: usize, qp: usize, kp: usize| ((h * 7 + qp * 3 + kp) % 11) as f32 * 0.05;
        let shapes = [(14, 2, 64), (12, 2, 128), (4, 4, 16), (8, 1, 24), (6, 3, 8)];
        for (si, &(n_heads, n_kv_heads, head_dim)) in shapes.iter().enumerate() {
            let shape = HeadShape { n_heads, n_kv_heads, head_dim };
            let n = 37 + si;
            let keys = lcg(n * shape.kv_dim(), 10 + si as u64);
            let values = lcg(n * shape.kv_dim(), 20 + si as u64);
            for (rows, pos0) in [(n, 0), (1, n - 1), (6, n - 6), (19, 3)] {
                let q = Acts::new(rows, shape.q_dim(), lcg(rows * shape.q_dim(), 30 + rows as u64));
                let rules = [
                    ScoreRule::scaled(head_dim),
                    ScoreRule { window: Some(5), soft_cap: Some(20.0), ..ScoreRule::scaled(head_dim) },
                ];
                for rule in rules {
                    for with_bias in [false, true] {
                        let b: Option<ScoreBias<'_>> = if with_bias { Some(&bias) } else { None };
                        let visible = Visible::Causal { pos0 };
                        let got = attend(&q, &keys[..(pos0 + rows) * shape.kv_dim()], &values[..(pos0 + rows) * shape.kv_dim()], shape, rule, visible, b);
                        let want = one_head_at_a_time(&q, &keys[..(pos0 + rows) * shape.kv_dim()], &values[..(pos0 + rows) * shape.kv_dim()], shape, rule, visible, b);
                        assert!(got.as_slice().iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{shape:?} rows {rows} pos0 {pos0} {rule:?} bias {with_bias}");
                    }
                }
                let got = attend(&q, &keys, &values, shape, ScoreRule::scaled(head_dim), Visible::All, Some(&bias));
                let want = one_head_at_a_time(&q, &keys, &values, shape, ScoreRule::scaled(head_dim), Visible::All, Some(&bias));
                assert!(got.as_slice().iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{shape:?} all-visible");
            }
        }
    }

    #[test]
    fn sliding_window_sees_only_the_last_keys() {
        let shape = HeadShape { n_heads: 1, n_kv_heads: 1, head_dim: 8 };
        let keys = lcg(6 * 8, 4);
        let values = lcg(6 * 8, 5);
        let q = Acts::new(1, 8, lcg(8, 6));
        let rule = ScoreRule { window: Some(2), ..ScoreRule::scaled(8) };
        let windowed = attend(&q, &keys, &values, shape, rule, Visible::Causal { pos0: 5 }, None);
        let last_two = attend(&q, &keys[32..], &values[32..], shape, ScoreRule::scaled(8), Visible::All, None);
        assert_eq!(windowed, last_two);
    }
}
