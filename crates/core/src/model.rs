//! The contract between decoding and models.
//!
//! A [`LanguageModel`] is shared, immutable state (weights); a [`Session`] is one growing
//! *continuation* with its own KV cache. [`LanguageModel::start`] takes the conditioning — a
//! decoder-only model's prompt, or an encoder-decoder model's encoder input — and returns a session
//! of length 0 with the logits of the first continuation token. Decoding drives two sessions
//! (drafter, verifier) forward with [`Session::extend`] and rolls rejected drafts back with
//! [`Session::truncate`]; both move within the continuation only, so nothing can cut into the
//! conditioning, and an encoder-decoder model fits the contract without pretending.
//!
//! Both traits are `Send` (and models `Sync`), so a sweep may drive sessions from worker threads or
//! keep a model on a device thread.
//!
//! Why sessions and `&self` models: a burn model keeps its weights once and hands each sequence its
//! own cache; a batched GPU model can gather `extend` calls of many sessions into one forward; a
//! caching wrapper can key logits on the session's token prefix. None of them needs `&mut` access
//! to the weights.

use thiserror::Error;
use crate::CoreError;
use crate::dist::{Sampling, TokenDist};

/// A token id in the model's vocabulary.
pub type TokenId = u32;

/// Next-token logits for a run of consecutive positions.
///
/// Shapes: `data` is row-major `[rows, vocab]`; row `i` holds the logits for the token *after*
/// the `i`-th token of the call that produced it.
#[derive(Clone, Debug, PartialEq)]
pub struct Logits {
    rows: usize,
    vocab: usize,
    data: Vec<f32>,
}

impl Logits {
    /// Wrap a row-major buffer. Fails if `data.len() != rows * vocab`.
    pub fn new(rows: usize, vocab: usize, data: Vec<f32>) -> Result<Self, ModelError> {
        if data.len() != rows * vocab {
            return Err(ModelError::Shape {
                what: "logits buffer".into(),
                expected: format!("{rows} rows x {vocab} vocab = {}", rows * vocab),
                got: format!("{} values", data.len()),
            });
        }
        Ok(Self { rows, vocab, data })
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn vocab(&self) -> usize {
        self.vocab
    }
    /// Row `i`: the logits after the `i`-th token of the call.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.vocab..(i + 1) * self.vocab]
    }
    pub fn last(&self) -> &[f32] {
        self.row(self.rows - 1)
    }
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Check that this is what a call that appended `tokens` tokens to a model of vocabulary
    /// `vocab` must return: the right shape and no NaN or +∞ (−∞ is a masked token, allowed).
    pub fn validate(&self, model: &str, tokens: usize, vocab: usize) -> Result<(), ModelError> {
        if self.rows != tokens || self.vocab != vocab || self.data.len() != tokens * vocab {
            return Err(ModelError::Shape {
                what: format!("logits returned by {model}"),
                expected: format!("[{tokens}, {vocab}]"),
                got: format!("[{}, {}] with {} values", self.rows, self.vocab, self.data.len()),
            });
        }
        if let Some(i) = self.data.iter().position(|x| x.is_nan() || *x == f32::INFINITY) {
            return Err(ModelError::NonFinite {
                model: model.to_string(),
                row: i / vocab.max(1),
                token: i % vocab.max(1),
                value: self.data[i],
            });
        }
        Ok(())
    }
}

/// A language model: immutable weights from which continuations ([`Session`]s) are started.
pub trait LanguageModel: Send + Sync {
    /// A short human-readable name (for errors, ledgers and plots).
    fn name(&self) -> &str;
    /// Number of logits per position.
    fn vocab_size(&self) -> usize;
    /// Token ids that end a generation.
    fn eos_ids(&self) -> &[TokenId];
    /// Start a continuation of `conditioning` (at least one token): a decoder-only model's prompt,
    /// or an encoder-decoder model's encoder input.
    ///
    /// Returns the session, holding no continuation tokens, and the logits of the first
    /// continuation token (after the prompt's last token; after the decoder start token of an
    /// encoder-decoder model). This is the prefill: only that row is returned, since a long prompt's
    /// full logits would be large (512 × 151 936 floats is 311 MB).
    fn start<'a>(&'a self, conditioning: &[TokenId]) -> Result<(Box<dyn Session + 'a>, Vec<f32>), ModelError>;

    /// Extend several of this model's sessions (distinct sequences, e.g. different examples) in
    /// one call: `jobs[i]` appends its tokens to its session, and the result's `i`-th entry is
    /// what `jobs[i].0.extend(jobs[i].1)` would return, bit for bit. A model that can run the
    /// sequences in one forward pass (one read of the weights for all of them) overrides this;
    /// the default extends them one after another. After an error, each session's `len` says
    /// whether its tokens were appended.
    fn extend_batch(&self, jobs: &mut [(&mut (dyn Session + '_), &[TokenId])]) -> Result<Vec<Logits>, ModelError> {
        jobs.iter_mut().map(|(session, tokens)| session.extend(tokens)).collect()
    }
}

/// One continuation being decoded by a model, with its KV cache.
pub trait Session: Send {
    /// Continuation tokens held (the conditioning is not counted).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Append `tokens` (at least one) and return the logits after each of them:
    /// `[tokens.len(), vocab]`. One call is one forward pass: scoring γ drafts plus the bonus
    /// position is `extend(&[last_committed, x_1, …, x_γ])`.
    fn extend(&mut self, tokens: &[TokenId]) -> Result<Logits, ModelError>;
    /// Roll back to the first `len` continuation tokens (`len <= self.len()`); rejected drafts are
    /// dropped from the cache, the conditioning is never touched. Extending again must give the
    /// same logits as if they had never been appended.
    fn truncate(&mut self, len: usize) -> Result<(), ModelError>;
    /// [`Session::extend`], as the next-token distributions at `sampling` (one per appended token).
    /// A session that serves stored positions (a sweep's shared store) overrides this to hand out
    /// distributions computed once for every configuration that reaches the same prefix.
    /// The caller checks the count and the vocabulary (it knows the model's name for the error).
    fn extend_dists(&mut self, tokens: &[TokenId], sampling: &Sampling) -> Result<Vec<TokenDist>, CoreError> {
        TokenDist::from_logits_matrix(self.extend(tokens)?, sampling)
    }
    /// Seconds this session has spent copying logits from a device to the host, prefill included
    /// (inside the seconds its calls take; drivers charge it to the ledger's overhead). Host
    /// models copy nothing: 0.
    fn transfer_s(&self) -> f64 {
        0.0
    }
    /// For [`LanguageModel::extend_batch`]: the identity of the model that started this session
    /// (an address, compared, never followed) and the session's state, which only that model
    /// reads (it downcasts the `Any`). `None`, the default: the session is extended on its own.
    fn batch_state(&mut self) -> Option<(usize, &mut (dyn std::any::Any + Send))> {
        None
    }
}

/// The checks every session makes before a forward: `tokens` (`what` names them in the error) is
/// not empty, every id is in the vocabulary, and the `held` positions plus these fit `capacity`.
pub fn check_tokens(model: &str, vocab: usize, tokens: &[TokenId], what: &str, held: usize, capacity: usize) -> Result<(), ModelError> {
    if tokens.is_empty() {
        return Err(ModelError::Empty(format!("{model}: {what}")));
    }
    if let Some(&token) = tokens.iter().find(|&&t| t as usize >= vocab) {
        return Err(ModelError::TokenOutOfRange { model: model.to_string(), token, vocab });
    }
    let requested = held.saturating_add(tokens.len());
    if requested > capacity {
        return Err(ModelError::ContextOverflow { model: model.to_string(), requested, max: capacity });
    }
    Ok(())
}

/// What can go wrong inside a model, named so that the message says what to fix.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    Shape { what: String, expected: String, got: String },
    #[error("{model} returned a non-finite logit ({value}) at row {row}, token {token}")]
    NonFinite { model: String, row: usize, token: usize, value: f32 },
    #[error("token id {token} is outside the vocabulary of {model} (size {vocab})")]
    TokenOutOfRange { model: String, token: TokenId, vocab: usize },
    #[error("{model}: sequence of {requested} tokens exceeds the context length {max}")]
    ContextOverflow { model: String, requested: usize, max: usize },
    #[error("cannot truncate to {len} tokens: the session holds {held}")]
    BadTruncate { len: usize, held: usize },
    #[error("{0} needs at least one token")]
    Empty(String),
    #[error("{0}")]
    Other(String),
}
