//! The report and the regression check on a hand-made result set (numbers known exactly) and on
//! a real synthetic sweep.

use std::path::Path;

use speccascade_core::Ledger;
use speccascade_harness::record::{Record, Timing};
use speccascade_harness::runner::{RunOptions, run};
use speccascade_harness::synthetic::SyntheticProvider;
use speccascade_harness::{Experiment, Grid, Shard, Store};
use speccascade_report::check::{check, read_baseline};
use speccascade_report::report;

const HAND: &str = "\
name: hand
output: OUT
models: {synthetic: {vocab: 16}}
tasks: [{name: synthetic, examples: 4, max_new_tokens: 10}]
methods:
  spec_cascade_chow: {alpha: [0.2, 0.5, 0.8]}
gamma: 4
cost: 0.5
hardware: test-machine
";

/// Per method/α: (drafter steps, verifier calls, wall seconds, scores of the 4 examples).
fn plan(method: &str, alpha: Option<f64>) -> (u64, u64, f64, [f64; 4]) {
    match (method, alpha) {
        ("verifier", _) => (0, 10, 1.0, [0.8; 4]),
        ("drafter", _) => (10, 0, 0.2, [0.4; 4]),
        (_, Some(0.2)) => (8, 6, 0.9, [0.9, 0.9, 0.8, 0.8]),
        (_, Some(0.5)) => (8, 4, 0.7, [0.8, 0.8, 0.7, 0.7]),
        (_, Some(0.8)) => (8, 2, 0.5, [0.6; 4]),
        _ => unreachable!(),
    }
}

/// Write the hand-made store; `slow` multiplies the chow methods' verifier calls (a doctored regression).
fn hand_store(dir: &Path, slow: u64) -> Experiment {
    hand_store_scored(dir, slow, |_, _, s| (s, serde_json::Value::Null))
}

/// Hypotheses and references of the BLEU variant: four segments of different lengths, so that
/// corpus BLEU (summed statistics) and the mean of sentence BLEU differ.
const BLEU_REFS: [&str; 4] = [
    "the cat sat on the mat near the door",
    "a quick brown fox jumps over the lazy dog today",
    "it is raining",
    "we will meet again at the station tomorrow morning",
];
const BLEU_HYPS: [&str; 4] = [
    "the cat sat on a mat near the door",
    "a quick brown fox jumped over the lazy dog",
    "it rains",
    "we meet again at the station tomorrow",
];

/// `score_inputs` as the `run` command stores them for a BLEU task, and the example's own score.
fn bleu_inputs(ex: usize) -> (f64, serde_json::Value) {
    use speccascade_tasks::{Metric, MetricOptions, Scored, score};
    let refs = vec![BLEU_REFS[ex].to_string()];
    let id = format!("wmt/{ex}");
    let scored = [Scored { id: &id, predictions: vec![BLEU_HYPS[ex]], references: &refs, code: None }];
    let r = score(Metric::Bleu, &scored, &MetricOptions::default()).unwrap();
    (r.per_example[0].score, serde_json::json!({"metric": r.metric, "prediction": BLEU_HYPS[ex], "references": refs, "extra": r.extra}))
}

/// The hand-made store with each record's score and `score_inputs` from `scored(method, example,
/// planned score)`.
fn hand_store_scored(dir: &Path, slow: u64, scored: impl Fn(&str, usize, f64) -> (f64, serde_json::Value)) -> Experiment {
    let src = HAND.replace("OUT", &dir.display().to_string());
    let exp = Experiment::from_str_named(&src, "hand.yaml").unwrap();
    let grid = Grid::expand(&exp);
    let store = Store::new(dir);
    store.clear_records(Shard::WHOLE).unwrap();
    store.write_meta(&src, &grid).unwrap();
    let (mut w, _) = store.open_records(Shard::WHOLE, true).unwrap();
    for ex in 0..4 {
        for (h, c) in grid.hashes.iter().zip(&grid.configs) {
            let (steps, mut calls, wall, scores) = plan(c.method.name(), c.alpha);
            if c.method != "verifier" {
                calls *= slow;
            }
            let decisions = if c.method == "spec_cascade_chow" { 10 } else { 0 };
            let ledger = Ledger {
                emitted: 10,
                drafter_steps: steps,
                verifier_calls: calls,
                verifier_calls_charged: calls,
                decisions,
                deferrals: decisions.min(calls),
                ..Ledger::default()
            };
            w.append(&Record {
                config: h.clone(),
                task: "synthetic".into(),
                method: c.method.clone(),
                alpha: c.alpha,
                gamma: c.gamma,
                temperature: c.temperature,
                trial: 0,
                unit: ex,
                example: ex,
                example_id: format!("synthetic/{ex}"),
                prompt_tokens: 5,
                input_limit: None,
                tokens: vec![1; 10],
                text: None,
                stop: "max_tokens".into(),
                stop_string: None,
                score: scored(c.method.name(), ex, scores[ex]).0,
                metric: None,
                score_inputs: scored(c.method.name(), ex, scores[ex]).1,
                ledger,
                calls: None,
                replay: None,
                trace: None,
                timing: Timing { wall_s: wall, hardware: "test-machine".into(), ..Timing::default() },
            })
            .unwrap();
        }
    }
    exp
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn table2_numbers_and_intervals_on_a_hand_made_result_set() {
    let dir = tempfile::tempdir().unwrap();
    hand_store(dir.path(), 1);
    let out = report(dir.path()).unwrap();
    let row = |m: &str, a: Option<f64>| out.rows.iter().find(|r| r.key.method == m && r.key.alpha == a).unwrap();
    // Relative latencies, modelled with c = 0.5: cost = 0.5 · steps + calls, verifier = 10.
    assert!(close(row("drafter", None).rel_latency_modelled, 0.5));
    assert!(close(row("spec_cascade_chow", Some(0.2)).rel_latency_modelled, 1.0));
    assert!(close(row("spec_cascade_chow", Some(0.5)).rel_latency_modelled, 0.8));
    assert!(close(row("spec_cascade_chow", Some(0.8)).rel_latency_wall, 0.5));
    // Quality and the bootstrap interval: scores 0.9, 0.9, 0.8, 0.8 → mean 0.85; a resample of
    // four 0.8s has probability 1/16 > 2.5 %, so the interval is exactly [0.8, 0.9].
    let r = row("spec_cascade_chow", Some(0.2));
    assert!(close(r.quality, 0.85) && close(r.quality_lo, 0.8) && close(r.quality_hi, 0.9), "{r:?}");
    let v = row("verifier", None);
    assert!(close(v.quality_lo, 0.8) && close(v.quality_hi, 0.8));
    // Table 2: the α-ordered curve (1.0, 0.85) → (0.8, 0.75) crosses Q_v = 0.8 halfway: L = 0.9.
    assert_eq!(out.table2.len(), 1);
    let t = &out.table2[0];
    assert!(close(t.verifier_quality, 0.8));
    assert!(close(t.speedup_modelled.unwrap(), 1.0 / 0.9), "{t:?}");
    // Wall: (0.9, 0.85) → (0.7, 0.75) crosses at 0.8.
    assert!(close(t.speedup_wall.unwrap(), 1.25), "{t:?}");
    assert!(close(t.best_quality_modelled.unwrap(), 0.85));
    assert!(close(t.best_quality_wall.unwrap(), 0.85));
    // Files: tables and figures.
    for f in ["table.csv", "table.md", "table2.csv", "table2.md"] {
        assert!(dir.path().join("report").join(f).exists(), "{f}");
    }
    let csv = std::fs::read_to_string(dir.path().join("report/table2.csv")).unwrap();
    assert!(
        csv.starts_with("task,method,temperature,top_p,gamma,bonus,seed,trials,points,verifier_quality,speedup_wall,speedup_wall_ci_low,"),
        "{csv}"
    );
    assert!(csv.contains("synthetic,spec_cascade_chow,1.0,1.0,4,exact,0,1,3,0.8,1.25,"), "{csv}");
    let md = std::fs::read_to_string(dir.path().join("report/table2.md")).unwrap();
    assert!(md.contains("1.11×") && md.contains("1.25×"), "{md}");
    let mut pngs: Vec<String> = out
        .files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "png"))
        .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    pngs.sort();
    // Quality vs latency (modelled, wall), vs rejection rate and vs verifier calls; no deferral
    // figure (none of its methods ran), no acceptance curves or accept-length histogram, since the
    // hand-made ledgers have no blocks; no speed-up figures (one T, one γ).
    assert_eq!(
        pngs,
        [
            "quality_vs_calls_synthetic_T1_g4",
            "quality_vs_latency_modelled_synthetic_T1_g4",
            "quality_vs_latency_wall_synthetic_T1_g4",
            "quality_vs_rejection_synthetic_T1_g4"
        ],
        "{:?}",
        out.files
    );
    let r = row("spec_cascade_chow", Some(0.5));
    assert!(close(r.deferral_rate, 0.4));
    // Paired comparisons against the verifier (0.8 on every example): α = 0.2 scores
    // [0.9, 0.9, 0.8, 0.8] (Δ = 0.05, a resample of only the last two examples gives Δ = 0 with
    // probability 1/16 > 2.5 %, so the interval reaches 0: indistinguishable); α = 0.5 scores
    // [0.8, 0.8, 0.7, 0.7] (Δ = −0.05, interval [−0.1, 0]: indistinguishable); α = 0.8 scores 0.6
    // everywhere (Δ = −0.2 on every resample: worse).
    use speccascade_report::stats::Verdict;
    let p = |a: f64| row("spec_cascade_chow", Some(a)).vs_verifier.clone().unwrap();
    assert!(close(p(0.2).diff, 0.05) && close(p(0.2).diff_lo, 0.0) && close(p(0.2).diff_hi, 0.1), "{:?}", p(0.2));
    assert_eq!(p(0.2).verdict, Verdict::Indistinguishable);
    assert_eq!(p(0.5).verdict, Verdict::Indistinguishable);
    assert!(close(p(0.8).diff, -0.2) && close(p(0.8).diff_hi, -0.2));
    assert_eq!(p(0.8).verdict, Verdict::Worse);
    assert!(p(0.8).mcnemar_p.is_none(), "scores are not 0/1");
    // Table 2's second reading: the fastest point not significantly worse is α = 0.5
    // (modelled 0.8, wall 0.7); the crossing's bootstrap interval covers the point estimate.
    assert!(close(t.speedup_indistinguishable_modelled.unwrap(), 1.25));
    assert!(close(t.speedup_indistinguishable_wall.unwrap(), 1.0 / 0.7));
    let s = t.speedup_modelled.unwrap();
    assert!(t.speedup_modelled_lo <= s && s <= t.speedup_modelled_hi, "{t:?}");
    for f in out.files.iter().filter(|f| f.extension().is_some_and(|e| e == "png" || e == "svg")) {
        assert!(std::fs::metadata(f).unwrap().len() > 5000, "{}", f.display());
    }
}

#[test]
fn check_passes_on_itself_and_fails_on_a_doctored_regression() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("baseline.json");
    hand_store(dir.path(), 1);
    // No baseline yet: an error, not a pass.
    assert!(check(dir.path(), &base, 0.1, false).is_err());
    let o = check(dir.path(), &base, 0.1, true).unwrap();
    assert!(o.updated);
    let b = read_baseline(&base).unwrap();
    assert_eq!(b.quality.len(), 5);
    assert_eq!(b.table2.len(), 1);
    let o = check(dir.path(), &base, 0.1, false).unwrap();
    assert!(o.passed() && o.compared == 6, "{o:?}");

    // Doctored: the cascade now makes twice the verifier calls → speed-up lost.
    hand_store(dir.path(), 2);
    let o = check(dir.path(), &base, 0.1, false).unwrap();
    assert!(!o.passed());
    let whats: Vec<&str> = o.offenders.iter().map(|x| x.what.as_str()).collect();
    assert!(whats.contains(&"speed-up (modelled)"), "{whats:?}");
    let table = o.table();
    assert!(table.contains("| speed-up (modelled) | synthetic | spec_cascade_chow |"), "{table}");
    // A baseline recorded on other hardware: with a fixed c, qualities and modelled speed-ups are
    // machine-free and still compared (and still regressed); wall-clock speed-ups are not.
    let other = std::fs::read_to_string(&base).unwrap().replace("test-machine", "other-machine");
    std::fs::write(&base, &other).unwrap();
    let o = check(dir.path(), &base, 0.1, false).unwrap();
    assert!(o.offenders.iter().any(|x| x.what == "speed-up (modelled)"));
    assert!(!o.offenders.iter().any(|x| x.what == "speed-up (wall)"), "{:?}", o.offenders);
    hand_store(dir.path(), 1);
    assert!(check(dir.path(), &base, 0.1, false).unwrap().passed());
    // A baseline of another model pair has nothing like-for-like: an error, not a pass.
    std::fs::write(&base, other.replace("synthetic drafter", "another drafter")).unwrap();
    let e = check(dir.path(), &base, 0.1, false).unwrap_err().to_string();
    assert!(e.contains("no like-for-like entries"), "{e}");
}

#[test]
fn a_synthetic_sweep_reports_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../experiments/synthetic.yaml"))
        .unwrap()
        .replace("output: results/synthetic", &format!("output: {}", dir.path().display()))
        .replace("examples: 24", "examples: 6");
    let exp = Experiment::from_str_named(&src, "synthetic.yaml").unwrap();
    run(&exp, &src, &SyntheticProvider, &RunOptions::default()).unwrap();
    let out = report(dir.path()).unwrap();
    assert_eq!(out.rows.len(), Grid::expand(&exp).len());
    // Lossless speculative decoding has the verifier's quality... up to sampling: at T = 1 it is
    // distributed as the verifier, not equal to it; the drafter is worse than the verifier.
    let q = |m: &str| out.rows.iter().find(|r| r.key.method == m).unwrap().quality;
    assert!(q("drafter") < q("verifier"));
    assert!(out.table2.iter().any(|t| t.method == "spec_cascade_chow"));
    assert!(out.files.iter().any(|f| f.to_string_lossy().contains("quality_vs_latency_modelled_synthetic")));
}

#[test]
fn bleu_quality_is_corpus_bleu_of_the_outputs_not_mean_sentence_bleu() {
    let dir = tempfile::tempdir().unwrap();
    hand_store_scored(dir.path(), 1, |_, ex, _| bleu_inputs(ex));
    let out = report(dir.path()).unwrap();
    let refs: Vec<Vec<String>> = BLEU_REFS.iter().map(|r| vec![r.to_string()]).collect();
    let hyps: Vec<String> = BLEU_HYPS.iter().map(|h| h.to_string()).collect();
    let corpus = speccascade_tasks::metrics::bleu::corpus_bleu(&hyps, &refs).score;
    let mean_sentence = (0..4).map(|ex| bleu_inputs(ex).0).sum::<f64>() / 4.0;
    assert!((corpus - mean_sentence).abs() > 1.0, "the fixture must tell the two apart: {corpus} vs {mean_sentence}");
    for r in &out.rows {
        assert!((r.quality - corpus).abs() < 1e-9, "{}: quality {} but corpus BLEU {corpus}", r.key.method, r.quality);
        assert!(r.quality_lo <= r.quality && r.quality <= r.quality_hi, "{r:?}");
        assert!(r.quality_hi - r.quality_lo > 1.0, "resampling four segments must move BLEU: {r:?}");
    }
    // The harness's own summaries (parquet, table2) use the same corpus score.
    let t = &out.table2[0];
    assert!((t.verifier_quality - corpus).abs() < 1e-9, "{t:?}");
}
