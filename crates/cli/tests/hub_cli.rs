//! `speccascade models fetch <hub-id>` through the binary, against the fake hub of
//! crates/models/tests/support/fake_hub.rs (HF_ENDPOINT on 127.0.0.1, a private cache): the tiny
//! Gemma 2 checkpoint is fetched, then `generate --model owner/name` loads it from the cache and
//! emits transformers' greedy tokens. Offline, both commands name the local-directory way round.

#[path = "../../models/tests/support/fake_hub.rs"]
mod fake_hub;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fake_hub::{FakeFile, FakeHub, FakeRepo};

fn sc(args: &[&str], endpoint: &str, cache: &Path, extra_env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_speccascade"));
    c.args(args).env("HF_ENDPOINT", endpoint).env("SPECCASCADE_CACHE", cache).env_remove("HF_TOKEN").env_remove("HF_HUB_OFFLINE");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.output().expect("speccascade runs")
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

#[test]
fn fetch_then_generate_from_the_cache_and_clear_offline_errors() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/paper/gemma2");
    let read = |n: &str| std::fs::read(fixture.join(n)).unwrap();
    let repo = FakeRepo {
        id: "acme/tiny-gemma2".into(),
        commit: "00112233445566778899aabbccddeeff00112233".into(),
        files: vec![FakeFile::git("config.json", read("config.json")), FakeFile::lfs("tokenizer.json", read("tokenizer.json")), FakeFile::lfs("model.safetensors", read("model.safetensors"))],
    };
    let hub = FakeHub::start(vec![repo], None);
    let cache = tempfile::tempdir().unwrap();
    let ep = hub.endpoint.as_str();

    let v = json(&sc(&["models", "fetch", "acme/tiny-gemma2", "--json"], ep, cache.path(), &[]));
    let m = &v["models"][0];
    assert_eq!(m["status"], "fetched", "{v}");
    assert_eq!(m["commit"], "00112233445566778899aabbccddeeff00112233");
    assert_eq!(m["files"].as_array().unwrap().len(), 3);
    let v = json(&sc(&["models", "fetch", "acme/tiny-gemma2", "--json"], ep, cache.path(), &[]));
    assert_eq!(v["models"][0]["status"], "already present");

    let reference: serde_json::Value = serde_json::from_slice(&read("reference.json")).unwrap();
    let case = &reference["inputs"][0];
    let want = case["generated"].as_array().unwrap();
    let n = want.len().to_string();
    let args = ["generate", "--model", "acme/tiny-gemma2", "--prompt", case["text"].as_str().unwrap(), "--temperature", "0", "--precision", "f32", "--json", "--max-new-tokens", &n];
    let g = json(&sc(&args, ep, cache.path(), &[]));
    assert_eq!(g["tokens"].as_array().unwrap(), want);

    // `models list` shows the paper's hub checkpoints, not cached here.
    let l = json(&sc(&["models", "list", "--json"], ep, cache.path(), &[]));
    let row = l["models"].as_array().unwrap().iter().find(|r| r["name"] == "google/t5-v1_1-large").cloned().unwrap();
    assert_eq!((row["cached"].as_bool(), row["model_type"].as_str()), (Some(false), Some("t5")), "{row}");
    let row = l["models"].as_array().unwrap().iter().find(|r| r["name"] == "acme/tiny-gemma2@main").cloned().unwrap();
    assert_eq!(row["cached"].as_bool(), Some(true), "{row}");

    // Offline: fetch and generate both point at the local-directory alternative.
    let o = sc(&["models", "fetch", "google/gemma-2-2b-it"], ep, cache.path(), &[("HF_HUB_OFFLINE", "1")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("cannot reach the hub") && err.contains("--model DIR"), "{err}");
    let o = sc(&["generate", "--model", "google/gemma-2-2b-it", "--prompt", "hi"], ep, cache.path(), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("models fetch google/gemma-2-2b-it") && err.contains("--model DIR"), "{err}");
}
