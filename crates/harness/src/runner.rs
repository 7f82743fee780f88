//! The sweep loop: for each task, trial and example (the *unit*), every configuration in grid
//! order; one record appended per (configuration, unit); summaries at the end.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::config::Experiment;
use crate::grid::Grid;
use crate::provider::{Output, Provider, select_examples};

use speccascade_core::LanguageModel;
use speccascade_decoding::Method;

use crate::latency::{self, CostTable};
use crate::record::{Key, Record, Timing};
use crate::share::{CallStats, ShareCounts, SharedModel};
use crate::shard::Shard;
use crate::store::{Store, read_records};
use crate::summary::{self, ConfigSummary};
use crate::sysstat::{self, Probe};
use crate::{HarnessError, decoder};

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub shard: Shard,
    /// Skip records already in the store (after a kill or to grow a sweep).
    pub resume: bool,
    /// Delete this shard's records first.
    pub fresh: bool,
    /// Draw progress bars on stderr.
    pub progress: bool,
    /// Share model calls among an example's configurations ([`crate::share`]); `false` runs
    /// every configuration on its own (the reference the shared run must equal).
    pub share: bool,
    /// Cap of each model's per-example store of logits, in bytes.
    pub share_cap_bytes: usize,
    /// After the sweep, run this many randomly chosen (configuration, example) records again on
    /// their own, timed on the clock, and record predicted (replayed) against measured seconds.
    pub validate_latency: usize,
    /// How many times each validation record is run on its own, in rounds over all of them; its
    /// measured seconds are the median of the runs neither under foreign load nor drifted (one
    /// direct run of a few-second record varies by about 7 % from the next on an idle machine,
    /// which alone would break a 5 % median bar).
    pub validate_repeats: usize,
    /// Start no new record once the sweep has run this long: the record in flight finishes,
    /// then the run ends as a complete one would (records replayed at the final prices,
    /// summaries, figures of merit), and `--resume` continues from there. The deadline is read
    /// between records, not only between examples: one example of ~100 configurations can
    /// take many minutes, and a deadline (a batch slot's end) is only useful when it holds.
    /// An example stopped halfway loses no record; the resumed run recomputes the model calls
    /// its remaining configurations would have shared, which costs time, not exactness.
    pub stop_after: Option<std::time::Duration>,
    /// Raised from outside (the binary's SIGINT / SIGTERM handler) to stop as `stop_after` does,
    /// at the end of the record in flight, which is then not written (the signal may have killed
    /// its sandboxed test as well); [`RunReport::interrupted`] says so.
    pub stop: Option<&'static AtomicBool>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            shard: Shard::WHOLE,
            resume: false,
            fresh: false,
            progress: false,
            share: true,
            share_cap_bytes: crate::share::DEFAULT_CAP_BYTES,
            validate_latency: 0,
            validate_repeats: DEFAULT_VALIDATE_REPEATS,
            stop_after: None,
            stop: None,
        }
    }
}

/// [`RunOptions::validate_repeats`] unless asked otherwise.
pub const DEFAULT_VALIDATE_REPEATS: usize = 5;

/// The sweep's figures of merit ([`RunReport::merit`]).
#[derive(Clone, Debug, Serialize)]
pub struct Merit {
    /// Model calls were shared.
    pub shared: bool,
    /// Per model: positions logically scored, positions computed, prefills, seconds, evictions.
    pub drafter: ShareCounts,
    pub verifier: ShareCounts,
    /// Positions logically scored ÷ positions computed, per model.
    pub sharing_factor_drafter: f64,
    pub sharing_factor_verifier: f64,
    /// Seconds the real models computed (both, prefill included) ÷ the replayed seconds of the
    /// verifier-alone configuration on the same units: the grid's cost in verifier passes
    /// (NaN without a verifier-alone configuration among the records written).
    pub verifier_pass_equivalents: f64,
    /// Real model seconds of this run (both models, prefill included) and their prefill part.
    pub model_s: f64,
    pub prefill_s: f64,
    /// Wall time of the decoding loop (model loading excluded).
    pub sweep_wall_s: f64,
    /// Peak resident memory of the process over the records (bytes).
    pub peak_rss_bytes: u64,
    /// Cap of each model's store (bytes) and the largest either store grew.
    pub store_cap_bytes: u64,
    pub peak_store_bytes: u64,
    /// The measured block-cost curve of the verifier, `(k, b(k))` with b(1) = 1, and the cost
    /// ratio `c` = drafter step ÷ verifier step (both at one position, from the cost table).
    pub block_cost_verifier: Vec<(usize, f64)>,
    pub c_table: f64,
    /// Examples decoded at once (`batch`), and with more than one, per model (drafter, verifier)
    /// the passes run and the sessions they extended ([`crate::batch`]). A batched run's model
    /// seconds include the workers' waits for their pass, so its `model_s` overstates compute.
    pub batch: usize,
    pub batch_passes: Vec<BatchPasses>,
}

/// One model's batched passes ([`Merit::batch_passes`]).
#[derive(Clone, Debug, Serialize)]
pub struct BatchPasses {
    pub model: String,
    pub passes: u64,
    pub sessions: u64,
}

/// The figures of merit as the run summary prints them.
pub fn merit_text(m: &Merit) -> String {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let mut s = String::new();
    let model = |name: &str, c: &ShareCounts| {
        format!(
            "  {name}: {} positions asked, {} computed (sharing factor {:.2}); {} prefills asked, {} run ({:.1} s); {:.1} s in model calls\n",
            c.logical_positions,
            c.computed_positions,
            c.factor(),
            c.logical_prefills,
            c.real_prefills,
            c.real_prefill_seconds,
            c.real_seconds
        )
    };
    s.push_str(&format!("model calls {}:\n", if m.shared { "shared per example" } else { "not shared (--no-share)" }));
    s.push_str(&model("drafter", &m.drafter));
    s.push_str(&model("verifier", &m.verifier));
    // NaN: no verifier record was replayed (a batched run prices nothing, or nothing was written).
    let passes = if m.verifier_pass_equivalents.is_finite() { format!("{:.2} verifier-pass equivalents", m.verifier_pass_equivalents) } else { "not priced".to_string() };
    s.push_str(&format!(
        "  grid cost: {passes} ({:.1} s of model calls, {:.1} s of them prefill); sweep wall time {:.1} s\n",
        m.model_s, m.prefill_s, m.sweep_wall_s
    ));
    s.push_str(&format!(
        "  peak RSS {:.0} MiB; store cap {:.0} MiB per model, peak store {:.0} MiB, {} rows evicted\n",
        mib(m.peak_rss_bytes),
        mib(m.store_cap_bytes),
        mib(m.peak_store_bytes),
        m.drafter.evicted_rows + m.verifier.evicted_rows
    ));
    if m.batch > 1 {
        let passes: Vec<String> = m
            .batch_passes
            .iter()
            .map(|p| format!("{}: {} passes of {:.2} sessions on average", p.model, p.passes, p.sessions as f64 / p.passes.max(1) as f64))
            .collect();
        s.push_str(&format!(
            "  batch {}: {} (model seconds include the waits for a pass; the store cap holds per example in flight)\n",
            m.batch,
            passes.join("; ")
        ));
    }
    // The curve up to k = 8 (catch-up calls reach far larger k; the JSON has them all).
    let bk: Vec<String> = m.block_cost_verifier.iter().filter(|(k, _)| *k <= 8).map(|(k, b)| format!("b({k})={b:.2}")).collect();
    if m.c_table.is_finite() {
        s.push_str(&format!("  cost table: c = {:.3} (drafter step ÷ verifier step); verifier block cost {}\n", m.c_table, bk.join(" ")));
    } else if m.batch > 1 {
        s.push_str("  cost table: none measured (a batched call is timed for its pass; the experiment's fixed cost prices the records)\n");
    } else {
        s.push_str("  cost table: not enough calls timed for a fit yet\n");
    }
    s
}

/// What `--validate-latency` measured.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct Validation {
    pub config: String,
    pub label: String,
    pub trial: usize,
    pub example: usize,
    /// The shared record's replayed seconds, and the direct runs' wall-clock seconds (their
    /// median, see `measured_runs_s`).
    #[serde(deserialize_with = "crate::latency::nan_if_null")]
    pub predicted_s: f64,
    pub measured_s: f64,
    /// Every direct run's wall-clock seconds, in the order run; `measured_s` is the median of
    /// those neither under foreign load nor drifted (of all of them when none is). Older files: empty.
    #[serde(default)]
    pub measured_runs_s: Vec<f64>,
    /// Each direct run's speed-probe seconds just before it ÷ the sweep's median probe
    /// ([`crate::sysstat::SpeedProbe`]; NaN where it was not probed).
    #[serde(default, deserialize_with = "crate::latency::nan_vec_if_null")]
    pub probe_ratios: Vec<f64>,
    /// How many direct runs found the machine's speed moved by more than
    /// [`crate::sysstat::SPEED_DRIFT_LIMIT`] (contention other tenants cause, unseen in `/proc`).
    #[serde(default)]
    pub speed_drift_runs: usize,
    /// (predicted − measured) ÷ measured.
    #[serde(deserialize_with = "crate::latency::nan_if_null")]
    pub rel_error: f64,
    /// Every direct run was under foreign load or found the machine's speed drifted: excluded
    /// from the bar's statistics (and counted).
    pub foreign_load: bool,
    pub foreign_cpu_s: f64,
    /// The direct run emitted the shared record's tokens.
    pub tokens_match: bool,
    pub hardware: String,
    pub started_unix_s: f64,
}

impl Validation {
    /// The file under the output directory the validations are appended to.
    pub const FILE: &'static str = "validation.jsonl";
}

/// Median and max |relative error| over validations not run under foreign load, and the count
/// excluded for foreign load.
pub fn validation_errors(v: &[Validation]) -> (f64, f64, usize) {
    let mut e: Vec<f64> = v.iter().filter(|x| !x.foreign_load).map(|x| x.rel_error.abs()).collect();
    e.sort_by(f64::total_cmp);
    let excluded = v.len() - e.len();
    if e.is_empty() {
        return (f64::NAN, f64::NAN, excluded);
    }
    let max = e[e.len() - 1];
    (crate::latency::median(e), max, excluded)
}

/// What a run did (printed by `speccascade run --json`).
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub output: PathBuf,
    pub records_path: PathBuf,
    pub shard: String,
    pub hardware: String,
    pub configs: usize,
    /// Records this shard owns in the whole sweep.
    pub records_planned: usize,
    pub records_written: usize,
    pub records_skipped: usize,
    /// Records still to do when `stop_after` or `stop` ended the run (0 when it ran to the end).
    pub records_left: usize,
    /// `stop` ended the run early (a signal), rather than the time limit or the end of the grid.
    pub interrupted: bool,
    pub tokens: u64,
    pub elapsed_s: f64,
    pub foreign_load_records: usize,
    pub merit: Merit,
    /// `--validate-latency` results of this run.
    pub validations: Vec<Validation>,
    pub summaries: Vec<ConfigSummary>,
}

/// One task's share of the sweep: its examples and configurations.
struct TaskPlan<'p> {
    task: Box<dyn crate::provider::Task + 'p>,
    examples: Vec<usize>,
    configs: Vec<usize>,
    first_unit: usize,
}

/// Resolve `hardware: auto`.
/// A sweep on a device names it (and the dtype) after the host's tag.
pub fn hardware(exp: &Experiment) -> String {
    if exp.hardware != "auto" {
        return exp.hardware.clone();
    }
    let host = sysstat::hardware_tag();
    let m = &exp.models;
    if m.synthetic.is_none() && m.device != "cpu" { format!("{host} device={} {}", m.device, m.precision) } else { host }
}

/// Run (a shard of) an experiment.
pub fn run(exp: &Experiment, src: &str, provider: &dyn Provider, opts: &RunOptions) -> Result<RunReport, HarnessError> {
    let started = Instant::now();
    if exp.batch > 1 && opts.validate_latency > 0 {
        return Err(HarnessError::Config(crate::config::ConfigError {
            file: format!("experiment {}", exp.name),
            line: None,
            column: None,
            path: "batch".into(),
            msg: format!(
                "--validate-latency checks measured prices, and a batch of {} measures none (its calls are timed per pass): validate with batch: 1",
                exp.batch
            ),
        }));
    }
    let grid = Grid::expand(exp);
    let store = Store::new(&exp.output);
    let _lock = store.lock(opts.shard, &format!("speccascade run {}, shard {}", exp.name, opts.shard))?;
    store.write_meta(src, &grid)?;
    if opts.fresh {
        store.clear_records(opts.shard)?;
    }
    let (mut writer, done) = store.open_records(opts.shard, opts.resume)?;
    let hw = hardware(exp);
    let pair = provider.pair(&exp.models)?;

    // Plan: the units and configurations this shard owns.
    let mut plans = Vec::new();
    let mut unit = 0;
    for spec in &exp.tasks {
        let task = provider.task(spec, &pair)?;
        let examples = select_examples(spec, task.num_examples())?;
        let configs: Vec<usize> = (0..grid.len()).filter(|&i| grid.configs[i].task.name == spec.name).collect();
        let n = examples.len() * exp.trials;
        plans.push(TaskPlan { task, examples, configs, first_unit: unit });
        unit += n;
    }
    store.write_metrics(&plans.iter().map(|p| (p.task.name().to_string(), p.task.metric())).collect())?;
    let key = |ci: usize, trial: usize, ex: usize| Key { config: grid.hashes[ci].clone(), trial, example: ex };
    let (mut planned, mut pending) = (0usize, 0usize);
    for p in &plans {
        for trial in 0..exp.trials {
            for (j, &ex) in p.examples.iter().enumerate() {
                if !opts.shard.owns(p.first_unit + trial * p.examples.len() + j) {
                    continue;
                }
                for &ci in &p.configs {
                    planned += 1;
                    pending += !done.contains(&key(ci, trial, ex)) as usize;
                }
            }
        }
    }

    let bar = if opts.progress { ProgressBar::with_draw_target(Some(pending as u64), ProgressDrawTarget::stderr()) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} records · ETA {eta} · {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    let mut tally = Tally::default();
    let models = (
        SharedModel::new(pair.drafter.as_ref(), opts.share, opts.share_cap_bytes),
        SharedModel::new(pair.verifier.as_ref(), opts.share, opts.share_cap_bytes),
    );
    // Per shard: concurrent shards must not overwrite each other's table.
    let table_dir = store.shard_dir(opts.shard);
    let mut table = CostTable::load(&table_dir, &hw)?;
    table.roles.insert("drafter".into(), models.0.name().to_string());
    table.roles.insert("verifier".into(), models.1.name().to_string());
    let ctx = Ctx { exp, grid: &grid, pair: &pair, hw: &hw };
    // A validation compares direct runs with prices measured during the sweep: the machine's
    // speed is probed at the start and after every example, the baseline its direct runs are
    // checked against ([`crate::sysstat::SpeedProbe`]).
    let speed_probe = (opts.validate_latency > 0).then(crate::sysstat::SpeedProbe::new);
    let mut probe_s: Vec<f64> = speed_probe.iter().map(|p| p.seconds()).collect();
    let decode_started = Instant::now();
    let interrupted = || opts.stop.is_some_and(|s| s.load(Ordering::SeqCst));
    let must_stop = || interrupted() || opts.stop_after.is_some_and(|limit| started.elapsed() >= limit);
    // The units with records left to write, in sweep order, each with its configurations to do.
    let mut units = Vec::new();
    for (pi, p) in plans.iter().enumerate() {
        for trial in 0..exp.trials {
            for (j, &ex) in p.examples.iter().enumerate() {
                let unit = p.first_unit + trial * p.examples.len() + j;
                let todo: Vec<usize> = p.configs.iter().copied().filter(|&ci| !done.contains(&key(ci, trial, ex))).collect();
                if opts.shard.owns(unit) && !todo.is_empty() {
                    units.push(UnitRef { plan: pi, trial, index: j, example: ex, unit, todo });
                }
            }
        }
    }
    let (mut batch_passes, mut merit_counts) = (Vec::new(), None);
    if exp.batch > 1 {
        let sweep = BatchedSweep { ctx: &ctx, plans: &plans, units: &units, opts, must_stop: &must_stop, interrupted: &interrupted };
        let (counts, passes) = sweep.run(&mut writer, &bar, &mut tally, decode_started)?;
        merit_counts = Some(counts);
        batch_passes = passes;
    } else {
        'sweep: for u in &units {
            let p = &plans[u.plan];
            let name = p.task.name().to_string();
            let (trial, ex) = (u.trial, u.example);
            let prompt = p.task.prompt(ex).map_err(|msg| HarnessError::Task { task: name.clone(), msg: format!("example {ex}: {msg}") })?;
            for &ci in &u.todo {
                if must_stop() {
                    break 'sweep;
                }
                let cfg = &grid.configs[ci];
                bar.set_message(format!(
                    "{name} example {}/{} (trial {trial}) · {} · {:.1} tok/s",
                    u.index + 1,
                    p.examples.len(),
                    cfg.label(),
                    tally.tokens as f64 / decode_started.elapsed().as_secs_f64().max(1e-9)
                ));
                let unit_ctx = UnitCtx { task: p.task.as_ref(), name: &name, trial, unit: u.unit, example: ex, prompt: &prompt };
                let rec = decode_record(&ctx, &models, &unit_ctx, ci, &mut table)?;
                if interrupted() {
                    // The signal may have reached this record's code-execution sandbox too
                    // (Slurm's SIGTERM goes to every process of the job) and failed a test
                    // that would have passed: the record is not written, and resume redoes it.
                    break 'sweep;
                }
                tally.write(&rec, cfg.method, &mut writer)?;
                bar.inc(1);
            }
            // The example is done: its store goes (memory is bounded by one example's).
            models.0.end_example();
            models.1.end_example();
            table.save(&table_dir)?;
            probe_s.extend(speed_probe.as_ref().map(|p| p.seconds()));
        }
    }
    bar.finish_and_clear();
    writer.sync()?;
    drop(writer);
    let sweep_wall_s = decode_started.elapsed().as_secs_f64();
    if tally.written > 0 && exp.batch == 1 {
        replay_at_final_prices(&store.records_path(opts.shard), &table, (models.0.name(), models.1.name()))?;
    }
    let counts = merit_counts.unwrap_or_else(|| (models.0.counts(), models.1.counts()));
    let names = (models.0.name(), models.1.name());
    let mut merit = merit(counts, names, opts, &table, tally.verifier_seen.then_some(tally.verifier_replayed), sweep_wall_s, tally.peak_rss);
    merit.batch = exp.batch;
    merit.batch_passes = batch_passes;

    let validations = if opts.validate_latency > 0 {
        let probe = speed_probe.as_ref().map(|p| (p, crate::latency::median(probe_s)));
        validate(&ctx, &plans, exp, opts, &store, probe)?
    } else {
        Vec::new()
    };

    // Summaries of everything this shard holds.
    let records = read_records(&store.records_path(opts.shard))?;
    let configs = store.read_configs()?;
    let summaries = summary::summarise(&configs, &grid.hashes, &records, &exp.cost);
    summary::write_parquet(&store.shard_dir(opts.shard), &summaries)?;
    Ok(RunReport {
        output: exp.output.clone(),
        records_path: store.records_path(opts.shard),
        shard: opts.shard.to_string(),
        hardware: hw,
        configs: grid.len(),
        records_planned: planned,
        records_written: tally.written,
        records_skipped: planned - pending,
        records_left: pending - tally.written,
        interrupted: pending > tally.written && interrupted(),
        tokens: tally.tokens,
        elapsed_s: started.elapsed().as_secs_f64(),
        foreign_load_records: tally.flagged,
        merit,
        validations,
        summaries,
    })
}

/// What every record of a run shares.
struct Ctx<'a> {
    exp: &'a Experiment,
    grid: &'a Grid,
    pair: &'a crate::provider::Pair,
    hw: &'a str,
}

/// One (task, trial, example) unit.
struct UnitCtx<'a> {
    task: &'a dyn crate::provider::Task,
    name: &'a str,
    trial: usize,
    unit: usize,
    example: usize,
    prompt: &'a crate::provider::Prompt,
}

type Models<'m> = (SharedModel<'m>, SharedModel<'m>);

/// A unit with records left to write.
struct UnitRef {
    plan: usize,
    trial: usize,
    /// Its example's place in the plan's list.
    index: usize,
    example: usize,
    unit: usize,
    /// Its configurations without a record yet, in grid order.
    todo: Vec<usize>,
}

/// What the records written so far add up to.
#[derive(Default)]
struct Tally {
    written: usize,
    tokens: u64,
    flagged: usize,
    peak_rss: u64,
    verifier_replayed: f64,
    verifier_seen: bool,
}

impl Tally {
    /// Append `rec` (of a configuration of `method`) and count it.
    fn write(&mut self, rec: &Record, method: Method, writer: &mut crate::store::RecordWriter) -> Result<(), HarnessError> {
        self.peak_rss = self.peak_rss.max(rec.timing.peak_rss_bytes);
        if method == Method::Verifier {
            self.verifier_replayed += rec.replay.as_ref().map_or(f64::NAN, |r| r.seconds);
            self.verifier_seen = true;
        }
        writer.append(rec)?;
        self.written += 1;
        self.tokens += rec.ledger.emitted;
        self.flagged += rec.timing.foreign_load as usize;
        Ok(())
    }
}

/// Replay every record of a records file again at the cost table's final prices, and rewrite the
/// file atomically. A record is replayed when written against the calls timed so far, which early
/// in a sweep are few (the first example's); at the end every record of the shard, resumed ones
/// included, is charged against one table, so configurations are compared at the same prices.
fn replay_at_final_prices(path: &std::path::Path, table: &CostTable, (drafter, verifier): (&str, &str)) -> Result<(), HarnessError> {
    let (d, v) = (table.fit(drafter), table.fit(verifier));
    let mut records = read_records(path)?;
    crate::replay::reprice(&mut records, d.as_ref(), v.as_ref());
    crate::replay::write_records(path, &records)
}

/// Decode configuration `ci` on one unit through `models`, score it, add the real calls it made to
/// `table` and replay its logical calls there.
fn decode_record(ctx: &Ctx<'_>, models: &Models<'_>, u: &UnitCtx<'_>, ci: usize, table: &mut CostTable) -> Result<Record, HarnessError> {
    let d = decode_calls(ctx.grid, ctx.pair.detok.as_deref(), ctx.exp.trace, models, u.trial, u.example, u.prompt, ci)?;
    record_of(ctx, u, ci, d, Some(table))
}

/// The model side of one record: the generation, the calls it made, its clock.
struct Decoding {
    out: decoder::Decoded,
    calls: CallStats,
    /// Per model (drafter, verifier): the real calls' timing samples (calls, prefills).
    samples: [(String, Vec<crate::share::Sample>, Vec<crate::share::Sample>); 2],
    measured: sysstat::Measured,
    started_unix_s: f64,
    shared: bool,
}

/// Decode configuration `ci` of one unit through `models` (no scoring: that needs the task,
/// which stays on the runner's thread).
#[allow(clippy::too_many_arguments)]
fn decode_calls(
    grid: &Grid,
    detok: Option<&(dyn Fn(&[u32]) -> String + Send + Sync)>,
    trace: bool,
    models: &Models<'_>,
    trial: usize,
    example: usize,
    prompt: &crate::provider::Prompt,
    ci: usize,
) -> Result<Decoding, HarnessError> {
    let cfg = &grid.configs[ci];
    let started_unix_s = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let probe = Probe::start();
    let out = decoder::run_one(detok, (&models.0, &models.1), cfg, trial, example, prompt, trace)
        .map_err(|msg| HarnessError::Decode { config: format!("{} ({})", cfg.label(), grid.hashes[ci]), example, msg })?;
    let measured = probe.finish();
    let calls = CallStats { drafter: models.0.take_calls(), verifier: models.1.take_calls() };
    let samples = [&models.0, &models.1].map(|m| {
        let (c, p) = m.take_samples();
        (m.name().to_string(), c, p)
    });
    Ok(Decoding { out, calls, samples, measured, started_unix_s, shared: models.0.is_shared() })
}

/// Score a decoding and make its record. With `table`, the real calls' samples go into it and
/// the record's logical calls are replayed at its prices; without (a batched run, whose calls are
/// timed per pass), the record has no replay.
fn record_of(ctx: &Ctx<'_>, u: &UnitCtx<'_>, ci: usize, d: Decoding, table: Option<&mut CostTable>) -> Result<Record, HarnessError> {
    let (grid, cfg) = (ctx.grid, &ctx.grid.configs[ci]);
    let Decoding { out, calls, samples, measured: m, started_unix_s, shared } = d;
    let replay = table.and_then(|table| {
        let [(dn, dc, dp), (vn, vc, vp)] = samples;
        table.add(&dn, dc, dp);
        table.add(&vn, vc, vp);
        latency::replay(&calls, out.ledger.overhead_s, table.fit(&dn).as_ref(), table.fit(&vn).as_ref())
    });
    let text = ctx.pair.detok.as_ref().map(|d| d(&out.tokens));
    // The task sees the text up to (excluding) the stop string that ended it.
    let scored_text = text.as_deref().map(|t| speccascade_decoding::cut_at_stop(t, &u.prompt.stop_strings));
    let score = u
        .task
        .score(u.example, u.prompt, &Output { tokens: &out.tokens, text: scored_text })
        .map_err(|msg| HarnessError::Task { task: u.name.to_string(), msg: format!("scoring example {}: {msg}", u.example) })?;
    Ok(Record {
        config: grid.hashes[ci].clone(),
        task: u.name.to_string(),
        method: cfg.method,
        alpha: cfg.alpha,
        gamma: cfg.gamma,
        temperature: cfg.temperature,
        trial: u.trial,
        unit: u.unit,
        example: u.example,
        example_id: u.task.example_id(u.example),
        prompt_tokens: u.prompt.tokens.len(),
        input_limit: u.prompt.input_limit.clone(),
        tokens: out.tokens,
        text,
        stop: out.stop,
        stop_string: out.stop_string,
        score: score.value,
        metric: Some(score.metric),
        score_inputs: score.inputs,
        ledger: out.ledger,
        calls: Some(calls),
        replay,
        trace: out.trace,
        timing: Timing {
            wall_s: m.wall_s,
            shared,
            own_cpu_s: m.own_cpu_s,
            foreign_cpu_s: m.foreign_cpu_s,
            foreign_load: m.foreign_load,
            peak_rss_bytes: m.peak_rss_bytes,
            started_unix_s,
            hardware: ctx.hw.to_string(),
        },
    })
}

/// The figures of merit of the records just run.
fn merit(
    (d, v): (ShareCounts, ShareCounts),
    (drafter, verifier): (&str, &str),
    opts: &RunOptions,
    table: &CostTable,
    verifier_replayed: Option<f64>,
    sweep_wall_s: f64,
    peak_rss: u64,
) -> Merit {
    let model_s = d.real_seconds + v.real_seconds;
    let vfit = table.fit(verifier);
    let dfit = table.fit(drafter);
    let block_cost_verifier = vfit.as_ref().map(|f| f.intercept_s.keys().map(|&k| (k, f.block_cost(k))).collect()).unwrap_or_default();
    let c_table = match (&dfit, &vfit) {
        (Some(df), Some(vf)) if vf.call(1, vf.mean_depth) > 0.0 => df.call(1, df.mean_depth) / vf.call(1, vf.mean_depth),
        _ => f64::NAN,
    };
    Merit {
        shared: opts.share,
        sharing_factor_drafter: d.factor(),
        sharing_factor_verifier: v.factor(),
        verifier_pass_equivalents: verifier_replayed.filter(|s| *s > 0.0).map_or(f64::NAN, |s| model_s / s),
        model_s,
        prefill_s: d.real_prefill_seconds + v.real_prefill_seconds,
        sweep_wall_s,
        peak_rss_bytes: peak_rss,
        store_cap_bytes: opts.share_cap_bytes as u64,
        peak_store_bytes: d.peak_store_bytes.max(v.peak_store_bytes),
        block_cost_verifier,
        c_table,
        drafter: d,
        verifier: v,
        batch: 1,
        batch_passes: Vec::new(),
    }
}

/// `--validate-latency N`: N (configuration, unit) records drawn at random (a pure function of the
/// experiment's seed) from those this shard holds, run again on their own, timed on the clock, and
/// compared with the shared record's replayed seconds. Appended to `validation.jsonl`.
fn validate(
    ctx: &Ctx<'_>,
    plans: &[TaskPlan<'_>],
    exp: &Experiment,
    opts: &RunOptions,
    store: &Store,
    probe: Option<(&crate::sysstat::SpeedProbe, f64)>,
) -> Result<Vec<Validation>, HarnessError> {
    let records = read_records(&store.records_path(opts.shard))?;
    let mut pool: Vec<&Record> = records.iter().filter(|r| r.replay.is_some()).collect();
    pool.sort_by(|a, b| (a.unit, &a.config).cmp(&(b.unit, &b.config)));
    // Partial Fisher–Yates with counter-based uniforms.
    let n = opts.validate_latency.min(pool.len());
    for i in 0..n {
        let u = speccascade_core::rng::uniform(exp.seed ^ 0x7a11_da7e, u64::MAX - 1, i as u64, speccascade_core::Purpose::Draft);
        let j = i + ((u * (pool.len() - i) as f64) as usize).min(pool.len() - i - 1);
        pool.swap(i, j);
    }
    let direct = (
        SharedModel::new(ctx.pair.drafter.as_ref(), false, 0),
        SharedModel::new(ctx.pair.verifier.as_ref(), false, 0),
    );
    let path = store.dir.join(Validation::FILE);
    let mut out = Vec::new();
    let bar = if opts.progress { ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()) } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} latency validations · {msg}").expect("template"));
    // The chosen records, then `validate_repeats` rounds over all of them: a record's repeats are
    // spread over the whole validation, so a slow spell of the machine (measured: identical calls
    // 2.0 s in one minute, 2.4 s in another) touches one of its runs, not all.
    let mut jobs = Vec::with_capacity(n);
    for r in pool.into_iter().take(n) {
        let Some(ci) = ctx.grid.hashes.iter().position(|h| *h == r.config) else { continue };
        let Some(p) = plans.iter().find(|p| p.task.name() == r.task) else { continue };
        let prompt = p.task.prompt(r.example).map_err(|msg| HarnessError::Task { task: r.task.clone(), msg: format!("example {}: {msg}", r.example) })?;
        jobs.push((r, ci, p, prompt));
    }
    let repeats = opts.validate_repeats.max(1);
    bar.set_length((jobs.len() * repeats) as u64);
    // Each direct run with its probe ratio (probe seconds just before it ÷ the sweep's median).
    let mut runs: Vec<Vec<(Record, f64)>> = jobs.iter().map(|_| Vec::with_capacity(repeats)).collect();
    for _ in 0..repeats {
        for ((r, ci, p, prompt), runs) in jobs.iter().zip(&mut runs) {
            bar.set_message(ctx.grid.configs[*ci].label());
            let u = UnitCtx { task: p.task.as_ref(), name: &r.task, trial: r.trial, unit: r.unit, example: r.example, prompt };
            // Each direct run gets a scratch table: its own calls must not inform its prediction.
            let mut scratch = CostTable::default();
            let ratio = probe.map_or(f64::NAN, |(p, base)| p.seconds() / base);
            runs.push((decode_record(ctx, &direct, &u, *ci, &mut scratch)?, ratio));
            bar.inc(1);
        }
    }
    let drifted = |ratio: f64| (ratio - 1.0).abs() > crate::sysstat::SPEED_DRIFT_LIMIT;
    for ((r, ci, _, _), runs) in jobs.iter().zip(&runs) {
        let idle: Vec<f64> = runs.iter().filter(|(d, q)| !d.timing.foreign_load && !drifted(*q)).map(|(d, _)| d.timing.wall_s).collect();
        let foreign_load = idle.is_empty();
        let measured_s = crate::latency::median(if foreign_load { runs.iter().map(|(d, _)| d.timing.wall_s).collect() } else { idle });
        let predicted_s = r.replay.as_ref().map_or(f64::NAN, |x| x.seconds);
        let v = Validation {
            config: r.config.clone(),
            label: ctx.grid.configs[*ci].label(),
            trial: r.trial,
            example: r.example,
            predicted_s,
            measured_s,
            measured_runs_s: runs.iter().map(|(d, _)| d.timing.wall_s).collect(),
            probe_ratios: runs.iter().map(|(_, q)| *q).collect(),
            speed_drift_runs: runs.iter().filter(|(_, q)| drifted(*q)).count(),
            rel_error: (predicted_s - measured_s) / measured_s,
            foreign_load,
            foreign_cpu_s: runs.iter().map(|(d, _)| d.timing.foreign_cpu_s).sum(),
            tokens_match: runs.iter().all(|(d, _)| d.tokens == r.tokens),
            hardware: runs[0].0.timing.hardware.clone(),
            started_unix_s: runs[0].0.timing.started_unix_s,
        };
        crate::store::append_jsonl(&path, &v)?;
        out.push(v);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Read `dir/validation.jsonl` (empty when absent).
pub fn read_validations(dir: &std::path::Path) -> Result<Vec<Validation>, HarnessError> {
    let path = dir.join(Validation::FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(HarnessError::io(&path, e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| HarnessError::BadRecord { path: path.display().to_string(), line: i + 1, msg: e.to_string() })
        })
        .collect()
}

/// Join the shards of `exp` into `records.jsonl` and write the summaries of the whole.
pub fn merge(exp: &Experiment, partial: bool) -> Result<(crate::store::MergeReport, Vec<ConfigSummary>), HarnessError> {
    let grid = Grid::expand(exp);
    let store = Store::new(&exp.output);
    let _lock = store.lock(Shard::WHOLE, &format!("speccascade merge {}", exp.name))?;
    let report = store.merge(&grid, partial)?;
    let records = store.read_all()?;
    let configs = store.read_configs()?;
    let summaries = summary::summarise(&configs, &grid.hashes, &records, &exp.cost);
    summary::write_parquet(&store.dir, &summaries)?;
    Ok((report, summaries))
}

/// `batch: N` ([`crate::batch`]): N workers take the units in sweep order, one example at a
/// time each (every configuration of it, through their own [`SharedModel`] pair over the
/// batcher's models), while this thread scores the decodings and writes the records as they
/// come. Prompts are made here first (a task stays on this thread). Records carry no replay:
/// the calls are timed per pass.
struct BatchedSweep<'r, 'p> {
    ctx: &'r Ctx<'r>,
    plans: &'r [TaskPlan<'p>],
    units: &'r [UnitRef],
    opts: &'r RunOptions,
    must_stop: &'r (dyn Fn() -> bool + Sync),
    interrupted: &'r (dyn Fn() -> bool + Sync),
}

/// What a worker sends: (unit, configuration, its decoding).
type Decoded = (usize, usize, Result<Decoding, HarnessError>);

impl BatchedSweep<'_, '_> {
    fn run(
        &self,
        writer: &mut crate::store::RecordWriter,
        bar: &ProgressBar,
        tally: &mut Tally,
        decode_started: Instant,
    ) -> Result<((ShareCounts, ShareCounts), Vec<BatchPasses>), HarnessError> {
        let ctx = self.ctx;
        let (grid, exp) = (ctx.grid, ctx.exp);
        let mut prompts = Vec::with_capacity(self.units.len());
        for u in self.units {
            let p = &self.plans[u.plan];
            let prompt = p.task.prompt(u.example).map_err(|msg| HarnessError::Task { task: p.task.name().to_string(), msg: format!("example {}: {msg}", u.example) })?;
            prompts.push(prompt);
        }
        let workers = exp.batch.min(self.units.len()).max(1);
        let (drafter, verifier) = (ctx.pair.drafter.as_ref(), ctx.pair.verifier.as_ref());
        let batcher = crate::batch::Batcher::new(vec![drafter, verifier], workers);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let abort = AtomicBool::new(false);
        let (tx, rx) = std::sync::mpsc::channel::<Decoded>();
        let detok = ctx.pair.detok.as_deref();
        let (units, prompts) = (self.units, &prompts);
        let (share, cap, must_stop) = (self.opts.share, self.opts.share_cap_bytes, self.must_stop);
        let mut first_error = None;
        let mut counts = (ShareCounts::default(), ShareCounts::default());
        let (mut examples_done, mut in_flight) = (0usize, std::collections::HashMap::<usize, usize>::new());
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    let (tx, batcher, next, abort) = (tx.clone(), &batcher, &next, &abort);
                    s.spawn(move || {
                        let _leave = crate::batch::WorkerGuard(batcher);
                        let (d, v) = (batcher.model(0), batcher.model(1));
                        let models = (SharedModel::new(&d, share, cap), SharedModel::new(&v, share, cap));
                        'units: loop {
                            let i = next.fetch_add(1, Ordering::SeqCst);
                            if i >= units.len() {
                                break;
                            }
                            let u = &units[i];
                            for &ci in &u.todo {
                                if must_stop() || abort.load(Ordering::SeqCst) {
                                    break 'units;
                                }
                                let r = decode_calls(grid, detok, exp.trace, &models, u.trial, u.example, &prompts[i], ci);
                                let failed = r.is_err();
                                if tx.send((i, ci, r)).is_err() || failed {
                                    break 'units;
                                }
                            }
                            models.0.end_example();
                            models.1.end_example();
                        }
                        (models.0.counts(), models.1.counts())
                    })
                })
                .collect();
            drop(tx);
            for (i, ci, r) in rx {
                let d = match r {
                    Ok(d) if first_error.is_none() => d,
                    Ok(_) => continue,
                    Err(e) => {
                        first_error.get_or_insert(e);
                        abort.store(true, Ordering::SeqCst);
                        continue;
                    }
                };
                if (self.interrupted)() {
                    // As in the sequential sweep: a record decoded after the signal is not written.
                    abort.store(true, Ordering::SeqCst);
                    continue;
                }
                let u = &units[i];
                let p = &self.plans[u.plan];
                let uc = UnitCtx { task: p.task.as_ref(), name: p.task.name(), trial: u.trial, unit: u.unit, example: u.example, prompt: &prompts[i] };
                let written = record_of(ctx, &uc, ci, d, None).and_then(|rec| tally.write(&rec, grid.configs[ci].method, writer));
                if let Err(e) = written {
                    first_error.get_or_insert(e);
                    abort.store(true, Ordering::SeqCst);
                    continue;
                }
                bar.inc(1);
                let left = in_flight.entry(i).or_insert(units[i].todo.len());
                *left -= 1;
                if *left == 0 {
                    in_flight.remove(&i);
                    examples_done += 1;
                }
                bar.set_message(format!(
                    "batch {workers}: {examples_done}/{} examples done, {} in flight · {:.1} tok/s",
                    units.len(),
                    in_flight.len(),
                    tally.tokens as f64 / decode_started.elapsed().as_secs_f64().max(1e-9)
                ));
            }
            for h in handles {
                match h.join() {
                    Ok((d, v)) => {
                        counts.0.add(&d);
                        counts.1.add(&v);
                    }
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        });
        if let Some(e) = first_error {
            return Err(e);
        }
        let passes = [drafter, verifier]
            .iter()
            .zip(batcher.passes())
            .map(|(m, (passes, sessions))| BatchPasses { model: m.name().to_string(), passes, sessions })
            .collect();
        Ok((counts, passes))
    }
}
