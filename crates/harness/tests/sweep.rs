//! The store end to end on the synthetic pair: kill -9 + resume, shards + merge, summaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use speccascade_harness::record::Record;
use speccascade_harness::runner::{RunOptions, merge, run};
use speccascade_harness::store::{Store, read_records};
use speccascade_harness::summary::read_parquet;
use speccascade_harness::synthetic::SyntheticProvider;
use speccascade_harness::{Experiment, Shard};

fn experiment(out: &Path, step_ms: f64, examples: usize) -> (Experiment, String) {
    let src = format!(
        "name: test\noutput: {}\nmodels:\n  synthetic: {{vocab: 40, seed: 3, drafter_step_ms: {}, verifier_step_ms: {step_ms}}}\n\
         tasks:\n  - {{name: synthetic, examples: {examples}, max_new_tokens: 12, seed: 5}}\n\
         methods:\n  spec_decode:\n  spec_cascade_chow: {{alpha: [0.2, 0.6]}}\n  token_cascade_chow: {{alpha: 0.5}}\n\
         gamma: [2, 4]\ntemperature: [0, 1]\ntrials: 2\n",
        out.display(),
        step_ms / 5.0
    );
    let exp = Experiment::from_str_named(&src, "test.yaml").unwrap();
    (exp, src)
}

fn write_yaml(dir: &Path, name: &str, src: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, src).unwrap();
    p
}

fn stripped(path: &Path) -> Vec<Record> {
    read_records(path).unwrap().iter().map(Record::without_timing).collect()
}

fn assert_no_duplicates(recs: &[Record]) {
    let mut keys: Vec<_> = recs.iter().map(Record::key).collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "duplicate records");
}

/// Equal record sequences; on failure show the first difference only.
fn assert_same(got: &[Record], want: &[Record]) {
    assert_eq!(got.len(), want.len(), "record counts differ");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!("record {i} differs:\n got  {:?}\n want {:?}", got[i], want[i]);
    }
}

fn count_lines(p: &Path) -> usize {
    std::fs::read(p).map(|b| b.iter().filter(|&&c| c == b'\n').count()).unwrap_or(0)
}

#[test]
fn killed_and_resumed_run_equals_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_synthetic-sweep");

    // Uninterrupted reference, in process.
    let (exp_a, src_a) = experiment(&dir.path().join("a"), 0.5, 6);
    let ra = run(&exp_a, &src_a, &SyntheticProvider, &RunOptions::default()).unwrap();
    assert_eq!(ra.records_written, ra.records_planned);
    // 2 temperatures × (drafter, verifier, spec_decode ×2γ, chow ×2γ×2α, token_cascade) = 2 × 9 configs,
    // × 6 examples × 2 trials.
    assert_eq!(ra.records_planned, 2 * 9 * 6 * 2);
    let reference = stripped(&dir.path().join("a/records.jsonl"));

    // The same sweep, slowed down, killed with SIGKILL twice at different points, then resumed.
    let (_, src_b) = experiment(&dir.path().join("b"), 0.5, 6);
    let yaml_b = write_yaml(dir.path(), "b.yaml", &src_b);
    let records_b = dir.path().join("b/records.jsonl");
    let total = ra.records_planned;
    for (round, kill_at) in [total / 5, total / 2].into_iter().enumerate() {
        let mut cmd = Command::new(bin);
        cmd.arg(&yaml_b).stdout(Stdio::null()).stderr(Stdio::null());
        if round > 0 {
            cmd.arg("--resume");
        }
        let mut child = cmd.spawn().unwrap();
        let t = Instant::now();
        while count_lines(&records_b) < kill_at {
            assert!(t.elapsed() < Duration::from_secs(60), "child made no progress");
            assert!(child.try_wait().unwrap().is_none(), "child finished before it could be killed");
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let n = count_lines(&records_b);
        assert!(n >= kill_at && n < total, "killed after {n} of {total} records");
    }
    // Simulate a kill in the middle of a write: a partial last line.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&records_b).unwrap();
        f.write_all(b"{\"config\":\"dead").unwrap();
    }
    // Without --resume the store refuses to continue.
    let st = Command::new(bin).arg(&yaml_b).stdout(Stdio::null()).stderr(Stdio::piped()).output().unwrap();
    assert!(!st.status.success());
    assert!(String::from_utf8_lossy(&st.stderr).contains("--resume"));
    let st = Command::new(bin).arg(&yaml_b).arg("--resume").output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));

    let resumed = stripped(&records_b);
    assert_no_duplicates(&resumed);
    assert_eq!(resumed.len(), reference.len(), "records missing");
    // Identical except for timing fields (and the output directory, which is not in a record).
    assert_same(&resumed, &reference);
    // A second resume has nothing left to do.
    let st = Command::new(bin).arg(&yaml_b).arg("--resume").output().unwrap();
    let out: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(out["written"], 0);
    assert_eq!(out["skipped"].as_u64().unwrap() as usize, total);
}

#[test]
fn merged_shards_equal_an_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let (exp, src) = experiment(&dir.path().join("whole"), 0.0, 5);
    run(&exp, &src, &SyntheticProvider, &RunOptions::default()).unwrap();
    let whole = stripped(&dir.path().join("whole/records.jsonl"));

    let (exp_s, src_s) = experiment(&dir.path().join("sharded"), 0.0, 5);
    let mut per_shard = 0;
    for i in 0..3 {
        let opts = RunOptions { shard: Shard { index: i, count: 3 }, ..RunOptions::default() };
        let r = run(&exp_s, &src_s, &SyntheticProvider, &opts).unwrap();
        assert!(r.records_written > 0 && r.records_written < whole.len());
        per_shard += r.records_written;
        // Each shard's summaries compare against the verifier on the shard's own units.
        let sd = dir.path().join(format!("sharded/shards/{i}-of-3"));
        assert!(sd.join("summary.parquet").exists());
    }
    assert_eq!(per_shard, whole.len());
    // Merging with a shard missing is refused.
    std::fs::rename(dir.path().join("sharded/shards/2-of-3"), dir.path().join("sharded/shards/x")).unwrap();
    let e = merge(&exp_s, false).unwrap_err().to_string();
    assert!(e.contains("[2]") && e.contains("missing"), "{e}");
    std::fs::rename(dir.path().join("sharded/shards/x"), dir.path().join("sharded/shards/2-of-3")).unwrap();

    let (m, summaries) = merge(&exp_s, false).unwrap();
    assert_eq!(m.records, whole.len());
    assert_same(&stripped(&dir.path().join("sharded/records.jsonl")), &whole);
    // Byte for byte too, once timing fields are blanked (merge re-serialises records: floats must
    // round-trip exactly).
    let blank = |p: &Path| -> Vec<String> {
        read_records(p).unwrap().iter().map(|r| serde_json::to_string(&r.without_timing()).unwrap()).collect()
    };
    let raw_whole: Vec<String> = std::fs::read_to_string(dir.path().join("whole/records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["timing"] = serde_json::Value::Null;
            v["score_inputs"].to_string()
        })
        .collect();
    let raw_merged: Vec<String> = std::fs::read_to_string(dir.path().join("sharded/records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["score_inputs"].to_string())
        .collect();
    assert_eq!(raw_whole, raw_merged);
    assert_eq!(blank(&dir.path().join("sharded/records.jsonl")), blank(&dir.path().join("whole/records.jsonl")));
    assert_eq!(summaries.len(), 18);
}

#[test]
fn summaries_measure_against_the_verifier() {
    let dir = tempfile::tempdir().unwrap();
    let (exp, src) = experiment(&dir.path().join("s"), 2.0, 3);
    let r = run(&exp, &src, &SyntheticProvider, &RunOptions::default()).unwrap();
    let verifier: Vec<_> = r.summaries.iter().filter(|s| s.key.method == "verifier").collect();
    assert_eq!(verifier.len(), 2);
    for v in &verifier {
        assert!((v.rel_latency_wall - 1.0).abs() < 1e-12);
        assert!((v.rel_latency_modelled - 1.0).abs() < 1e-12);
        assert_eq!(v.matched_units, 6);
        assert!(v.tokens_per_s > 0.0);
    }
    // c measured from paced models: drafter steps cost about a fifth of verifier calls.
    let c = r.summaries[0].c;
    assert!(c > 0.05 && c < 0.7, "c = {c}");
    let drafter = r.summaries.iter().find(|s| s.key.method == "drafter").unwrap();
    assert!(drafter.rel_latency_wall < 0.8, "drafter relative latency {}", drafter.rel_latency_wall);
    // The parquet files hold the same numbers.
    let df = read_parquet(&dir.path().join("s/summary.parquet")).unwrap();
    assert_eq!(df.height(), r.summaries.len());
    let one = read_parquet(&dir.path().join(format!("s/summaries/{}.parquet", drafter.key.config))).unwrap();
    assert_eq!(one.height(), 1);
    let q = one.column("quality").unwrap().f64().unwrap().get(0).unwrap();
    assert_eq!(q, drafter.quality);
}

/// A store committed compressed (results/: `records.jsonl.gz` in place of `records.jsonl`) reads
/// the same records (the records-file cap applies to the decompressed bytes).
#[test]
fn a_compressed_store_reads_the_same_records() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let (exp, src) = experiment(&out, 0.0, 2);
    run(&exp, &src, &SyntheticProvider, &RunOptions::default()).unwrap();
    let store = speccascade_harness::Store::new(&out);
    let plain = store.read_all().unwrap();
    let jsonl = out.join("records.jsonl");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&std::fs::read(&jsonl).unwrap()).unwrap();
    std::fs::write(out.join("records.jsonl.gz"), gz.finish().unwrap()).unwrap();
    std::fs::remove_file(&jsonl).unwrap();
    let packed = store.read_all().unwrap();
    assert_eq!(packed.len(), plain.len());
    assert!(packed.iter().zip(&plain).all(|(a, b)| a.without_timing() == b.without_timing() && a.timing.wall_s == b.timing.wall_s));
}

/// `replay` charges the records again: at the store's own final table nothing changes (the run
/// already did that at its end); at a table whose every call took twice as long, every record's
/// model seconds double, and tokens, scores and ledgers stay as they were.
#[test]
fn replay_reprices_records_and_nothing_else() {
    use speccascade_harness::latency::CostTable;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let (exp, src) = experiment(&out, 1.0, 2);
    run(&exp, &src, &SyntheticProvider, &RunOptions::default()).unwrap();
    let before = read_records(&out.join("records.jsonl")).unwrap();
    let o = speccascade_harness::replay::replay_store(&out, None).unwrap();
    assert_eq!(o.replayed, before.len());
    let same = read_records(&out.join("records.jsonl")).unwrap();
    assert!(same.iter().zip(&before).all(|(a, b)| a == b), "the run already priced at its final table");

    let mut slow = CostTable::read(&out.join(CostTable::FILE)).unwrap();
    for m in slow.models.values_mut() {
        m.calls.iter_mut().chain(m.prefills.iter_mut()).for_each(|s| s.seconds *= 2.0);
    }
    let slow_path = dir.path().join("slow.json");
    std::fs::write(&slow_path, serde_json::to_vec(&slow).unwrap()).unwrap();
    speccascade_harness::replay::replay_store(&out, Some(&slow_path)).unwrap();
    let after = read_records(&out.join("records.jsonl")).unwrap();
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(a.without_timing().tokens, b.without_timing().tokens);
        assert_eq!(a.score, b.score);
        assert_eq!(a.ledger, b.ledger);
        let (ra, rb) = (a.replay.as_ref().unwrap(), b.replay.as_ref().unwrap());
        let model = |r: &speccascade_harness::latency::Replay| r.seconds - r.overhead_s;
        assert!((model(ra) - 2.0 * model(rb)).abs() <= 1e-9 * model(rb).max(1.0), "{} vs 2 × {}", model(ra), model(rb));
    }
}

/// `stop` raised in the middle of an example (as the binary's SIGINT / SIGTERM handler does) ends
/// the run at the end of the record in flight (not written), not at the example's end, cleanly
/// (summaries written, the report says it was interrupted), and `--resume` completes it into the
/// records of a run that was never stopped.
#[test]
fn a_run_stopped_mid_example_resumes_into_the_uninterrupted_records() {
    static STOP: AtomicBool = AtomicBool::new(false);
    let dir = tempfile::tempdir().unwrap();
    // Slow steps (a record takes tens of ms), so the stop lands inside the first example.
    let (whole, src) = experiment(&dir.path().join("whole"), 8.0, 1);
    let (cut, _) = experiment(&dir.path().join("cut"), 8.0, 1);
    let full = run(&whole, &src, &SyntheticProvider, &RunOptions::default()).unwrap();
    let per_example = full.records_written / 2; // two trials of one example
    let records = Store::new(&cut.output).records_path(Shard::WHOLE);
    let watcher = std::thread::spawn(move || {
        let t = Instant::now();
        while count_lines(&records) == 0 && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_micros(200));
        }
        STOP.store(true, Ordering::SeqCst);
    });
    let stopped = run(&cut, &src, &SyntheticProvider, &RunOptions { stop: Some(&STOP), ..RunOptions::default() }).unwrap();
    watcher.join().unwrap();
    assert!(stopped.interrupted, "the report says the run was interrupted");
    assert!(
        (1..per_example).contains(&stopped.records_written),
        "stopped after the record in flight, inside the first example: {} of its {per_example} records written",
        stopped.records_written
    );
    assert_eq!(stopped.records_left, full.records_written - stopped.records_written);
    let resumed = run(&cut, &src, &SyntheticProvider, &RunOptions { resume: true, ..RunOptions::default() }).unwrap();
    assert_eq!((resumed.records_written, resumed.records_left, resumed.interrupted), (stopped.records_left, 0, false));
    let sorted = |p: &Path| {
        let mut r = stripped(p);
        r.sort_by_key(Record::key);
        r
    };
    let got = sorted(&resumed.records_path);
    assert_no_duplicates(&got);
    assert_same(&got, &sorted(&full.records_path));
}

/// `stop_after` ends a run between records, cleanly (summaries written, nothing half-done), and
/// `--resume` completes it into the same records as a run that was never stopped.
#[test]
fn a_run_stopped_at_its_time_limit_resumes_into_the_uninterrupted_records() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, _) = experiment(&dir.path().join("whole"), 0.0, 3);
    let (cut, src) = experiment(&dir.path().join("cut"), 0.0, 3);
    let full = run(&whole, &src, &SyntheticProvider, &RunOptions::default()).unwrap();
    let stopped = run(&cut, &src, &SyntheticProvider, &RunOptions { stop_after: Some(Duration::ZERO), ..RunOptions::default() }).unwrap();
    assert_eq!((stopped.records_written, stopped.records_left), (0, full.records_written), "a zero limit starts no example");
    let resumed = run(&cut, &src, &SyntheticProvider, &RunOptions { resume: true, ..RunOptions::default() }).unwrap();
    assert_eq!((resumed.records_written, resumed.records_left), (full.records_written, 0));
    let sorted = |p: &Path| {
        let mut r = stripped(p);
        r.sort_by_key(Record::key);
        r
    };
    assert_same(&sorted(&resumed.records_path), &sorted(&full.records_path));
}
