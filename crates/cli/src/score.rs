//! `speccascade score`: scores predictions from anywhere against references (JSONL), with the
//! same metrics the harness uses. Schemas: see `speccascade_tasks` crate docs (and README).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use speccascade_tasks::io::{join, read_predictions, read_references};
use speccascade_tasks::sandbox::SandboxConfig;
use speccascade_tasks::{Metric, MetricOptions, score};

use crate::limits;

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// bleu | rouge1 | rouge2 | rougeL | rougeLsum | exact_match | f1 | gsm8k | pass_at_1 (pass_at_<k>).
    #[arg(long)]
    metric: String,
    /// JSONL, one `{"id", "prediction"}` per line (`task_id` / `completion` also accepted; for
    /// pass@k several lines may share an id: the samples of that problem).
    #[arg(long)]
    predictions: PathBuf,
    /// JSONL, one `{"id", "references": [...]}` per line, or for code `{"id", "prompt", "test",
    /// "entry_point"}` as HumanEval has them.
    #[arg(long)]
    references: PathBuf,
    /// Print one JSON object (`metric`, `score`, `n`, and metric extras).
    #[arg(long)]
    json: bool,
    /// Add each example's score.
    #[arg(long)]
    per_example: bool,
    /// ROUGE: turn the Porter stemmer off (on by default).
    #[arg(long)]
    no_stemmer: bool,
    /// pass@k: wall-clock limit per program, seconds.
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
    timeout: f64,
    /// pass@k: the Python interpreter that runs the programs.
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// pass@k: programs run at once (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
}

pub fn run(a: ScoreArgs) -> Result<()> {
    let metric: Metric = a.metric.parse()?;
    let timeout = limits::seconds("--timeout", a.timeout, limits::MAX_TIMEOUT_S)?;
    if let Some(j) = a.jobs {
        limits::in_range("--jobs", j, 1, limits::MAX_JOBS, "programs run at once")?;
    }
    let predictions = read_predictions(&a.predictions).with_context(|| format!("reading predictions {}", a.predictions.display()))?;
    let references = read_references(&a.references, metric.is_code()).with_context(|| format!("reading references {}", a.references.display()))?;
    let examples = join(&predictions, &references, metric.is_code(), &a.predictions, &a.references)?;

    let mut opts = MetricOptions {
        stemmer: !a.no_stemmer,
        sandbox: SandboxConfig { python: a.python.clone(), timeout, cpu_seconds: timeout.as_secs() + 1, jobs: a.jobs, ..SandboxConfig::default() },
        progress: None,
    };
    let bar = (metric.is_code() && !a.json).then(|| {
        let bar = ProgressBar::new(predictions.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} running programs {pos}/{len} [{elapsed_precise}] {per_sec} ETA {eta}")
                .expect("valid template"),
        );
        bar
    });
    if let Some(bar) = &bar {
        let bar = bar.clone();
        opts.progress = Some(Arc::new(move |done, _| bar.set_position(done as u64)));
    }
    let result = score(metric, &examples, &opts).with_context(|| format!("scoring {metric}"))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    if a.json {
        let mut v = serde_json::to_value(&result)?;
        let obj = v.as_object_mut().expect("an object");
        if let Some(serde_json::Value::Object(extra)) = obj.remove("extra") {
            for (k, x) in extra {
                obj.insert(k, x);
            }
        }
        if a.per_example {
            obj.insert("per_example".into(), serde_json::to_value(&result.per_example)?);
        }
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    match metric {
        Metric::Bleu => println!("BLEU = {:.2}  ({})  n = {}", result.score, result.extra["signature"].as_str().unwrap_or(""), result.n),
        _ => println!("{} = {:.2}  n = {}", result.metric, result.score, result.n),
    }
    for (k, v) in &result.extra {
        if k != "signature" {
            println!("  {k}: {v}");
        }
    }
    if a.per_example {
        for e in &result.per_example {
            match &e.detail {
                Some(d) => println!("{}\t{:.4}\t{d}", e.id, e.score),
                None => println!("{}\t{:.4}", e.id, e.score),
            }
        }
    }
    Ok(())
}
