//! `batch: N` changes no record: N examples decoded at once, their model calls met in one
//! `extend_batch` per model, write the records of a batch-1 run (timing aside), resume into them,
//! stop cleanly, fail cleanly, and refuse the settings they cannot honour.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use speccascade_core::{LanguageModel, Logits, ModelError, Session, TokenId};
use speccascade_harness::config::{ModelsSpec, TaskSpec};
use speccascade_harness::provider::{Pair, Provider};
use speccascade_harness::record::Record;
use speccascade_harness::runner::{RunOptions, run};
use speccascade_harness::store::read_records;
use speccascade_harness::synthetic::{SyntheticProvider, synthetic_pair};
use speccascade_harness::provider::Task;
use speccascade_harness::{Experiment, HarnessError};

/// A grid of every kind of method (drafting, lossless and lossy verification, sequence-level
/// deferral) at both temperatures, 5 examples × 2 trials, with `batch` and `tail` appended.
fn experiment(out: &Path, batch: usize, step_ms: f64, tail: &str) -> (Experiment, String) {
    let src = format!(
        "name: batch\noutput: {}\nmodels:\n  synthetic: {{vocab: 48, seed: 7, drafter_noise: 1.2, verifier_noise: 0.3, drafter_step_ms: {}, verifier_step_ms: {step_ms}}}\n\
         tasks:\n  - {{name: synthetic, examples: 5, max_new_tokens: 16, seed: 2}}\n\
         methods:\n  drafter:\n  verifier:\n  spec_decode:\n  spec_decode_lossy: {{alpha: [0.3]}}\n  spec_cascade_chow: {{alpha: [0.2, 0.6]}}\n\
         \x20 spec_cascade_token_v3: {{alpha: [0.5]}}\n  token_cascade_chow: {{alpha: [0.3]}}\n  seq_cascade_chow: {{alpha: [0.5]}}\n\
         gamma: [2, 4]\ntemperature: [0, 1]\ntrials: 2\nbatch: {batch}\n{tail}",
        out.display(),
        step_ms / 4.0
    );
    (Experiment::from_str_named(&src, "batch.yaml").unwrap(), src)
}

fn sorted(path: &Path) -> Vec<Record> {
    let mut r: Vec<Record> = read_records(path).unwrap().iter().map(Record::without_timing).collect();
    r.sort_by_key(Record::key);
    r
}

/// The records of the grid at batch 1 (in `dir/one`), sorted and without timing.
fn batch_one_records(dir: &Path, step_ms: f64) -> Vec<Record> {
    let (one, src) = experiment(&dir.join("one"), 1, step_ms, "cost: 0.2\n");
    sorted(&run(&one, &src, &SyntheticProvider, &RunOptions::default()).unwrap().records_path)
}

fn assert_same(got: &[Record], want: &[Record]) {
    assert_eq!(got.len(), want.len(), "record counts differ");
    let mut keys: Vec<_> = got.iter().map(Record::key).collect();
    keys.dedup();
    assert_eq!(keys.len(), got.len(), "duplicate records");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!("record {i} differs:\n got  {:?}\n want {:?}", got[i], want[i]);
    }
}

#[test]
fn batched_sweeps_write_the_records_of_batch_one() {
    let dir = tempfile::tempdir().unwrap();
    let (one, src) = experiment(&dir.path().join("one"), 1, 0.0, "cost: 0.2\n");
    let base = run(&one, &src, &SyntheticProvider, &RunOptions::default()).unwrap();
    let want = sorted(&base.records_path);
    assert!(want.len() > 100, "{} records", want.len());
    assert_eq!(base.merit.batch, 1);
    // 3 and 4 split the 10 units unevenly; 16 is more workers than units.
    for batch in [3, 4, 16] {
        let (exp, src) = experiment(&dir.path().join(format!("b{batch}")), batch, 0.0, "cost: 0.2\n");
        let r = run(&exp, &src, &SyntheticProvider, &RunOptions::default()).unwrap();
        assert_eq!((r.records_written, r.records_left, r.interrupted), (want.len(), 0, false));
        assert_same(&sorted(&r.records_path), &want);
        // Every record has its calls, and none a replay (a batched call is timed per pass).
        let raw = read_records(&r.records_path).unwrap();
        assert!(raw.iter().all(|x| x.calls.is_some() && x.replay.is_none()));
        // Sharing still worked (the logical positions equal batch 1's, fewer were computed).
        let m = &r.merit;
        assert_eq!(m.batch, batch);
        assert_eq!(m.batch_passes.len(), 2, "{m:?}");
        // The drafter's queue is served first, so the workers meet at the verifier: its passes
        // hold most of them (10 units: 16 workers are 10).
        let per_pass = |p: &speccascade_harness::runner::BatchPasses| p.sessions as f64 / p.passes.max(1) as f64;
        let (d, v) = (&m.batch_passes[0], &m.batch_passes[1]);
        assert!(per_pass(d) > 1.3, "batch {batch}: {d:?}");
        assert!(per_pass(v) > 0.6 * batch.min(10) as f64, "batch {batch}: {v:?}");
        assert_eq!(m.verifier.logical_positions, base.merit.verifier.logical_positions);
        assert_eq!(m.drafter.logical_positions, base.merit.drafter.logical_positions);
        assert!(m.sharing_factor_verifier > 1.5, "{m:?}");
        let text = speccascade_harness::runner::merit_text(m);
        assert!(text.contains(&format!("batch {batch}:")), "{text}");
    }
}

#[test]
fn a_cut_batched_store_resumes_into_the_records_of_batch_one() {
    let dir = tempfile::tempdir().unwrap();
    let want = batch_one_records(dir.path(), 0.0);
    let (exp, src) = experiment(&dir.path().join("cut"), 4, 0.0, "cost: 0.2\n");
    let r = run(&exp, &src, &SyntheticProvider, &RunOptions::default()).unwrap();
    // Cut the file mid-line (a kill), the kept records from several examples in flight at once.
    let text = std::fs::read_to_string(&r.records_path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let keep = lines.len() / 3;
    std::fs::write(&r.records_path, lines[..keep].join("\n") + "\n" + &lines[keep][..20]).unwrap();
    let resumed = run(&exp, &src, &SyntheticProvider, &RunOptions { resume: true, ..RunOptions::default() }).unwrap();
    assert_eq!((resumed.records_written, resumed.records_left), (lines.len() - keep, 0));
    assert_same(&sorted(&resumed.records_path), &want);
}

/// A signal ends a batched run at the records in flight (none written after it), cleanly, and
/// `--resume` (at another batch) completes it into batch 1's records.
#[test]
fn a_stopped_batched_run_resumes_into_the_records_of_batch_one() {
    static STOP: AtomicBool = AtomicBool::new(false);
    let dir = tempfile::tempdir().unwrap();
    // Slow steps, so that the stop lands early (the baseline has the same models: their step
    // times are part of the configurations' identity).
    let want = batch_one_records(dir.path(), 4.0);
    let (exp, src) = experiment(&dir.path().join("cut"), 3, 4.0, "cost: 0.2\n");
    let records = dir.path().join("cut/records.jsonl");
    let watcher = std::thread::spawn(move || {
        let t = Instant::now();
        while std::fs::read(&records).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count()) < 5 && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_micros(200));
        }
        STOP.store(true, Ordering::SeqCst);
    });
    let stopped = run(&exp, &src, &SyntheticProvider, &RunOptions { stop: Some(&STOP), ..RunOptions::default() }).unwrap();
    watcher.join().unwrap();
    assert!(stopped.interrupted && stopped.records_written >= 5 && stopped.records_left > 0, "{stopped:?}");
    // The same models (their step times are part of the configurations' identity), at another batch.
    let (exp, src) = experiment(&dir.path().join("cut"), 2, 4.0, "cost: 0.2\n");
    let resumed = run(&exp, &src, &SyntheticProvider, &RunOptions { resume: true, ..RunOptions::default() }).unwrap();
    assert_eq!((resumed.records_written, resumed.records_left, resumed.interrupted), (stopped.records_left, 0, false));
    assert_same(&sorted(&resumed.records_path), &want);
}

/// The synthetic provider with a verifier whose `fail_after`-th extend fails.
struct FailingProvider {
    fail_after: usize,
}

struct Failing {
    inner: Box<dyn LanguageModel>,
    extends: AtomicUsize,
    fail_after: usize,
}

struct FailingSession<'a> {
    model: &'a Failing,
    inner: Box<dyn Session + 'a>,
}

impl LanguageModel for Failing {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }
    fn eos_ids(&self) -> &[TokenId] {
        self.inner.eos_ids()
    }
    fn start<'a>(&'a self, conditioning: &[TokenId]) -> Result<(Box<dyn Session + 'a>, Vec<f32>), ModelError> {
        let (inner, first) = self.inner.start(conditioning)?;
        Ok((Box::new(FailingSession { model: self, inner }), first))
    }
}

impl Session for FailingSession<'_> {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn extend(&mut self, tokens: &[TokenId]) -> Result<Logits, ModelError> {
        if self.model.extends.fetch_add(1, Ordering::SeqCst) + 1 >= self.model.fail_after {
            return Err(ModelError::Other("injected failure".into()));
        }
        self.inner.extend(tokens)
    }
    fn truncate(&mut self, len: usize) -> Result<(), ModelError> {
        self.inner.truncate(len)
    }
}

impl Provider for FailingProvider {
    fn pair(&self, spec: &ModelsSpec) -> Result<Pair, HarnessError> {
        let mut pair = synthetic_pair(spec.synthetic.as_ref().unwrap());
        let inner = std::mem::replace(&mut pair.verifier, Box::new(speccascade_core::synthetic::SyntheticPair::new(8, 0, 0.0, 0.0).verifier));
        pair.verifier = Box::new(Failing { inner, extends: AtomicUsize::new(0), fail_after: self.fail_after });
        Ok(pair)
    }
    fn task<'p>(&self, spec: &TaskSpec, pair: &'p Pair) -> Result<Box<dyn Task + 'p>, HarnessError> {
        SyntheticProvider.task(spec, pair)
    }
}

/// A model error on one worker fails the run with that error (no hang, no panic), the records
/// written before it are whole, and a resume without the fault completes batch 1's records.
#[test]
fn a_model_error_in_a_batch_fails_the_run_cleanly_and_resume_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let want = batch_one_records(dir.path(), 0.0);
    let (exp, src) = experiment(&dir.path().join("fail"), 4, 0.0, "cost: 0.2\n");
    let err = run(&exp, &src, &FailingProvider { fail_after: 400 }, &RunOptions::default()).unwrap_err().to_string();
    assert!(err.contains("injected failure"), "{err}");
    let written = read_records(&dir.path().join("fail/records.jsonl")).unwrap().len();
    assert!(written > 0 && written < want.len(), "{written} of {} records written before the failure", want.len());
    let resumed = run(&exp, &src, &SyntheticProvider, &RunOptions { resume: true, ..RunOptions::default() }).unwrap();
    assert_eq!(resumed.records_written, want.len() - written);
    assert_same(&sorted(&resumed.records_path), &want);
}

#[test]
fn batch_settings_it_cannot_honour_are_refused_at_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let parse = |batch: &str, tail: &str| {
        let src = format!(
            "name: batch\noutput: {}\nmodels:\n  synthetic: {{vocab: 16, seed: 1}}\ntasks:\n  - {{name: synthetic, examples: 2, max_new_tokens: 4, seed: 2}}\n\
             methods:\n  spec_decode:\ngamma: [2]\ntemperature: [0]\nbatch: {batch}\n{tail}",
            dir.path().join("x").display()
        );
        Experiment::from_str_named(&src, "batch.yaml").map(|_| ()).map_err(|e| e.to_string())
    };
    assert!(parse("4", "cost: 0.3\n").is_ok());
    assert!(parse("4", "cost: {c: 0.3, block: [1.0, 1.2, 1.4]}\n").is_ok());
    for (batch, tail, want) in [
        ("0", "cost: 0.3\n", "expected 1 to 256 examples at once, got 0"),
        ("257", "cost: 0.3\n", "expected 1 to 256 examples at once, got 257"),
        ("2", "", "needs a fixed cost"),
        ("2", "cost: measured\n", "needs a fixed cost"),
        ("-1", "cost: 0.3\n", "batch"),
        ("two", "cost: 0.3\n", "batch"),
    ] {
        let e = parse(batch, tail).unwrap_err();
        assert!(e.contains("batch.yaml") && e.contains("batch") && e.contains(want), "batch: {batch} {tail:?}: {e}");
    }
    // Latency validation measures prices, which a batched run has none of.
    let (exp, src) = experiment(&dir.path().join("v"), 2, 0.0, "cost: 0.2\n");
    let e = run(&exp, &src, &SyntheticProvider, &RunOptions { validate_latency: 2, ..RunOptions::default() }).unwrap_err().to_string();
    assert!(e.contains("batch") && e.contains("--validate-latency"), "{e}");
}
