//! `speccascade run <exp.yaml>`: expand the grid, run it with progress bars, write records and
//! summaries (see speccascade-harness).

use std::path::PathBuf;

use std::rc::Rc;

use anyhow::{Context, Result};
use speccascade_core::LanguageModel;
use speccascade_harness::config::{ModelsSpec, TaskSpec};
use speccascade_harness::provider::{Output, Pair, Prompt, Provider, Score, Task};
use speccascade_harness::runner::{RunOptions, run as run_sweep};
use speccascade_harness::synthetic::SyntheticProvider;
use speccascade_harness::{Experiment, Grid, HarnessError, Shard};
use speccascade_models::registry::{ModelLocation, resolve_model};
use speccascade_models::tokenizer::{ChatMessage, Tokenizer};
use speccascade_models::transformer::{Precision, TransformerOptions, load_model};
use speccascade_tasks as tasks;

#[derive(clap::Args)]
pub struct Args {
    /// The experiment file (see experiments/README.md).
    pub experiment: PathBuf,
    /// Continue a sweep: keep finished records, run only what is missing.
    #[arg(long)]
    pub resume: bool,
    /// Delete this shard's records first.
    #[arg(long, conflicts_with = "resume")]
    pub fresh: bool,
    /// Run a deterministic share `i/n` of the sweep (0 ≤ i < n); join shards with `merge`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Print the grid (configurations and hashes) and exit without running.
    #[arg(long)]
    pub dry_run: bool,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
    /// Override any key of the experiment file, validated like the file (repeatable):
    /// `--set models.drafter=DIR --set tasks[0].examples=4`.
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    pub set: Vec<String>,
}

pub fn run(a: Args) -> Result<()> {
    let (exp, src) = Experiment::from_file_with_sets(&a.experiment, &a.set).map_err(anyhow::Error::new)?;
    if a.dry_run {
        let grid = Grid::expand(&exp);
        if a.json {
            let v: Vec<_> = grid.hashes.iter().zip(&grid.configs).map(|(h, c)| serde_json::json!({"hash": h, "config": c})).collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            for (h, c) in grid.hashes.iter().zip(&grid.configs) {
                println!("{h}  {}  T={}  {}", c.task.name, c.temperature, c.label());
            }
            println!("{} configurations × {} trial(s)", grid.len(), exp.trials);
        }
        return Ok(());
    }
    let opts = RunOptions { shard: a.shard.unwrap_or(Shard::WHOLE), resume: a.resume, fresh: a.fresh, progress: !a.json };
    let provider = CliProvider;
    let r = run_sweep(&exp, &src, &provider, &opts).with_context(|| format!("running {}", a.experiment.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "{}: {} records written, {} already there ({} configurations, shard {}), {} tokens in {:.1} s",
            r.records_path.display(),
            r.records_written,
            r.records_skipped,
            r.configs,
            r.shard,
            r.tokens,
            r.elapsed_s
        );
        if r.foreign_load_records > 0 {
            println!("warning: {} record(s) were timed under foreign CPU load; their wall-clock numbers are suspect", r.foreign_load_records);
        }
        println!("next: speccascade report {}", r.output.display());
    }
    Ok(())
}

/// Models and tasks for the harness: the synthetic pair and task from the harness itself, real
/// models from speccascade-models (a registered name, a GGUF file or a Hugging Face directory) and
/// real tasks from speccascade-tasks (prompt, stop strings, metric).
pub struct CliProvider;

impl Provider for CliProvider {
    fn pair(&self, spec: &ModelsSpec) -> Result<Pair, HarnessError> {
        if spec.synthetic.is_some() {
            return SyntheticProvider.pair(spec);
        }
        let merr = |what: &str, e: &dyn std::fmt::Display| HarnessError::Model(format!("{what}: {e}"));
        if spec.device != "cpu" {
            return Err(HarnessError::Model(format!(
                "device {:?}: this build runs models on the CPU only (burn's flex backend); use `device: cpu`",
                spec.device
            )));
        }
        let precision = match spec.precision.as_str() {
            "native" | "q8" => Precision::Q8,
            "f32" => Precision::F32,
            "f16" => Precision::F16,
            other => return Err(HarnessError::Model(format!("precision {other:?} is not supported by speccascade-models (use q8, f16 or f32)"))),
        };
        let opts = TransformerOptions { precision, ..TransformerOptions::default() };
        let load = |name: &str| -> Result<(Box<dyn LanguageModel>, ModelLocation), HarnessError> {
            let loc = resolve_model(name).map_err(|e| merr(name, &e))?;
            let model = load_model(&loc, &opts).map_err(|e| merr(name, &e))?.model;
            Ok((model, loc))
        };
        let (dname, vname) = (spec.drafter.as_deref().unwrap_or_default(), spec.verifier.as_deref().unwrap_or_default());
        let (drafter, _) = load(dname)?;
        let (verifier, vloc) = load(vname)?;
        // Prompts and text go through the verifier's tokenizer; the pair must share it.
        let tok = Rc::new(Tokenizer::from_location(&vloc).map_err(|e| merr(vname, &e))?);
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
            .and_then(|x| x.downcast_ref::<Rc<Tokenizer>>())
            .ok_or_else(|| terr("needs the models' tokenizer (real models, not the synthetic pair)".into()))?;
        use speccascade_harness::config::PromptStyle as Style;
        let (style, chat) = match spec.prompt_style {
            Some(Style::T5) => (tasks::PromptStyle::T5, spec.chat),
            Some(Style::Chat) => (tasks::PromptStyle::FewShot, true),
            Some(Style::FewShot) | None => (tasks::PromptStyle::FewShot, spec.chat),
        };
        Ok(Box::new(RealTask { task, examples, tok: tok.as_ref(), shots: spec.shots, chat, style }))
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
        let mut text = tasks::build_prompt(self.task, &self.examples[index], self.style, self.shots).map_err(|e| e.to_string())?;
        // `chat: true` wraps the prompt in the model's chat template (ChatML for Qwen2.5).
        if self.chat {
            if self.tok.chat_template().is_none() {
                return Err("`chat: true` but the model has no chat template".into());
            }
            text = self.tok.apply_chat(&[ChatMessage::user(text)], true).map_err(|e| e.to_string())?;
        }
        let tokens = self.tok.encode_prompt(&text, true).map_err(|e| e.to_string())?;
        Ok(Prompt { tokens, stop_strings: self.task.stop_sequences.iter().map(|s| s.to_string()).collect(), extra_eos: Vec::new() })
    }
    fn score(&self, index: usize, _prompt: &Prompt, output: &Output<'_>) -> Result<Score, String> {
        let ex = &self.examples[index];
        let generation = output.text.unwrap_or_default();
        let answer = self.task.extract_answer(generation);
        let metric = self.task.metrics[0];
        let scored = [tasks::Scored { id: &ex.id, predictions: vec![answer.as_str()], references: &ex.references, code: ex.code.as_ref() }];
        let r = tasks::score(metric, &scored, &tasks::MetricOptions::default()).map_err(|e| e.to_string())?;
        // The example's own score: for BLEU, sentence BLEU (the record's `extra` keeps the
        // n-gram statistics from which summaries compute corpus BLEU); otherwise the same number.
        let value = r.per_example.first().map(|e| e.score).unwrap_or(r.score);
        Ok(Score {
            value,
            inputs: serde_json::json!({ "metric": r.metric, "prediction": answer, "references": ex.references, "extra": r.extra }),
        })
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
