//! The synthetic pair and task: the whole pipeline in seconds, without weights.
//!
//! Models: `speccascade_core::synthetic::SyntheticPair` (hashed n-gram logits, a drafter and a
//! verifier that see one ground truth through different noise), optionally paced by a sleep per
//! forward call so that wall-clock latencies behave like a real pair's (a verifier step costing
//! several drafter steps). Task: prompts of 4–12 tokens drawn from the example index; the quality
//! of an output is its mean per-token log-likelihood under the ground truth (nats, higher is
//! better) — well defined, cheap, and better for the verifier than for the drafter.

use std::time::Duration;

use speccascade_core::synthetic::{SyntheticPair, detokenize};
use speccascade_core::{LanguageModel, Logits, ModelError, Session, TokenId};

use crate::HarnessError;
use crate::config::{ModelsSpec, SyntheticSpec, TaskSpec};
use crate::provider::{Aggregation, MetricScore, Output, Pair, Prompt, Provider, Score, Task};

/// Number of prompts the synthetic "data set" offers.
pub const SYNTHETIC_EXAMPLES: usize = 100_000;

/// Provides the synthetic pair and the synthetic task, and nothing else.
pub struct SyntheticProvider;

impl Provider for SyntheticProvider {
    fn pair(&self, spec: &ModelsSpec) -> Result<Pair, HarnessError> {
        let s = spec.synthetic.as_ref().ok_or_else(|| {
            HarnessError::Model("real models need the speccascade binary's model loader (speccascade-models)".into())
        })?;
        Ok(synthetic_pair(s))
    }

    fn task<'p>(&self, spec: &TaskSpec, pair: &'p Pair) -> Result<Box<dyn Task + 'p>, HarnessError> {
        if spec.name != "synthetic" {
            return Err(HarnessError::Task { task: spec.name.clone(), msg: "not available without speccascade-tasks".into() });
        }
        let truth = pair.synthetic.as_ref().ok_or_else(|| HarnessError::Task {
            task: spec.name.clone(),
            msg: "the synthetic task needs the synthetic pair".into(),
        })?;
        Ok(Box::new(SyntheticTask { pair: truth, vocab: truth.truth.vocab }))
    }
}

/// Build the pair of a [`SyntheticSpec`].
pub fn synthetic_pair(s: &SyntheticSpec) -> Pair {
    let sp = SyntheticPair::new(s.vocab, s.seed, s.drafter_noise, s.verifier_noise).with_eos_bias(s.eos_bias);
    Pair {
        drafter: Box::new(Paced::new(sp.drafter.clone(), s.drafter_step_ms)),
        verifier: Box::new(Paced::new(sp.verifier.clone(), s.verifier_step_ms)),
        detok: Some(Box::new(|t: &[TokenId]| detokenize(t))),
        synthetic: Some(sp),
        extra: None,
    }
}

/// The synthetic task over a pair's ground truth.
pub struct SyntheticTask<'p> {
    pair: &'p SyntheticPair,
    vocab: usize,
}

impl Task for SyntheticTask<'_> {
    fn name(&self) -> &str {
        "synthetic"
    }
    fn num_examples(&self) -> usize {
        SYNTHETIC_EXAMPLES
    }
    fn example_id(&self, index: usize) -> String {
        format!("synthetic/{index}")
    }
    fn prompt(&self, index: usize) -> Result<Prompt, String> {
        let u = |pos: u64| speccascade_core::rng::uniform(0x5eed_7a5c, index as u64, pos, speccascade_core::Purpose::Draft);
        let len = 4 + (u(0) * 9.0) as usize;
        // Token 0 is EOS: prompts use 1..vocab.
        let tokens = (1..=len as u64).map(|p| 1 + (u(p) * (self.vocab - 1) as f64) as TokenId).collect();
        Ok(Prompt { tokens, ..Prompt::default() })
    }
    fn score(&self, _index: usize, prompt: &Prompt, output: &Output<'_>) -> Result<Score, String> {
        let q = self.pair.quality(&prompt.tokens, output.tokens);
        Ok(Score {
            value: q,
            metric: MetricScore { metric: "synthetic_loglik".into(), aggregation: Aggregation::Mean, corpus_stats: None },
            inputs: serde_json::json!({ "loglik_sum": q * output.tokens.len() as f64, "tokens": output.tokens.len() }),
        })
    }
    fn metric(&self) -> String {
        "log-likelihood under truth (nats/token)".into()
    }
}

/// A model whose every forward call also sleeps a fixed time (simulated cost).
pub struct Paced<M> {
    inner: M,
    step: Duration,
}

impl<M> Paced<M> {
    pub fn new(inner: M, step_ms: f64) -> Self {
        Self { inner, step: Duration::from_secs_f64(step_ms.max(0.0) / 1000.0) }
    }
}

impl<M: LanguageModel> LanguageModel for Paced<M> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }
    fn eos_ids(&self) -> &[TokenId] {
        self.inner.eos_ids()
    }
    fn start<'a>(&'a self, prompt: &[TokenId]) -> Result<(Box<dyn Session + 'a>, Vec<f32>), ModelError> {
        let (s, l) = self.inner.start(prompt)?;
        pace(self.step);
        Ok((Box::new(PacedSession { inner: s, step: self.step }), l))
    }
}

struct PacedSession<'a> {
    inner: Box<dyn Session + 'a>,
    step: Duration,
}

impl Session for PacedSession<'_> {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn extend(&mut self, tokens: &[TokenId]) -> Result<Logits, ModelError> {
        let l = self.inner.extend(tokens)?;
        pace(self.step);
        Ok(l)
    }
    fn truncate(&mut self, len: usize) -> Result<(), ModelError> {
        self.inner.truncate(len)
    }
}

fn pace(d: Duration) {
    if !d.is_zero() {
        std::thread::sleep(d);
    }
}
