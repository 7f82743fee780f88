//! How the runner gets its models and tasks: the [`Provider`] seam.
//!
//! The harness itself provides the synthetic pair and task ([`crate::synthetic::SyntheticProvider`]);
//! the binary wraps it with one that loads real models (`speccascade-models`) and real tasks
//! (`speccascade-tasks`), so this crate never links burn or datasets.

use serde::{Deserialize, Serialize};
use speccascade_core::{LanguageModel, TokenId};

use crate::HarnessError;
use crate::config::{ModelsSpec, TaskSpec};

/// Token ids → text.
pub type Detokenizer = Box<dyn Fn(&[TokenId]) -> String + Send + Sync>;

/// A loaded drafter / verifier pair.
pub struct Pair {
    pub drafter: Box<dyn LanguageModel>,
    pub verifier: Box<dyn LanguageModel>,
    /// Token ids → text (stop strings, records, scoring). `None` for models without text.
    pub detok: Option<Detokenizer>,
    /// The synthetic ground truth, when the pair is synthetic.
    pub synthetic: Option<speccascade_core::synthetic::SyntheticPair>,
    /// Anything else the provider's tasks need (a tokenizer, a chat template …).
    pub extra: Option<Box<dyn std::any::Any>>,
}

/// One prompt, ready to decode.
#[derive(Clone, Debug, Default)]
pub struct Prompt {
    pub tokens: Vec<TokenId>,
    /// Generation stops when the text ends with one of these (the string itself is kept).
    pub stop_strings: Vec<String>,
    /// Extra token ids that end a generation (beside the models' EOS).
    pub extra_eos: Vec<TokenId>,
    /// The input limit the prompt was held to (`max_input_tokens`), if any.
    pub input_limit: Option<InputLimit>,
}

/// `max_input_tokens` at work on one prompt (kept in its records).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputLimit {
    /// The limit in tokens.
    pub max_tokens: usize,
    /// The prompt's length before its input text was cut; absent when it fitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_from: Option<usize>,
}

/// What a task scores.
pub struct Output<'a> {
    pub tokens: &'a [TokenId],
    pub text: Option<&'a str>,
}

/// How a metric's per-example scores make a sweep's quality: a property of the metric.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// The mean over examples (of each example's mean over trials).
    #[default]
    Mean,
    /// The metric of the examples' summed statistics ([`MetricScore::corpus_stats`]), as corpus
    /// BLEU is the BLEU of all segments' summed n-gram counts, not the mean sentence BLEU.
    Corpus,
}

/// A typed score: what a record says about its metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricScore {
    /// The metric's name (`pass_at_1`, `bleu`, `synthetic_loglik` …).
    pub metric: String,
    pub aggregation: Aggregation,
    /// The example's sufficient statistics for a [`Aggregation::Corpus`] metric (summed over
    /// examples, then scored by `speccascade_tasks::metrics::score_from_summed_stats`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpus_stats: Option<Vec<u64>>,
}

/// A task's verdict on one example.
#[derive(Clone, Debug)]
pub struct Score {
    /// The metric (higher is better).
    pub value: f64,
    /// Which metric, how it aggregates, its corpus statistics.
    pub metric: MetricScore,
    /// What the metric read, for the record.
    pub inputs: serde_json::Value,
}

/// A task as the runner sees it.
pub trait Task {
    fn name(&self) -> &str;
    /// Examples available in the data set.
    fn num_examples(&self) -> usize;
    /// A stable identifier of example `index` (e.g. `HumanEval/12`).
    fn example_id(&self, index: usize) -> String;
    fn prompt(&self, index: usize) -> Result<Prompt, String>;
    fn score(&self, index: usize, prompt: &Prompt, output: &Output<'_>) -> Result<Score, String>;
    /// The metric's name and unit for axis labels (e.g. `pass@1 (%)`).
    fn metric(&self) -> String;
}

/// Builds the pair and the tasks of an experiment.
pub trait Provider {
    fn pair(&self, spec: &ModelsSpec) -> Result<Pair, HarnessError>;
    fn task<'p>(&self, spec: &TaskSpec, pair: &'p Pair) -> Result<Box<dyn Task + 'p>, HarnessError>;
}

/// The examples of a task that a sweep runs: the first `n`, or `n` drawn without replacement with
/// the task's sampling seed (in the drawn order, so growing `n` keeps the earlier examples).
pub fn select_examples(spec: &TaskSpec, available: usize) -> Result<Vec<usize>, HarnessError> {
    if spec.examples > available {
        return Err(HarnessError::Task {
            task: spec.name.clone(),
            msg: format!("asked for {} examples, the data set has {available}", spec.examples),
        });
    }
    let Some(seed) = spec.seed else {
        return Ok((0..spec.examples).collect());
    };
    // Fisher–Yates with counter-based uniforms: a pure function of (seed, available).
    let mut idx: Vec<usize> = (0..available).collect();
    for i in 0..spec.examples {
        let u = speccascade_core::rng::uniform(seed, u64::MAX, i as u64, speccascade_core::Purpose::Draft);
        let j = i + ((u * (available - i) as f64) as usize).min(available - i - 1);
        idx.swap(i, j);
    }
    idx.truncate(spec.examples);
    Ok(idx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(n: usize, seed: Option<u64>) -> TaskSpec {
        TaskSpec { name: "t".into(), examples: n, seed, shots: None, max_new_tokens: 4, data_file: None, chat: false, prompt_style: None, max_input_tokens: None }
    }

    #[test]
    fn selection_is_deterministic_prefix_stable_and_distinct() {
        assert_eq!(select_examples(&spec(3, None), 10).unwrap(), vec![0, 1, 2]);
        let a = select_examples(&spec(5, Some(7)), 100).unwrap();
        let b = select_examples(&spec(8, Some(7)), 100).unwrap();
        assert_eq!(a, b[..5]);
        let mut s = b.clone();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 8);
        assert_ne!(a, select_examples(&spec(5, Some(8)), 100).unwrap());
        assert!(select_examples(&spec(11, None), 10).is_err());
    }
}
