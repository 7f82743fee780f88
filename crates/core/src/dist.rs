//! Next-token distributions and the sampling transform (temperature, top-p).
//!
//! A [`TokenDist`] keeps two views of one position: the *transformed* distribution (temperature,
//! top-p) from which tokens are sampled and mixtures are built (`q_t`, `p_t` in methods.md), and the
//! *untransformed* softmax (`q̂_t`, `p̂_t`) from which deferral rules read confidences. The
//! untransformed view is kept as raw logits plus the log-normaliser, so `q̂(v)` costs one `exp`
//! and `max q̂` none.

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::model::{Logits, TokenId};

/// The sampling transform applied to both models' logits.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// T = 0 is greedy: a one-hot distribution on the argmax (ties: the lowest id).
    pub temperature: f32,
    /// Nucleus sampling: keep the most probable tokens whose mass reaches `top_p`; 1 keeps all.
    pub top_p: f32,
}

impl Default for Sampling {
    fn default() -> Self {
        Self { temperature: 1.0, top_p: 1.0 }
    }
}

impl Sampling {
    pub fn new(temperature: f32, top_p: f32) -> Result<Self, CoreError> {
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(CoreError::InvalidParameter {
                name: "temperature".into(),
                value: temperature.to_string(),
                expected: "a finite number ≥ 0 (0 = greedy)".into(),
            });
        }
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(CoreError::InvalidParameter {
                name: "top_p".into(),
                value: top_p.to_string(),
                expected: "a number in (0, 1]".into(),
            });
        }
        Ok(Self { temperature, top_p })
    }

    pub fn greedy() -> Self {
        Self { temperature: 0.0, top_p: 1.0 }
    }

    /// True when the transformed distribution equals the untransformed softmax.
    pub fn is_identity(&self) -> bool {
        self.temperature == 1.0 && self.top_p >= 1.0
    }
}

/// One position's next-token distribution, transformed and untransformed.
///
/// Cloning is cheap (the distribution sits behind an `Arc`): a shared sweep computes a position's
/// distribution once and hands the same one to every configuration that reaches the prefix.
#[derive(Clone, Debug)]
pub struct TokenDist(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    probs: Vec<f32>,
    logits: Arc<[f32]>,
    max_logit: f32,
    /// log Σ_v exp(logit_v − max_logit): the untransformed log-normaliser, relative to the max.
    log_z: f64,
    argmax: TokenId,
    sampling: Sampling,
    /// Block sums of `probs` for [`TokenDist::sample`], computed on first use.
    block_sums: OnceLock<Vec<f64>>,
}

impl TokenDist {
    /// Build from raw logits. Rejects NaN and +∞ (a masked token is −∞) and an all-masked row.
    pub fn from_logits(logits: &[f32], sampling: &Sampling) -> Result<Self, CoreError> {
        Self::from_shared(logits.into(), sampling)
    }

    /// As [`TokenDist::from_logits`], taking ownership of the logits buffer.
    pub fn from_vec(logits: Vec<f32>, sampling: &Sampling) -> Result<Self, CoreError> {
        Self::from_shared(logits.into(), sampling)
    }

    /// As [`TokenDist::from_logits`], keeping a reference to logits that are shared elsewhere (a
    /// store of model outputs) instead of a copy.
    pub fn from_shared(logits: Arc<[f32]>, sampling: &Sampling) -> Result<Self, CoreError> {
        if logits.is_empty() {
            return Err(CoreError::BadDistribution("empty logits".into()));
        }
        let (max_logit, bad) = max_and_bad(&logits);
        if bad {
            let i = logits.iter().position(|l| !(*l < f32::INFINITY)).unwrap_or(0);
            return Err(CoreError::BadDistribution(format!("logit {} at token {i}", logits[i])));
        }
        if max_logit == f32::NEG_INFINITY {
            return Err(CoreError::BadDistribution("every logit is -inf".into()));
        }
        let argmax = first_index_of(&logits, max_logit).unwrap_or(0);
        let mut probs = vec![0f32; logits.len()];
        let z = exp_shifted_into(&logits, max_logit, 1.0, &mut probs);
        let log_z = z.ln();
        if sampling.temperature == 0.0 {
            probs.iter_mut().for_each(|p| *p = 0.0);
            probs[argmax] = 1.0;
        } else {
            let z_t = if sampling.temperature == 1.0 {
                z
            } else {
                exp_shifted_into(&logits, max_logit, 1.0 / sampling.temperature, &mut probs)
            };
            let inv = (1.0 / z_t) as f32;
            probs.iter_mut().for_each(|p| *p *= inv);
            if sampling.top_p < 1.0 {
                apply_top_p(&mut probs, sampling.top_p);
            }
        }
        Ok(Self(Arc::new(Inner {
            probs,
            logits,
            max_logit,
            log_z,
            argmax: argmax as TokenId,
            sampling: *sampling,
            block_sums: OnceLock::new(),
        })))
    }

    /// Build several positions' distributions at once, in parallel (the rows of one verifier call).
    /// An error names the row.
    pub fn from_rows(rows: Vec<Vec<f32>>, sampling: &Sampling) -> Result<Vec<Self>, CoreError> {
        let rows: Vec<Arc<[f32]>> = rows.into_iter().map(Arc::from).collect();
        Self::from_shared_rows(rows, sampling)
    }

    /// The rows of one model call (`[k, vocab]` logits) as distributions.
    pub fn from_logits_matrix(logits: Logits, sampling: &Sampling) -> Result<Vec<Self>, CoreError> {
        let rows: Vec<Arc<[f32]>> = (0..logits.rows()).map(|i| Arc::from(logits.row(i))).collect();
        Self::from_shared_rows(rows, sampling)
    }

    fn from_shared_rows(rows: Vec<Arc<[f32]>>, sampling: &Sampling) -> Result<Vec<Self>, CoreError> {
        use rayon::prelude::*;
        let one = |(i, r): (usize, Arc<[f32]>)| {
            Self::from_shared(r, sampling).map_err(|e| match e {
                CoreError::BadDistribution(m) => CoreError::BadDistribution(format!("row {i}: {m}")),
                e => e,
            })
        };
        // Below ~16 k tokens a row costs less than handing it to another thread.
        if rows.len() < 2 || rows[0].len() < 16_384 {
            return rows.into_iter().enumerate().map(one).collect();
        }
        rows.into_par_iter().enumerate().map(one).collect()
    }

    /// The sampling transform this distribution was built with.
    pub fn sampling(&self) -> &Sampling {
        &self.0.sampling
    }
    /// The raw logits, shared.
    pub fn shared_logits(&self) -> &Arc<[f32]> {
        &self.0.logits
    }
    /// Sample from the transformed distribution with the uniform `u`: exactly
    /// [`sample`]`(self.probs(), u)`, with the block sums computed once per distribution (a shared
    /// sweep samples the same position for many configurations).
    pub fn sample(&self, u: f64) -> TokenId {
        let sums = self.0.block_sums.get_or_init(|| block_sums(&self.0.probs));
        sample_with_sums(&self.0.probs, sums, u)
    }

    pub fn vocab(&self) -> usize {
        self.0.probs.len()
    }
    /// The transformed distribution (sums to 1).
    pub fn probs(&self) -> &[f32] {
        &self.0.probs
    }
    pub fn prob(&self, v: TokenId) -> f32 {
        self.0.probs[v as usize]
    }
    /// The argmax of the raw logits (lowest id on ties): the greedy token.
    pub fn argmax(&self) -> TokenId {
        self.0.argmax
    }
    /// Untransformed softmax probability `q̂(v)`.
    pub fn hat(&self, v: TokenId) -> f64 {
        ((self.0.logits[v as usize] - self.0.max_logit) as f64 - self.0.log_z).exp()
    }
    /// `−ln q̂(v)`, the untransformed log-loss of `v` (finite for every unmasked token; +∞ for a
    /// masked one).
    pub fn neg_log_hat(&self, v: TokenId) -> f64 {
        (self.0.max_logit - self.0.logits[v as usize]) as f64 + self.0.log_z
    }
    /// `max_v q̂(v)`.
    pub fn hat_max(&self) -> f64 {
        (-self.0.log_z).exp()
    }
    /// Whether `q̂(v) ≥ c`, decided on the logit scale (no `exp` per token) through
    /// [`TokenDist::logit_threshold`], so that every test of set membership agrees.
    #[inline]
    pub fn hat_at_least(&self, v: TokenId, c: f64) -> bool {
        self.logit_threshold(c).is_none_or(|t| self.0.logits[v as usize] >= t)
    }
    /// The raw-logit threshold `t` with `q̂(v) ≥ c ⇔ logit(v) ≥ t` (`None`: every token qualifies).
    pub fn logit_threshold(&self, c: f64) -> Option<f32> {
        if c <= 0.0 { None } else { Some((c.ln() + self.0.log_z + self.0.max_logit as f64) as f32) }
    }
    pub fn logits(&self) -> &[f32] {
        &self.0.logits
    }
}

const LANES: usize = 8;

/// The maximum, and whether any value is NaN or +∞, in one vectorisable pass.
fn max_and_bad(xs: &[f32]) -> (f32, bool) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { max_and_bad_avx2(xs) };
    }
    max_and_bad_body(xs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn max_and_bad_avx2(xs: &[f32]) -> (f32, bool) {
    max_and_bad_body(xs)
}

#[inline(always)]
fn max_and_bad_body(xs: &[f32]) -> (f32, bool) {
    let mut m = [f32::NEG_INFINITY; LANES];
    let mut bad = [0u32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            let x = c[i];
            m[i] = if x > m[i] { x } else { m[i] };
            bad[i] |= (!(x < f32::INFINITY)) as u32;
        }
    }
    let mut max = m.iter().fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    let mut any_bad = bad.iter().any(|&b| b != 0);
    for &x in rest {
        max = if x > max { x } else { max };
        any_bad |= !(x < f32::INFINITY);
    }
    (max, any_bad)
}

/// The first index holding `value` (block-wise, so the comparison vectorises).
fn first_index_of(xs: &[f32], value: f32) -> Option<usize> {
    const BLOCK: usize = 256;
    let b = xs.chunks(BLOCK).position(|c| c.iter().fold(0u32, |a, &x| a | (x == value) as u32) != 0)?;
    xs[b * BLOCK..].iter().position(|&x| x == value).map(|i| b * BLOCK + i)
}

/// Σ xs in f64, summed in f32 lanes over blocks (vectorisable; the float order is fixed, so the
/// result is deterministic).
#[inline(always)]
pub fn sum_f32(xs: &[f32]) -> f64 {
    let mut total = 0f64;
    for block in xs.chunks(4096) {
        let mut acc = [0f32; LANES];
        let chunks = block.chunks_exact(LANES);
        let rest: f32 = chunks.remainder().iter().sum();
        for c in chunks {
            for i in 0..LANES {
                acc[i] += c[i];
            }
        }
        total += (acc.iter().sum::<f32>() + rest) as f64;
    }
    total
}

/// Fill `out[i] = exp((logits[i] − max) · scale)` and return the sum in f64.
///
/// On x86-64 CPUs with AVX2 the same code is compiled for 8-wide vectors and chosen at run time.
/// Rust never fuses multiply-adds on its own, so both versions give bit-identical results: a run's
/// tokens do not depend on the CPU it ran on.
fn exp_shifted_into(logits: &[f32], max: f32, scale: f32, out: &mut [f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { exp_shifted_into_avx2(logits, max, scale, out) };
    }
    exp_shifted_body(logits, max, scale, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn exp_shifted_into_avx2(logits: &[f32], max: f32, scale: f32, out: &mut [f32]) -> f64 {
    exp_shifted_body(logits, max, scale, out)
}

#[inline(always)]
fn exp_shifted_body(logits: &[f32], max: f32, scale: f32, out: &mut [f32]) -> f64 {
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = exp_nonpositive((l - max) * scale);
    }
    sum_f32(out)
}

/// `exp(x)` for `x ≤ 0` (−∞ gives 0), relative error below 3e-7 (about 2 ulp), written so that it vectorises.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting rounds to an integer
    let xc = if x > -87.0 { x } else { -87.0 };
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    // The integer n sits in the low mantissa bits of t: integer arithmetic, no float→int cast.
    let n_int = t.to_bits() as i32 - ROUND.to_bits() as i32;
    let f = xc - n * LN2_HI - n * LN2_LO;
    let poly = 1.0
        + f * (1.0
            + f * (0.5 + f * (1.0 / 6.0 + f * (1.0 / 24.0 + f * (1.0 / 120.0 + f * (1.0 / 720.0 + f * (1.0 / 5040.0)))))));
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    if x < -87.0 { 0.0 } else { poly * scale }
}

/// Keep the smallest set of most-probable tokens whose mass reaches `top_p`, renormalised.
/// Ties at the cut are broken by token id, so the result is deterministic.
fn apply_top_p(probs: &mut [f32], top_p: f32) {
    // Sorting 150 000 entries costs milliseconds; the nucleus is nearly always small, so sort only
    // the tokens above a threshold, lowering it until they hold enough mass.
    let max = probs.iter().cloned().fold(0f32, f32::max);
    let mut threshold = max * 1e-3;
    let mut cand: Vec<u32>;
    loop {
        cand = (0..probs.len() as u32).filter(|&i| probs[i as usize] >= threshold).collect();
        let mass: f64 = cand.iter().map(|&i| probs[i as usize] as f64).sum();
        if mass >= top_p as f64 || threshold == 0.0 || cand.len() == probs.len() {
            break;
        }
        threshold = if threshold < 1e-30 { 0.0 } else { threshold * 1e-3 };
    }
    cand.sort_by(|&a, &b| probs[b as usize].total_cmp(&probs[a as usize]).then(a.cmp(&b)));
    let mut keep = cand.len();
    let mut cum = 0f64;
    for (k, &i) in cand.iter().enumerate() {
        cum += probs[i as usize] as f64;
        if cum >= top_p as f64 {
            keep = k + 1;
            break;
        }
    }
    let mut mask = vec![false; probs.len()];
    let mut kept_mass = 0f64;
    for &i in &cand[..keep] {
        mask[i as usize] = true;
        kept_mass += probs[i as usize] as f64;
    }
    let inv = (1.0 / kept_mass) as f32;
    for (p, m) in probs.iter_mut().zip(mask) {
        *p = if m { *p * inv } else { 0.0 };
    }
}

/// Total-variation distance `Σ_v max(0, q(v) − p(v))` between transformed distributions.
pub fn tv(q: &TokenDist, p: &TokenDist) -> f64 {
    tv_slices(q.probs(), p.probs())
}

pub fn tv_slices(q: &[f32], p: &[f32]) -> f64 {
    let mut total = 0f64;
    for (qb, pb) in q.chunks(4096).zip(p.chunks(4096)) {
        let mut acc = [0f32; LANES];
        let (qc, pc) = (qb.chunks_exact(LANES), pb.chunks_exact(LANES));
        let rest: f32 = qc.remainder().iter().zip(pc.remainder()).map(|(a, b)| (a - b).max(0.0)).sum();
        for (a, b) in qc.zip(pc) {
            for i in 0..LANES {
                let d = a[i] - b[i];
                acc[i] += if d > 0.0 { d } else { 0.0 };
            }
        }
        total += (acc.iter().sum::<f32>() + rest) as f64;
    }
    total
}

/// Sample from a probability vector (or any non-negative weights) with the uniform `u`:
/// the first token whose cumulative weight exceeds `u · Σ w`.
pub fn sample(probs: &[f32], u: f64) -> TokenId {
    sample_with_sums(probs, &block_sums(probs), u)
}

/// Tokens per block of [`block_sums`].
const SAMPLE_BLOCK: usize = 1024;

fn block_sums(probs: &[f32]) -> Vec<f64> {
    probs.chunks(SAMPLE_BLOCK).map(sum_f32).collect()
}

/// [`sample`] given the block sums of `probs`.
fn sample_with_sums(probs: &[f32], sums: &[f64], u: f64) -> TokenId {
    // Block sums find the block holding the target; only that block is scanned token by token.
    const BLOCK: usize = SAMPLE_BLOCK;
    let total: f64 = sums.iter().sum();
    let target = u * total;
    let mut cum = 0f64;
    for (bi, &s) in sums.iter().enumerate() {
        if cum + s > target {
            let block = &probs[bi * BLOCK..(bi * BLOCK + BLOCK).min(probs.len())];
            for (i, &p) in block.iter().enumerate() {
                cum += p as f64;
                if p > 0.0 && cum > target {
                    return (bi * BLOCK + i) as TokenId;
                }
            }
            // Rounding between the block sum and the running sum: the block's last positive token.
            if let Some(i) = block.iter().rposition(|&p| p > 0.0) {
                return (bi * BLOCK + i) as TokenId;
            }
        }
        cum += s;
    }
    // Rounding left the target just past the end: the last token with positive mass.
    probs.iter().rposition(|&p| p > 0.0).unwrap_or(0) as TokenId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std() {
        for i in 0..20_000 {
            let x = -(i as f32) * 0.0045;
            let (a, b) = (exp_nonpositive(x), x.exp());
            assert!((a - b).abs() <= 3e-7 * b + 2e-38, "x={x} got {a} want {b}");
        }
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpositive(0.0), 1.0);
    }

    #[test]
    fn vector_paths_are_bit_identical() {
        let logits: Vec<f32> = (0..10_007).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.037).collect();
        let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let (mut a, mut b) = (vec![0f32; logits.len()], vec![0f32; logits.len()]);
        let za = exp_shifted_into(&logits, max, 0.7, &mut a);
        let zb = exp_shifted_body(&logits, max, 0.7, &mut b);
        assert_eq!(za.to_bits(), zb.to_bits());
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert_eq!(max_and_bad(&logits), max_and_bad_body(&logits));
    }

    #[test]
    fn greedy_is_one_hot_on_first_max() {
        let d = TokenDist::from_logits(&[1.0, 3.0, 3.0, -1.0], &Sampling::greedy()).unwrap();
        assert_eq!(d.probs(), &[0.0, 1.0, 0.0, 0.0]);
        assert_eq!(d.argmax(), 1);
        for u in [0.0, 0.5, 0.999_999] {
            assert_eq!(sample(d.probs(), u), 1);
        }
    }

    #[test]
    fn temperature_and_hat() {
        let logits = [0.0f32, 1.0, 2.0];
        let d = TokenDist::from_logits(&logits, &Sampling::new(0.5, 1.0).unwrap()).unwrap();
        let z: f64 = logits.iter().map(|&l| ((l as f64) * 2.0).exp()).sum();
        for v in 0..3 {
            assert!((d.prob(v) as f64 - ((logits[v as usize] as f64) * 2.0).exp() / z).abs() < 1e-6);
        }
        let zh: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
        assert!((d.hat_max() - 2f64.exp() / zh).abs() < 1e-6);
        assert!((d.hat(0) - 1.0 / zh).abs() < 1e-6);
        assert!(d.hat_at_least(2, 0.6) && !d.hat_at_least(1, 0.3));
    }

    #[test]
    fn top_p_keeps_nucleus() {
        let logits = [(0.5f32).ln(), (0.3f32).ln(), (0.15f32).ln(), (0.05f32).ln()];
        let d = TokenDist::from_logits(&logits, &Sampling::new(1.0, 0.8).unwrap()).unwrap();
        assert!((d.prob(0) - 0.625).abs() < 1e-6 && (d.prob(1) - 0.375).abs() < 1e-6);
        assert_eq!((d.prob(2), d.prob(3)), (0.0, 0.0));
        // hat is untouched by top-p
        assert!((d.hat(3) - 0.05).abs() < 1e-6);
    }

    #[test]
    fn rejects_nan_and_all_masked() {
        assert!(TokenDist::from_logits(&[0.0, f32::NAN], &Sampling::default()).is_err());
        assert!(TokenDist::from_logits(&[f32::NEG_INFINITY; 3], &Sampling::default()).is_err());
        let d = TokenDist::from_logits(&[0.0, f32::NEG_INFINITY], &Sampling::default()).unwrap();
        assert_eq!(d.probs(), &[1.0, 0.0]);
    }

    #[test]
    fn sampling_inverse_cdf() {
        let p = [0.25f32, 0.0, 0.75];
        assert_eq!(sample(&p, 0.0), 0);
        assert_eq!(sample(&p, 0.2499), 0);
        assert_eq!(sample(&p, 0.25), 2);
        assert_eq!(sample(&[0.0, 3.0, 1.0], 0.74), 1);
        assert_eq!(sample(&[0.0, 3.0, 1.0], 0.75), 2);
    }
}
