//! The per-configuration table: one row per (task, method, α, γ, T), CSV (polars) and markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use speccascade_harness::grid::methods;
use speccascade_harness::record::Record;
use speccascade_harness::summary::{ConfigKey, corpus_stats_by_example, score_summed_stats};

use crate::ReportError;
use crate::load::Sweep;
use crate::stats::{BOOTSTRAP_RESAMPLES, bootstrap_ci, bootstrap_mean_ci};
use crate::table2::Table2Row;

/// One configuration's numbers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Row {
    #[serde(flatten)]
    pub key: ConfigKey,
    pub examples: usize,
    pub records: usize,
    /// Quality (mean over examples; corpus score for BLEU) and its 95 % bootstrap interval over
    /// examples.
    pub quality: f64,
    pub quality_lo: f64,
    pub quality_hi: f64,
    pub rel_latency_wall: f64,
    pub rel_latency_modelled: f64,
    /// Replayed wall latency (logical calls at the measured cost table) and the modelled cost with
    /// the measured block-cost curve b(k), both relative to the verifier.
    #[serde(default)]
    pub rel_latency_replayed: f64,
    #[serde(default)]
    pub rel_latency_modelled_bk: f64,
    pub c: f64,
    pub rejection_rate: f64,
    pub deferral_rate: f64,
    pub mean_accept_length: f64,
    pub verifier_calls_per_token: f64,
    pub tokens_per_s: f64,
    pub peak_rss_mb: f64,
    pub foreign_load_records: usize,
    /// Blocks that accepted exactly n drafts (summed over records).
    pub accept_length_hist: Vec<u64>,
}

impl Row {
    /// Did the method evaluate a deferral rule anywhere?
    pub fn decisions_made(&self) -> bool {
        self.deferral_rate > 0.0 || self.rejection_rate > 0.0 || self.mean_accept_length > 0.0
    }
}

/// Rows of a sweep, in grid order.
pub fn rows(sweep: &Sweep) -> Vec<Row> {
    sweep
        .summaries
        .iter()
        .map(|s| {
            // Per-example scores (mean over trials), then the bootstrap over examples.
            let mut per_ex: BTreeMap<usize, (f64, usize)> = BTreeMap::new();
            let mut hist: Vec<u64> = Vec::new();
            let recs: Vec<&Record> = sweep.records.iter().filter(|r| r.config == s.key.config).collect();
            for r in &recs {
                let e = per_ex.entry(r.example).or_default();
                e.0 += r.score;
                e.1 += 1;
                let h = &r.ledger.accept_length_hist;
                if hist.len() < h.len() {
                    hist.resize(h.len(), 0);
                }
                for (a, b) in hist.iter_mut().zip(h) {
                    *a += b;
                }
            }
            let seed = u64::from_str_radix(&s.key.config[..s.key.config.len().min(15)], 16).unwrap_or(0);
            let (q, lo, hi) = match corpus_stats_by_example(&recs) {
                // BLEU: the summary's corpus score; the interval re-scores resampled examples.
                Some((metric, per_example)) => {
                    let stats: Vec<&Vec<u64>> = per_example.values().collect();
                    let (lo, hi) = bootstrap_ci(stats.len(), BOOTSTRAP_RESAMPLES, seed, |idx| {
                        score_summed_stats(metric, idx.iter().map(|&i| stats[i])).unwrap_or(f64::NAN)
                    });
                    (s.quality, lo, hi)
                }
                None => {
                    let scores: Vec<f64> = per_ex.values().map(|(s, n)| s / *n as f64).collect();
                    bootstrap_mean_ci(&scores, BOOTSTRAP_RESAMPLES, seed)
                }
            };
            Row {
                key: s.key.clone(),
                examples: s.examples,
                records: s.records,
                quality: q,
                quality_lo: lo,
                quality_hi: hi,
                rel_latency_wall: s.rel_latency_wall,
                rel_latency_modelled: s.rel_latency_modelled,
                rel_latency_replayed: s.rel_latency_replayed,
                rel_latency_modelled_bk: s.rel_latency_modelled_bk,
                c: s.c,
                rejection_rate: s.rejection_rate,
                deferral_rate: s.deferral_rate,
                mean_accept_length: s.mean_accept_length,
                verifier_calls_per_token: s.verifier_calls_per_token,
                tokens_per_s: s.tokens_per_s,
                peak_rss_mb: s.peak_rss_bytes as f64 / (1024.0 * 1024.0),
                foreign_load_records: s.foreign_load_records,
                accept_length_hist: hist,
            }
        })
        .collect()
}

/// The rows as a polars frame.
pub fn frame(rows: &[Row]) -> PolarsResult<DataFrame> {
    macro_rules! col {
        ($name:literal, $f:expr) => {
            Column::new($name.into(), rows.iter().map($f).collect::<Vec<_>>())
        };
    }
    DataFrame::new(
        rows.len(),
        vec![
            col!("task", |r| r.key.task.clone()),
            col!("method", |r| r.key.method.clone()),
            col!("alpha", |r| r.key.alpha),
            col!("gamma", |r| r.key.gamma.map(|g| g as u64)),
            col!("temperature", |r| r.key.temperature),
            col!("top_p", |r| r.key.top_p),
            col!("examples", |r| r.examples as u64),
            col!("records", |r| r.records as u64),
            col!("quality", |r| r.quality),
            col!("quality_ci_low", |r| r.quality_lo),
            col!("quality_ci_high", |r| r.quality_hi),
            col!("rel_latency_wall", |r| r.rel_latency_wall),
            col!("rel_latency_modelled", |r| r.rel_latency_modelled),
            col!("rel_latency_replayed", |r| r.rel_latency_replayed),
            col!("rel_latency_modelled_bk", |r| r.rel_latency_modelled_bk),
            col!("c", |r| r.c),
            col!("rejection_rate", |r| r.rejection_rate),
            col!("deferral_rate", |r| r.deferral_rate),
            col!("mean_accept_length", |r| r.mean_accept_length),
            col!("verifier_calls_per_token", |r| r.verifier_calls_per_token),
            col!("tokens_per_s", |r| r.tokens_per_s),
            col!("peak_rss_mb", |r| r.peak_rss_mb),
            col!("foreign_load_records", |r| r.foreign_load_records as u64),
            col!("drafter", |r| r.key.drafter.clone()),
            col!("verifier", |r| r.key.verifier.clone()),
            col!("hardware", |r| r.key.hardware.clone()),
            col!("config", |r| r.key.config.clone()),
        ],
    )
}

pub(crate) fn write_csv(path: &Path, df: &mut DataFrame) -> Result<(), ReportError> {
    let werr = |msg: String| ReportError::Write { path: path.display().to_string(), msg };
    let mut f = std::fs::File::create(path).map_err(|e| ReportError::io(path, e))?;
    CsvWriter::new(&mut f).include_header(true).finish(df).map_err(|e| werr(e.to_string()))
}

/// Write `table.csv`, `table.md`, `table2.csv`, `table2.md` into `out`.
pub fn write(out: &Path, rows: &[Row], t2: &[Table2Row], sweep: &Sweep) -> Result<Vec<PathBuf>, ReportError> {
    let werr = |p: &Path, e: PolarsError| ReportError::Write { path: p.display().to_string(), msg: e.to_string() };
    let p = out.join("table.csv");
    write_csv(&p, &mut frame(rows).map_err(|e| werr(&p, e))?)?;
    let p2 = out.join("table2.csv");
    write_csv(&p2, &mut crate::table2::frame(t2).map_err(|e| werr(&p2, e))?)?;
    let md = out.join("table.md");
    std::fs::write(&md, markdown(rows, sweep)).map_err(|e| ReportError::io(&md, e))?;
    let md2 = out.join("table2.md");
    std::fs::write(&md2, crate::table2::markdown(t2)).map_err(|e| ReportError::io(&md2, e))?;
    Ok(vec![p, md, p2, md2])
}

/// `0.123` with `d` decimals, `—` for NaN / missing.
pub(crate) fn num(x: f64, d: usize) -> String {
    if x.is_finite() { format!("{x:.d$}") } else { "—".into() }
}

pub(crate) fn opt<T: ToString>(x: Option<T>) -> String {
    x.map(|v| v.to_string()).unwrap_or_else(|| "—".into())
}

/// The markdown table, one section per task.
pub fn markdown(rows: &[Row], sweep: &Sweep) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {} — per-configuration results\n", sweep.experiment.name);
    let mut tasks: Vec<&str> = rows.iter().map(|r| r.key.task.as_str()).collect();
    tasks.dedup();
    for task in tasks {
        let rs: Vec<&Row> = rows.iter().filter(|r| r.key.task == task).collect();
        let r0 = rs[0];
        let metric = sweep.metric.get(task).cloned().unwrap_or_default();
        let how = match speccascade_harness::summary::aggregation(&sweep.records, task) {
            speccascade_harness::provider::Aggregation::Corpus => "corpus score of all outputs' summed statistics",
            speccascade_harness::provider::Aggregation::Mean => "mean over examples",
        };
        let _ = writeln!(s, "## {task}: {} → {}\n", r0.key.drafter, r0.key.verifier);
        let _ = writeln!(
            s,
            "Quality: {metric}, {how} with a 95 % bootstrap interval over examples ({BOOTSTRAP_RESAMPLES} resamples). Relative latency: total over \
             the examples ÷ the verifier alone on the same examples (1.0 = verifier); modelled with c = {} (drafter step ÷ verifier step, {}); \
             modelled b(k): every call charged the measured block-cost curve of the cost table; replayed: each record's logical model calls at the \
             cost table's measured seconds, prefill included (sweeps that share model calls have no per-configuration wall clock). \
             Hardware: {}.\n",
            num(r0.c, 3),
            match sweep.experiment.cost {
                speccascade_harness::config::CostModel::Measured => "measured on this run",
                speccascade_harness::config::CostModel::Fixed(_) => "fixed in the experiment",
            },
            r0.key.hardware
        );
        let _ = writeln!(s, "| method | α | γ | T | n | quality [95 % CI] | rel. latency (wall) | rel. latency (replayed) | rel. latency (modelled) | rel. latency (modelled b(k)) | rejection rate | deferral rate | mean accept length | verifier calls / token | tokens/s | foreign-load records |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in rs {
            let label = methods::info(&r.key.method).map(|i| i.label).unwrap_or(&r.key.method);
            let _ = writeln!(
                s,
                "| {label} | {} | {} | {} | {} | {} [{}, {}] | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                opt(r.key.alpha),
                opt(r.key.gamma),
                r.key.temperature,
                r.examples,
                num(r.quality, 3),
                num(r.quality_lo, 3),
                num(r.quality_hi, 3),
                num(r.rel_latency_wall, 3),
                num(r.rel_latency_replayed, 3),
                num(r.rel_latency_modelled, 3),
                num(r.rel_latency_modelled_bk, 3),
                num(r.rejection_rate, 3),
                num(r.deferral_rate, 3),
                num(r.mean_accept_length, 2),
                num(r.verifier_calls_per_token, 3),
                num(r.tokens_per_s, 1),
                r.foreign_load_records
            );
        }
        let flagged: usize = rows.iter().filter(|r| r.key.task == task).map(|r| r.foreign_load_records).sum();
        if flagged > 0 {
            let _ = writeln!(
                s,
                "\n**Warning:** {flagged} record(s) were timed while other processes used more than {} cores on average; their wall-clock latencies are suspect (the modelled ones are not affected).",
                speccascade_harness::sysstat::FOREIGN_LOAD_CORES
            );
        }
        s.push('\n');
    }
    s
}
