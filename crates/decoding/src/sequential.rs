//! The non-speculative methods: each model is called once per token it contributes.
//!
//! - `drafter` / `verifier`: one model alone, autoregressive. The drafter samples with the `Draft`
//!   stream (the stream the speculative drafts use), the verifier with the `Bonus` stream.
//! - `token_cascade_chow` (paper Alg. 2): per position, the drafter's Chow confidence decides; on a
//!   deferral the verifier catches up on the tokens it has not seen in one call and samples.
//! - `oracle_cascade_diff` (Alg. 3): both models at every position, δ by the Diff rule; the cost
//!   model charges the verifier only where δ = 1 (an oracle: not achievable).
//! - `seq_cascade_chow`: the drafter writes the whole answer; if the geometric mean of `q̂_t(y_t)` is
//!   below the threshold α, the answer is discarded and the verifier writes its own. Both are paid.

use speccascade_core::{ChowRule, DiffRule, LanguageModel, Ledger, Purpose, TokenDist, TokenId};

use crate::output::{Examined, Source};
use crate::tracked::Tracked;
use crate::{Ctx, DecodeError, Finished, Method, MethodSpec, charge, finish};

pub(crate) fn run(
    ctx: &Ctx<'_>,
    spec: MethodSpec,
    drafter: &dyn LanguageModel,
    verifier: &dyn LanguageModel,
    prompt: &[TokenId],
) -> Result<Finished, DecodeError> {
    let alpha = spec.alpha.unwrap_or(0.0);
    match spec.method {
        Method::Drafter => alone(ctx, drafter, prompt, true),
        Method::Verifier => alone(ctx, verifier, prompt, false),
        Method::TokenCascadeChow => {
            let rule = ChowRule::new(alpha)?;
            per_token(ctx, drafter, verifier, prompt, false, |q, _| rule.defers(q))
        }
        Method::OracleCascadeDiff => {
            let rule = DiffRule::new(alpha)?;
            per_token(ctx, drafter, verifier, prompt, true, |q, p| rule.defers(q, p.expect("the oracle runs the verifier")))
        }
        Method::SeqCascadeChow => seq_cascade(ctx, drafter, verifier, prompt, alpha),
        m => Err(DecodeError::Config(format!("{m} is not a sequential method"))),
    }
}

/// One model alone. Returns the run and, for the sequence cascade, Σ ln q̂(y_t).
fn alone_scored(
    ctx: &Ctx<'_>,
    model: &dyn LanguageModel,
    prompt: &[TokenId],
    is_drafter: bool,
) -> Result<(Finished, f64), DecodeError> {
    let sampling = ctx.cfg.sampling;
    let mut m = Tracked::start(model, prompt, &sampling)?;
    let mut out = ctx.output();
    let mut ledger = Ledger::default();
    let mut seq = prompt.to_vec();
    let (purpose, source) = if is_drafter { (Purpose::Draft, Source::Drafter) } else { (Purpose::Bonus, Source::Verifier) };
    let mut log_conf = 0.0;
    while !out.done() {
        let dist = m.next(&seq)?;
        let y = dist.sample(ctx.stream.uniform(out.tokens.len() as u64, purpose));
        log_conf += dist.hat(y).ln();
        seq.push(y);
        out.push(y, source, Examined::default(), &mut ledger);
    }
    if is_drafter {
        charge(&mut ledger, Some(&m), None);
    } else {
        charge(&mut ledger, None, Some(&m));
    }
    ledger.verifier_calls_charged = ledger.verifier_calls;
    Ok((finish(out, ledger), log_conf))
}

fn alone(ctx: &Ctx<'_>, model: &dyn LanguageModel, prompt: &[TokenId], is_drafter: bool) -> Result<Finished, DecodeError> {
    Ok(alone_scored(ctx, model, prompt, is_drafter)?.0)
}

/// The per-token cascades. At each position the drafter's distribution decides; the oracle also
/// runs the verifier at every position (so that its rule may read p̂) and is charged only where it
/// defers, while the real cascade calls the verifier only on a deferral, catching up in one call.
fn per_token(
    ctx: &Ctx<'_>,
    drafter: &dyn LanguageModel,
    verifier: &dyn LanguageModel,
    prompt: &[TokenId],
    oracle: bool,
    defers: impl Fn(&TokenDist, Option<&TokenDist>) -> bool,
) -> Result<Finished, DecodeError> {
    let sampling = ctx.cfg.sampling;
    let mut d = Tracked::start(drafter, prompt, &sampling)?;
    let mut v = Tracked::start(verifier, prompt, &sampling)?;
    let mut out = ctx.output();
    let mut ledger = Ledger::default();
    let mut seq = prompt.to_vec();
    let (mut charged, mut uncharged_s) = (0u64, 0.0);
    while !out.done() {
        let t = out.tokens.len() as u64;
        let q = d.next(&seq)?;
        let (calls_before, secs_before) = (v.calls, v.seconds);
        let p_always = if oracle { Some(v.next(&seq)?) } else { None };
        let defer = defers(&q, p_always.as_ref());
        ledger.decisions += 1;
        let (y, source) = if defer {
            ledger.deferrals += 1;
            let p = match p_always {
                Some(p) => p,
                None => v.next(&seq)?,
            };
            charged += v.calls - calls_before;
            (p.sample(ctx.stream.uniform(t, Purpose::Bonus)), Source::Verifier)
        } else {
            uncharged_s += v.seconds - secs_before;
            (q.sample(ctx.stream.uniform(t, Purpose::Draft)), Source::Drafter)
        };
        seq.push(y);
        out.push(y, source, Examined { delta: Some(defer), ..Default::default() }, &mut ledger);
    }
    charge(&mut ledger, Some(&d), Some(&v));
    ledger.verifier_calls_charged = charged;
    ledger.uncharged_s = uncharged_s;
    Ok(finish(out, ledger))
}

fn seq_cascade(
    ctx: &Ctx<'_>,
    drafter: &dyn LanguageModel,
    verifier: &dyn LanguageModel,
    prompt: &[TokenId],
    threshold: f64,
) -> Result<Finished, DecodeError> {
    let ((tokens, stop, trace, mut ledger), log_conf) = alone_scored(ctx, drafter, prompt, true)?;
    // One decision for the whole answer, counted per emitted token (see the deferral below).
    ledger.decisions = ledger.emitted;
    let confidence = if tokens.is_empty() { 1.0 } else { (log_conf / tokens.len() as f64).exp() };
    if confidence >= threshold {
        return Ok((tokens, stop, trace, ledger));
    }
    // Defer the whole answer: the verifier starts over; the drafter's work is still paid.
    let ((tokens, stop, trace, vl), _) = alone_scored(ctx, verifier, prompt, false)?;
    // Every emitted token is a verifier token decided by the one deferral: counted per emitted
    // token, so that deferrals ÷ emitted is this method's share of deferred tokens.
    ledger.decisions = vl.emitted;
    ledger.deferrals = vl.emitted;
    ledger.sequence_deferrals = 1;
    // The emitted tokens are the verifier's alone.
    ledger.emitted = vl.emitted;
    ledger.drafter_direct = 0;
    ledger.verifier_direct = vl.verifier_direct;
    ledger.verifier_calls = vl.verifier_calls;
    ledger.verifier_calls_charged = vl.verifier_calls_charged;
    ledger.verifier_positions = vl.verifier_positions;
    ledger.verifier_decode_s = vl.verifier_decode_s;
    ledger.verifier_prefill_s = vl.verifier_prefill_s;
    Ok((tokens, stop, trace, ledger))
}
