//! Every `experiments/paper/*.yaml` runs end to end through `speccascade run --set …` on the tiny
//! random checkpoints of crates/models/tests/fixtures/paper (T5 v1.1 → T5 for the T5 files, Gemma 2
//! → Gemma 3 for the Gemma file) and the task fixtures of datasets/fixtures: every task and every
//! method of the file, each method at one α (its first), two examples, four new tokens, no shots,
//! inputs held to 96 (T5) or 192 (Gemma) tokens, so that the fixtures' longer inputs are cut. The files themselves keep naming the paper's hub checkpoints; this
//! checks that everything else in them — tasks, prompt styles, methods, γ, temperatures, bonus —
//! runs, and that every configuration of the grid leaves its records.
//!
//! The tiny Gemma checkpoints declare 128 positions; the copies used here declare 4096 (RoPE has
//! no learned positions, so only the limit changes), so that a whole CNN/DM article fits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use speccascade_harness::Experiment;
use speccascade_harness::config::AlphaSpec;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A copy of a tiny checkpoint with `max_position_embeddings` raised (when it has one).
fn checkpoint(family: &str, into: &Path) -> String {
    let src = root().join("crates/models/tests/fixtures/paper").join(family);
    let dst = into.join(family);
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    if cfg.get("max_position_embeddings").is_some() {
        cfg["max_position_embeddings"] = 4096.into();
    }
    std::fs::write(dst.join("config.json"), serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    dst.display().to_string()
}

/// The input limit of the CI runs: small enough that the fixtures' longer inputs (XSum, CNN/DM,
/// SQuAD) are cut, large enough for the fixed part of every prompt (MBPP's tests take ~180 tokens
/// of the tiny Gemma vocabulary).
fn input_limit(exp: &Experiment) -> usize {
    if is_t5(exp) { 96 } else { 192 }
}

fn is_t5(exp: &Experiment) -> bool {
    exp.models.drafter.as_deref().unwrap().contains("t5")
}

/// The `--set` overrides that turn a paper experiment into a CI run.
fn overrides(exp: &Experiment, models: &Path) -> Vec<String> {
    let (d, v) = if is_t5(exp) { ("t5_v1_1", "t5") } else { ("gemma2", "gemma3") };
    let mut sets = vec![
        format!("models.drafter={}", checkpoint(d, models)),
        format!("models.verifier={}", checkpoint(v, models)),
        "models.device=cpu".into(),
        "models.precision=f32".into(),
        "trials=1".into(),
    ];
    for (i, t) in exp.tasks.iter().enumerate() {
        let data = root().join("datasets/fixtures").join(format!("{}.jsonl", t.name));
        assert!(data.is_file(), "no fixture data for task {}", t.name);
        sets.push(format!("tasks[{i}].data_file={}", data.display()));
        sets.push(format!("tasks[{i}].examples=2"));
        sets.push(format!("tasks[{i}].max_new_tokens=4"));
        sets.push(format!("tasks[{i}].shots=0"));
        sets.push(format!("tasks[{i}].max_input_tokens={}", input_limit(exp)));
    }
    for (name, entry) in &exp.methods {
        if let Some(spec) = entry.as_ref().and_then(|e| e.alpha.as_ref()) {
            let first = match spec {
                AlphaSpec::List(v) => v[0],
                AlphaSpec::Range { start, .. } => *start,
            };
            sets.push(format!("methods.{name}.alpha=[{first}]"));
        }
    }
    sets
}

fn speccascade(args: &[String]) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_speccascade")).args(args).output().expect("speccascade runs");
    assert!(o.status.success(), "speccascade {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

#[test]
fn every_paper_experiment_runs_end_to_end_on_the_tiny_checkpoints() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("experiments/paper"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let tmp = tempfile::tempdir().unwrap();
    for file in &files {
        let (exp, _) = Experiment::from_file(file).unwrap();
        let stem = file.file_stem().unwrap().to_string_lossy().to_string();
        let out = tmp.path().join(&stem);
        let mut args: Vec<String> = vec!["run".into(), file.display().to_string(), "--out".into(), out.display().to_string()];
        for s in overrides(&exp, &tmp.path().join("models")) {
            args.push("--set".into());
            args.push(s);
        }
        // The grid, then the run.
        let mut dry = args.clone();
        dry.extend(["--dry-run".into(), "--json".into()]);
        let grid = speccascade(&dry);
        let configs: Vec<(String, String)> = grid
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["hash"].as_str().unwrap().to_string(), c["config"]["method"].as_str().unwrap().to_string()))
            .collect();
        let mut wanted_methods: Vec<&str> = exp.methods.keys().map(String::as_str).collect();
        wanted_methods.sort();
        let mut got_methods: Vec<&str> = configs.iter().map(|(_, m)| m.as_str()).collect();
        got_methods.sort();
        got_methods.dedup();
        assert_eq!(got_methods, wanted_methods, "{stem}: every method of the file is in the grid");
        args.push("--json".into());
        let r = speccascade(&args);
        let planned = r["records_planned"].as_u64().unwrap();
        assert_eq!(planned as usize, configs.len() * 2, "{stem}: 2 examples per configuration");
        assert_eq!(r["records_written"].as_u64().unwrap(), planned, "{stem}");

        // Every configuration has its two records, with text, a score and the input limit.
        let limit = input_limit(&exp) as u64;
        let mut per_config: BTreeMap<String, usize> = BTreeMap::new();
        let mut cut = 0;
        for line in std::fs::read_to_string(out.join("records.jsonl")).unwrap().lines() {
            let rec: serde_json::Value = serde_json::from_str(line).unwrap();
            *per_config.entry(rec["config"].as_str().unwrap().to_string()).or_default() += 1;
            assert!(rec["text"].is_string() && rec["score"].is_number(), "{stem}: {rec}");
            assert_eq!(rec["input_limit"]["max_tokens"].as_u64(), Some(limit), "{stem}: {rec}");
            assert!(rec["prompt_tokens"].as_u64().unwrap() <= limit, "{stem}");
            cut += usize::from(rec["input_limit"]["truncated_from"].as_u64().is_some_and(|n| n > limit));
        }
        assert!(cut > 0 || stem == "t5_temperature_gamma", "{stem}: no input was long enough to be cut");
        for (hash, method) in &configs {
            assert_eq!(per_config.get(hash), Some(&2), "{stem}: {method} ({hash})");
        }
        eprintln!("{stem}: {} configurations, {planned} records", configs.len());
    }
}
