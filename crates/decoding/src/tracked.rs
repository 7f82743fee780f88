//! A model session seen through the driver: it mirrors the session's tokens, validates what the
//! model returns, times and counts every forward call, and remembers the logits of the last call so
//! that rolling back inside the last block needs no recomputation.

use std::time::Instant;

use speccascade_core::{CoreError, LanguageModel, Logits, ModelError, Sampling, Session, TokenDist, TokenId};

use crate::DecodeError;

pub(crate) struct Tracked<'a> {
    name: String,
    vocab: usize,
    sampling: Sampling,
    session: Box<dyn Session + 'a>,
    /// The conditioning (prompt or encoder input), then the continuation the session holds.
    tokens: Vec<TokenId>,
    /// Conditioning tokens at the front of `tokens`; the session's length counts the rest.
    conditioning: usize,
    /// The distribution of the first continuation token (the prefill's), kept for a later
    /// rollback to it.
    first: TokenDist,
    /// `window[i]` is the distribution after `tokens[window_start + i]`.
    window_start: usize,
    window: Vec<TokenDist>,
    /// Forward calls after the prefill, and their wall-clock seconds.
    pub calls: u64,
    pub positions: u64,
    pub seconds: f64,
    pub prefill_seconds: f64,
    /// Of `prefill_seconds`, the device-to-host copy of the prefill's logits (0 on the host).
    pub prefill_transfer_s: f64,
}

impl<'a> Tracked<'a> {
    /// Seconds the session has spent copying logits to the host, prefill included.
    pub fn transfer_s(&self) -> f64 {
        self.session.transfer_s()
    }

    /// Prefill `prompt`; every distribution this returns is at `sampling`.
    pub fn start(model: &'a dyn LanguageModel, prompt: &[TokenId], sampling: &Sampling) -> Result<Self, DecodeError> {
        let t = Instant::now();
        let (session, last) = model.start(prompt)?;
        let prefill_seconds = t.elapsed().as_secs_f64();
        let vocab = model.vocab_size();
        let window = Logits::new(1, vocab, last).map_err(|_| {
            ModelError::Shape {
                what: format!("prefill logits returned by {}", model.name()),
                expected: format!("{vocab} values"),
                got: "a different length".into(),
            }
        })?;
        window.validate(model.name(), 1, vocab)?;
        if session.len() != 0 {
            return Err(ModelError::Shape {
                what: format!("session started by {}", model.name()),
                expected: "0 continuation tokens".into(),
                got: format!("{} tokens", session.len()),
            }
            .into());
        }
        if prompt.is_empty() {
            return Err(ModelError::Empty(format!("{}: prompt", model.name())).into());
        }
        let first = TokenDist::from_vec(window.into_vec(), sampling)?;
        let prefill_transfer_s = session.transfer_s();
        Ok(Self {
            name: model.name().to_string(),
            vocab,
            sampling: *sampling,
            session,
            tokens: prompt.to_vec(),
            conditioning: prompt.len(),
            window_start: prompt.len() - 1,
            window: vec![first.clone()],
            first,
            calls: 0,
            positions: 0,
            seconds: 0.0,
            prefill_seconds,
            prefill_transfer_s,
        })
    }

    /// Distributions of the token after `seq[..i]` for every `i` in `from..=seq.len()`
    /// (`seq` starts with the conditioning; `from ≥` its length), leaving the session holding
    /// exactly `seq`. At most one forward call.
    pub fn dists(&mut self, seq: &[TokenId], from: usize) -> Result<Vec<TokenDist>, DecodeError> {
        let c = self.conditioning;
        assert!(from >= c && from <= seq.len(), "dists: from = {from} for a sequence of {} ({c} conditioning)", seq.len());
        let common = self.tokens.iter().zip(seq).take_while(|(a, b)| a == b).count();
        if common < c {
            return Err(ModelError::Other(format!(
                "{}: the sequence to score does not start with the session's conditioning ({c} tokens)",
                self.name
            ))
            .into());
        }
        // Distributions needed: after token index j for j in from-1 .. seq.len()-1.
        let first_needed = from - 1;
        let win_end = self.window_start + self.window.len();
        // Positions below `common` may come from the last call's window (the tokens up to there
        // are unchanged); when the window does not cover them all, recompute from `first_needed`
        // in the same single call. The first continuation position (after the conditioning's last
        // token) is never recomputed: the session cannot cut into the conditioning, and the
        // prefill's distribution is kept.
        let feed_from = if first_needed >= common || (self.window_start <= first_needed && common <= win_end) {
            common
        } else {
            first_needed.max(c)
        };
        if feed_from < self.tokens.len() {
            self.session.truncate(feed_from - c)?;
            self.tokens.truncate(feed_from);
        }
        let mut out = Vec::with_capacity(seq.len() - first_needed);
        for j in first_needed..feed_from {
            if j < self.window_start {
                out.push(self.first.clone()); // j == c - 1
            } else {
                out.push(self.window[j - self.window_start].clone());
            }
        }
        if feed_from < seq.len() {
            let feed = &seq[feed_from..];
            let t = Instant::now();
            let dists = self.session.extend_dists(feed, &self.sampling).map_err(|e| match e {
                CoreError::BadDistribution(m) => DecodeError::Model(ModelError::Other(format!("{} returned bad logits: {m}", self.name))),
                e => e.into(),
            })?;
            self.seconds += t.elapsed().as_secs_f64();
            self.calls += 1;
            self.positions += feed.len() as u64;
            if dists.len() != feed.len() || dists.iter().any(|d| d.vocab() != self.vocab) {
                return Err(ModelError::Shape {
                    what: format!("logits returned by {}", self.name),
                    expected: format!("[{}, {}]", feed.len(), self.vocab),
                    got: format!("{} rows of {:?}", dists.len(), dists.first().map(TokenDist::vocab)),
                }
                .into());
            }
            self.tokens.extend_from_slice(feed);
            if self.session.len() != self.tokens.len() - c {
                return Err(ModelError::Shape {
                    what: format!("session of {}", self.name),
                    expected: format!("{} continuation tokens after extend", self.tokens.len() - c),
                    got: format!("{} tokens", self.session.len()),
                }
                .into());
            }
            out.extend(dists[first_needed.max(feed_from) - feed_from..].iter().cloned());
            self.window_start = feed_from;
            self.window = dists;
        }
        Ok(out)
    }

    /// The distribution of the token after all of `seq` (the session then holds `seq`).
    pub fn next(&mut self, seq: &[TokenId]) -> Result<TokenDist, DecodeError> {
        Ok(self.dists(seq, seq.len())?.pop().expect("dists returns one distribution per position"))
    }
}
