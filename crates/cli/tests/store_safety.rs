//! One writer per store and atomic reports, with real processes: two `run`s on one output (one is
//! refused naming the other's pid, no record duplicated), two `--resume`s after a SIGKILL, shards
//! in parallel (allowed, and merged equal to the unsharded run), and SIGKILL at random moments
//! during `report` (every report file is the old version or the new one, never torn).

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{BIN, canonical_records, sc};

/// The synthetic sweep with `examples` examples, writing to `dir/out`.
fn experiment(dir: &Path, name: &str, examples: usize) -> String {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../experiments/synthetic.yaml"))
        .unwrap()
        .replace("output: results/synthetic", &format!("output: {}", dir.join("out").display()))
        .replace("examples: 24", &format!("examples: {examples}"));
    let p = dir.join(name);
    std::fs::write(&p, src).unwrap();
    p.display().to_string()
}

fn lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn keys(p: &Path) -> Vec<(String, u64, u64)> {
    lines(p).iter().map(|r| (r["config"].as_str().unwrap().to_string(), r["trial"].as_u64().unwrap(), r["example"].as_u64().unwrap())).collect()
}

fn assert_no_duplicates(p: &Path) {
    let k = keys(p);
    let unique: HashSet<_> = k.iter().collect();
    assert_eq!(unique.len(), k.len(), "{}: {} records, {} distinct", p.display(), k.len(), unique.len());
}

/// Wait until `dir/.speccascade.lock` names `pid` (the run holds the store).
fn wait_for_lock(dir: &Path, pid: u32) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        if std::fs::read_to_string(dir.join(".speccascade.lock")).is_ok_and(|s| s.starts_with(&format!("{pid}\n"))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("pid {pid} never took the lock of {}", dir.display());
}

fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(BIN).args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

#[test]
fn a_second_writer_is_refused_and_nothing_is_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path(), "exp.yaml", 24);
    let out = dir.path().join("out");
    let mut first = spawn(&["run", &exp]);
    wait_for_lock(&out, first.id());
    for args in [vec!["run", &exp], vec!["run", &exp, "--resume"], vec!["run", &exp, "--fresh"], vec!["merge", out.to_str().unwrap()], vec!["report", out.to_str().unwrap()]] {
        let r = sc(&args);
        r.assert_clean_error(&format!("{args:?}"));
        assert!(r.stderr.contains(&format!("in use by pid {}", first.id())), "{args:?}: {}", r.stderr);
    }
    assert!(first.wait().unwrap().success());
    let records = out.join("records.jsonl");
    assert_no_duplicates(&records);
    let planned = sc(&["run", &exp, "--resume", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&planned.stdout).unwrap();
    assert_eq!(v["records_written"], 0);
    assert_eq!(keys(&records).len() as u64, v["records_planned"].as_u64().unwrap());

    // Killed mid-run (SIGKILL leaves the lock to the kernel), then two resumes at once: one
    // wins, the other is refused; the store ends complete and without duplicates.
    let exp2 = exp.clone();
    let mut victim = spawn(&["run", &exp2, "--fresh"]);
    wait_for_lock(&out, victim.id());
    std::thread::sleep(Duration::from_millis(300));
    victim.kill().unwrap();
    victim.wait().unwrap();
    let a = spawn(&["run", &exp2, "--resume"]);
    let b = spawn(&["run", &exp2, "--resume"]);
    let (ra, rb) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_ne!(ra.status.success(), rb.status.success(), "exactly one resume runs: {ra:?} {rb:?}");
    let loser = if ra.status.success() { &rb } else { &ra };
    assert!(String::from_utf8_lossy(&loser.stderr).contains("in use by pid"), "{}", String::from_utf8_lossy(&loser.stderr));
    assert_no_duplicates(&records);
    assert_eq!(keys(&records).len() as u64, v["records_planned"].as_u64().unwrap());
}

#[test]
fn shards_run_in_parallel_and_merge_to_the_unsharded_records() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path(), "exp.yaml", 12);
    let out = dir.path().join("out");
    let shards: Vec<_> = (0..3).map(|i| spawn(&["run", &exp, "--shard", &format!("{i}/3")])).collect();
    for s in shards {
        let o = s.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // The same shard twice at once is one writer too many.
    let mut s0 = spawn(&["run", &exp, "--shard", "0/3", "--fresh"]);
    wait_for_lock(&out.join("shards/0-of-3"), s0.id());
    let r = sc(&["run", &exp, "--shard", "0/3", "--resume"]);
    r.assert_clean_error("same shard twice");
    assert!(r.stderr.contains(&format!("in use by pid {}", s0.id())), "{}", r.stderr);
    // merge waits for nobody: it is refused while a shard runs, naming it.
    let r = sc(&["merge", out.to_str().unwrap()]);
    r.assert_clean_error("merge during a shard run");
    assert!(r.stderr.contains("shard 0/3"), "{}", r.stderr);
    assert!(s0.wait().unwrap().success());
    let r = sc(&["merge", out.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let whole = dir.path().join("whole");
    let r = sc(&["run", &exp, "--out", whole.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(canonical_records(&out.join("records.jsonl")), canonical_records(&whole.join("records.jsonl")));
}

/// Every regular file of `dir`, by name.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn sigkill_during_report_leaves_old_or_new_files() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path(), "exp.yaml", 12);
    let out = dir.path().join("out");
    assert_eq!(sc(&["run", &exp]).code, Some(0));
    let t = Instant::now();
    let r = sc(&["report", out.to_str().unwrap()]);
    let full = t.elapsed();
    assert_eq!(r.code, Some(0), "{r:?}");
    let report = out.join("report");
    let new = snapshot(&report);
    assert!(new.len() >= 6, "a report of several files: {:?}", new.iter().map(|f| &f.0).collect::<Vec<_>>());
    let old_of = |name: &str| format!("OLD VERSION of {name}\n").into_bytes();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let (mut mixed, mut untouched) = (0, 0);
    let kills = 40;
    for _ in 0..kills {
        // Plant the old versions, start a report, kill it at a random moment.
        for (name, _) in &new {
            std::fs::write(report.join(name), old_of(name)).unwrap();
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % (full.as_micros() as u64).max(1));
        let mut child = Command::new(BIN).args(["report", out.to_str().unwrap()]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let now = snapshot(&report);
        let (mut n_old, mut n_new) = (0, 0);
        for (name, bytes) in &now {
            if name.starts_with('.') {
                assert!(name.contains(".sc-tmp-"), "only a killed writer's temporary file may be hidden: {name}");
                continue;
            }
            let want_new = &new.iter().find(|f| &f.0 == name).unwrap_or_else(|| panic!("unexpected file {name}")).1;
            if bytes == want_new {
                n_new += 1;
            } else {
                assert_eq!(bytes, &old_of(name), "{name} is neither the old version nor the new one ({} bytes)", bytes.len());
                n_old += 1;
            }
        }
        assert_eq!(n_old + n_new, new.len(), "every file is still there");
        if n_old > 0 && n_new > 0 {
            mixed += 1;
        } else if n_new == 0 {
            untouched += 1;
        }
    }
    eprintln!("{kills} kills over a {full:?} report: {mixed} caught it mid-way, {untouched} before any file was replaced");
    assert!(mixed > 0, "no kill landed while files were being replaced: the test did not test anything");
    // The next report sweeps the killed writers' temporaries and writes everything anew.
    assert_eq!(sc(&["report", out.to_str().unwrap()]).code, Some(0));
    assert_eq!(snapshot(&report), new);
}
