//! The claims evaluation on crafted record sets whose verdicts are known, on a partial store (the
//! coverage warning), on the README generator, and on a real synthetic sweep.

use std::path::Path;

use speccascade_core::Ledger;
use speccascade_harness::record::{Record, Timing};
use speccascade_harness::runner::{RunOptions, run};
use speccascade_harness::synthetic::SyntheticProvider;
use speccascade_harness::{Experiment, Grid, Shard, Store};
use speccascade_report::claims::{Claim, ClaimVerdict, Cost};
use speccascade_report::report;

/// 60 examples; every cascade has three α points at relative latencies 0.4, 0.7 and 1.0 (lossy SD at
/// 0.4, 0.6, 0.8; lossless SD at 0.8), with 0/1 scores.
const CRAFTED: &str = "\
name: crafted
output: OUT
models: {synthetic: {vocab: 16}}
tasks: [{name: synthetic, examples: 60, max_new_tokens: 10}]
methods:
  spec_decode:
  spec_decode_lossy: {alpha: [0.1, 0.5, 0.9]}
  spec_cascade_chow: {alpha: [0.2, 0.5, 0.8]}
  spec_cascade_diff: {alpha: [0.2, 0.5, 0.8]}
  spec_cascade_opt: {alpha: [0.2, 0.5, 0.8]}
  spec_cascade_token_v3: {alpha: [0.2, 0.5, 0.8]}
gamma: 5
temperature: TEMP
cost: 1
hardware: test-machine
";

const N: usize = 60;

/// A crafted record set: `rank` orders the four rules (the extra examples only they solve: 6 per
/// rank step), `lossy_extra` the examples only lossy SD solves, `lossy_costs` its three points'
/// relative latencies; `examples` of the 60 have records.
struct Plan<'a> {
    temperature: f64,
    rank: &'a dyn Fn(&str) -> usize,
    lossy_extra: usize,
    lossy_costs: [f64; 3],
    examples: usize,
}

const LOSSY_COSTS: [f64; 3] = [0.4, 0.6, 0.8];
const CASCADE_COSTS: [f64; 3] = [0.4, 0.7, 1.0];

/// Which examples a configuration gets right, and its relative latency (verifier = 10 calls).
fn outcome(method: &str, alpha: Option<f64>, plan: &Plan) -> (Vec<bool>, f64) {
    // The point's index along the curve: α ascending = more deferral for these rules.
    let i = match alpha {
        Some(a) if a < 0.3 => 2,
        Some(a) if a < 0.6 => 1,
        Some(_) => 0,
        None => 0,
    };
    let base = [10, 16, 22][i];
    match method {
        "verifier" => ((0..N).map(|e| e < 22).collect(), 1.0),
        "drafter" => ((0..N).map(|e| e < 10).collect(), 0.2),
        "spec_decode" => ((0..N).map(|e| e < 22).collect(), 0.8),
        "spec_decode_lossy" => ((0..N).map(|e| e < base || (40..40 + plan.lossy_extra).contains(&e)).collect(), plan.lossy_costs[i]),
        m => {
            let extra = 6 * (plan.rank)(m);
            ((0..N).map(|e| e < base || (40..40 + extra).contains(&e)).collect(), CASCADE_COSTS[i])
        }
    }
}

fn crafted_store(dir: &Path, plan: &Plan) {
    let src = CRAFTED.replace("OUT", &dir.display().to_string()).replace("TEMP", &plan.temperature.to_string());
    let exp = Experiment::from_str_named(&src, "crafted.yaml").unwrap();
    let grid = Grid::expand(&exp);
    let store = Store::new(dir);
    store.clear_records(Shard::WHOLE).unwrap();
    store.write_meta(&src, &grid).unwrap();
    let (mut w, _) = store.open_records(Shard::WHOLE, true).unwrap();
    for ex in 0..plan.examples {
        for (h, c) in grid.hashes.iter().zip(&grid.configs) {
            let (right, rel) = outcome(c.method.name(), c.alpha, plan);
            let calls = (10.0 * rel).round() as u64;
            let ledger = Ledger { emitted: 10, verifier_calls: calls, verifier_calls_charged: calls, ..Ledger::default() };
            w.append(&Record {
                config: h.clone(),
                task: "synthetic".into(),
                method: c.method,
                alpha: c.alpha,
                gamma: c.gamma,
                temperature: c.temperature,
                trial: 0,
                unit: ex,
                example: ex,
                example_id: format!("synthetic/{ex}"),
                prompt_tokens: 5,
                tokens: vec![1; 10],
                text: None,
                stop: "max_tokens".into(),
                stop_string: None,
                input_limit: None,
                score: if right[ex] { 1.0 } else { 0.0 },
                metric: None,
                score_inputs: serde_json::Value::Null,
                ledger,
                calls: None,
                replay: None,
                trace: None,
                timing: Timing { wall_s: rel, hardware: "test-machine".into(), ..Timing::default() },
            })
            .unwrap();
        }
    }
}

fn verdict(claims: &[Claim], id: &str, cost: Cost) -> ClaimVerdict {
    claims.iter().find(|c| c.id == id && c.cost == cost).unwrap_or_else(|| panic!("no claim {id}: {claims:?}")).verdict
}

fn plan(temperature: f64, rank: &dyn Fn(&str) -> usize, lossy_extra: usize, lossy_costs: [f64; 3], examples: usize) -> Plan<'_> {
    Plan { temperature, rank, lossy_extra, lossy_costs, examples }
}

fn token_first(m: &str) -> usize {
    match m {
        "spec_cascade_chow" => 0,
        "spec_cascade_diff" => 1,
        "spec_cascade_opt" => 2,
        _ => 3,
    }
}

#[test]
fn the_papers_ordering_is_confirmed_where_the_records_say_so() {
    let dir = tempfile::tempdir().unwrap();
    crafted_store(dir.path(), &plan(1.0, &token_first, 0, LOSSY_COSTS, N));
    let out = report(dir.path()).unwrap();
    let c = &out.claims;
    assert!(out.coverage.complete, "{:?}", out.coverage);
    for cost in Cost::ALL {
        // (a) Each rule solves 6 more of 60 examples than the next at every point: Δ = 0.1.
        assert_eq!(verdict(c, "a", cost), ClaimVerdict::Confirmed, "{c:#?}");
        let a = c.iter().find(|x| x.id == "a" && x.cost == cost).unwrap();
        assert_eq!(a.comparisons.len(), 3);
        for k in &a.comparisons {
            assert!((k.diff - 0.1).abs() < 1e-9, "{k:?}");
            assert!(k.lo > 0.0 && k.lo <= 0.1 && k.hi >= 0.1, "{k:?}");
            assert_eq!(k.examples, N);
            assert!((k.cost_lo - 0.4).abs() < 1e-12 && (k.cost_hi - 1.0).abs() < 1e-12, "{k:?}");
        }
        // (b) T = 1: Token v3 solves 18 extra examples, lossy SD none: dominance.
        assert_eq!(verdict(c, "b", cost), ClaimVerdict::Confirmed, "{c:#?}");
        // (c) Token v3 at its dearest point: 18 only-it-right, 0 only-the-verifier-right; McNemar
        // p = 2^-17, times m = 12 configurations, far below 5 %.
        assert_eq!(verdict(c, "c", cost), ClaimVerdict::Confirmed);
        let e = c.iter().find(|x| x.id == "c" && x.cost == cost).unwrap().exceed.clone().unwrap();
        assert_eq!(e.tested, 12);
        let best = e.best.unwrap();
        assert_eq!(best.discordant, Some((18, 0)));
        assert!((best.diff - 0.3).abs() < 1e-9);
        // (d) Token v3 at latency 0.4 already beats the verifier (28 vs 22 of 60; McNemar 18/12:
        // indistinguishable): speed-up 2.5×; SpecDecode at 0.8: cost ratio 0.5 on every resample.
        assert_eq!(verdict(c, "d", cost), ClaimVerdict::Confirmed, "{c:#?}");
        let s = c.iter().find(|x| x.id == "d" && x.cost == cost).unwrap().speedup.clone().unwrap();
        assert!((s.speedup.unwrap() - 2.5).abs() < 1e-9, "{s:?}");
        assert!((s.spec_decode.unwrap() - 1.25).abs() < 1e-9, "{s:?}");
        assert!((s.ratio - 0.5).abs() < 1e-9 && (s.ratio_hi - 0.5).abs() < 1e-9, "{s:?}");
        assert!((s.crossing.unwrap() - 2.5).abs() < 1e-9 && s.crossing_lo > 1.0, "{s:?}");
    }
    let md = std::fs::read_to_string(dir.path().join("report/claims.md")).unwrap();
    assert!(md.contains("**confirmed**") && !md.contains("PARTIAL"), "{md}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("report/claims.json")).unwrap()).unwrap();
    assert_eq!(json["claims"].as_array().unwrap().len(), 8);
    assert_eq!(json["claims"][0]["verdict"], "confirmed");
}

#[test]
fn the_reversed_ordering_is_contradicted_and_a_tie_is_inconclusive() {
    let dir = tempfile::tempdir().unwrap();
    // Chow best, Token worst; lossy SD solves 24 extra examples (more than any cascade).
    let reversed = |m: &str| 3 - token_first(m);
    crafted_store(dir.path(), &plan(1.0, &reversed, 24, LOSSY_COSTS, N));
    let c = report(dir.path()).unwrap().claims;
    assert_eq!(verdict(&c, "a", Cost::Modelled), ClaimVerdict::Contradicted);
    assert_eq!(verdict(&c, "b", Cost::Modelled), ClaimVerdict::Contradicted);
    // Every rule equal, lossy SD equal to them at the same costs: Δ = 0 on every resample → neither
    // rule fires.
    crafted_store(dir.path(), &plan(1.0, &|_| 0, 0, CASCADE_COSTS, N));
    let c = report(dir.path()).unwrap().claims;
    assert_eq!(verdict(&c, "a", Cost::Modelled), ClaimVerdict::Inconclusive);
    assert_eq!(verdict(&c, "b", Cost::Modelled), ClaimVerdict::Inconclusive);
    // No cascade ever beats the verifier (the best equals it): contradicted.
    assert_eq!(verdict(&c, "c", Cost::Modelled), ClaimVerdict::Contradicted);
}

#[test]
fn at_t0_close_is_an_equivalence_test_against_a_stated_margin() {
    let dir = tempfile::tempdir().unwrap();
    let b_of = |p: &Plan| {
        crafted_store(dir.path(), p);
        report(dir.path()).unwrap().claims.into_iter().find(|x| x.id == "b" && x.cost == Cost::Modelled).unwrap()
    };
    // Token v3 and lossy SD solve the same examples at the same costs: Δ = 0 ⊂ ±0.2 × (22 − 10)/60.
    let b = b_of(&plan(0.0, &|_| 0, 0, CASCADE_COSTS, N));
    assert!(b.statement.contains("close"), "{b:?}");
    assert!(b.evidence.contains("margin ±0.040"), "{}", b.evidence);
    assert_eq!(b.verdict, ClaimVerdict::Confirmed, "{b:?}");
    // Lossy SD solves 12 more examples at every point: Δ ≈ −0.23, far outside the margin.
    let b = b_of(&plan(0.0, &|_| 0, 12, LOSSY_COSTS, N));
    assert!(b.comparisons[0].hi < -0.04, "{:?}", b.comparisons[0]);
    assert_eq!(b.verdict, ClaimVerdict::Contradicted, "{b:?}");
}

#[test]
fn a_partial_store_says_so_and_counts_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    crafted_store(dir.path(), &plan(1.0, &token_first, 0, LOSSY_COSTS, 20));
    let out = report(dir.path()).unwrap();
    let cv = &out.coverage;
    assert!(!cv.complete);
    assert_eq!(cv.planned_records, 18 * N);
    assert_eq!(cv.records, 18 * 20);
    assert_eq!(cv.configs_with_records, 18);
    assert_eq!(cv.incomplete_count, 18);
    assert_eq!(cv.tasks[0].examples_complete, 20);
    assert_eq!(cv.tasks[0].example_indices, "0–19");
    let md = std::fs::read_to_string(dir.path().join("report/claims.md")).unwrap();
    assert!(md.contains("**PARTIAL GRID (crafted).** 360 of 1080 planned records (33.3 %)"), "{md}");
    // The README of two stores: the partial one is flagged at the top, both are in the tables.
    let full = tempfile::tempdir().unwrap();
    crafted_store(full.path(), &plan(1.0, &token_first, 0, LOSSY_COSTS, N));
    let reports = vec![report(full.path()).unwrap(), out];
    let text = speccascade_report::readme::readme(&reports, "speccascade report A B --readme R");
    let warn = text.find("**Warning: 1 of 2 stores are incomplete.**").expect("the warning");
    assert!(warn < text.find("## What ran").unwrap(), "the warning comes first");
    assert!(text.contains("PARTIAL GRID (crafted)"));
    assert!(text.contains("| crafted | synthetic | 60 (the first 60 examples of the data set) | 20 (20) |"), "{text}");
    assert!(text.contains("## Table 2: ours beside the paper's") && text.contains("not transcribed"), "{text}");
    assert_eq!(text.matches("| (a) ").count(), 2 * 2, "two stores × two costs");
}

#[test]
fn claims_on_a_synthetic_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../experiments/synthetic.yaml"))
        .unwrap()
        .replace("output: results/synthetic", &format!("output: {}", dir.path().display()))
        .replace("  spec_cascade_diff:", "  spec_cascade_opt: {alpha: [-3.0, 0.0, 3.0]}\n  spec_cascade_diff:");
    let exp = Experiment::from_str_named(&src, "synthetic.yaml").unwrap();
    run(&exp, &src, &SyntheticProvider, &RunOptions::default()).unwrap();
    let out = report(dir.path()).unwrap();
    // 2 temperatures × 2 γ groups × 2 costs × 4 claims, every one decided by a rule.
    assert_eq!(out.claims.len(), 32, "{:#?}", out.claims.iter().map(|c| (c.id, c.temperature, c.gamma)).collect::<Vec<_>>());
    for c in &out.claims {
        assert_ne!(c.verdict, ClaimVerdict::NotEvaluable, "{c:?}");
        assert!(!c.reason.is_empty() && !c.evidence.is_empty(), "{c:?}");
    }
    for c in out.claims.iter().filter(|c| c.id == "a") {
        assert_eq!(c.comparisons.len(), 3, "{c:?}");
        assert!(c.comparisons.iter().all(|k| k.lo <= k.diff && k.diff <= k.hi && k.examples == 24), "{c:?}");
    }
}
