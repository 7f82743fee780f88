//! speccascade-provider: real models and real tasks for the harness.
//!
//! The harness runs sweeps over any [`Provider`]; this crate is the one that loads real pairs
//! (`speccascade-models`: a registered name, a GGUF file or a Hugging Face directory, at a
//! precision), builds prompts (`speccascade-tasks`: few-shot, chat-wrapped when asked), and scores
//! generations with the task's metric. The harness stays free of burn and datasets; the binary
//! only parses arguments.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use speccascade_core::LanguageModel;
use speccascade_harness::HarnessError;
use speccascade_harness::config::{ModelsSpec, TaskSpec};
use speccascade_harness::provider::{Aggregation, InputLimit, MetricScore, Output, Pair, Prompt, Provider, Score, Task};
use speccascade_harness::synthetic::SyntheticProvider;
use speccascade_models::burn_lm::{DeviceChoice, TensorEngine, parse_dtype};
use speccascade_models::registry::{ModelLocation, resolve_model};
use speccascade_models::tokenizer::{ChatMessage, Tokenizer};
use speccascade_models::transformer::{Precision, TransformerOptions, load_model};
use speccascade_tasks as tasks;

/// How to load a model on `device` (`cpu`, `flex`, `wgpu`, `cuda[:N]`) at `precision`: the host
/// kernels at a host precision (`native` is q8), or the device engine at a device dtype (`native`
/// is the device's default). The error names what was expected.
pub fn model_options(device: &str, precision: &str) -> Result<TransformerOptions, String> {
    let choice: DeviceChoice = device.parse().map_err(|e: String| format!("device: {e}"))?;
    if choice == DeviceChoice::Cpu {
        let precision = match precision {
            "native" => Precision::Q8,
            other => other.parse::<Precision>().map_err(|e| format!("precision: {e}"))?,
        };
        return Ok(TransformerOptions { precision, ..TransformerOptions::default() });
    }
    let dtype = parse_dtype(precision, &choice).map_err(|e| format!("precision: {e}"))?;
    let engine = TensorEngine::open(&choice, dtype).map_err(|e| e.to_string())?;
    Ok(TransformerOptions { engine: Some(engine), ..TransformerOptions::default() })
}

/// Models and tasks for the harness: the synthetic pair and task from the harness itself, real
/// models from speccascade-models (a registered name, a GGUF file or a Hugging Face directory) and
/// real tasks from speccascade-tasks (prompt, stop strings, metric).
pub struct RealProvider;

impl Provider for RealProvider {
    fn pair(&self, spec: &ModelsSpec) -> Result<Pair, HarnessError> {
        if spec.synthetic.is_some() {
            return SyntheticProvider.pair(spec);
        }
        let merr = |what: &str, e: &dyn std::fmt::Display| HarnessError::Model(format!("{what}: {e}"));
        let opts = model_options(&spec.device, &spec.precision).map_err(|e| HarnessError::Model(format!("models: {e}")))?;
        let load = |name: &str| -> Result<(Box<dyn LanguageModel>, ModelLocation), HarnessError> {
            let loc = resolve_model(name).map_err(|e| merr(name, &e))?;
            let model = load_model(&loc, &opts).map_err(|e| merr(name, &e))?.model;
            Ok((model, loc))
        };
        let (dname, vname) = (spec.drafter.as_deref().unwrap_or_default(), spec.verifier.as_deref().unwrap_or_default());
        let (drafter, _) = load(dname)?;
        let (verifier, vloc) = load(vname)?;
        // Prompts and text go through the verifier's tokenizer; the pair must share it.
        let tok = Arc::new(Tokenizer::from_location(&vloc).map_err(|e| merr(vname, &e))?);
        if drafter.vocab_size() != verifier.vocab_size() {
            return Err(HarnessError::Model(format!(
                "{dname} has {} logits per position but {vname} has {}: a drafter and a verifier must share one tokenizer",
                drafter.vocab_size(),
                verifier.vocab_size()
            )));
        }
        let t = tok.clone();
        Ok(Pair {
            drafter,
            verifier,
            detok: Some(Box::new(move |ids: &[u32]| t.decode(ids, true))),
            synthetic: None,
            extra: Some(Box::new(tok)),
        })
    }

    fn task<'p>(&self, spec: &TaskSpec, pair: &'p Pair) -> Result<Box<dyn Task + 'p>, HarnessError> {
        if spec.name == "synthetic" {
            return SyntheticProvider.task(spec, pair);
        }
        let terr = |msg: String| HarnessError::Task { task: spec.name.clone(), msg };
        let task = speccascade_tasks::task_by_name(&spec.name).map_err(|e| terr(e.to_string()))?;
        let source = match &spec.data_file {
            Some(p) => tasks::Source::File(p.clone()),
            None => tasks::Source::Cache,
        };
        // All examples in data-set order; the harness picks `examples` of them with its own seed.
        let examples = tasks::load_examples(task, &source, None, 0).map_err(|e| terr(e.to_string()))?;
        let tok = pair
            .extra
            .as_ref()
            .and_then(|x| x.downcast_ref::<Arc<Tokenizer>>())
            .ok_or_else(|| terr("needs the models' tokenizer (real models, not the synthetic pair)".into()))?;
        use speccascade_harness::config::PromptStyle as Style;
        let (style, chat) = match spec.prompt_style {
            Some(Style::T5) => (tasks::PromptStyle::T5, spec.chat),
            Some(Style::Chat) => (tasks::PromptStyle::FewShot, true),
            Some(Style::FewShot) | None => (tasks::PromptStyle::FewShot, spec.chat),
        };
        // The paper's input limits are those of its T5 setting; an explicit limit applies to any style.
        let max_input_tokens = spec.max_input_tokens.or(if style == tasks::PromptStyle::T5 { task.max_input_tokens } else { None });
        Ok(Box::new(RealTask { task, examples, tok: tok.as_ref(), shots: spec.shots, chat, style, max_input_tokens, scored: RefCell::new(ScoreCache::default()) }))
    }
}

/// A task of speccascade-tasks over a real tokenizer.
struct RealTask<'p> {
    task: &'static tasks::Task,
    examples: Vec<tasks::Example>,
    tok: &'p Tokenizer,
    shots: Option<usize>,
    chat: bool,
    style: tasks::PromptStyle,
    /// Hold prompts to this many tokens by cutting the task's input field.
    max_input_tokens: Option<usize>,
    scored: RefCell<ScoreCache>,
}

/// The scores of one example's answers so far. The configurations of an example often produce the
/// same answer (common random numbers; greedy decoding), and a metric is a pure function of the
/// answer, so each distinct answer is scored once: for code that is one sandboxed Python run
/// instead of one per configuration. Only the example in hand is kept.
#[derive(Default)]
struct ScoreCache {
    example: usize,
    by_answer: HashMap<String, Score>,
}

impl RealTask<'_> {
    /// The prompt's token ids for `ex`: the task's prompt, chat-wrapped when asked, encoded the
    /// way the checkpoint's tokenizer says (BOS, T5's `</s>`).
    fn encode(&self, ex: &tasks::Example) -> Result<Vec<u32>, String> {
        let mut text = tasks::build_prompt(self.task, ex, self.style, self.shots).map_err(|e| e.to_string())?;
        // `chat: true` wraps the prompt in the model's chat template (ChatML for Qwen2.5).
        if self.chat {
            if self.tok.chat_template().is_none() {
                return Err("`chat: true` but the model has no chat template".into());
            }
            text = self.tok.apply_chat(&[ChatMessage::user(text)], true).map_err(|e| e.to_string())?;
        }
        self.tok.encode_prompt(&text, true).map_err(|e| e.to_string())
    }

    /// [`Self::encode`] within `limit` tokens: the input field (article, document, source …) is
    /// cut at a token boundary of its own tokenization, as few tokens as needed, and the prompt
    /// around it is kept whole — for a T5 input `summarize: {document}` that is the tokenizer's
    /// truncation to `limit` tokens with `</s>` kept. Returns the ids and the uncut length.
    fn encode_within(&self, ex: &tasks::Example, limit: usize) -> Result<(Vec<u32>, Option<usize>), String> {
        let full = self.encode(ex)?;
        if full.len() <= limit {
            return Ok((full, None));
        }
        let field = self.task.input_field;
        let text = ex.fields.get(field).ok_or_else(|| format!("the example has no `{field}` field to cut to max_input_tokens"))?;
        let ends = self.tok.token_ends(text).map_err(|e| e.to_string())?;
        let mut keep = ends.len().saturating_sub(full.len() - limit);
        let mut cut = ex.clone();
        loop {
            let end = if keep == 0 { 0 } else { ends[keep - 1] };
            cut.fields.insert(field.to_string(), text[..end].to_string());
            let ids = self.encode(&cut)?;
            if ids.len() <= limit {
                return Ok((ids, Some(full.len())));
            }
            if keep == 0 {
                return Err(format!(
                    "max_input_tokens = {limit}, but the prompt has {} tokens with its `{field}` cut away entirely (raise max_input_tokens or use fewer shots)",
                    ids.len()
                ));
            }
            // Token boundaries can merge across the cut: drop what is still over, at least one.
            keep -= (ids.len() - limit).clamp(1, keep);
        }
    }

    /// The metric's verdict on one example's extracted answer.
    fn score_answer(&self, index: usize, answer: &str) -> Result<Score, String> {
        let ex = &self.examples[index];
        let metric = self.task.metrics[0];
        let scored = [tasks::Scored { id: &ex.id, predictions: vec![answer], references: &ex.references, code: ex.code.as_ref() }];
        let r = tasks::score(metric, &scored, &tasks::MetricOptions::default()).map_err(|e| e.to_string())?;
        // The example's own score: for BLEU, sentence BLEU (the record's `extra` keeps the
        // n-gram statistics from which summaries compute corpus BLEU); otherwise the same number.
        let value = r.per_example.first().map(|e| e.score).unwrap_or(r.score);
        let extra = serde_json::to_value(&r.extra).map_err(|e| e.to_string())?;
        let corpus_stats = tasks::metrics::summable_stats(&r.metric, &extra);
        let aggregation = if corpus_stats.is_some() { Aggregation::Corpus } else { Aggregation::Mean };
        Ok(Score {
            value,
            metric: MetricScore { metric: r.metric.clone(), aggregation, corpus_stats },
            inputs: serde_json::json!({ "metric": r.metric, "prediction": answer, "references": ex.references, "extra": r.extra }),
        })
    }
}

impl Task for RealTask<'_> {
    fn name(&self) -> &str {
        self.task.name
    }
    fn num_examples(&self) -> usize {
        self.examples.len()
    }
    fn example_id(&self, index: usize) -> String {
        self.examples[index].id.clone()
    }
    fn prompt(&self, index: usize) -> Result<Prompt, String> {
        let ex = &self.examples[index];
        let (tokens, input_limit) = match self.max_input_tokens {
            None => (self.encode(ex)?, None),
            Some(limit) => {
                let (ids, truncated_from) = self.encode_within(ex, limit)?;
                (ids, Some(InputLimit { max_tokens: limit, truncated_from }))
            }
        };
        let stop_strings = self.task.stop_sequences.iter().map(|s| s.to_string()).collect();
        Ok(Prompt { tokens, stop_strings, extra_eos: Vec::new(), input_limit })
    }
    fn score(&self, index: usize, _prompt: &Prompt, output: &Output<'_>) -> Result<Score, String> {
        let generation = output.text.unwrap_or_default();
        let answer = self.task.extract_answer(generation);
        let mut cache = self.scored.borrow_mut();
        if cache.example != index {
            *cache = ScoreCache { example: index, by_answer: HashMap::new() };
        }
        if let Some(s) = cache.by_answer.get(&answer) {
            return Ok(s.clone());
        }
        let score = self.score_answer(index, &answer)?;
        cache.by_answer.insert(answer, score.clone());
        Ok(score)
    }
    fn metric(&self) -> String {
        let m = self.task.metrics[0].to_string();
        match m.as_str() {
            _ if m.starts_with("pass_at_") => format!("{} (%)", m.replace("pass_at_", "pass@")),
            "exact_match" | "gsm8k" => "exact match (%)".into(),
            "f1" => "F1 (%)".into(),
            "bleu" => "BLEU".into(),
            "rouge1" | "rouge2" | "rougeL" | "rougeLsum" => m.replace("rouge", "ROUGE-"),
            _ => format!("{m} (0–100)"),
        }
    }
}
