//! Sharing model calls changes no record: a shared sweep equals a `--no-share` one token for token
//! and ledger count for ledger count (timing aside), computes fewer positions, and replays latency.

use std::path::Path;

use speccascade_harness::record::Record;
use speccascade_harness::runner::{RunOptions, run};
use speccascade_harness::store::read_records;
use speccascade_harness::synthetic::SyntheticProvider;
use speccascade_harness::Experiment;

fn experiment(out: &Path) -> (Experiment, String) {
    let src = format!(
        "name: share\noutput: {}\nmodels:\n  synthetic: {{vocab: 48, seed: 7, drafter_noise: 1.2, verifier_noise: 0.3, drafter_step_ms: 0.0, verifier_step_ms: 0.0}}\n\
         tasks:\n  - {{name: synthetic, examples: 5, max_new_tokens: 16, seed: 2}}\n\
         methods:\n  drafter:\n  verifier:\n  spec_decode:\n  spec_decode_lossy: {{alpha: [0.3, 0.7]}}\n  spec_cascade_chow: {{alpha: [0.2, 0.6]}}\n\
         \x20 spec_cascade_diff: {{alpha: [0.0, 0.3]}}\n  spec_cascade_token_v3: {{alpha: [0.2, 0.5]}}\n  token_cascade_chow: {{alpha: [0.3, 0.8]}}\n\
         \x20 oracle_cascade_diff: {{alpha: [0.2]}}\n  seq_cascade_chow: {{alpha: [0.5]}}\n\
         gamma: [2, 4]\ntemperature: [0, 1]\ntrials: 2\ncost: 0.2\n",
        out.display(),
    );
    (Experiment::from_str_named(&src, "share.yaml").unwrap(), src)
}

fn stripped(path: &Path) -> Vec<Record> {
    read_records(path).unwrap().iter().map(Record::without_timing).collect()
}

#[test]
fn shared_and_unshared_sweeps_write_identical_records() {
    let dir = tempfile::tempdir().unwrap();
    let (a, src_a) = experiment(&dir.path().join("shared"));
    let (b, src_b) = experiment(&dir.path().join("direct"));
    let shared = run(&a, &src_a, &SyntheticProvider, &RunOptions::default()).unwrap();
    let direct = run(&b, &src_b, &SyntheticProvider, &RunOptions { share: false, ..RunOptions::default() }).unwrap();
    let (ra, rb) = (stripped(&dir.path().join("shared/records.jsonl")), stripped(&dir.path().join("direct/records.jsonl")));
    assert_eq!(ra.len(), rb.len());
    assert!(ra.len() > 100, "{} records", ra.len());
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!(x, y, "record {:?} differs", x.key());
        assert!(x.calls.is_some());
    }
    // Sharing computed fewer positions and prefilled once per (example, trial): logits do not
    // depend on the temperature, so both temperatures' configurations share one store.
    let (m, d) = (&shared.merit, &direct.merit);
    assert_eq!(m.verifier.logical_positions, d.verifier.logical_positions);
    assert_eq!(d.verifier.computed_positions, d.verifier.logical_positions);
    assert!(m.sharing_factor_verifier > 2.0, "{m:?}");
    assert!(m.sharing_factor_drafter > 2.0, "{m:?}");
    assert_eq!(m.verifier.real_prefills, 5 * 2, "{m:?}");
    assert!(m.verifier_pass_equivalents.is_finite() && m.verifier_pass_equivalents > 0.0, "{m:?}");
    // Every record is replayed.
    let recs = read_records(&dir.path().join("shared/records.jsonl")).unwrap();
    assert!(recs.iter().all(|r| r.replay.as_ref().is_some_and(|x| x.seconds.is_finite() && x.seconds > 0.0)));
    assert!(dir.path().join("shared/cost_table.json").exists());
}

#[test]
fn resumed_shared_sweep_equals_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let (a, src_a) = experiment(&dir.path().join("a"));
    run(&a, &src_a, &SyntheticProvider, &RunOptions::default()).unwrap();
    let want = stripped(&dir.path().join("a/records.jsonl"));
    // Cut the file in the middle of an example (as a kill would) and resume.
    let (b, src_b) = experiment(&dir.path().join("b"));
    run(&b, &src_b, &SyntheticProvider, &RunOptions::default()).unwrap();
    let path = dir.path().join("b/records.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let keep = lines.len() / 2 + 3;
    std::fs::write(&path, lines[..keep].join("\n") + "\n" + &lines[keep][..10]).unwrap();
    let r = run(&b, &src_b, &SyntheticProvider, &RunOptions { resume: true, ..RunOptions::default() }).unwrap();
    assert_eq!(r.records_written, lines.len() - keep);
    let mut got = stripped(&path);
    let mut want = want;
    got.sort_by_key(Record::key);
    want.sort_by_key(Record::key);
    assert_eq!(got, want);
}

#[test]
fn validate_latency_appends_predicted_and_measured() {
    let dir = tempfile::tempdir().unwrap();
    let (a, src_a) = experiment(&dir.path().join("v"));
    let r = run(&a, &src_a, &SyntheticProvider, &RunOptions { validate_latency: 4, ..RunOptions::default() }).unwrap();
    assert_eq!(r.validations.len(), 4);
    // Unpaced synthetic calls take microseconds: a replay may price them at zero, never below.
    assert!(r.validations.iter().all(|v| v.tokens_match && v.measured_s > 0.0 && v.predicted_s.is_finite() && v.predicted_s >= 0.0), "{:?}", r.validations);
    // Each record ran DEFAULT_VALIDATE_REPEATS times; measured_s is a median of those runs.
    for v in &r.validations {
        assert_eq!(v.measured_runs_s.len(), speccascade_harness::runner::DEFAULT_VALIDATE_REPEATS, "{v:?}");
        let (lo, hi) = v.measured_runs_s.iter().fold((f64::INFINITY, 0f64), |(l, h), &x| (l.min(x), h.max(x)));
        assert!(lo <= v.measured_s && v.measured_s <= hi, "{v:?}");
        // The speed probe ran before every direct run (its threads would disturb unit tests
        // that count this process's CPU time, so it is checked here, in its own process).
        assert_eq!(v.probe_ratios.len(), v.measured_runs_s.len(), "{v:?}");
        assert!(v.probe_ratios.iter().all(|q| q.is_finite() && *q > 0.0), "{v:?}");
    }
    let back = speccascade_harness::runner::read_validations(&dir.path().join("v")).unwrap();
    assert_eq!(back, r.validations);
}
