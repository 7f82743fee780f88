//! Decoder-only models behind the core contract: the [`CausalLm`] trait an architecture
//! implements (one forward over new tokens with a KV cache), and [`DecoderLm`], which turns any
//! `CausalLm` into a [`LanguageModel`] with sessions that prefill, extend and roll back.

use speccascade_core::{LanguageModel, Logits, ModelError, Session, TokenId, check_tokens};

use super::kv_cache::{KvCache, LayerCache};
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
    /// Several sequences in one pass: `tokens[i]` at positions `caches[i].len() ..` (checked by
    /// the caller), each cache advanced; returns the final hidden states of every row, sequence
    /// after sequence, `[Σ k_i, d]`. Each row must be the same bits as in [`CausalLm::forward`]
    /// of its sequence alone. The default runs the sequences one after another; an architecture
    /// overrides it to run the projections once over all rows ([`advance_all`], [`batch_rows`],
    /// [`layer_caches`] are the shared steps).
    fn forward_many(&self, tokens: &[&[u32]], caches: &mut [&mut KvCache]) -> Acts {
        let parts: Vec<Acts> = tokens.iter().zip(caches.iter_mut()).map(|(t, c)| self.forward(t, c)).collect();
        let cols = parts.first().map_or(0, Acts::cols);
        let rows = parts.iter().map(Acts::rows).sum();
        Acts::new(rows, cols, parts.into_iter().flat_map(Acts::into_vec).collect())
    }
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
    state: SequenceState,
}

/// What a session owns (no borrow of the model, so [`Session::batch_state`] can hand it out).
struct SequenceState {
    cache: KvCache,
    /// Prompt tokens, then continuation tokens.
    tokens: Vec<TokenId>,
    /// Prompt tokens at the front of `tokens` (the session's [`Session::len`] excludes them).
    prompt_len: usize,
}

impl SequenceState {
    fn check(&self, meta: &DecoderMeta, tokens: &[TokenId]) -> Result<(), ModelError> {
        check_tokens(&meta.name, meta.vocab_size, tokens, "extend", self.tokens.len(), self.cache.capacity())
    }
}

impl<'a, M: CausalLm> DecoderSession<'a, M> {
    fn new(model: &'a M) -> Self {
        Self { model, state: SequenceState { cache: model.new_cache(), tokens: Vec::new(), prompt_len: 0 } }
    }

    /// Prompt and continuation tokens.
    pub fn tokens(&self) -> &[TokenId] {
        &self.state.tokens
    }

    /// Append `tokens`; return logits for all of them (`all_rows`) or only the last.
    fn run(&mut self, tokens: &[TokenId], all_rows: bool) -> Result<Logits, ModelError> {
        let meta = self.model.meta();
        self.state.check(meta, tokens)?;
        let vocab = meta.vocab_size;
        let mut out = Vec::with_capacity(if all_rows { tokens.len() * vocab } else { vocab });
        let chunks: Vec<&[TokenId]> = tokens.chunks(PREFILL_CHUNK).collect();
        for (ci, chunk) in chunks.iter().enumerate() {
            let hidden = self.model.forward(chunk, &mut self.state.cache);
            self.state.tokens.extend_from_slice(chunk);
            if all_rows {
                out.extend(self.model.logits(&hidden).into_vec());
            } else if ci + 1 == chunks.len() {
                let k = hidden.rows();
                out.extend(self.model.logits(&hidden.slice_rows(k - 1, k)).into_vec());
            }
        }
        let rows = if all_rows { tokens.len() } else { 1 };
        checked_logits(meta, rows, out)
    }
}

fn checked_logits(meta: &DecoderMeta, rows: usize, data: Vec<f32>) -> Result<Logits, ModelError> {
    let logits = Logits::new(rows, meta.vocab_size, data)?;
    logits.validate(&meta.name, rows, meta.vocab_size)?;
    Ok(logits)
}

/// The identity [`Session::batch_state`] reports: the architecture's address.
fn model_id<M>(model: &M) -> usize {
    model as *const M as usize
}

/// Row counts and the tokens of several sequences laid end to end (for
/// [`CausalLm::forward_many`]).
pub(crate) fn batch_rows(tokens: &[&[u32]], caches: &[&mut KvCache]) -> (Vec<usize>, Vec<u32>) {
    assert_eq!(tokens.len(), caches.len(), "forward_many: one cache per sequence");
    (tokens.iter().map(|t| t.len()).collect(), tokens.concat())
}

/// Layer `l`'s cache of every sequence.
pub(crate) fn layer_caches<'c>(caches: &'c mut [&mut KvCache], l: usize) -> Vec<&'c mut LayerCache> {
    caches.iter_mut().map(|c| c.layer_mut(l)).collect()
}

/// Commit each sequence's new positions.
pub(crate) fn advance_all(caches: &mut [&mut KvCache], rows: &[usize]) {
    for (c, &n) in caches.iter_mut().zip(rows) {
        c.advance(n);
    }
}

impl<M: CausalLm> Session for DecoderSession<'_, M> {
    fn len(&self) -> usize {
        self.state.tokens.len() - self.state.prompt_len
    }

    fn extend(&mut self, tokens: &[TokenId]) -> Result<Logits, ModelError> {
        self.run(tokens, true)
    }

    fn truncate(&mut self, len: usize) -> Result<(), ModelError> {
        if len > self.len() {
            return Err(ModelError::BadTruncate { len, held: self.len() });
        }
        let keep = self.state.prompt_len + len;
        self.state.tokens.truncate(keep);
        self.state.cache.truncate(keep);
        Ok(())
    }

    fn batch_state(&mut self) -> Option<(usize, &mut (dyn std::any::Any + Send))> {
        Some((model_id(self.model), &mut self.state))
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
        s.state.prompt_len = prompt.len();
        Ok((Box::new(s), logits.into_vec()))
    }

    /// Sessions of this model are packed, in order, into forward passes of at most
    /// [`PREFILL_CHUNK`] rows ([`CausalLm::forward_many`]). A job longer than that, or a session
    /// of another model, runs on its own. Every job is checked before anything runs.
    fn extend_batch(&self, jobs: &mut [(&mut (dyn Session + '_), &[TokenId])]) -> Result<Vec<Logits>, ModelError> {
        let meta = self.inner.meta();
        let me = model_id(&self.inner);
        let tokens: Vec<&[TokenId]> = jobs.iter().map(|j| j.1).collect();
        let mut out: Vec<Option<Logits>> = (0..jobs.len()).map(|_| None).collect();
        {
            // The jobs this model packs: (job index, its state), in job order.
            let mut packed: Vec<(usize, &mut SequenceState)> = Vec::with_capacity(jobs.len());
            for (i, (session, t)) in jobs.iter_mut().enumerate() {
                if t.len() > PREFILL_CHUNK {
                    continue;
                }
                if let Some((id, any)) = session.batch_state()
                    && id == me
                    && let Some(state) = any.downcast_mut::<SequenceState>()
                {
                    state.check(meta, t)?;
                    packed.push((i, state));
                }
            }
            // Greedy: a pass closes when the next packed job would take it past PREFILL_CHUNK rows.
            let mut start = 0;
            while start < packed.len() {
                let (mut end, mut rows) = (start, 0);
                while end < packed.len() && (end == start || rows + tokens[packed[end].0].len() <= PREFILL_CHUNK) {
                    rows += tokens[packed[end].0].len();
                    end += 1;
                }
                self.run_pass(&mut packed[start..end], &tokens, &mut out)?;
                start = end;
            }
        }
        for (i, (session, t)) in jobs.iter_mut().enumerate() {
            if out[i].is_none() {
                out[i] = Some(session.extend(t)?);
            }
        }
        Ok(out.into_iter().map(|l| l.expect("every job ran")).collect())
    }
}

impl<M: CausalLm> DecoderLm<M> {
    /// One packed forward of `pass` (job index, its state); logits into `out`.
    fn run_pass(
        &self,
        pass: &mut [(usize, &mut SequenceState)],
        all_tokens: &[&[TokenId]],
        out: &mut [Option<Logits>],
    ) -> Result<(), ModelError> {
        let meta = self.inner.meta();
        let tokens: Vec<&[u32]> = pass.iter().map(|(i, _)| all_tokens[*i]).collect();
        let mut caches: Vec<&mut KvCache> = pass.iter_mut().map(|(_, s)| &mut s.cache).collect();
        let hidden = self.inner.forward_many(&tokens, &mut caches);
        let vocab = meta.vocab_size;
        let mut rest = self.inner.logits(&hidden).into_vec();
        for ((i, state), t) in pass.iter_mut().zip(&tokens) {
            let tail = rest.split_off(t.len() * vocab);
            state.tokens.extend_from_slice(t);
            out[*i] = Some(checked_logits(meta, t.len(), std::mem::replace(&mut rest, tail))?);
        }
        Ok(())
    }
}
