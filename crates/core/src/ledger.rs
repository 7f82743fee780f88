//! The cost ledger: what every run records (methods.md, "What every run records").
//!
//! # What each bonus mode costs (methods.md, step 4)
//!
//! After a fully accepted block of γ drafts:
//! - `free`: the verifier call that scored the γ drafts also scores the bonus position (γ + 1
//!   positions in `verifier_positions`); one token is sampled from p and counted in `bonus`. No
//!   extra model call: a block costs γ drafter steps + 1 verifier call for up to γ + 1 tokens.
//! - `exact`: the drafter drafts one more token (γ + 1 `drafter_steps` per block, the extra step
//!   counted like any other) and the verifier scores γ + 1 positions in its one call; the bonus
//!   position is verified against π like the others, so its token is counted in `accepted` or
//!   `residual`, never in `bonus`. A block costs γ + 1 drafter steps + 1 verifier call for up to
//!   γ + 1 tokens.
//! - `none`: nothing follows; the next block starts at the next position. A block costs γ drafter
//!   steps + 1 verifier call for up to γ tokens (`verifier_positions` = γ).

use serde::{Deserialize, Serialize};

/// Counts and times of one decoding run (one example) or of many (see [`Ledger::add`]).
///
/// Invariant: `emitted = accepted + residual + bonus + drafter_direct + verifier_direct`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// Generated tokens (EOS included when it ended the generation).
    pub emitted: u64,
    /// Drafter forward calls after the prefill (each appends ≥ 1 token).
    pub drafter_steps: u64,
    /// Verifier forward calls after the prefill (one forward = one call, whatever it scores).
    pub verifier_calls: u64,
    /// Verifier calls charged by the cost model (differs from `verifier_calls` only for the oracle).
    pub verifier_calls_charged: u64,
    /// Positions scored by the verifier across its calls.
    pub verifier_positions: u64,
    /// Draft blocks verified.
    pub blocks: u64,
    /// Drafted tokens that reached verification.
    pub drafted: u64,
    /// Drafts accepted and emitted.
    pub accepted: u64,
    /// Drafts rejected (each replaced by a residual draw).
    pub rejected: u64,
    /// Tokens emitted from a residual distribution.
    pub residual: u64,
    /// Free bonus tokens sampled from the verifier after a fully accepted block (bonus mode
    /// `free` only; see the module doc for what each mode costs).
    pub bonus: u64,
    /// Tokens emitted by the drafter outside any verification (drafter alone, sequential cascades).
    pub drafter_direct: u64,
    /// Tokens emitted by the verifier outside any verification (verifier alone, deferrals of the
    /// sequential cascades).
    pub verifier_direct: u64,
    /// Positions where the rule was evaluated.
    pub decisions: u64,
    /// Positions with δ = 1 (token-specific rules: drafted token outside the acceptable set).
    /// `seq_cascade_chow` counts the tokens emitted after a whole-sequence deferral (and every
    /// emitted token as a decision), so that deferrals ÷ emitted is comparable across methods.
    pub deferrals: u64,
    /// Whole-sequence deferrals (`seq_cascade_chow`).
    pub sequence_deferrals: u64,
    /// `accept_length_hist[n]`: blocks that accepted exactly `n` drafts.
    pub accept_length_hist: Vec<u64>,
    /// `position_attempts[j]` / `position_accepts[j]`: drafts examined / accepted at block offset `j`.
    pub position_attempts: Vec<u64>,
    pub position_accepts: Vec<u64>,
    /// Prompt tokens prefilled by each model.
    pub prefill_tokens: u64,
    /// Wall-clock seconds.
    pub drafter_prefill_s: f64,
    pub verifier_prefill_s: f64,
    pub drafter_decode_s: f64,
    pub verifier_decode_s: f64,
    /// Everything else inside the decoding loop (distributions, rules, sampling, stop checks).
    pub overhead_s: f64,
    pub total_s: f64,
    /// Wall-clock seconds the cost model does not charge (the oracle's verifier calls at δ = 0):
    /// subtract from `total_s` for the oracle's charged latency.
    pub uncharged_s: f64,
    /// Seconds spent copying logits from a device to the host (the device engine; 0 on the CPU
    /// kernels, and then not written). Part of `overhead_s`: the prefill and decode seconds
    /// exclude it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub transfer_s: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl Ledger {
    /// Record a verified block that examined `attempts` drafts and accepted `accepted` of them.
    pub fn record_block(&mut self, attempts: usize, accepted: usize) {
        self.blocks += 1;
        bump(&mut self.accept_length_hist, accepted);
        for j in 0..attempts {
            bump(&mut self.position_attempts, j);
            if j < accepted {
                bump(&mut self.position_accepts, j);
            }
        }
    }

    /// Cost under the standard latency model: `c · drafter_steps + verifier calls (charged)`,
    /// with `c` = drafter step time / verifier step time. Prefill is not counted.
    pub fn modelled_cost(&self, c: f64) -> f64 {
        c * self.drafter_steps as f64 + self.verifier_calls_charged as f64
    }

    /// Decode wall-clock time (prefill excluded).
    pub fn decode_s(&self) -> f64 {
        self.drafter_decode_s + self.verifier_decode_s + self.overhead_s
    }

    /// Draft positions the verifier examined: drafts up to and including a block's first
    /// rejection (the drafts after it are discarded, never examined). `drafted` counts those too.
    pub fn examined(&self) -> u64 {
        self.position_attempts.iter().sum()
    }
    /// Rejected ÷ examined draft positions (Lemma 3's quantity: per position its expectation is
    /// TV(q, π)). 0 where nothing was examined.
    pub fn rejection_rate(&self) -> f64 {
        ratio(self.rejected, self.examined())
    }
    /// Deferrals ÷ emitted tokens: the same denominator for every method, so that methods share
    /// one axis.
    pub fn deferral_rate(&self) -> f64 {
        ratio(self.deferrals, self.emitted)
    }
    /// Deferrals ÷ rule decisions (for the speculative methods: per examined position).
    pub fn deferrals_per_decision(&self) -> f64 {
        ratio(self.deferrals, self.decisions)
    }
    /// `position_accepts[j] ÷ position_attempts[j]` for each block offset j.
    pub fn acceptance_by_position(&self) -> Vec<f64> {
        self.position_attempts.iter().zip(self.position_accepts.iter().chain(std::iter::repeat(&0))).map(|(&n, &a)| ratio(a, n)).collect()
    }
    /// Mean number of drafts accepted per block.
    pub fn mean_accept_length(&self) -> f64 {
        ratio(self.accepted, self.blocks)
    }
    /// Verifier calls per emitted token.
    pub fn verifier_calls_per_token(&self) -> f64 {
        ratio(self.verifier_calls_charged, self.emitted)
    }

    /// Check the ledger's invariants; returns the first broken one.
    pub fn check(&self) -> Result<(), String> {
        let parts = self.accepted + self.residual + self.bonus + self.drafter_direct + self.verifier_direct;
        if self.emitted != parts {
            return Err(format!(
                "emitted {} != accepted {} + residual {} + bonus {} + drafter_direct {} + verifier_direct {}",
                self.emitted, self.accepted, self.residual, self.bonus, self.drafter_direct, self.verifier_direct
            ));
        }
        if self.rejected != self.residual {
            return Err(format!("rejected {} != residual draws {}", self.rejected, self.residual));
        }
        if self.accepted + self.rejected > self.drafted {
            return Err(format!(
                "accepted {} + rejected {} > drafted {}",
                self.accepted, self.rejected, self.drafted
            ));
        }
        let hist_blocks: u64 = self.accept_length_hist.iter().sum();
        if hist_blocks != self.blocks {
            return Err(format!("accept-length histogram counts {hist_blocks} blocks, ledger {}", self.blocks));
        }
        let hist_acc: u64 = self.accept_length_hist.iter().enumerate().map(|(n, c)| n as u64 * c).sum();
        if hist_acc != self.accepted {
            return Err(format!("accept-length histogram sums to {hist_acc} accepted, ledger {}", self.accepted));
        }
        if self.deferrals > self.decisions {
            return Err(format!("deferrals {} > decisions {}", self.deferrals, self.decisions));
        }
        Ok(())
    }

    /// Add another ledger (totals over examples).
    pub fn add(&mut self, o: &Ledger) {
        macro_rules! sum {
            ($($f:ident),*) => { $( self.$f += o.$f; )* };
        }
        sum!(
            emitted, drafter_steps, verifier_calls, verifier_calls_charged, verifier_positions, blocks,
            drafted, accepted, rejected, residual, bonus, drafter_direct, verifier_direct, decisions,
            deferrals, sequence_deferrals, prefill_tokens, drafter_prefill_s, verifier_prefill_s,
            drafter_decode_s, verifier_decode_s, overhead_s, total_s, uncharged_s, transfer_s
        );
        add_vec(&mut self.accept_length_hist, &o.accept_length_hist);
        add_vec(&mut self.position_attempts, &o.position_attempts);
        add_vec(&mut self.position_accepts, &o.position_accepts);
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn bump(v: &mut Vec<u64>, i: usize) {
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    v[i] += 1;
}

fn add_vec(a: &mut Vec<u64>, b: &[u64]) {
    if a.len() < b.len() {
        a.resize(b.len(), 0);
    }
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}
