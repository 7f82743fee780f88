//! Decoder-only models behind the core contract: the [`CausalLm`] trait an architecture
//! implements (one forward over new tokens with a KV cache), and [`DecoderLm`], which turns any
//! `CausalLm` into a [`LanguageModel`] with sessions that prefill, extend and roll back.

use speccascade_core::{LanguageModel, Logits, ModelError, Session, TokenId, check_tokens};

use super::kv_cache::KvCache;
use super::matrix::Precision;
use super::ops::Acts;

/// Longest block one forward pass runs; longer prompts are prefilled in chunks of this (the
/// kernels are block-invariant, so chunking changes no bit of the result).
const PREFILL_CHUNK: usize = 256;

/// What every decoder knows about itself.
#[derive(Clone, Debug)]
pub struct DecoderMeta {
    /// Labels the model in errors and ledgers.
    pub name: String,
    pub vocab_size: usize,
    /// Token ids that end a generation.
    pub eos: Vec<u32>,
    /// Longest sequence (prompt + continuation) a session may hold.
    pub max_seq_len: usize,
    pub precision: Precision,
}

/// A decoder-only architecture: immutable weights and one forward pass.
pub trait CausalLm: Send + Sync {
    fn meta(&self) -> &DecoderMeta;
    fn meta_mut(&mut self) -> &mut DecoderMeta;
    /// An empty cache for one sequence.
    fn new_cache(&self) -> KvCache;
    /// Run `tokens` (checked by the caller: in the vocabulary, fitting the cache) at positions
    /// `cache.len() ..`, advance the cache and return the final hidden states `[k, d]`.
    fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Acts;
    /// Logits `[rows, vocab]` of hidden states `[rows, d]`.
    fn logits(&self, hidden: &Acts) -> Acts;
    /// Bytes of weight one decode step reads.
    fn weight_bytes_per_token(&self) -> usize;
}

/// A [`CausalLm`] as a [`LanguageModel`]. Derefs to the architecture for its own accessors.
pub struct DecoderLm<M> {
    inner: M,
}

impl<M: CausalLm> DecoderLm<M> {
    pub fn new(inner: M) -> Self {
        Self { inner }
    }
    /// Set the token ids that end a generation.
    pub fn with_eos(mut self, eos: Vec<u32>) -> Self {
        self.inner.meta_mut().eos = eos;
        self
    }
    pub fn model_name(&self) -> &str {
        &self.inner.meta().name
    }
    pub fn precision(&self) -> Precision {
        self.inner.meta().precision
    }
    pub fn max_seq_len(&self) -> usize {
        self.inner.meta().max_seq_len
    }
    pub fn weight_bytes_per_token(&self) -> usize {
        self.inner.weight_bytes_per_token()
    }
}

impl<M> std::ops::Deref for DecoderLm<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.inner
    }
}

/// A growing sequence with its own KV cache: the prompt, then the continuation.
pub struct DecoderSession<'a, M> {
    model: &'a M,
    cache: KvCache,
    /// Prompt tokens, then continuation tokens.
    tokens: Vec<TokenId>,
    /// Prompt tokens at the front of `tokens` (the session's [`Session::len`] excludes them).
    prompt_len: usize,
}

impl<'a, M: CausalLm> DecoderSession<'a, M> {
    fn new(model: &'a M) -> Self {
        Self { model, cache: model.new_cache(), tokens: Vec::new(), prompt_len: 0 }
    }

    /// Prompt and continuation tokens.
    pub fn tokens(&self) -> &[TokenId] {
        &self.tokens
    }

    /// Append `tokens`; return logits for all of them (`all_rows`) or only the last.
    fn run(&mut self, tokens: &[TokenId], all_rows: bool) -> Result<Logits, ModelError> {
        let meta = self.model.meta();
        check_tokens(&meta.name, meta.vocab_size, tokens, "extend", self.tokens.len(), self.cache.capacity())?;
        let vocab = meta.vocab_size;
        let mut out = Vec::with_capacity(if all_rows { tokens.len() * vocab } else { vocab });
        let chunks: Vec<&[TokenId]> = tokens.chunks(PREFILL_CHUNK).collect();
        for (ci, chunk) in chunks.iter().enumerate() {
            let hidden = self.model.forward(chunk, &mut self.cache);
            self.tokens.extend_from_slice(chunk);
            if all_rows {
                out.extend(self.model.logits(&hidden).into_vec());
            } else if ci + 1 == chunks.len() {
                let k = hidden.rows();
                out.extend(self.model.logits(&hidden.slice_rows(k - 1, k)).into_vec());
            }
        }
        let rows = if all_rows { tokens.len() } else { 1 };
        let logits = Logits::new(rows, vocab, out)?;
        logits.validate(&meta.name, rows, vocab)?;
        Ok(logits)
    }
}

impl<M: CausalLm> Session for DecoderSession<'_, M> {
    fn len(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }

    fn extend(&mut self, tokens: &[TokenId]) -> Result<Logits, ModelError> {
        self.run(tokens, true)
    }

    fn truncate(&mut self, len: usize) -> Result<(), ModelError> {
        if len > self.len() {
            return Err(ModelError::BadTruncate { len, held: self.len() });
        }
        let keep = self.prompt_len + len;
        self.tokens.truncate(keep);
        self.cache.truncate(keep);
        Ok(())
    }
}

impl<M: CausalLm> LanguageModel for DecoderLm<M> {
    fn name(&self) -> &str {
        &self.inner.meta().name
    }
    fn vocab_size(&self) -> usize {
        self.inner.meta().vocab_size
    }
    fn eos_ids(&self) -> &[TokenId] {
        &self.inner.meta().eos
    }
    fn start<'a>(&'a self, prompt: &[TokenId]) -> Result<(Box<dyn Session + 'a>, Vec<f32>), ModelError> {
        if prompt.is_empty() {
            return Err(ModelError::Empty(format!("{}: prompt", self.name())));
        }
        let mut s = DecoderSession::new(&self.inner);
        let logits = s.run(prompt, false)?;
        s.prompt_len = prompt.len();
        Ok((Box::new(s), logits.into_vec()))
    }
}
