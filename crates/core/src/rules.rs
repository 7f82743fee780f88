//! Deferral rules: what each speculative method aims to emit at one position.
//!
//! A rule looks at the drafter's and the verifier's distributions at a position (after the
//! verifier's parallel forward, so it may read `p̂`) and names a [`Target`]. The block verifier
//! ([`crate::verify`]) then emits exactly that target by rejection sampling. One type per rule of
//! methods.md.
//!
//! Each rule type declares its catalogue entry once, as [`Rule::INFO`]: the method name YAML and
//! the command line use, the label of tables and figures, and α's range. The decoding crate's
//! method catalogue reads names, labels and ranges from there, and α is checked in one place,
//! [`AlphaRange::check`], when a rule is built ([`Rule::new_checked`]).

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
    fn target(&self, q: &TokenDist, p: &TokenDist) -> Target;
}

/// How α is bounded for a method (`hi` may be +∞, `lo` −∞).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlphaRange {
    pub lo: f64,
    pub hi: f64,
    /// `hi` itself excluded (only `spec_decode_lossy`: α < 1).
    pub hi_open: bool,
}

impl AlphaRange {
    /// `[lo, hi]` (an infinite end is open by nature: α must be finite).
    pub const fn closed(lo: f64, hi: f64) -> Self {
        Self { lo, hi, hi_open: false }
    }
    /// `[lo, hi)`.
    pub const fn half_open(lo: f64, hi: f64) -> Self {
        Self { lo, hi, hi_open: true }
    }
    pub fn contains(&self, a: f64) -> bool {
        a.is_finite() && a >= self.lo && if self.hi_open { a < self.hi } else { a <= self.hi }
    }
    /// The one α check: `alpha` if it lies in the range, else an error naming `method` and the range.
    pub fn check(&self, method: &'static str, alpha: f64) -> Result<f64, CoreError> {
        if self.contains(alpha) {
            Ok(alpha)
        } else {
            Err(CoreError::AlphaOutOfRange { rule: method, alpha, range: self.to_string() })
        }
    }
}

impl std::fmt::Display for AlphaRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |x: f64| {
            if x == f64::NEG_INFINITY {
                "-inf".to_string()
            } else if x == f64::INFINITY {
                "inf".to_string()
            } else {
                x.to_string()
            }
        };
        let l = if self.lo.is_finite() { "[" } else { "(" };
        let r = if self.hi_open || !self.hi.is_finite() { ")" } else { "]" };
        write!(f, "{l}{}, {}{r}", show(self.lo), show(self.hi))
    }
}

/// A method's catalogue entry: declared once, by the rule type ([`Rule::INFO`]) or, for the
/// methods without a block verifier, by the catalogue line itself.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MethodInfo {
    /// The name in YAML, on the command line and in records (`spec_cascade_chow`).
    pub name: &'static str,
    /// The label of tables and figure legends (`SpecCascade [Chow]`).
    pub label: &'static str,
    /// α's range; `None` for a method without a trade-off parameter.
    pub alpha: Option<AlphaRange>,
}

impl MethodInfo {
    /// The one α check of the project: α is required and in range where a range is declared,
    /// absent otherwise. Returns α (0 for a method without one).
    pub fn check_alpha(&self, alpha: Option<f64>) -> Result<f64, CoreError> {
        match (self.alpha, alpha) {
            (None, None) => Ok(0.0),
            (Some(r), Some(a)) => r.check(self.name, a),
            (None, Some(a)) => Err(CoreError::UnexpectedAlpha { method: self.name, alpha: a }),
            (Some(r), None) => Err(CoreError::MissingAlpha { method: self.name, range: r.to_string() }),
        }
    }
}

/// A deferral rule type of the catalogue: its entry and its construction from α.
pub trait Rule: DeferralRule + Sized + 'static {
    const INFO: MethodInfo;
    /// Build from an α already checked against `INFO.alpha` (0 for a rule without α).
    fn from_checked_alpha(alpha: f64) -> Self;
    /// Check α against `INFO.alpha` ([`MethodInfo::check_alpha`]) and build the rule.
    fn new_checked(alpha: Option<f64>) -> Result<Self, CoreError> {
        Ok(Self::from_checked_alpha(Self::INFO.check_alpha(alpha)?))
    }
    /// Whether the rule's target is the verifier's p everywhere (lossless speculative decoding):
    /// then the free bonus agrees with the exact one in distribution, and is its default.
    const TARGET_IS_VERIFIER: bool = false;
}

/// The inherent `new(α)` of a parametrised rule: [`Rule::new_checked`] with a value.
macro_rules! new_with_alpha {
    ($t:ty) => {
        impl $t {
            pub fn new(alpha: f64) -> Result<Self, CoreError> {
                <$t as Rule>::new_checked(Some(alpha))
            }
        }
    };
}

/// Lossless speculative decoding: π = p.
#[derive(Clone, Copy, Debug, Default)]
pub struct LosslessRule;
impl Rule for LosslessRule {
    const INFO: MethodInfo = MethodInfo { name: "spec_decode", label: "SpecDecode (lossless)", alpha: None };
    const TARGET_IS_VERIFIER: bool = true;
    fn from_checked_alpha(_: f64) -> Self {
        LosslessRule
    }
}
impl DeferralRule for LosslessRule {
    fn target(&self, _q: &TokenDist, _p: &TokenDist) -> Target {
        Target::Verifier
    }
}

/// Lossy speculative decoding, α ∈ [0, 1).
#[derive(Clone, Copy, Debug)]
pub struct LossyRule {
    alpha: f64,
}
new_with_alpha!(LossyRule);
impl Rule for LossyRule {
    const INFO: MethodInfo =
        MethodInfo { name: "spec_decode_lossy", label: "Lossy SpecDecode", alpha: Some(AlphaRange::half_open(0.0, 1.0)) };
    fn from_checked_alpha(alpha: f64) -> Self {
        Self { alpha }
    }
}
impl DeferralRule for LossyRule {
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
new_with_alpha!(ChowRule);
impl ChowRule {
    /// The decision alone, from the drafter (sequential cascades need no p̂).
    pub fn defers(&self, q: &TokenDist) -> bool {
        q.hat_max() < 1.0 - self.alpha
    }
}
impl Rule for ChowRule {
    const INFO: MethodInfo =
        MethodInfo { name: "spec_cascade_chow", label: "SpecCascade [Chow]", alpha: Some(AlphaRange::closed(0.0, 1.0)) };
    fn from_checked_alpha(alpha: f64) -> Self {
        Self { alpha }
    }
}
impl DeferralRule for ChowRule {
    fn target(&self, q: &TokenDist, _p: &TokenDist) -> Target {
        mixture(self.defers(q))
    }
}

/// The Diff rule (eq. 5): δ = 1[max q̂ < max p̂ − α], α ∈ [−1, 1].
#[derive(Clone, Copy, Debug)]
pub struct DiffRule {
    alpha: f64,
}
new_with_alpha!(DiffRule);
impl DiffRule {
    pub fn defers(&self, q: &TokenDist, p: &TokenDist) -> bool {
        q.hat_max() < p.hat_max() - self.alpha
    }
}
impl Rule for DiffRule {
    const INFO: MethodInfo =
        MethodInfo { name: "spec_cascade_diff", label: "SpecCascade [Diff]", alpha: Some(AlphaRange::closed(-1.0, 1.0)) };
    fn from_checked_alpha(alpha: f64) -> Self {
        Self { alpha }
    }
}
impl DeferralRule for DiffRule {
    fn target(&self, q: &TokenDist, p: &TokenDist) -> Target {
        mixture(self.defers(q, p))
    }
}

/// The optimal rule for the speculative cost (eq. 10): δ = 1[max q̂ < max p̂ − α·TV(q, p)].
#[derive(Clone, Copy, Debug)]
pub struct OptRule {
    alpha: f64,
}
new_with_alpha!(OptRule);
impl Rule for OptRule {
    const INFO: MethodInfo = MethodInfo {
        name: "spec_cascade_opt",
        label: "SpecCascade [OPT]",
        alpha: Some(AlphaRange::closed(f64::NEG_INFINITY, f64::INFINITY)),
    };
    fn from_checked_alpha(alpha: f64) -> Self {
        Self { alpha }
    }
}
impl DeferralRule for OptRule {
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
new_with_alpha!(TokenV1Rule);
impl Rule for TokenV1Rule {
    const INFO: MethodInfo =
        MethodInfo { name: "spec_cascade_token_v1", label: "SpecCascade [Token v1]", alpha: Some(AlphaRange::closed(-1.0, 1.0)) };
    fn from_checked_alpha(alpha: f64) -> Self {
        Self { alpha }
    }
}
impl DeferralRule for TokenV1Rule {
    fn target(&self, _q: &TokenDist, p: &TokenDist) -> Target {
        Target::TokenSet { side: Side::Drafter, threshold: p.hat_max() - self.alpha }
    }
}

/// Token-specific rule V2 (eq. 14): A = {v : p̂(v) ≥ max p̂ − α}, α ∈ [−1, 1].
#[derive(Clone, Copy, Debug)]
pub struct TokenV2Rule {
    alpha: f64,
}
new_with_alpha!(TokenV2Rule);
impl Rule for TokenV2Rule {
    const INFO: MethodInfo =
        MethodInfo { name: "spec_cascade_token_v2", label: "SpecCascade [Token v2]", alpha: Some(AlphaRange::closed(-1.0, 1.0)) };
    fn from_checked_alpha(alpha: f64) -> Self {
        Self { alpha }
    }
}
impl DeferralRule for TokenV2Rule {
    fn target(&self, _q: &TokenDist, p: &TokenDist) -> Target {
        Target::TokenSet { side: Side::Verifier, threshold: p.hat_max() - self.alpha }
    }
}

/// Token-specific rule V3 (eq. 15): A = {v : p̂(v) ≥ (1 − α)·max p̂}, α ∈ [0, 1].
#[derive(Clone, Copy, Debug)]
pub struct TokenV3Rule {
    alpha: f64,
}
new_with_alpha!(TokenV3Rule);
impl Rule for TokenV3Rule {
    const INFO: MethodInfo =
        MethodInfo { name: "spec_cascade_token_v3", label: "SpecCascade [Token v3]", alpha: Some(AlphaRange::closed(0.0, 1.0)) };
    fn from_checked_alpha(alpha: f64) -> Self {
        Self { alpha }
    }
}
impl DeferralRule for TokenV3Rule {
    fn target(&self, _q: &TokenDist, p: &TokenDist) -> Target {
        Target::TokenSet { side: Side::Verifier, threshold: (1.0 - self.alpha) * p.hat_max() }
    }
}

/// BiLD* in the paper's fixed-γ form (appendix, Table 3): δ = 1[D(q, p) > α] with
/// D(q, p) = −ln p̂(argmax_v q̂(v)), the verifier's log-loss on the drafter's top token;
/// α ∈ [0, ∞) (α = 0 defers wherever the verifier is not certain of that token; large α never
/// defers). Read on the untransformed q̂, p̂ like the other rules' decisions.
#[derive(Clone, Copy, Debug)]
pub struct BildRule {
    alpha: f64,
}
new_with_alpha!(BildRule);
impl BildRule {
    /// D(q, p) = −ln p̂(argmax q̂).
    pub fn discrepancy(q: &TokenDist, p: &TokenDist) -> f64 {
        p.neg_log_hat(q.argmax())
    }
}
impl Rule for BildRule {
    const INFO: MethodInfo = MethodInfo { name: "bild", label: "BiLD*", alpha: Some(AlphaRange::closed(0.0, f64::INFINITY)) };
    fn from_checked_alpha(alpha: f64) -> Self {
        Self { alpha }
    }
}
impl DeferralRule for BildRule {
    fn target(&self, q: &TokenDist, p: &TokenDist) -> Target {
        mixture(Self::discrepancy(q, p) > self.alpha)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sampling;

    fn dist(logits: &[f32]) -> TokenDist {
        TokenDist::from_logits(logits, &Sampling::default()).unwrap()
    }

    #[test]
    fn bild_reads_the_verifiers_log_loss_on_the_drafters_top_token() {
        // q's top token is 1; p̂(1) = e^0 / (e^0 + e^0 + e^-inf…) = 0.5 → D = ln 2 ≈ 0.693.
        let q = dist(&[0.0, 3.0, 0.0]);
        let p = dist(&[0.0, 0.0, f32::NEG_INFINITY]);
        let d = BildRule::discrepancy(&q, &p);
        assert!((d - std::f64::consts::LN_2).abs() < 1e-6, "{d}");
        assert_eq!(BildRule::new(0.5).unwrap().target(&q, &p), Target::Verifier);
        assert_eq!(BildRule::new(0.7).unwrap().target(&q, &p), Target::Drafter);
        // α beyond 1 is valid (α ∈ [0, ∞)); negative and infinite α are not.
        assert!(BildRule::new(3.0).is_ok());
        assert!(BildRule::new(-0.1).is_err());
        assert!(BildRule::new(f64::INFINITY).is_err());
    }

    #[test]
    fn alpha_ranges_print_and_check_once() {
        assert_eq!(BildRule::INFO.alpha.unwrap().to_string(), "[0, inf)");
        assert_eq!(LossyRule::INFO.alpha.unwrap().to_string(), "[0, 1)");
        assert_eq!(OptRule::INFO.alpha.unwrap().to_string(), "(-inf, inf)");
        assert!(LossyRule::new(1.0).is_err());
        assert!(LosslessRule::new_checked(Some(0.1)).is_err());
        assert!(ChowRule::new_checked(None).is_err());
    }
}
