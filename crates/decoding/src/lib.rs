//! speccascade-decoding: every method of the paper as a driver over any two
//! [`LanguageModel`](speccascade_core::LanguageModel)s.
//!
//! [`decode`] runs one example: it prefills both models on the prompt, then generates with the
//! configured [`Method`] until EOS, a stop string or `max_new_tokens`, and returns the tokens, the
//! cost [`Ledger`](speccascade_core::Ledger) and, on request, a per-token trace.
//!
//! - speculative methods (`spec_decode`, `spec_decode_lossy`, `spec_cascade_*`, `bild`): draft γ
//!   tokens, score them in one verifier call, verify the block with the method's deferral rule
//!   ([`speccascade_core::verify_block`]), roll both caches back to the emitted prefix;
//! - sequential methods (`drafter`, `verifier`, `token_cascade_chow`, `oracle_cascade_diff`,
//!   `seq_cascade_chow`): one token at a time, see [`sequential`].
//!
//! All randomness is counter-based (see `speccascade_core`'s crate docs): with the same seed and
//! example id, methods whose decisions coincide emit identical tokens.

mod method;
mod output;
mod sequential;
mod speculative;
mod tracked;

use std::time::Instant;

use serde::{Deserialize, Serialize};
use speccascade_core::{CoreError, LanguageModel, Ledger, ModelError, Sampling, Stream, TokenId};

pub use method::{Bonus, Method, MethodSpec};
pub use speccascade_core::{AlphaRange, MethodInfo};
pub use output::{Source, StopReason, TraceRow, cut_at_stop};

/// Everything that defines one decoding run of one example.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecodeConfig {
    pub method: MethodSpec,
    /// Draft block length γ (speculative methods).
    pub gamma: usize,
    pub sampling: Sampling,
    /// What follows a fully accepted block: `free`, `exact` or `none` (methods.md, step 4).
    pub bonus: Bonus,
    pub seed: u64,
    pub example_id: u64,
    pub max_new_tokens: usize,
    /// Stop once the decoded output contains one of these (needs a detokenizer).
    pub stop_strings: Vec<String>,
    /// EOS ids in addition to the models' own.
    pub extra_eos: Vec<TokenId>,
    /// Record a per-token trace.
    pub trace: bool,
}

impl DecodeConfig {
    /// Defaults: γ = 5, T = 1, no top-p, the method's default bonus ([`Method::default_bonus`]),
    /// seed 0, 128 new tokens.
    pub fn new(method: MethodSpec) -> Self {
        Self {
            method,
            gamma: 5,
            sampling: Sampling::default(),
            bonus: method.method.default_bonus(),
            seed: 0,
            example_id: 0,
            max_new_tokens: 128,
            stop_strings: Vec::new(),
            extra_eos: Vec::new(),
            trace: false,
        }
    }
}

/// The result of decoding one example.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// Emitted token ids (an EOS that ended generation is included).
    pub tokens: Vec<TokenId>,
    pub stop: StopReason,
    pub ledger: Ledger,
    /// Per-token trace, when `trace` was set.
    pub trace: Option<Vec<TraceRow>>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown method '{name}'; valid methods: {valid}")]
    UnknownMethod { name: String, valid: String },
    #[error("drafter {drafter} has a vocabulary of {dv} tokens but verifier {verifier} has {vv}: a pair must share one vocabulary")]
    VocabMismatch { drafter: String, dv: usize, verifier: String, vv: usize },
    #[error("invalid decoding configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// Decode one example with `cfg.method` over the pair (`drafter`, `verifier`).
///
/// `detok` turns generated ids into text; it is needed only for stop strings.
pub fn decode(
    drafter: &dyn LanguageModel,
    verifier: &dyn LanguageModel,
    prompt: &[TokenId],
    cfg: &DecodeConfig,
    detok: Option<&dyn Fn(&[TokenId]) -> String>,
) -> Result<Generation, DecodeError> {
    if drafter.vocab_size() != verifier.vocab_size() {
        return Err(DecodeError::VocabMismatch {
            drafter: drafter.name().to_string(),
            dv: drafter.vocab_size(),
            verifier: verifier.name().to_string(),
            vv: verifier.vocab_size(),
        });
    }
    if prompt.is_empty() {
        return Err(DecodeError::Config("the prompt is empty: at least one token is needed".into()));
    }
    if cfg.method.method.is_speculative() && cfg.gamma == 0 {
        return Err(DecodeError::Config("gamma must be at least 1".into()));
    }
    if !cfg.stop_strings.is_empty() && detok.is_none() {
        return Err(DecodeError::Config("stop strings need a detokenizer".into()));
    }
    // Re-validate: a MethodSpec may have been deserialised rather than built.
    let spec = MethodSpec::new(cfg.method.method, cfg.method.alpha)?;
    let mut eos: Vec<TokenId> = drafter.eos_ids().iter().chain(verifier.eos_ids()).chain(&cfg.extra_eos).copied().collect();
    eos.sort_unstable();
    eos.dedup();

    let ctx = Ctx {
        cfg,
        stream: Stream::new(cfg.seed, cfg.example_id),
        eos,
        detok,
    };
    let start = Instant::now();
    let (tokens, stop, trace, mut ledger) = match spec.rule()? {
        Some(rule) => speculative::run(&ctx, drafter, verifier, prompt, rule.as_ref())?,
        None => sequential::run(&ctx, spec, drafter, verifier, prompt)?,
    };
    ledger.total_s = start.elapsed().as_secs_f64();
    ledger.overhead_s = (ledger.total_s
        - ledger.drafter_prefill_s
        - ledger.verifier_prefill_s
        - ledger.drafter_decode_s
        - ledger.verifier_decode_s)
        .max(0.0);
    ledger.prefill_tokens = prompt.len() as u64;
    Ok(Generation { tokens, stop, ledger, trace })
}

/// What every driver reads.
pub(crate) struct Ctx<'c> {
    pub cfg: &'c DecodeConfig,
    pub stream: Stream,
    pub eos: Vec<TokenId>,
    pub detok: Option<&'c dyn Fn(&[TokenId]) -> String>,
}

impl<'c> Ctx<'c> {
    pub fn output(&self) -> output::Output<'c> {
        output::Output::new(self.eos.clone(), self.cfg.max_new_tokens, &self.cfg.stop_strings, self.detok, self.cfg.trace)
    }
}

pub(crate) type Finished = (Vec<TokenId>, StopReason, Option<Vec<TraceRow>>, Ledger);

pub(crate) fn finish(out: output::Output<'_>, ledger: Ledger) -> Finished {
    let stop = out.stop.clone().unwrap_or(StopReason::MaxTokens);
    (out.tokens, stop, out.trace, ledger)
}

/// Copy a tracked model's counters into the ledger's drafter or verifier fields. A device
/// model's logit copies to the host move from its prefill and decode seconds to `transfer_s`
/// (and so into the overhead).
pub(crate) fn charge(ledger: &mut Ledger, drafter: Option<&tracked::Tracked<'_>>, verifier: Option<&tracked::Tracked<'_>>) {
    let split = |m: &tracked::Tracked<'_>| {
        let decode_transfer = (m.transfer_s() - m.prefill_transfer_s).max(0.0);
        ((m.prefill_seconds - m.prefill_transfer_s).max(0.0), (m.seconds - decode_transfer).max(0.0), m.transfer_s())
    };
    if let Some(d) = drafter {
        let (prefill, decode, transfer) = split(d);
        ledger.drafter_steps = d.calls;
        ledger.drafter_decode_s = decode;
        ledger.drafter_prefill_s = prefill;
        ledger.transfer_s += transfer;
    }
    if let Some(v) = verifier {
        let (prefill, decode, transfer) = split(v);
        ledger.verifier_calls = v.calls;
        ledger.verifier_positions = v.positions;
        ledger.verifier_decode_s = decode;
        ledger.verifier_prefill_s = prefill;
        ledger.transfer_s += transfer;
    }
}
