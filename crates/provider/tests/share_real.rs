//! Sharing model calls on a real model: SmolLM2-135M as both drafter and verifier on a few
//! HumanEval problems; the shared sweep's records equal the `--no-share` sweep's (timing aside).
//!
//! Needs `speccascade models fetch smollm2-135m-instruct` and `speccascade data fetch humaneval`
//! (scripts/test fetches both); with SPECCASCADE_SKIP_MODEL_TESTS=1 it prints SKIPPED when absent.

use std::path::{Path, PathBuf};

use speccascade_harness::Experiment;
use speccascade_harness::record::Record;
use speccascade_harness::runner::{RunOptions, run};
use speccascade_harness::store::read_records;
use speccascade_provider::RealProvider;

fn cache() -> PathBuf {
    std::env::var("SPECCASCADE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/speccascade"))
}

fn experiment(out: &Path, precision: &str) -> (Experiment, String) {
    let src = format!(
        "name: share-real\noutput: {}\nmodels:\n  drafter: smollm2-135m-instruct\n  verifier: smollm2-135m-instruct\n  device: cpu\n  precision: {precision}\n\
         tasks:\n  - {{name: humaneval, examples: 2, seed: 3, max_new_tokens: 14}}\n\
         methods:\n  verifier:\n  spec_decode:\n  spec_cascade_chow: {{alpha: [0.3, 0.7]}}\n  spec_cascade_token_v3: {{alpha: [0.4]}}\n  token_cascade_chow: {{alpha: [0.5]}}\n\
         gamma: 3\ntemperature: [0, 1]\nseed: 1\ncost: 0.5\n",
        out.display()
    );
    (Experiment::from_str_named(&src, "share-real.yaml").unwrap(), src)
}

#[test]
fn shared_equals_unshared_on_smollm2() {
    let model = cache().join("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !model.exists() {
        if std::env::var("SPECCASCADE_SKIP_MODEL_TESTS").as_deref() == Ok("1") {
            eprintln!("SKIPPED: {} not fetched (SPECCASCADE_SKIP_MODEL_TESTS=1)", model.display());
            return;
        }
        panic!("{} is missing: run `speccascade models fetch smollm2-135m-instruct`", model.display());
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, sa) = experiment(&dir.path().join("shared"), "q8");
    let (b, sb) = experiment(&dir.path().join("direct"), "q8");
    let shared = run(&a, &sa, &RealProvider, &RunOptions::default()).unwrap();
    run(&b, &sb, &RealProvider, &RunOptions { share: false, ..RunOptions::default() }).unwrap();
    let strip = |p: &Path| read_records(p).unwrap().iter().map(Record::without_timing).collect::<Vec<_>>();
    let (ra, rb) = (strip(&dir.path().join("shared/records.jsonl")), strip(&dir.path().join("direct/records.jsonl")));
    // 2 examples × 2 temperatures × 7 configurations (the drafter alone is added to the grid).
    assert_eq!(ra.len(), 2 * 2 * 7);
    assert_eq!(rb.len(), ra.len());
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!(x.tokens, y.tokens, "{} {:?} T={}: tokens differ", x.method, x.alpha, x.temperature);
        assert_eq!(x, y, "{} {:?} T={}: records differ", x.method, x.alpha, x.temperature);
    }
    let m = &shared.merit;
    eprintln!("sharing factor: drafter {:.2}, verifier {:.2}", m.sharing_factor_drafter, m.sharing_factor_verifier);
    assert!(m.sharing_factor_verifier > 1.5, "{m:?}");
    // One prefill per example: both temperatures share the store (logits do not depend on T).
    assert_eq!(m.verifier.real_prefills, 2);
}
