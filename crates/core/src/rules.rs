//! Deferral rules: what each speculative method aims to emit at one position.
//!
//! A rule looks at the drafter's and the verifier's distributions at a position (after the
//! verifier's parallel forward, so it may read `p̂`) and names a [`Target`]. The block verifier
//! ([`crate::verify`]) then emits exactly that target by rejection sampling. One type per rule of
//! methods.md; α is validated when the rule is built.

use crate::CoreError;
use crate::dist::{TokenDist, tv};
use crate::model::TokenId;

/// Which model's untransformed softmax defines a token-specific acceptable set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Drafter,
    Verifier,
}

/// What to emit at one position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// π = q (δ = 0): the draft is accepted with probability 1, no coin is read.
    Drafter,
    /// π = p (δ = 1, and lossless speculative decoding).
    Verifier,
    /// Token-specific cascade: with A = {v : sidê(v) ≥ threshold},
    /// π(v) = q(v)·1[v ∈ A] + (1 − Σ_{u∈A} q(u))·p(v).
    TokenSet { side: Side, threshold: f64 },
    /// Lossy speculative decoding (Tran-Thien 2023). Not a target: accept x with
    /// min(1, p(x) / ((1 − α) q(x))), residual norm(max(0, p − q)).
    Lossy { alpha: f64 },
}

impl Target {
    /// Whether `v` is in the acceptable set of a token-specific target.
    #[inline]
    pub fn in_set(side: Side, threshold: f64, q: &TokenDist, p: &TokenDist, v: TokenId) -> bool {
        match side {
            Side::Drafter => q.hat_at_least(v, threshold),
            Side::Verifier => p.hat_at_least(v, threshold),
        }
    }

    /// Whether this position counts as a deferral to the verifier for the drafted token `x`
    /// (δ = 1 for the mixture rules; x ∉ A for the token-specific rules).
    pub fn deferred(&self, q: &TokenDist, p: &TokenDist, x: TokenId) -> bool {
        match *self {
            Target::Drafter => false,
            Target::Verifier | Target::Lossy { .. } => true,
            Target::TokenSet { side, threshold } => !Self::in_set(side, threshold, q, p, x),
        }
    }

    /// π as a dense vector (for tests and analysis; the verifier never builds it).
    pub fn pi(&self, q: &TokenDist, p: &TokenDist) -> Vec<f64> {
        let n = q.vocab();
        match *self {
            Target::Drafter => q.probs().iter().map(|&x| x as f64).collect(),
            Target::Verifier => p.probs().iter().map(|&x| x as f64).collect(),
            Target::TokenSet { side, threshold } => {
                let in_a: Vec<bool> =
                    (0..n).map(|v| Self::in_set(side, threshold, q, p, v as TokenId)).collect();
                let q_a: f64 = (0..n).filter(|&v| in_a[v]).map(|v| q.probs()[v] as f64).sum();
                let rest = (1.0 - q_a).max(0.0);
                (0..n)
                    .map(|v| {
                        let qv = if in_a[v] { q.probs()[v] as f64 } else { 0.0 };
                        qv + rest * p.probs()[v] as f64
                    })
                    .collect()
            }
            Target::Lossy { alpha } => {
                // The emitted law of lossy speculative decoding:
                // min(q, p/(1−α)) + (1 − Σ min(q, p/(1−α))) · norm(max(0, p − q)).
                let s = 1.0 / (1.0 - alpha);
                let keep: Vec<f64> =
                    (0..n).map(|v| (q.probs()[v] as f64).min(p.probs()[v] as f64 * s)).collect();
                let kept: f64 = keep.iter().sum();
                let res: Vec<f64> =
                    (0..n).map(|v| (p.probs()[v] as f64 - q.probs()[v] as f64).max(0.0)).collect();
                let rs: f64 = res.iter().sum();
                (0..n)
                    .map(|v| keep[v] + if rs > 0.0 { (1.0 - kept).max(0.0) * res[v] / rs } else { 0.0 })
                    .collect()
            }
        }
    }
}

/// A deferral rule: maps one position's (q, p) to a [`Target`].
pub trait DeferralRule: Send + Sync {
    /// The method name used in YAML and on the command line.
    fn name(&self) -> &'static str;
    fn target(&self, q: &TokenDist, p: &TokenDist) -> Target;
}

/// Check α against a closed or open interval, naming the rule and the range in the error.
fn check_alpha(rule: &'static str, alpha: f64, lo: f64, hi: f64, hi_open: bool) -> Result<f64, CoreError> {
    let ok = alpha.is_finite() && alpha >= lo && if hi_open { alpha < hi } else { alpha <= hi };
    if ok {
        Ok(alpha)
    } else {
        Err(CoreError::AlphaOutOfRange {
            rule,
            alpha,
            range: format!("[{lo}, {hi}{}", if hi_open { ")" } else { "]" }),
        })
    }
}

/// Lossless speculative decoding: π = p.
#[derive(Clone, Copy, Debug, Default)]
pub struct LosslessRule;
impl DeferralRule for LosslessRule {
    fn name(&self) -> &'static str {
        "spec_decode"
    }
    fn target(&self, _q: &TokenDist, _p: &TokenDist) -> Target {
        Target::Verifier
    }
}

/// Lossy speculative decoding, α ∈ [0, 1).
#[derive(Clone, Copy, Debug)]
pub struct LossyRule {
    alpha: f64,
}
impl LossyRule {
    pub fn new(alpha: f64) -> Result<Self, CoreError> {
        Ok(Self { alpha: check_alpha("spec_decode_lossy", alpha, 0.0, 1.0, true)? })
    }
}
impl DeferralRule for LossyRule {
    fn name(&self) -> &'static str {
        "spec_decode_lossy"
    }
    fn target(&self, _q: &TokenDist, _p: &TokenDist) -> Target {
        Target::Lossy { alpha: self.alpha }
    }
}

fn mixture(defer: bool) -> Target {
    if defer { Target::Verifier } else { Target::Drafter }
}

/// Chow's rule: δ = 1[max q̂ < 1 − α], α ∈ [0, 1].
#[derive(Clone, Copy, Debug)]
pub struct ChowRule {
    alpha: f64,
}
impl ChowRule {
    pub fn new(alpha: f64) -> Result<Self, CoreError> {
        Ok(Self { alpha: check_alpha("spec_cascade_chow", alpha, 0.0, 1.0, false)? })
    }
    /// The decision alone, from the drafter (sequential cascades need no p̂).
    pub fn defers(&self, q: &TokenDist) -> bool {
        q.hat_max() < 1.0 - self.alpha
    }
}
impl DeferralRule for ChowRule {
    fn name(&self) -> &'static str {
        "spec_cascade_chow"
    }
    fn target(&self, q: &TokenDist, _p: &TokenDist) -> Target {
        mixture(self.defers(q))
    }
}

/// The Diff rule (eq. 5): δ = 1[max q̂ < max p̂ − α], α ∈ [−1, 1].
#[derive(Clone, Copy, Debug)]
pub struct DiffRule {
    alpha: f64,
}
impl DiffRule {
    pub fn new(alpha: f64) -> Result<Self, CoreError> {
        Ok(Self { alpha: check_alpha("spec_cascade_diff", alpha, -1.0, 1.0, false)? })
    }
    pub fn defers(&self, q: &TokenDist, p: &TokenDist) -> bool {
        q.hat_max() < p.hat_max() - self.alpha
    }
}
impl DeferralRule for DiffRule {
    fn name(&self) -> &'static str {
        "spec_cascade_diff"
    }
    fn target(&self, q: &TokenDist, p: &TokenDist) -> Target {
        mixture(self.defers(q, p))
    }
}

/// The optimal rule for the speculative cost (eq. 10): δ = 1[max q̂ < max p̂ − α·TV(q, p)].
#[derive(Clone, Copy, Debug)]
pub struct OptRule {
    alpha: f64,
}
impl OptRule {
    pub fn new(alpha: f64) -> Result<Self, CoreError> {
        Ok(Self { alpha: check_alpha("spec_cascade_opt", alpha, f64::MIN, f64::MAX, false)? })
    }
}
impl DeferralRule for OptRule {
    fn name(&self) -> &'static str {
        "spec_cascade_opt"
    }
    fn target(&self, q: &TokenDist, p: &TokenDist) -> Target {
        let (qm, pm) = (q.hat_max(), p.hat_max());
        // TV is only needed when the comparison could go either way: TV ∈ [0, 1].
        let defer = if qm >= pm + self.alpha.abs() {
            false
        } else if qm < pm - self.alpha.abs() {
            true
        } else {
            qm < pm - self.alpha * tv(q, p)
        };
        mixture(defer)
    }
}

/// Token-specific rule V1 (eq. 13): A = {v : q̂(v) ≥ max p̂ − α}, α ∈ [−1, 1].
#[derive(Clone, Copy, Debug)]
pub struct TokenV1Rule {
    alpha: f64,
}
impl TokenV1Rule {
    pub fn new(alpha: f64) -> Result<Self, CoreError> {
        Ok(Self { alpha: check_alpha("spec_cascade_token_v1", alpha, -1.0, 1.0, false)? })
    }
}
impl DeferralRule for TokenV1Rule {
    fn name(&self) -> &'static str {
        "spec_cascade_token_v1"
    }
    fn target(&self, _q: &TokenDist, p: &TokenDist) -> Target {
        Target::TokenSet { side: Side::Drafter, threshold: p.hat_max() - self.alpha }
    }
}

/// Token-specific rule V2 (eq. 14): A = {v : p̂(v) ≥ max p̂ − α}, α ∈ [−1, 1].
#[derive(Clone, Copy, Debug)]
pub struct TokenV2Rule {
    alpha: f64,
}
impl TokenV2Rule {
    pub fn new(alpha: f64) -> Result<Self, CoreError> {
        Ok(Self { alpha: check_alpha("spec_cascade_token_v2", alpha, -1.0, 1.0, false)? })
    }
}
impl DeferralRule for TokenV2Rule {
    fn name(&self) -> &'static str {
        "spec_cascade_token_v2"
    }
    fn target(&self, _q: &TokenDist, p: &TokenDist) -> Target {
        Target::TokenSet { side: Side::Verifier, threshold: p.hat_max() - self.alpha }
    }
}

/// Token-specific rule V3 (eq. 15): A = {v : p̂(v) ≥ (1 − α)·max p̂}, α ∈ [0, 1].
#[derive(Clone, Copy, Debug)]
pub struct TokenV3Rule {
    alpha: f64,
}
impl TokenV3Rule {
    pub fn new(alpha: f64) -> Result<Self, CoreError> {
        Ok(Self { alpha: check_alpha("spec_cascade_token_v3", alpha, 0.0, 1.0, false)? })
    }
}
impl DeferralRule for TokenV3Rule {
    fn name(&self) -> &'static str {
        "spec_cascade_token_v3"
    }
    fn target(&self, _q: &TokenDist, p: &TokenDist) -> Target {
        Target::TokenSet { side: Side::Verifier, threshold: (1.0 - self.alpha) * p.hat_max() }
    }
}

/// BiLD* in the paper's fixed-γ form: δ = 1[TV(q, p) > α], α ∈ [0, 1].
#[derive(Clone, Copy, Debug)]
pub struct BildRule {
    alpha: f64,
}
impl BildRule {
    pub fn new(alpha: f64) -> Result<Self, CoreError> {
        Ok(Self { alpha: check_alpha("bild", alpha, 0.0, 1.0, false)? })
    }
}
impl DeferralRule for BildRule {
    fn name(&self) -> &'static str {
        "bild"
    }
    fn target(&self, q: &TokenDist, p: &TokenDist) -> Target {
        mixture(tv(q, p) > self.alpha)
    }
}
