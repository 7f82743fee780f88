//! The `slurm` command's job array under a real Slurm: a single-node cluster on localhost (munge,
//! slurmctld and slurmd with a generated slurm.conf, all started and stopped here) runs the
//! synthetic sweep as 3 shards; the dependent job merges and reports; the merged records equal
//! the unsharded run's. Then again with one shard requeued (killed mid-run, rerun with --resume).
//!
//! Needs root and Debian's `slurm-wlm` + `munge` (`.ci/run` installs them). Where Slurm cannot
//! start, the test prints the exact failure and `SKIPPED` — it never passes without a cluster.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{BIN, canonical_records, sc};

fn run(cmd: &mut Command) -> Result<String, String> {
    let o = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !o.status.success() {
        return Err(format!("{cmd:?}: {}: {}{}", o.status, String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// A single-node Slurm on this machine, torn down on drop.
struct Cluster {
    dir: tempfile::TempDir,
    conf: PathBuf,
    daemons: Vec<Child>,
    munged: Option<u32>,
}

impl Cluster {
    fn start() -> Result<Cluster, String> {
        for bin in ["munged", "munge", "unmunge", "slurmctld", "slurmd", "sbatch", "sinfo", "scontrol"] {
            if !["/usr/sbin", "/usr/bin"].iter().any(|d| Path::new(d).join(bin).exists()) {
                return Err(format!("`{bin}` is not installed (apt-get install -y slurm-wlm munge; .ci/run does)"));
            }
        }
        let munge_ok = || {
            Command::new("sh").args(["-c", "munge -n | unmunge"]).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
        };
        let mut munged = None;
        if !munge_ok() {
            run(Command::new("install").args(["-d", "-o", "munge", "-g", "munge", "-m", "755", "/run/munge"]))?;
            run(Command::new("runuser").args(["-u", "munge", "--", "/usr/sbin/munged"]))?;
            munged = std::fs::read_to_string("/run/munge/munged.pid").ok().and_then(|s| s.trim().parse().ok());
            if !munge_ok() {
                return Err("munged started but `munge -n | unmunge` fails".into());
            }
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let w = dir.path().display().to_string();
        let host = run(&mut Command::new("hostname"))?.trim().to_string();
        let mem_mb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
            .map_or(1024, |kb| kb / 1024 * 85 / 100);
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let conf = format!(
            "ClusterName=sctest\nSlurmctldHost={host}\nSlurmUser=root\nSlurmdUser=root\nAuthType=auth/munge\nCryptoType=crypto/munge\n\
             MpiDefault=none\nProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nSelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core\nReturnToService=2\nMailProg=/bin/true\nStateSaveLocation={w}/state\n\
             SlurmdSpoolDir={w}/spool\nSlurmctldPidFile={w}/slurmctld.pid\nSlurmdPidFile={w}/slurmd.pid\n\
             SlurmctldLogFile={w}/ctld.log\nSlurmdLogFile={w}/d.log\nAccountingStorageType=accounting_storage/none\n\
             JobAcctGatherType=jobacct_gather/none\nJobCompType=jobcomp/filetxt\nJobCompLoc={w}/jobcomp.txt\n\
             NodeName={host} CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN\n\
             PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n"
        );
        for d in ["state", "spool"] {
            std::fs::create_dir_all(dir.path().join(d)).map_err(|e| e.to_string())?;
        }
        let conf_path = dir.path().join("slurm.conf");
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let mut c = Cluster { dir, conf: conf_path.clone(), daemons: Vec::new(), munged };
        for daemon in ["slurmctld", "slurmd"] {
            let log = std::fs::File::create(c.dir.path().join(format!("{daemon}.stderr"))).map_err(|e| e.to_string())?;
            let child = Command::new(daemon)
                .args(["-D", "-f"])
                .arg(&conf_path)
                .env("SLURM_CONF", &conf_path)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| format!("{daemon}: {e}"))?;
            c.daemons.push(child);
            if daemon == "slurmctld" {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        let t = Instant::now();
        loop {
            let state = c.cmd("sinfo").args(["-h", "-o", "%T"]).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
            if state == "idle" {
                return Ok(c);
            }
            for d in &mut c.daemons {
                if let Ok(Some(st)) = d.try_wait() {
                    return Err(format!("a Slurm daemon exited ({st}):\n{}", c.logs()));
                }
            }
            if t.elapsed() > Duration::from_secs(60) {
                return Err(format!("the node never became idle (sinfo says {state:?}):\n{}", c.logs()));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// A Slurm client command pointed at this cluster.
    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    fn logs(&self) -> String {
        ["ctld.log", "d.log", "slurmctld.stderr", "slurmd.stderr", "jobcomp.txt"]
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
                format!("--- {f}\n{}", tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for d in &mut self.daemons {
            let _ = d.kill();
            let _ = d.wait();
        }
        if let Some(pid) = self.munged {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

/// A small synthetic sweep writing to `out`; `step_ms` paces the verifier (real sleeps).
fn experiment(dir: &Path, name: &str, out: &Path, verifier_step_ms: f64) -> PathBuf {
    let yaml = format!(
        "name: {name}\noutput: {}\nmodels:\n  synthetic:\n    vocab: 64\n    seed: 7\n    drafter_noise: 1.5\n    verifier_noise: 0.3\n    \
         eos_bias: 0.0\n    drafter_step_ms: {}\n    verifier_step_ms: {verifier_step_ms}\ntasks:\n  - name: synthetic\n    examples: 6\n    \
         max_new_tokens: 24\nmethods:\n  drafter:\n  verifier:\n  spec_decode:\n  spec_cascade_chow: {{alpha: [0.3, 0.7]}}\ngamma: 4\n\
         temperature: 1.0\ntrials: 1\nseed: 0\ncost: 0.2\n",
        out.display(),
        verifier_step_ms / 5.0
    );
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, yaml).unwrap();
    p
}

/// Write the job script with `speccascade slurm` and submit it; returns the array job id.
fn submit(c: &Cluster, exp: &Path) -> String {
    let script = exp.with_extension("sh");
    let r = sc(&["slurm", exp.to_str().unwrap(), "--shards", "3", "--cpus", "1", "--binary", BIN, "-o", script.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let id = run(c.cmd("sbatch").arg("--parsable").arg(&script)).unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    id.trim().split(';').next().unwrap().to_string()
}

/// Wait for the merge + report job to have written the report.
fn wait_for_report(c: &Cluster, out: &Path, what: &str) {
    let t = Instant::now();
    while !out.join("report/table.md").exists() {
        if t.elapsed() > Duration::from_secs(300) {
            let outputs: Vec<String> = std::fs::read_dir(out.join("slurm"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| format!("--- {}\n{}", e.path().display(), std::fs::read_to_string(e.path()).unwrap_or_default()))
                .collect();
            panic!("{what}: no report after 300 s\n{}\n{}", outputs.join("\n"), c.logs());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_slurm_job_array_merges_to_the_unsharded_records() {
    let c = match Cluster::start() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("SKIPPED: a single-node Slurm cannot start here: {why}");
            return;
        }
    };
    let work = tempfile::tempdir().unwrap();

    // Three shards as an array; task 0 queues merge + report after them.
    let out = work.path().join("sharded");
    let exp = experiment(work.path(), "array", &out, 1.0);
    submit(&c, &exp);
    wait_for_report(&c, &out, "plain array");
    let whole = work.path().join("whole");
    let r = sc(&["run", exp.to_str().unwrap(), "--out", whole.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(canonical_records(&out.join("records.jsonl")), canonical_records(&whole.join("records.jsonl")), "merged array = unsharded run");

    // Slower shards; task 1 is requeued (killed) mid-run, reruns with --resume.
    let out = work.path().join("requeued");
    let exp = experiment(work.path(), "requeue", &out, 40.0);
    let job = submit(&c, &exp);
    let shard1 = out.join("shards/1-of-3/records.jsonl");
    let t = Instant::now();
    while std::fs::read_to_string(&shard1).map_or(0, |s| s.lines().count()) == 0 {
        assert!(t.elapsed() < Duration::from_secs(120), "shard 1 never started\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    let partial = std::fs::read_to_string(&shard1).unwrap().lines().count();
    let task = format!("{job}_1");
    run(c.cmd("scontrol").args(["requeue", &task])).unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    // A requeued job waits ~2 minutes before it may start again: once it is pending, let it
    // start now (the update is refused while the kill is still in progress, so retry).
    let t = Instant::now();
    loop {
        let state = c.cmd("squeue").args(["-h", "-j", &task, "-o", "%T"]).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
        if state != "PENDING" && state != "REQUEUED" && state != "COMPLETING" && t.elapsed() > Duration::from_secs(2) {
            break;
        }
        if state == "PENDING" {
            let _ = run(c.cmd("scontrol").args(["update", &format!("JobId={task}"), "StartTime=now"]));
        }
        assert!(t.elapsed() < Duration::from_secs(240), "requeued task {task} never restarted (state {state})\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_for_report(&c, &out, "array with a requeued shard");
    let whole = work.path().join("requeued-whole");
    let r = sc(&["run", exp.to_str().unwrap(), "--out", whole.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let merged = canonical_records(&out.join("records.jsonl"));
    assert_eq!(merged, canonical_records(&whole.join("records.jsonl")), "merged array with a requeued shard = unsharded run");
    let comp = std::fs::read_to_string(c.dir.path().join("jobcomp.txt")).unwrap_or_default();
    eprintln!("shard 1 had {partial} record(s) when requeued; {} records merged; job log:\n{comp}", merged.len());
}
