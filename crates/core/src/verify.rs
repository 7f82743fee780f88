//! The block verifier: speculative sampling towards a target π (the paper's GenSpecSample),
//! as a pure function of distributions and counter-based uniforms.

use crate::dist::{TokenDist, sample};
use crate::model::TokenId;
use crate::rng::{Purpose, Stream};
use crate::rules::{DeferralRule, Side, Target};

/// One block to verify.
///
/// Shapes: `drafts`: `[k]`; `q`: `[k]` (the drafter's distribution each draft was sampled from);
/// `p`: `[k]`, or `[k + 1]` when the free bonus token is to be sampled from `p[k]` if every draft
/// is accepted. Of the three bonus modes of methods.md only `free` needs the extra row: for
/// `exact` the driver drafts one more token and passes `k + 1` drafts with `k + 1` verifier rows;
/// for `none` it passes `k` drafts and `k` rows.
pub struct Block<'a> {
    pub drafts: &'a [TokenId],
    pub q: &'a [TokenDist],
    pub p: &'a [TokenDist],
    /// Output position (0-based count of generated tokens) of `drafts[0]`: it selects the uniforms.
    pub first_position: u64,
}

/// How the block's last emitted token came about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Every draft was accepted and nothing followed (no free bonus row was given).
    AllAccepted,
    /// Every draft was accepted and a free bonus token was sampled from `p[k]`.
    Bonus,
    /// Draft `j` was rejected and a token sampled from the residual replaced it.
    Residual { at: usize },
}

/// What happened at one verified position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PositionOutcome {
    pub target: Target,
    /// δ = 1 (or x ∉ A for token-specific rules).
    pub deferred: bool,
    /// The probability with which the draft was accepted.
    pub accept_prob: f64,
    pub accepted: bool,
}

/// The verified block.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockOutcome {
    /// Accepted drafts followed by the residual or bonus token, if any.
    pub emitted: Vec<TokenId>,
    /// Number of accepted drafts (a prefix of `drafts`).
    pub accepted: usize,
    pub ending: Ending,
    /// One entry per examined draft (stops at the first rejection).
    pub positions: Vec<PositionOutcome>,
}

/// Verify `block` against `rule`, reading uniforms from `stream`.
///
/// Each emitted token is distributed exactly as π at its position given the prefix; the rejection
/// probability at a position is TV(q, π).
pub fn verify_block(block: &Block<'_>, rule: &dyn DeferralRule, stream: &Stream) -> BlockOutcome {
    let k = block.drafts.len();
    assert_eq!(block.q.len(), k, "verify_block: q has {} rows for {k} drafts", block.q.len());
    assert!(
        block.p.len() == k || block.p.len() == k + 1,
        "verify_block: p has {} rows for {k} drafts (need {k} or {})",
        block.p.len(),
        k + 1
    );
    let mut emitted = Vec::with_capacity(k + 1);
    let mut positions = Vec::with_capacity(k);
    for j in 0..k {
        let (x, q, p) = (block.drafts[j], &block.q[j], &block.p[j]);
        let pos = block.first_position + j as u64;
        let target = rule.target(q, p);
        let accept_prob = accept_probability(&target, q, p, x);
        // No coin where acceptance is certain: equal decisions then read equal randomness.
        let accepted = accept_prob >= 1.0 || stream.uniform(pos, Purpose::Accept) < accept_prob;
        positions.push(PositionOutcome { target, deferred: target.deferred(q, p, x), accept_prob, accepted });
        if accepted {
            emitted.push(x);
        } else {
            emitted.push(sample_residual(&target, q, p, stream.uniform(pos, Purpose::Residual)));
            return BlockOutcome { emitted, accepted: j, ending: Ending::Residual { at: j }, positions };
        }
    }
    let ending = if block.p.len() == k + 1 {
        let pos = block.first_position + k as u64;
        emitted.push(block.p[k].sample(stream.uniform(pos, Purpose::Bonus)));
        Ending::Bonus
    } else {
        Ending::AllAccepted
    };
    BlockOutcome { emitted, accepted: k, ending, positions }
}

/// `min(1, π(x) / q(x))`, or the lossy rule's acceptance probability.
pub fn accept_probability(target: &Target, q: &TokenDist, p: &TokenDist, x: TokenId) -> f64 {
    let qx = q.prob(x) as f64;
    if qx <= 0.0 {
        // A draft is sampled from q, so q(x) > 0; a caller passing otherwise gets a rejection.
        return 0.0;
    }
    let px = p.prob(x) as f64;
    match *target {
        Target::Drafter => 1.0,
        Target::Verifier => (px / qx).min(1.0),
        Target::Lossy { alpha } => (px / ((1.0 - alpha) * qx)).min(1.0),
        Target::TokenSet { side, threshold } => {
            if Target::in_set(side, threshold, q, p, x) {
                1.0
            } else {
                let q_a = set_mass(side, threshold, q, p);
                ((1.0 - q_a).max(0.0) * px / qx).min(1.0)
            }
        }
    }
}

/// Σ_{v ∈ A} q(v).
fn set_mass(side: Side, threshold: f64, q: &TokenDist, p: &TokenDist) -> f64 {
    let hat = match side {
        Side::Drafter => q,
        Side::Verifier => p,
    };
    let Some(t) = hat.logit_threshold(threshold) else { return 1.0 };
    // Membership on the logit scale, as `hat_at_least` decides it, so set and mass agree.
    let masked: Vec<f32> = hat.logits().iter().zip(q.probs()).map(|(&l, &qv)| if l >= t { qv } else { 0.0 }).collect();
    crate::dist::sum_f32(&masked)
}

/// Sample from norm(max(0, π − q)) (for the lossy rule: norm(max(0, p − q))).
///
/// If the residual has no mass (only possible through rounding, since a rejection needs
/// π(x) < q(x)), sample from p: the verifier's distribution is the safe fallback.
pub fn sample_residual(target: &Target, q: &TokenDist, p: &TokenDist, u: f64) -> TokenId {
    let (qs, ps) = (q.probs(), p.probs());
    let weights: Vec<f32> = match *target {
        Target::Drafter => return p.sample(u),
        Target::Verifier | Target::Lossy { .. } => {
            qs.iter().zip(ps).map(|(&q, &p)| if p > q { p - q } else { 0.0 }).collect()
        }
        Target::TokenSet { side, threshold } => {
            let rest = (1.0 - set_mass(side, threshold, q, p)).max(0.0) as f32;
            let hat = match side {
                Side::Drafter => q,
                Side::Verifier => p,
            };
            let t = hat.logit_threshold(threshold).unwrap_or(f32::NEG_INFINITY);
            hat.logits()
                .iter()
                .zip(qs.iter().zip(ps))
                .map(|(&l, (&q, &p))| {
                    // π − q = rest·p inside A, rest·p − q outside.
                    let d = if l >= t { rest * p } else { rest * p - q };
                    if d > 0.0 { d } else { 0.0 }
                })
                .collect()
        }
    };
    if crate::dist::sum_f32(&weights) > 0.0 { sample(&weights, u) } else { p.sample(u) }
}
