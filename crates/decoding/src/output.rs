//! The generated sequence as it grows: stop conditions, per-token sources and the trace.

use serde::{Deserialize, Serialize};
use speccascade_core::{Ledger, TokenId};

/// Where an emitted token came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A drafted token accepted by the verifier.
    Accepted,
    /// Sampled from the residual after a rejection (verifier side).
    Residual,
    /// The free bonus token, sampled from the verifier.
    Bonus,
    /// Sampled by the drafter outside verification (drafter alone, sequential cascades).
    Drafter,
    /// Sampled by the verifier outside verification.
    Verifier,
}

impl Source {
    /// The model whose distribution produced the token: "drafter" or "verifier".
    pub fn model(self) -> &'static str {
        match self {
            Source::Accepted | Source::Drafter => "drafter",
            Source::Residual | Source::Bonus | Source::Verifier => "verifier",
        }
    }
}

/// One emitted token in the per-token trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceRow {
    /// Output position (0 = first generated token).
    pub position: u64,
    /// The drafted token examined at this position, if any.
    pub drafted: Option<TokenId>,
    /// δ at this position (token-specific rules: drafted token outside A), if a rule was evaluated.
    pub delta: Option<bool>,
    /// Whether the drafted token was accepted, if one was examined.
    pub accepted: Option<bool>,
    pub emitted: TokenId,
    pub source: Source,
    /// "drafter" or "verifier".
    pub model: String,
}

/// Why generation stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// An EOS id was emitted (it is the last token).
    Eos,
    /// The decoded text contains this stop string (cut the text there: [`cut_at_stop`]).
    StopString(String),
    /// `max_new_tokens` tokens were emitted.
    MaxTokens,
}

/// Text up to (excluding) the first occurrence of any stop string.
pub fn cut_at_stop<'t>(text: &'t str, stop_strings: &[String]) -> &'t str {
    let cut = stop_strings.iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str())).min();
    &text[..cut.unwrap_or(text.len())]
}

/// Per-token information passed with an emission (for the trace).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Examined {
    pub drafted: Option<TokenId>,
    pub delta: Option<bool>,
    pub accepted: Option<bool>,
}

pub(crate) struct Output<'c> {
    pub tokens: Vec<TokenId>,
    pub stop: Option<StopReason>,
    pub trace: Option<Vec<TraceRow>>,
    eos: Vec<TokenId>,
    max_new: usize,
    stop_strings: &'c [String],
    detok: Option<&'c dyn Fn(&[TokenId]) -> String>,
}

impl<'c> Output<'c> {
    pub fn new(
        eos: Vec<TokenId>,
        max_new: usize,
        stop_strings: &'c [String],
        detok: Option<&'c dyn Fn(&[TokenId]) -> String>,
        trace: bool,
    ) -> Self {
        let stop = if max_new == 0 { Some(StopReason::MaxTokens) } else { None };
        Self { tokens: Vec::new(), stop, trace: trace.then(Vec::new), eos, max_new, stop_strings, detok }
    }

    pub fn done(&self) -> bool {
        self.stop.is_some()
    }

    pub fn remaining(&self) -> usize {
        self.max_new - self.tokens.len()
    }

    pub fn is_eos(&self, t: TokenId) -> bool {
        self.eos.contains(&t)
    }

    /// Emit one token, counting it in the ledger; returns false once generation must stop.
    pub fn push(&mut self, t: TokenId, source: Source, ex: Examined, ledger: &mut Ledger) -> bool {
        debug_assert!(!self.done());
        if let Some(trace) = &mut self.trace {
            trace.push(TraceRow {
                position: self.tokens.len() as u64,
                drafted: ex.drafted,
                delta: ex.delta,
                accepted: ex.accepted,
                emitted: t,
                source,
                model: source.model().to_string(),
            });
        }
        self.tokens.push(t);
        ledger.emitted += 1;
        match source {
            Source::Accepted => ledger.accepted += 1,
            Source::Residual => ledger.residual += 1,
            Source::Bonus => ledger.bonus += 1,
            Source::Drafter => ledger.drafter_direct += 1,
            Source::Verifier => ledger.verifier_direct += 1,
        }
        if self.is_eos(t) {
            self.stop = Some(StopReason::Eos);
        } else if let Some(s) = self.matched_stop_string() {
            self.stop = Some(StopReason::StopString(s));
        } else if self.tokens.len() >= self.max_new {
            self.stop = Some(StopReason::MaxTokens);
        }
        !self.done()
    }

    fn matched_stop_string(&self) -> Option<String> {
        let detok = self.detok?;
        if self.stop_strings.is_empty() {
            return None;
        }
        let text = detok(&self.tokens);
        self.stop_strings.iter().find(|s| !s.is_empty() && text.contains(s.as_str())).cloned()
    }
}
