//! The sweep loop: for each task, trial and example (the *unit*), every configuration in grid
//! order; one record appended per (configuration, unit); summaries at the end.

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::config::Experiment;
use crate::grid::Grid;
use crate::provider::{Output, Provider, select_examples};
use crate::record::{Key, Record, Timing};
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
}

impl Default for RunOptions {
    fn default() -> Self {
        Self { shard: Shard::WHOLE, resume: false, fresh: false, progress: false }
    }
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
    pub tokens: u64,
    pub elapsed_s: f64,
    pub foreign_load_records: usize,
    pub summaries: Vec<ConfigSummary>,
}

/// Resolve `hardware: auto`.
pub fn hardware(exp: &Experiment) -> String {
    if exp.hardware == "auto" { sysstat::hardware_tag() } else { exp.hardware.clone() }
}

/// Run (a shard of) an experiment.
pub fn run(exp: &Experiment, src: &str, provider: &dyn Provider, opts: &RunOptions) -> Result<RunReport, HarnessError> {
    let started = Instant::now();
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
    struct TaskPlan<'p> {
        task: Box<dyn crate::provider::Task + 'p>,
        examples: Vec<usize>,
        configs: Vec<usize>,
        first_unit: usize,
    }
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
    let (mut written, mut tokens, mut flagged) = (0usize, 0u64, 0usize);
    let decode_started = Instant::now();
    for p in &plans {
        let name = p.task.name().to_string();
        for trial in 0..exp.trials {
            for (j, &ex) in p.examples.iter().enumerate() {
                let unit = p.first_unit + trial * p.examples.len() + j;
                if !opts.shard.owns(unit) || p.configs.iter().all(|&ci| done.contains(&key(ci, trial, ex))) {
                    continue;
                }
                let prompt = p.task.prompt(ex).map_err(|msg| HarnessError::Task { task: name.clone(), msg: format!("example {ex}: {msg}") })?;
                for &ci in &p.configs {
                    if done.contains(&key(ci, trial, ex)) {
                        continue;
                    }
                    let cfg = &grid.configs[ci];
                    bar.set_message(format!(
                        "{name} example {}/{} (trial {trial}) · {} · {:.1} tok/s",
                        j + 1,
                        p.examples.len(),
                        cfg.label(),
                        tokens as f64 / decode_started.elapsed().as_secs_f64().max(1e-9)
                    ));
                    let started_unix_s = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
                    let probe = Probe::start();
                    let out = decoder::run_one(&pair, cfg, trial, ex, &prompt, exp.trace)
                        .map_err(|msg| HarnessError::Decode { config: format!("{} ({})", cfg.label(), grid.hashes[ci]), example: ex, msg })?;
                    let m = probe.finish();
                    let text = pair.detok.as_ref().map(|d| d(&out.tokens));
                    // The task sees the text up to (excluding) the stop string that ended it.
                    let scored_text = text.as_deref().map(|t| speccascade_decoding::cut_at_stop(t, &prompt.stop_strings));
                    let score = p
                        .task
                        .score(ex, &prompt, &Output { tokens: &out.tokens, text: scored_text })
                        .map_err(|msg| HarnessError::Task { task: name.clone(), msg: format!("scoring example {ex}: {msg}") })?;
                    let rec = Record {
                        config: grid.hashes[ci].clone(),
                        task: name.clone(),
                        method: cfg.method,
                        alpha: cfg.alpha,
                        gamma: cfg.gamma,
                        temperature: cfg.temperature,
                        trial,
                        unit,
                        example: ex,
                        example_id: p.task.example_id(ex),
                        prompt_tokens: prompt.tokens.len(),
                        tokens: out.tokens,
                        text,
                        stop: out.stop,
                        stop_string: out.stop_string,
                        score: score.value,
                        score_inputs: score.inputs,
                        ledger: out.ledger,
                        trace: out.trace,
                        timing: Timing {
                            wall_s: m.wall_s,
                            own_cpu_s: m.own_cpu_s,
                            foreign_cpu_s: m.foreign_cpu_s,
                            foreign_load: m.foreign_load,
                            peak_rss_bytes: m.peak_rss_bytes,
                            started_unix_s,
                            hardware: hw.clone(),
                        },
                    };
                    writer.append(&rec)?;
                    written += 1;
                    tokens += rec.ledger.emitted;
                    flagged += rec.timing.foreign_load as usize;
                    bar.inc(1);
                }
            }
        }
    }
    bar.finish_and_clear();
    writer.sync()?;

    // Summaries of everything this shard holds.
    let records = read_records(&store.records_path(opts.shard))?;
    let configs = store.read_configs()?;
    let summaries = summary::summarise(&configs, &grid.hashes, &records, exp.cost);
    summary::write_parquet(&store.shard_dir(opts.shard), &summaries)?;
    Ok(RunReport {
        output: exp.output.clone(),
        records_path: store.records_path(opts.shard),
        shard: opts.shard.to_string(),
        hardware: hw,
        configs: grid.len(),
        records_planned: planned,
        records_written: written,
        records_skipped: planned - pending,
        tokens,
        elapsed_s: started.elapsed().as_secs_f64(),
        foreign_load_records: flagged,
        summaries,
    })
}

/// Join the shards of `exp` into `records.jsonl` and write the summaries of the whole.
pub fn merge(exp: &Experiment, partial: bool) -> Result<(crate::store::MergeReport, Vec<ConfigSummary>), HarnessError> {
    let grid = Grid::expand(exp);
    let store = Store::new(&exp.output);
    let _lock = store.lock(Shard::WHOLE, &format!("speccascade merge {}", exp.name))?;
    let report = store.merge(&grid, partial)?;
    let records = store.read_all()?;
    let configs = store.read_configs()?;
    let summaries = summary::summarise(&configs, &grid.hashes, &records, exp.cost);
    summary::write_parquet(&store.dir, &summaries)?;
    Ok((report, summaries))
}
