//! The sweep commands of the binary on the synthetic pair: run (+ kill -9 + --resume), shards +
//! merge, report (+ --readme), check (exit 1 on a doctored regression, also with a fixed c and b(k)), slurm;
//! all with --json.

use std::path::Path;
use std::process::{Command, Output};

fn sc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_speccascade")).args(args).output().expect("speccascade runs")
}

fn ok(args: &[&str]) -> serde_json::Value {
    let o = sc(args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn experiment(dir: &Path) -> String {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../experiments/synthetic.yaml"))
        .unwrap()
        .replace("output: results/synthetic", &format!("output: {}", dir.join("out").display()))
        .replace("examples: 24", "examples: 6");
    let p = dir.join("exp.yaml");
    std::fs::write(&p, src).unwrap();
    p.display().to_string()
}

#[test]
fn sweep_commands_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path());
    let out = dir.path().join("out").display().to_string();

    let r = ok(&["run", &exp, "--json"]);
    let planned = r["records_planned"].as_u64().unwrap();
    assert_eq!(r["records_written"].as_u64().unwrap(), planned);
    // Running again without --resume is refused; with it, nothing is left to do.
    let again = sc(&["run", &exp]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    assert_eq!(ok(&["run", &exp, "--resume", "--json"])["records_written"], 0);

    // Shards of the same sweep elsewhere, merged.
    let sharded = dir.path().join("sharded");
    let exp2 = std::fs::read_to_string(&exp).unwrap().replace(&out, &sharded.display().to_string());
    let exp2_path = dir.path().join("exp2.yaml");
    std::fs::write(&exp2_path, exp2).unwrap();
    for i in 0..2 {
        ok(&["run", exp2_path.to_str().unwrap(), "--shard", &format!("{i}/2"), "--json"]);
    }
    let m = ok(&["merge", sharded.to_str().unwrap(), "--json"]);
    assert_eq!(m["merge"]["records"].as_u64().unwrap(), planned);

    // Report: tables and figures.
    let rep = ok(&["report", &out, "--json"]);
    assert!(rep["files"].as_array().unwrap().iter().any(|f| f.as_str().unwrap().ends_with(".png")));
    assert!(!rep["table2"].as_array().unwrap().is_empty());

    // Check: record a baseline, pass against it, fail (exit 1) against a doctored one.
    let base = dir.path().join("baseline.json");
    let b = base.to_str().unwrap();
    assert!(!sc(&["check", &out, "--baseline", b]).status.success(), "no baseline must not pass");
    ok(&["check", &out, "--baseline", b, "--update", "--json"]);
    assert_eq!(ok(&["check", &out, "--baseline", b, "--json"])["offenders"].as_array().unwrap().len(), 0);
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&base).unwrap()).unwrap();
    for e in v["quality"].as_array_mut().unwrap() {
        if e["key"]["method"] == "spec_cascade_token_v3" {
            let q = e["quality"].as_f64().unwrap();
            e["quality"] = serde_json::json!(q + 0.5 * q.abs()); // the baseline was much better
        }
    }
    std::fs::write(&base, serde_json::to_string(&v).unwrap()).unwrap();
    let bad = sc(&["check", &out, "--baseline", b]);
    assert_eq!(bad.status.code(), Some(1));
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(text.contains("REGRESSION") && text.contains("| quality | synthetic | spec_cascade_token_v3 |"), "{text}");

    // Slurm script.
    let s = ok(&["slurm", &exp, "--shards", "4", "--json"]);
    let script = std::fs::read_to_string(s["script"].as_str().unwrap()).unwrap();
    assert!(script.contains("#SBATCH --array=0-3"));
}

#[test]
fn a_bad_experiment_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path());
    std::fs::write(&exp, std::fs::read_to_string(&exp).unwrap().replace("gamma: [1, 4]", "gamma: [1, 0]")).unwrap();
    let o = sc(&["run", &exp]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{exp}:")) && err.contains("gamma") && err.contains("1..=64"), "{err}");
}

/// The synthetic experiment with a fixed c and a fixed block-cost curve b(k) (`cost: {c, block}`).
fn fixed_cost_experiment(dir: &Path) -> String {
    let p = experiment(dir);
    let src = std::fs::read_to_string(&p).unwrap().replace("cost: 0.2 ", "cost: {c: 0.2, block: [1.0, 1.3, 1.6, 1.9, 2.2]} ");
    assert!(src.contains("block: [1.0"), "the synthetic experiment's cost line changed: {src}");
    std::fs::write(&p, src).unwrap();
    p
}

/// `check` on modelled numbers with a fixed c and b(k): they are machine-free, so a baseline
/// recorded on another machine still guards them, and a doctored baseline (a better b(k) speed-up
/// than the run reaches) makes `check` exit 1. scripts/test does the same on the real-model slice
/// (experiments/reproduction/ci_slice.yaml).
#[test]
fn a_doctored_fixed_cost_baseline_fails_the_check_on_any_machine() {
    let dir = tempfile::tempdir().unwrap();
    let exp = fixed_cost_experiment(dir.path());
    let out = dir.path().join("out").display().to_string();
    ok(&["run", &exp, "--json"]);
    // The run logged its figures of merit; the README generator sums them.
    let runs = std::fs::read_to_string(dir.path().join("out/runs.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(runs.lines().next().unwrap()).unwrap();
    assert!(line["merit"]["sharing_factor_verifier"].as_f64().unwrap() >= 1.0, "{line}");
    let readme = dir.path().join("README.md");
    ok(&["report", &out, "--readme", readme.to_str().unwrap(), "--json"]);
    let text = std::fs::read_to_string(&readme).unwrap();
    assert!(text.contains("## The paper's claims") && text.contains("| synthetic | 1 | "), "{text}");
    let rep = ok(&["report", &out, "--json"]);
    // Every Table-2 line has a b(k) speed-up computed from the fixed curve.
    let t2 = rep["table2"].as_array().unwrap();
    assert!(t2.iter().any(|t| t["speedup_modelled_bk"].is_f64()), "{t2:?}");
    let base = dir.path().join("baseline.json");
    let b = base.to_str().unwrap();
    ok(&["check", &out, "--baseline", b, "--update", "--json"]);
    // Recorded "elsewhere": the fixed-cost numbers are still compared, and still pass.
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&base).unwrap()).unwrap();
    for e in v["table2"].as_array_mut().unwrap() {
        assert_eq!(e["block_fixed"], true);
        e["hardware"] = serde_json::json!("another machine");
    }
    std::fs::write(&base, serde_json::to_string(&v).unwrap()).unwrap();
    let o = ok(&["check", &out, "--baseline", b, "--json"]);
    assert_eq!(o["offenders"].as_array().unwrap().len(), 0, "{o}");
    assert!(o["compared"].as_u64().unwrap() > 0);
    // Doctored: the baseline claims a 50 % better b(k) speed-up for Token v3.
    let mut doctored = 0;
    for e in v["table2"].as_array_mut().unwrap() {
        if e["key"]["method"] == "spec_cascade_token_v3" && e["speedup_modelled_bk"].is_f64() {
            e["speedup_modelled_bk"] = serde_json::json!(e["speedup_modelled_bk"].as_f64().unwrap() * 1.5);
            doctored += 1;
        }
    }
    assert!(doctored > 0);
    std::fs::write(&base, serde_json::to_string(&v).unwrap()).unwrap();
    let bad = sc(&["check", &out, "--baseline", b]);
    assert_eq!(bad.status.code(), Some(1), "{}", String::from_utf8_lossy(&bad.stdout));
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(text.contains("REGRESSION") && text.contains("| speed-up (modelled b(k)) | synthetic | spec_cascade_token_v3 |"), "{text}");
}
