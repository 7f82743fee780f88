//! Running the binary as a child process and measuring it: exit status, signal, output, and
//! peak memory (`wait4`'s rusage, the same number `/usr/bin/time -v` prints).
#![allow(dead_code)]

use std::io::Read;
use std::process::{Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_speccascade");

/// How a child ended.
#[derive(Debug)]
pub struct Run {
    /// `Some(code)` if it exited, `None` if a signal ended it.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Peak resident memory, bytes.
    pub max_rss: u64,
}

impl Run {
    /// Exited with 1 (a reported error): not a panic (101), not an abort or a signal.
    pub fn assert_clean_error(&self, what: &str) {
        assert_eq!(self.code, Some(1), "{what}: expected a clean error (exit 1), got {self:?}");
        assert!(!self.stderr.contains("panicked"), "{what}: panicked: {}", self.stderr);
        assert!(self.stderr.starts_with("error: "), "{what}: {}", self.stderr);
    }
}

/// Run `cmd` to completion, collecting output and peak RSS.
pub fn measure(mut cmd: Command) -> Run {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain FFI calls on a child we spawned and have not waited for.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    std::mem::forget(child); // reaped by wait4
    let (code, signal) = if libc::WIFEXITED(status) { (Some(libc::WEXITSTATUS(status)), None) } else { (None, Some(libc::WTERMSIG(status))) };
    Run { code, signal, stdout: t_out.join().unwrap(), stderr: t_err.join().unwrap(), max_rss: usage.ru_maxrss as u64 * 1024 }
}

/// `speccascade args…` measured.
pub fn sc(args: &[&str]) -> Run {
    let mut c = Command::new(BIN);
    c.args(args);
    measure(c)
}

/// A records file's records without their timings (`timing`, the ledger's `*_s`), sorted: what two runs of one sweep (sharded
/// or not, killed and resumed or not) must agree on exactly.
pub fn canonical_records(p: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| {
            let mut r: serde_json::Value = serde_json::from_str(l).unwrap();
            let o = r.as_object_mut().unwrap();
            o.remove("timing");
            // The ledger's seconds (`*_s`) are wall-clock too; its counts must agree.
            if let Some(l) = o.get_mut("ledger").and_then(|l| l.as_object_mut()) {
                l.retain(|k, _| !k.ends_with("_s"));
            }
            r.to_string()
        })
        .collect();
    v.sort();
    v
}
