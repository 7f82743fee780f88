//! `speccascade run <exp.yaml>`: expand the grid, run it with progress bars, write records and
//! summaries (see speccascade-harness).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use speccascade_harness::runner::{RunOptions, run as run_sweep};
use speccascade_harness::{Experiment, Grid, Shard};
use speccascade_provider::RealProvider;

/// `--share-cap-mb` unless asked otherwise.
const DEFAULT_SHARE_CAP_MB: u64 = 1024;

#[derive(clap::Args)]
pub struct Args {
    /// The experiment file (see experiments/README.md).
    pub experiment: PathBuf,
    /// Continue a sweep: keep finished records, run only what is missing.
    #[arg(long)]
    pub resume: bool,
    /// Delete this shard's records first.
    #[arg(long, conflicts_with = "resume")]
    pub fresh: bool,
    /// Run a deterministic share `i/n` of the sweep (0 ≤ i < n); join shards with `merge`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Print the grid (configurations and hashes) and exit without running.
    #[arg(long)]
    pub dry_run: bool,
    /// Override the experiment's bonus mode (`bonus:`): what follows a fully accepted block.
    #[arg(long, value_enum)]
    pub bonus: Option<speccascade_decoding::Bonus>,
    /// Write the store here instead of the experiment's `output:`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run every configuration on its own instead of sharing an example's model calls (the
    /// reference a shared run must equal, timing aside).
    #[arg(long)]
    pub no_share: bool,
    /// Cap of each model's per-example store of logits, in MiB (least recently used rows evicted beyond it).
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_SHARE_CAP_MB, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub share_cap_mb: u64,
    /// After the sweep, run N randomly chosen records again on their own, timed on the clock,
    /// and record predicted (replayed) against measured seconds (`report` draws the figure).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub validate_latency: u64,
    /// Run each validation record this many times on its own; its measured time is the median.
    #[arg(long, value_name = "R", default_value_t = speccascade_harness::runner::DEFAULT_VALIDATE_REPEATS as u64, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub validate_repeats: u64,
    /// Start no new record after this long (`90s`, `40m`, `2h`, `1h30m`, or seconds): the record
    /// in flight finishes and the run ends cleanly; `--resume` continues it. (Ctrl-C or SIGTERM
    /// stops the same way, dropping the record in flight; a second one kills, which `--resume`
    /// survives too.)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub stop_after: Option<std::time::Duration>,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
    /// Override any key of the experiment file, validated like the file (repeatable):
    /// `--set models.drafter=DIR --set tasks[0].examples=4`.
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    pub set: Vec<String>,
    /// Run the models on this device (`--set models.device=D`): cpu, flex, wgpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
}

pub fn run(a: Args) -> Result<()> {
    let mut sets = a.set.clone();
    if let Some(d) = &a.device {
        sets.push(format!("models.device={d}"));
    }
    let (mut exp, mut src) = Experiment::from_file_with_sets(&a.experiment, &sets).map_err(anyhow::Error::new)?;
    if let Some(out) = &a.out {
        exp.output = out.clone();
    }
    if let Some(b) = a.bonus {
        // The store keeps the experiment as run: rewrite it with the override (JSON is YAML).
        exp.bonus = Some(b);
        src = format!("# {} run with --bonus {b}\n{}\n", a.experiment.display(), serde_json::to_string_pretty(&exp)?);
    }
    if a.dry_run {
        let grid = Grid::expand(&exp);
        if a.json {
            let v: Vec<_> = grid.hashes.iter().zip(&grid.configs).map(|(h, c)| serde_json::json!({"hash": h, "config": c})).collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            for (h, c) in grid.hashes.iter().zip(&grid.configs) {
                println!("{h}  {}  T={}  {}", c.task.name, c.temperature, c.label());
            }
            println!("{} configurations × {} trial(s)", grid.len(), exp.trials);
        }
        return Ok(());
    }
    let opts = RunOptions {
        shard: a.shard.unwrap_or(Shard::WHOLE),
        resume: a.resume,
        fresh: a.fresh,
        progress: !a.json,
        share: !a.no_share,
        share_cap_bytes: (a.share_cap_mb as usize) << 20,
        validate_latency: a.validate_latency as usize,
        validate_repeats: a.validate_repeats as usize,
        stop_after: a.stop_after,
        stop: Some(stop_on_signals()),
    };
    let provider = RealProvider;
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let r = run_sweep(&exp, &src, &provider, &opts).with_context(|| format!("running {}", a.experiment.display()))?;
    // The run's figures of merit, one line per invocation (a resumed sweep adds one per sitting):
    // `report --readme` sums them (wall time, sharing factor, machine and kernels).
    let runs = r.output.join(speccascade_report::readme::RUNS_FILE);
    let line = serde_json::json!({
        "started_unix_s": started,
        "elapsed_s": r.elapsed_s,
        "shard": r.shard,
        "records_written": r.records_written,
        "records_skipped": r.records_skipped,
        "records_left": r.records_left,
        "tokens": r.tokens,
        "foreign_load_records": r.foreign_load_records,
        "hardware": speccascade_harness::runner::hardware(&exp),
        "kernels": speccascade_models::cpu::describe(),
        "merit": r.merit,
    });
    speccascade_harness::store::append_jsonl(&runs, &line).with_context(|| format!("appending to {}", runs.display()))?;
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("kernels".into(), speccascade_models::cpu::describe());
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{}: {} records written, {} already there ({} configurations, shard {}), {} tokens in {:.1} s",
            r.records_path.display(),
            r.records_written,
            r.records_skipped,
            r.configs,
            r.shard,
            r.tokens,
            r.elapsed_s
        );
        if r.records_left > 0 && !r.interrupted {
            println!("stopped at --stop-after: {} records left; `{}` continues", r.records_left, resume_command(&a));
        }
        print!("{}", speccascade_harness::runner::merit_text(&r.merit));
        if !r.validations.is_empty() {
            let (median, max, excluded) = speccascade_harness::runner::validation_errors(&r.validations);
            println!(
                "latency validation: {} direct runs, |predicted − measured| / measured: median {:.1} %, max {:.1} % ({excluded} excluded for foreign load or machine speed drift; bar on an idle machine: 5 % / 15 %)",
                r.validations.len(),
                100.0 * median,
                100.0 * max
            );
        }
        if r.foreign_load_records > 0 {
            println!("warning: {} record(s) were timed under foreign CPU load; their wall-clock numbers are suspect", r.foreign_load_records);
        }
        println!("next: speccascade report {}", r.output.display());
    }
    if r.interrupted {
        // Everything written is kept; the exit status tells a script the grid is not finished.
        anyhow::bail!("interrupted by a signal: {} records written, {} left; `{}` continues", r.records_written, r.records_left, resume_command(&a));
    }
    Ok(())
}

/// The command that continues this run: the same experiment, store, shard, overrides and bonus.
fn resume_command(a: &Args) -> String {
    use speccascade_harness::slurm::shell_quote as quote;
    let mut cmd = format!("speccascade run {} --resume", quote(&a.experiment.display().to_string()));
    if let Some(out) = &a.out {
        cmd += &format!(" --out {}", quote(&out.display().to_string()));
    }
    if let Some(shard) = &a.shard {
        cmd += &format!(" --shard {shard}");
    }
    if let Some(b) = a.bonus {
        cmd += &format!(" --bonus {b}");
    }
    for set in &a.set {
        cmd += &format!(" --set {}", quote(set));
    }
    if a.no_share {
        cmd += " --no-share";
    }
    if a.share_cap_mb != DEFAULT_SHARE_CAP_MB {
        cmd += &format!(" --share-cap-mb {}", a.share_cap_mb);
    }
    cmd
}

/// Raised by the first SIGINT or SIGTERM during a `run`.
static STOP: AtomicBool = AtomicBool::new(false);

/// Make the first SIGINT / SIGTERM ask the sweep to stop at the end of the record in flight (not
/// written: the signal may have reached its sandboxed test too) and end as at `--stop-after`
/// (records replayed, summaries written), instead of dying mid-record.
/// The handler is one-shot (`SA_RESETHAND`): a second signal kills the process, which loses at
/// most the partial last line that `--resume` cuts off.
fn stop_on_signals() -> &'static AtomicBool {
    #[cfg(unix)]
    {
        extern "C" fn on_signal(_: libc::c_int) {
            STOP.store(true, Ordering::SeqCst);
            let msg = b"\nstopping at the end of the record in flight, which --resume redoes (signal again to kill)\n";
            // SAFETY: write(2) on stderr is async-signal-safe, and `msg` is a valid buffer.
            unsafe {
                libc::write(2, msg.as_ptr().cast(), msg.len());
            }
        }
        // SAFETY: a zeroed `sigaction` is valid plain data; the handler only touches an atomic and
        // calls write(2); SA_RESTART keeps the sweep's blocking calls from failing with EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            for sig in [libc::SIGINT, libc::SIGTERM] {
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    }
    &STOP
}

/// `--stop-after`: `90s`, `40m`, `2h`, units combined (`1h30m`), or a plain number of seconds;
/// positive and at most a year.
fn parse_duration(v: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("'{v}': expected a duration such as 90s, 40m, 2h or 1h30m");
    let v = v.trim();
    let secs = match v.parse::<f64>() {
        Ok(n) => n,
        Err(_) if v.is_empty() => return Err(bad()),
        Err(_) => {
            let (mut secs, mut rest) = (0.0, v);
            while !rest.is_empty() {
                let end = rest.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(bad)?;
                let n: f64 = rest[..end].trim().parse().map_err(|_| bad())?;
                let scale = match rest.as_bytes()[end] {
                    b's' => 1.0,
                    b'm' => 60.0,
                    b'h' => 3600.0,
                    _ => return Err(bad()),
                };
                if !(n.is_finite() && n >= 0.0) {
                    return Err(bad());
                }
                secs += n * scale;
                rest = rest[end + 1..].trim_start();
            }
            secs
        }
    };
    if !(secs.is_finite() && secs > 0.0 && secs <= 366.0 * 86_400.0) {
        return Err(format!("'{v}': the duration must be positive and at most a year"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("40m").unwrap().as_secs(), 2400);
        assert_eq!(parse_duration("1.5h").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("12").unwrap().as_secs(), 12);
        assert_eq!(parse_duration("1h55m").unwrap().as_secs(), 6900);
        assert_eq!(parse_duration("2m 30s").unwrap().as_secs(), 150);
        for bad in ["", "m", "-3m", "0", "5d", "nanm", "1e300h", "1h-30m", "1h30", "0h0m", "inf", "h1"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
