//! One sequence on a [`Transformer`]: the [`LanguageModel`] / [`Session`] contract of core.

use speccascade_core::{LanguageModel, Logits, ModelError, Session, TokenId};

use super::kv_cache::KvCache;
use super::model::Transformer;

/// Longest block one forward pass runs; longer prompts are prefilled in chunks of this.
const PREFILL_CHUNK: usize = 256;

/// A growing sequence with its own KV cache: the prompt, then the continuation.
pub struct TransformerSession<'a> {
    model: &'a Transformer,
    cache: KvCache,
    tokens: Vec<TokenId>,
    /// Prompt tokens at the front of `tokens` (the session's [`Session::len`] excludes them).
    prompt_len: usize,
}

impl<'a> TransformerSession<'a> {
    pub fn new(model: &'a Transformer) -> Self {
        Self { model, cache: model.new_cache(), tokens: Vec::new(), prompt_len: 0 }
    }

    /// Prompt and continuation tokens.
    pub fn tokens(&self) -> &[TokenId] {
        &self.tokens
    }

    fn check(&self, tokens: &[TokenId]) -> Result<(), ModelError> {
        let m = self.model;
        if tokens.is_empty() {
            return Err(ModelError::Empty(format!("{}: extend", m.name)));
        }
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= m.cfg.vocab_size) {
            return Err(ModelError::TokenOutOfRange { model: m.name.clone(), token: t, vocab: m.cfg.vocab_size });
        }
        let requested = self.tokens.len() + tokens.len();
        if requested > self.cache.capacity() {
            return Err(ModelError::ContextOverflow { model: m.name.clone(), requested, max: self.cache.capacity() });
        }
        Ok(())
    }

    /// Append `tokens`; return logits for all of them (`all_rows`) or only the last.
    fn run(&mut self, tokens: &[TokenId], all_rows: bool) -> Result<Logits, ModelError> {
        self.check(tokens)?;
        let vocab = self.model.cfg.vocab_size;
        let mut out = Vec::with_capacity(if all_rows { tokens.len() * vocab } else { vocab });
        let chunks: Vec<&[TokenId]> = tokens.chunks(PREFILL_CHUNK).collect();
        for (ci, chunk) in chunks.iter().enumerate() {
            let hidden = self.model.forward_hidden(chunk, &mut self.cache);
            self.tokens.extend_from_slice(chunk);
            if all_rows {
                out.extend(self.model.logits(hidden));
            } else if ci + 1 == chunks.len() {
                let [k, d] = hidden.dims();
                out.extend(self.model.logits(hidden.slice([k - 1..k, 0..d])));
            }
        }
        let rows = if all_rows { tokens.len() } else { 1 };
        let logits = Logits::new(rows, vocab, out)?;
        logits.validate(&self.model.name, rows, vocab)?;
        Ok(logits)
    }
}

impl Session for TransformerSession<'_> {
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

impl LanguageModel for Transformer {
    fn name(&self) -> &str {
        &self.name
    }
    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }
    fn eos_ids(&self) -> &[TokenId] {
        &self.eos
    }
    fn start<'a>(&'a self, prompt: &[TokenId]) -> Result<(Box<dyn Session + 'a>, Vec<f32>), ModelError> {
        if prompt.is_empty() {
            return Err(ModelError::Empty(format!("{}: prompt", self.name)));
        }
        let mut s = TransformerSession::new(self);
        let logits = s.run(prompt, false)?;
        s.prompt_len = prompt.len();
        Ok((Box::new(s), logits.into_vec()))
    }
}
