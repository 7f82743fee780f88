//! `models fetch <hub-id>` against a fake hub on 127.0.0.1 (tests/support/fake_hub.rs): a
//! sharded repository whose transfer breaks off and resumes, idempotence, a sha256 mismatch
//! refused, a gated repository and its token, a borrowed tokenizer, missing files, the offline
//! error, two fetches at once — and a fetched tiny Gemma 2, sharded in two, that loads through its
//! index and decodes.

#[path = "support/fake_hub.rs"]
mod fake_hub;

use std::path::{Path, PathBuf};

use fake_hub::{FakeFile, FakeHub, FakeRepo};
use speccascade_models::hub::{FetchPlan, FileStatus, HubError, HubOptions, HubRef, MANIFEST, fetch_repo};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn opts(hub: &FakeHub, cache: &Path, token: Option<&str>) -> HubOptions {
    HubOptions { endpoint: hub.endpoint.clone(), token: token.map(str::to_string), offline: false, cache_root: cache.to_path_buf(), progress: false }
}

fn bytes(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32).map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) >> 13) as u8).collect()
}

fn sharded_repo() -> FakeRepo {
    let index = r#"{"metadata": {"total_size": 500000}, "weight_map": {"a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors", "c.weight": "model-00001-of-00002.safetensors"}}"#;
    let mut shard2 = FakeFile::lfs("model-00002-of-00002.safetensors", bytes(300_000, 2));
    shard2.cut_after = Some(120_000);
    FakeRepo {
        id: "acme/tiny-sharded".into(),
        commit: COMMIT.into(),
        files: vec![
            FakeFile::git(".gitattributes", "*.safetensors filter=lfs\n"),
            FakeFile::git("README.md", "# tiny\n"),
            FakeFile::git("config.json", r#"{"model_type": "gemma2"}"#),
            FakeFile::lfs("tokenizer.json", bytes(20_000, 7)),
            FakeFile::git("tokenizer_config.json", "{}"),
            FakeFile::git("model.safetensors.index.json", index),
            FakeFile::lfs("model-00001-of-00002.safetensors", bytes(200_000, 1)),
            shard2,
            FakeFile::lfs("pytorch_model.bin", bytes(1000, 9)),
        ],
    }
}

fn file_of<'a>(repo: &'a FakeRepo, name: &str) -> &'a [u8] {
    &repo.files.iter().find(|f| f.name == name).unwrap().bytes
}

#[test]
fn a_sharded_repo_resumes_after_a_broken_transfer_and_then_stays_put() {
    let repo = sharded_repo();
    let hub = FakeHub::start(vec![repo.clone()], None);
    let cache = tempfile::tempdir().unwrap();
    let o = opts(&hub, cache.path(), None);
    let r = HubRef::parse("acme/tiny-sharded").unwrap();
    let dir = r.cache_dir(cache.path());

    // The second shard's transfer breaks off after 120 000 bytes.
    let e = fetch_repo(&r, &FetchPlan::default(), &o).unwrap_err();
    assert!(matches!(e, HubError::Interrupted { .. }), "{e}");
    assert!(e.to_string().contains("run the same command again to resume"), "{e}");
    let partials: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().ends_with(".partial")).collect();
    assert_eq!(partials.len(), 1, "{partials:?}");
    let partial = partials[0].clone();
    assert!(partial.file_name().unwrap().to_string_lossy().starts_with("model-00002-of-00002.safetensors."), "{partial:?}");
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept > 0 && kept <= 120_000, "{kept}");
    assert!(!dir.join("model-00002-of-00002.safetensors").exists(), "nothing under the final name");
    assert!(!dir.join(MANIFEST).exists() && r.cached(cache.path()).is_none(), "not complete");

    // Again: the shard resumes from the kept bytes; the finished files are not fetched again.
    let before = hub.requests().len();
    let f = fetch_repo(&r, &FetchPlan::default(), &o).unwrap();
    let names: Vec<&str> = f.manifest.files.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["config.json", "tokenizer_config.json", "tokenizer.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    );
    assert_eq!(f.status[5], FileStatus::Resumed { from: kept });
    assert!(f.status[..5].iter().all(|s| *s == FileStatus::Present), "{:?}", f.status);
    let ranged: Vec<_> = hub.requests()[before..].iter().filter(|s| s.path.starts_with("/cdn/")).cloned().collect();
    assert_eq!(ranged.len(), 1, "{ranged:?}");
    assert_eq!(ranged[0].range.as_deref(), Some(format!("bytes={kept}-").as_str()));
    for name in &names {
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), file_of(&repo, name), "{name}");
    }
    assert!(!partial.exists());
    assert!(!dir.join("pytorch_model.bin").exists() && !dir.join("README.md").exists(), "only what a model needs");
    assert_eq!(f.manifest.commit, COMMIT);
    assert!(hub.requests()[before..].iter().filter(|s| s.path.contains("/resolve/")).all(|s| s.path.contains(COMMIT)), "pinned to the commit");
    let (cached_dir, m) = r.cached(cache.path()).unwrap();
    assert_eq!((cached_dir, &m), (dir.clone(), &f.manifest));

    // A third fetch downloads nothing.
    let before = hub.requests().len();
    let f = fetch_repo(&r, &FetchPlan::default(), &o).unwrap();
    assert!(f.status.iter().all(|s| *s == FileStatus::Present));
    assert!(hub.requests()[before..].iter().all(|s| s.path.starts_with("/api/")), "{:?}", &hub.requests()[before..]);

    // A file damaged in the cache is found (the manifest vouches only for the size it recorded)
    // and fetched again.
    std::fs::write(dir.join("tokenizer.json"), b"short").unwrap();
    let f = fetch_repo(&r, &FetchPlan::default(), &o).unwrap();
    assert_eq!(f.status[2], FileStatus::Downloaded);
    assert_eq!(std::fs::read(dir.join("tokenizer.json")).unwrap(), file_of(&repo, "tokenizer.json"));
}

#[test]
fn a_sha256_mismatch_is_refused_and_leaves_nothing() {
    let mut repo = sharded_repo();
    repo.id = "acme/tampered".into();
    for f in &mut repo.files {
        f.cut_after = None;
        if f.name == "model-00001-of-00002.safetensors" {
            f.claimed_sha256 = Some("ab".repeat(32));
        }
    }
    let hub = FakeHub::start(vec![repo], None);
    let cache = tempfile::tempdir().unwrap();
    let r = HubRef::parse("acme/tampered").unwrap();
    let e = fetch_repo(&r, &FetchPlan::default(), &opts(&hub, cache.path(), None)).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, HubError::Hash { .. }), "{msg}");
    assert!(msg.contains("model-00001-of-00002.safetensors") && msg.contains(&"ab".repeat(32)) && msg.contains("refused"), "{msg}");
    let dir = r.cache_dir(cache.path());
    assert!(!dir.join("model-00001-of-00002.safetensors").exists());
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n.to_string_lossy().ends_with(".partial")).collect();
    assert!(left.is_empty(), "the bad bytes are removed: {left:?}");
    assert!(r.cached(cache.path()).is_none());
}

#[test]
fn gated_repos_need_the_token() {
    let mut repo = sharded_repo();
    repo.files.iter_mut().for_each(|f| f.cut_after = None);
    let hub = FakeHub::start(vec![repo], Some("hf_secret"));
    let cache = tempfile::tempdir().unwrap();
    let r = HubRef::parse("acme/tiny-sharded@main").unwrap();
    let e = fetch_repo(&r, &FetchPlan::default(), &opts(&hub, cache.path(), None)).unwrap_err().to_string();
    assert!(e.contains("HTTP 401") && e.contains("gated") && e.contains("HF_TOKEN is not set"), "{e}");
    let e = fetch_repo(&r, &FetchPlan::default(), &opts(&hub, cache.path(), Some("wrong"))).unwrap_err().to_string();
    assert!(e.contains("HF_TOKEN is set, but was refused"), "{e}");
    fetch_repo(&r, &FetchPlan::default(), &opts(&hub, cache.path(), Some("hf_secret"))).unwrap();
    // The token went to the hub, not to the storage the hub redirected to.
    for s in hub.requests().iter().filter(|s| s.path.starts_with("/cdn/")) {
        assert_eq!(s.authorization, None, "{s:?}");
    }
    assert!(hub.requests().iter().any(|s| s.authorization.as_deref() == Some("Bearer hf_secret")));
}

#[test]
fn missing_files_are_named_and_a_tokenizer_can_be_borrowed() {
    // A T5 v1.1-like repository: spiece.model and PyTorch weights only.
    let legacy = FakeRepo {
        id: "acme/legacy".into(),
        commit: COMMIT.into(),
        files: vec![FakeFile::git("config.json", r#"{"model_type": "t5"}"#), FakeFile::lfs("spiece.model", bytes(5000, 3)), FakeFile::lfs("pytorch_model.bin", bytes(5000, 4))],
    };
    let mut converted = legacy.clone();
    converted.id = "acme/converted".into();
    converted.files.push(FakeFile::lfs("model.safetensors", bytes(8000, 5)));
    let donor = FakeRepo {
        id: "acme/donor".into(),
        commit: "fedcba9876543210fedcba9876543210fedcba98".into(),
        files: vec![FakeFile::git("config.json", "{}"), FakeFile::git("tokenizer.json", r#"{"model": {}}"#)],
    };
    let hub = FakeHub::start(vec![legacy, converted, donor], None);
    let cache = tempfile::tempdir().unwrap();
    let o = opts(&hub, cache.path(), None);
    let e = fetch_repo(&HubRef::parse("acme/legacy").unwrap(), &FetchPlan::default(), &o).unwrap_err().to_string();
    assert!(e.contains("has no tokenizer.json") && e.contains("spiece.model"), "{e}");
    let borrow = FetchPlan { tokenizer_from: Some("acme/donor".into()), model_type: Some("t5".into()) };
    let e = fetch_repo(&HubRef::parse("acme/legacy").unwrap(), &borrow, &o).unwrap_err().to_string();
    assert!(e.contains("safetensors") && e.contains("pytorch_model.bin") && e.contains("save_pretrained"), "{e}");
    let f = fetch_repo(&HubRef::parse("acme/converted").unwrap(), &borrow, &o).unwrap();
    let tok = f.manifest.files.iter().find(|m| m.name == "tokenizer.json").unwrap();
    assert_eq!(tok.from.as_deref(), Some("acme/donor@fedcba9876543210fedcba9876543210fedcba98"));
    let wrong = FetchPlan { model_type: Some("gemma2".into()), ..borrow };
    let e = fetch_repo(&HubRef::parse("acme/converted").unwrap(), &wrong, &o).unwrap_err().to_string();
    assert!(e.contains("model_type \"t5\"") && e.contains("\"gemma2\""), "{e}");
    let e = fetch_repo(&HubRef::parse("acme/nope").unwrap(), &FetchPlan::default(), &o).unwrap_err().to_string();
    assert!(e.contains("HTTP 404") && e.contains("no such repository"), "{e}");
}

#[test]
fn offline_use_names_the_local_directory_alternative() {
    let cache = tempfile::tempdir().unwrap();
    let r = HubRef::parse("google/gemma-2-2b-it").unwrap();
    // A closed port on the loopback stands for an unreachable hub.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let o = HubOptions { endpoint: format!("http://127.0.0.1:{closed}"), token: None, offline: false, cache_root: cache.path().to_path_buf(), progress: false };
    for o in [o.clone(), HubOptions { offline: true, ..o }] {
        let e = fetch_repo(&r, &FetchPlan::default(), &o).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, HubError::Offline { .. }), "{msg}");
        assert!(msg.contains("cannot reach the hub") && msg.contains("--model DIR") && msg.contains("models.drafter: DIR"), "{msg}");
    }
}

/// `model.safetensors` split into two shards (tensors by name, first half / second half) and the
/// `model.safetensors.index.json` naming them, as `save_pretrained` shards a large checkpoint.
fn shard(st: &[u8]) -> (Vec<u8>, Vec<u8>, String) {
    let n = u64::from_le_bytes(st[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&st[8..8 + n]).unwrap();
    let data = &st[8 + n..];
    let mut names: Vec<&String> = header.keys().filter(|k| *k != "__metadata__").collect();
    names.sort();
    let (a, b) = names.split_at(names.len() / 2);
    let file = |part: &[&String]| {
        let (mut h, mut body) = (serde_json::Map::new(), Vec::new());
        for name in part {
            let mut t = header[name.as_str()].clone();
            let off = t["data_offsets"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect::<Vec<_>>();
            t["data_offsets"] = serde_json::json!([body.len(), body.len() + off[1] - off[0]]);
            body.extend_from_slice(&data[off[0]..off[1]]);
            h.insert(name.to_string(), t);
        }
        let mut json = serde_json::to_vec(&h).unwrap();
        json.resize(json.len().next_multiple_of(8), b' ');
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend(json);
        out.extend(body);
        out
    };
    let weight_map: serde_json::Map<String, serde_json::Value> = a
        .iter()
        .map(|n| (n.to_string(), "model-00001-of-00002.safetensors".into()))
        .chain(b.iter().map(|n| (n.to_string(), "model-00002-of-00002.safetensors".into())))
        .collect();
    (file(a), file(b), serde_json::json!({"metadata": {"total_size": data.len()}, "weight_map": weight_map}).to_string())
}

/// The tiny random Gemma 2 of the parity fixtures, sharded in two and served as a hub
/// repository, fetched, loaded from the cache directory through its index and decoded greedily:
/// the tokens equal transformers' (reference.json).
#[test]
fn a_fetched_sharded_checkpoint_loads_and_decodes() {
    #[allow(unused_imports)]
    use speccascade_core::{LanguageModel as _, Session as _};
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/paper/gemma2");
    let read = |n: &str| std::fs::read(fixture.join(n)).unwrap();
    let (first, second, index) = shard(&read("model.safetensors"));
    let repo = FakeRepo {
        id: "acme/tiny-gemma2".into(),
        commit: COMMIT.into(),
        files: vec![
            FakeFile::git("config.json", read("config.json")),
            FakeFile::lfs("tokenizer.json", read("tokenizer.json")),
            FakeFile::git("model.safetensors.index.json", index),
            FakeFile::lfs("model-00001-of-00002.safetensors", first),
            FakeFile::lfs("model-00002-of-00002.safetensors", second),
        ],
    };
    let hub = FakeHub::start(vec![repo], None);
    let cache = tempfile::tempdir().unwrap();
    let r = HubRef::parse("acme/tiny-gemma2").unwrap();
    let plan = FetchPlan { model_type: Some("gemma2".into()), ..FetchPlan::default() };
    let f = fetch_repo(&r, &plan, &opts(&hub, cache.path(), None)).unwrap();
    let loc = speccascade_models::registry::resolve_model(f.dir.to_str().unwrap()).unwrap();
    let speccascade_models::registry::ModelLocation::HfDir { weights, .. } = &loc else { panic!("{loc:?}") };
    assert_eq!(weights.len(), 2, "loaded through the index");
    let opts = speccascade_models::transformer::TransformerOptions { precision: speccascade_models::transformer::Precision::F32, ..Default::default() };
    let model = speccascade_models::transformer::load_model(&loc, &opts).unwrap().model;
    let tok = speccascade_models::tokenizer::Tokenizer::from_location(&loc).unwrap();
    let reference: serde_json::Value = serde_json::from_slice(&read("reference.json")).unwrap();
    let case = &reference["inputs"][0];
    let ids = tok.encode_prompt(case["text"].as_str().unwrap(), true).unwrap();
    let (mut session, mut row) = model.start(&ids).unwrap();
    let want: Vec<u32> = case["generated"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let mut got = Vec::new();
    for _ in 0..want.len() {
        let next = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 as u32;
        got.push(next);
        row = session.extend(&[next]).unwrap().row(0).to_vec();
    }
    assert_eq!(got, want);
}

#[test]
fn concurrent_fetches_of_one_repo_take_turns() {
    let mut repo = sharded_repo();
    repo.files.iter_mut().for_each(|f| f.cut_after = None);
    let hub = FakeHub::start(vec![repo.clone()], None);
    let cache = tempfile::tempdir().unwrap();
    let o = opts(&hub, cache.path(), None);
    let r = HubRef::parse("acme/tiny-sharded").unwrap();
    let results = std::thread::scope(|sc| {
        let a = sc.spawn(|| fetch_repo(&r, &FetchPlan::default(), &o));
        let b = sc.spawn(|| fetch_repo(&r, &FetchPlan::default(), &o));
        [a.join().unwrap(), b.join().unwrap()]
    });
    let statuses: Vec<Vec<FileStatus>> = results.into_iter().map(|x| x.unwrap().status).collect();
    // One downloaded everything; the other waited on the lock and found it all in place.
    assert!(statuses.iter().any(|s| s.iter().all(|x| *x == FileStatus::Downloaded)), "{statuses:?}");
    assert!(statuses.iter().any(|s| s.iter().all(|x| *x == FileStatus::Present)), "{statuses:?}");
    let cdn = hub.requests().iter().filter(|s| s.path.starts_with("/cdn/")).count();
    assert_eq!(cdn, 3, "each LFS file crossed the wire once");
    let dir = r.cache_dir(cache.path());
    assert_eq!(std::fs::read(dir.join("model-00002-of-00002.safetensors")).unwrap(), file_of(&repo, "model-00002-of-00002.safetensors"));
}
