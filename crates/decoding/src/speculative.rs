//! The speculative loop shared by every draft-and-verify method (methods.md, GenSpecSample).

use speccascade_core::{Block, DeferralRule, Ending, LanguageModel, Ledger, Purpose, TokenId, verify_block};

use crate::output::{Examined, Source};
use crate::tracked::Tracked;
use crate::{Bonus, Ctx, DecodeError, Finished, charge, finish};

pub(crate) fn run(
    ctx: &Ctx<'_>,
    drafter: &dyn LanguageModel,
    verifier: &dyn LanguageModel,
    prompt: &[TokenId],
    rule: &dyn DeferralRule,
) -> Result<Finished, DecodeError> {
    let cfg = ctx.cfg;
    let mut d = Tracked::start(drafter, prompt, &cfg.sampling)?;
    let mut v = Tracked::start(verifier, prompt, &cfg.sampling)?;
    let mut out = ctx.output();
    let mut ledger = Ledger::default();
    let mut seq = prompt.to_vec();

    while !out.done() {
        let t0 = out.tokens.len() as u64;
        let remaining = out.remaining();
        // Draft γ tokens (fewer near the length limit, none past a drafted EOS); with the exact
        // bonus, one more for the bonus position when a bonus could be emitted.
        let k = cfg.gamma.min(remaining);
        let n_draft = if cfg.bonus == Bonus::Exact && remaining > k { k + 1 } else { k };
        let mut drafts: Vec<TokenId> = Vec::with_capacity(n_draft);
        let mut qs = Vec::with_capacity(n_draft);
        let base = seq.len();
        while drafts.len() < n_draft {
            let q = d.next(&seq)?;
            let x = q.sample(ctx.stream.uniform(t0 + drafts.len() as u64, Purpose::Draft));
            drafts.push(x);
            qs.push(q);
            seq.push(x);
            if out.is_eos(x) {
                break;
            }
        }
        seq.truncate(base);
        let n = drafts.len();
        // A free bonus follows a fully accepted block in mode `free` unless the last draft ended
        // the generation or the length limit is reached (`exact` drafted the bonus position
        // above; `none` has no bonus).
        let free_bonus = cfg.bonus == Bonus::Free && !out.is_eos(drafts[n - 1]) && remaining > n;
        let rows = n + free_bonus as usize;
        // One verifier call scores the positions after the committed prefix and each draft.
        seq.extend_from_slice(&drafts[..rows - 1]);
        let ps = v.dists(&seq, base)?;
        seq.truncate(base);
        ledger.drafted += n as u64;

        let outcome = verify_block(&Block { drafts: &drafts, q: &qs, p: &ps, first_position: t0 }, rule, &ctx.stream);
        let mut taken = 0;
        for (i, &tok) in outcome.emitted.iter().enumerate() {
            let (source, ex) = if i < outcome.accepted {
                let po = &outcome.positions[i];
                (Source::Accepted, Examined { drafted: Some(drafts[i]), delta: Some(po.deferred), accepted: Some(true) })
            } else if let Ending::Residual { at } = outcome.ending {
                let po = &outcome.positions[at];
                (Source::Residual, Examined { drafted: Some(drafts[at]), delta: Some(po.deferred), accepted: Some(false) })
            } else {
                (Source::Bonus, Examined::default())
            };
            taken += 1;
            seq.push(tok);
            if !out.push(tok, source, ex, &mut ledger) {
                break;
            }
        }
        // Count only what the emitted tokens rest on (a stop can cut a block short).
        let attempts = outcome.positions.len().min(taken);
        let accepted = outcome.accepted.min(taken);
        if matches!(outcome.ending, Ending::Residual { .. }) && taken == outcome.emitted.len() {
            ledger.rejected += 1;
        }
        ledger.decisions += attempts as u64;
        ledger.deferrals += outcome.positions[..attempts].iter().filter(|p| p.deferred).count() as u64;
        ledger.record_block(attempts, accepted);
    }
    charge(&mut ledger, Some(&d), Some(&v));
    ledger.verifier_calls_charged = ledger.verifier_calls;
    Ok(finish(out, ledger))
}
