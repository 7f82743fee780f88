//! The per-configuration table: one row per configuration, CSV (polars) and markdown, with 95 %
//! intervals and the paired comparison against the verifier on the same examples.
//!
//! Every row carries its per-example data ([`Samples`]), from which the intervals are resampled:
//! quality (mean over examples, or the corpus score for BLEU), relative latency (Σ over the
//! resampled examples of the configuration's charged seconds or modelled cost ÷ the verifier's on
//! the same units), per-position acceptance, and the paired difference of quality against the
//! verifier of the same setting ([`Setting`]: task, T, top-p, seed, length, pair).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use speccascade_decoding::Method;
use speccascade_harness::record::Record;
use speccascade_harness::summary::{ConfigKey, charged_wall_s, corpus_stats_by_example, score_summed_stats};

use crate::ReportError;
use crate::load::Sweep;
use crate::stats::{BOOTSTRAP_RESAMPLES, Verdict, bootstrap_ci, mcnemar_exact, percentile_interval, resample_indices};
use crate::table2::Table2Row;

/// What a configuration shares with its verifier baseline: everything but the method, α, γ and
/// the bonus mode. Curves, panels and Table 2 are matched on it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Setting {
    pub task: String,
    pub temperature: f64,
    pub top_p: f64,
    pub seed: u64,
    pub max_new_tokens: usize,
    pub drafter: String,
    pub verifier: String,
}

impl Setting {
    pub fn of(k: &ConfigKey) -> Setting {
        Setting {
            task: k.task.clone(),
            temperature: k.temperature,
            top_p: k.top_p,
            seed: k.seed,
            max_new_tokens: k.max_new_tokens,
            drafter: k.drafter.clone(),
            verifier: k.verifier.clone(),
        }
    }
}

/// The curve a configuration belongs to: its setting, method, γ and bonus mode (α varies along it).
pub fn same_curve(a: &ConfigKey, b: &ConfigKey) -> bool {
    a.method == b.method && a.gamma == b.gamma && a.bonus == b.bonus && Setting::of(a) == Setting::of(b)
}

/// One configuration's per-example data, the input of every interval.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Samples {
    /// Example indices, ascending.
    pub examples: Vec<usize>,
    /// Per example: mean score over trials.
    pub score: Vec<f64>,
    /// For corpus metrics (BLEU): the metric and each example's statistics summed over trials.
    pub corpus: Option<(String, Vec<Vec<u64>>)>,
    /// Per (trial, example): the score (paired 0/1 tests).
    pub unit_score: BTreeMap<(usize, usize), f64>,
    /// Per example: charged wall seconds and modelled cost, and the verifier's, over the units both
    /// have (`None`: no common unit).
    pub latency: Vec<Option<[f64; 4]>>,
    /// Per example: (verifier calls charged, emitted tokens).
    pub calls: Vec<(u64, u64)>,
    /// Per example: drafts examined / accepted at each block offset.
    pub positions: Vec<(Vec<u64>, Vec<u64>)>,
}

impl Samples {
    /// Quality over the examples at positions `idx` (repeats allowed).
    pub fn quality(&self, idx: &[usize]) -> f64 {
        match &self.corpus {
            Some((metric, stats)) => score_summed_stats(metric, idx.iter().map(|&i| &stats[i])).unwrap_or(f64::NAN),
            None if idx.is_empty() => f64::NAN,
            None => idx.iter().map(|&i| self.score[i]).sum::<f64>() / idx.len() as f64,
        }
    }
    /// Relative latency (wall: `k = 0`, modelled: `k = 2`) over the examples at positions `idx`.
    pub fn rel_latency(&self, idx: &[usize], k: usize) -> f64 {
        let (mut a, mut b) = (0.0, 0.0);
        for &i in idx {
            if let Some(l) = self.latency[i] {
                a += l[k];
                b += l[k + 1];
            }
        }
        if b > 0.0 { a / b } else { f64::NAN }
    }
    fn acceptance(&self, idx: &[usize], j: usize) -> f64 {
        let (mut n, mut a) = (0u64, 0u64);
        for &i in idx {
            let (att, acc) = &self.positions[i];
            n += att.get(j).copied().unwrap_or(0);
            a += acc.get(j).copied().unwrap_or(0);
        }
        if n > 0 { a as f64 / n as f64 } else { f64::NAN }
    }
    /// Every score is 0 or the same positive maximum (1 or 100): a 0/1 metric.
    pub fn is_binary(&self) -> bool {
        let top = self.unit_score.values().copied().fold(0.0, f64::max);
        (top == 1.0 || top == 100.0) && self.unit_score.values().all(|&v| v == 0.0 || v == top)
    }
    /// Positions (in `self` and in `other`) of the examples both have.
    pub fn common(&self, other: &Samples) -> (Vec<usize>, Vec<usize>) {
        let pos: BTreeMap<usize, usize> = other.examples.iter().enumerate().map(|(i, &e)| (e, i)).collect();
        self.examples.iter().enumerate().filter_map(|(i, e)| pos.get(e).map(|&j| (i, j))).unzip()
    }
}

/// The paired comparison of a configuration with the verifier of its setting.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Paired {
    /// Examples both have.
    pub examples: usize,
    /// Quality difference (configuration − verifier) on those examples and its 95 %
    /// paired-bootstrap interval.
    pub diff: f64,
    pub diff_lo: f64,
    pub diff_hi: f64,
    /// Exact McNemar test for 0/1 metrics on the (trial, example) pairs: p and the discordant
    /// counts (only the configuration right, only the verifier right).
    pub mcnemar_p: Option<f64>,
    pub discordant: Option<(u64, u64)>,
    /// The decision at 5 %: McNemar where it applies, else the paired interval.
    pub verdict: Verdict,
}

/// One configuration's numbers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Row {
    #[serde(flatten)]
    pub key: ConfigKey,
    pub examples: usize,
    pub records: usize,
    /// Trials per example (the most any example has).
    pub trials: usize,
    /// Quality (mean over examples; corpus score for BLEU) and its 95 % bootstrap interval over
    /// examples.
    pub quality: f64,
    pub quality_lo: f64,
    pub quality_hi: f64,
    /// Relative latencies and their 95 % bootstrap intervals over examples.
    pub rel_latency_wall: f64,
    pub rel_latency_wall_lo: f64,
    pub rel_latency_wall_hi: f64,
    pub rel_latency_modelled: f64,
    pub rel_latency_modelled_lo: f64,
    pub rel_latency_modelled_hi: f64,
    /// Replayed wall latency (logical calls at the measured cost table) and the modelled cost with
    /// the measured block-cost curve b(k), both relative to the verifier.
    #[serde(default)]
    pub rel_latency_replayed: f64,
    #[serde(default)]
    pub rel_latency_modelled_bk: f64,
    pub c: f64,
    /// Rejected ÷ examined draft positions.
    pub rejection_rate: f64,
    /// Deferrals ÷ emitted tokens.
    pub deferral_rate: f64,
    pub mean_accept_length: f64,
    pub verifier_calls_per_token: f64,
    pub tokens_per_s: f64,
    pub peak_rss_mb: f64,
    pub foreign_load_records: usize,
    /// Blocks that accepted exactly n drafts (summed over records).
    pub accept_length_hist: Vec<u64>,
    /// Acceptance rate at each block offset j (accepted ÷ examined there) and its 95 % interval.
    pub position_acceptance: Vec<f64>,
    pub position_acceptance_lo: Vec<f64>,
    pub position_acceptance_hi: Vec<f64>,
    /// Against the verifier of the same setting (absent for the verifier itself, or without one).
    pub vs_verifier: Option<Paired>,
    /// The per-example data the intervals come from.
    #[serde(skip)]
    pub samples: Samples,
}

impl Row {
    /// Did the method evaluate a deferral rule anywhere?
    pub fn decisions_made(&self) -> bool {
        self.deferral_rate > 0.0 || self.rejection_rate > 0.0 || self.mean_accept_length > 0.0
    }
    /// The setting shared with its verifier baseline.
    pub fn setting(&self) -> Setting {
        Setting::of(&self.key)
    }
    /// Indistinguishable from the verifier at 5 % (drawn as a filled marker).
    pub fn indistinguishable(&self) -> bool {
        self.vs_verifier.as_ref().is_some_and(|p| p.verdict == Verdict::Indistinguishable)
    }
    /// A seed for this row's resamples (from its configuration hash).
    pub fn seed(&self) -> u64 {
        seed_of(&self.key.config)
    }
}

fn seed_of(hash: &str) -> u64 {
    u64::from_str_radix(&hash[..hash.len().min(15)], 16).unwrap_or(0)
}

/// Gather one configuration's per-example data; `base` are the verifier's records of its setting.
fn samples(recs: &[&Record], base: &[&Record], c: f64) -> Samples {
    let mut per_ex: BTreeMap<usize, (f64, usize)> = BTreeMap::new();
    let mut unit_score = BTreeMap::new();
    for r in recs {
        let e = per_ex.entry(r.example).or_default();
        e.0 += r.score;
        e.1 += 1;
        unit_score.insert((r.trial, r.example), r.score);
    }
    let examples: Vec<usize> = per_ex.keys().copied().collect();
    let pos: BTreeMap<usize, usize> = examples.iter().enumerate().map(|(i, &e)| (e, i)).collect();
    let score = per_ex.values().map(|(s, n)| s / *n as f64).collect();
    let corpus = corpus_stats_by_example(recs).map(|(m, by)| (m.to_string(), examples.iter().map(|e| by[e].clone()).collect()));
    let base_by_unit: BTreeMap<(usize, usize), &Record> = base.iter().map(|r| ((r.trial, r.example), *r)).collect();
    let mut latency: Vec<Option<[f64; 4]>> = vec![None; examples.len()];
    let mut calls = vec![(0u64, 0u64); examples.len()];
    let mut positions: Vec<(Vec<u64>, Vec<u64>)> = vec![(Vec::new(), Vec::new()); examples.len()];
    for r in recs {
        let i = pos[&r.example];
        calls[i].0 += r.ledger.verifier_calls_charged;
        calls[i].1 += r.ledger.emitted;
        add_into(&mut positions[i].0, &r.ledger.position_attempts);
        add_into(&mut positions[i].1, &r.ledger.position_accepts);
        if let Some(b) = base_by_unit.get(&(r.trial, r.example)) {
            let l = latency[i].get_or_insert([0.0; 4]);
            l[0] += charged_wall_s(r);
            l[1] += charged_wall_s(b);
            l[2] += r.ledger.modelled_cost(c);
            l[3] += b.ledger.modelled_cost(c);
        }
    }
    Samples { examples, score, corpus, unit_score, latency, calls, positions }
}

fn add_into(a: &mut Vec<u64>, b: &[u64]) {
    if a.len() < b.len() {
        a.resize(b.len(), 0);
    }
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// The paired comparison of `s` against the verifier's samples `v`.
pub fn paired(s: &Samples, v: &Samples, seed: u64) -> Option<Paired> {
    let (ia, ib) = s.common(v);
    if ia.is_empty() {
        return None;
    }
    let diff = s.quality(&ia) - v.quality(&ib);
    let (lo, hi) = bootstrap_ci(ia.len(), BOOTSTRAP_RESAMPLES, seed ^ 0x9e37_79b9, |idx| {
        let a: Vec<usize> = idx.iter().map(|&i| ia[i]).collect();
        let b: Vec<usize> = idx.iter().map(|&i| ib[i]).collect();
        s.quality(&a) - v.quality(&b)
    });
    let binary = s.corpus.is_none() && s.is_binary() && v.is_binary();
    let (mcnemar_p, discordant) = if binary {
        let top = s.unit_score.values().chain(v.unit_score.values()).copied().fold(0.0, f64::max);
        let (mut b, mut c) = (0u64, 0u64);
        for (unit, &x) in &s.unit_score {
            if let Some(&y) = v.unit_score.get(unit) {
                match (x == top, y == top) {
                    (true, false) => b += 1,
                    (false, true) => c += 1,
                    _ => {}
                }
            }
        }
        (Some(mcnemar_exact(b, c)), Some((b, c)))
    } else {
        (None, None)
    };
    let verdict = match discordant {
        Some((b, c)) => Verdict::from_mcnemar(b, c),
        None => Verdict::from_interval(lo, hi).unwrap_or(Verdict::Indistinguishable),
    };
    Some(Paired { examples: ia.len(), diff, diff_lo: lo, diff_hi: hi, mcnemar_p, discordant, verdict })
}

/// Rows of a sweep, in grid order.
pub fn rows(sweep: &Sweep) -> Vec<Row> {
    let mut by_config: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in &sweep.records {
        by_config.entry(r.config.as_str()).or_default().push(r);
    }
    let none: Vec<&Record> = Vec::new();
    let verifier_of = |k: &ConfigKey| {
        sweep.summaries.iter().find(|v| v.key.method == Method::Verifier && Setting::of(&v.key) == Setting::of(k))
    };
    // Samples first (the verifier's are needed by every row of its setting).
    let all_samples: Vec<Samples> = sweep
        .summaries
        .iter()
        .map(|s| {
            let recs = by_config.get(s.key.config.as_str()).unwrap_or(&none);
            let base = verifier_of(&s.key).and_then(|v| by_config.get(v.key.config.as_str())).unwrap_or(&none);
            samples(recs, base, s.c)
        })
        .collect();
    sweep
        .summaries
        .iter()
        .zip(&all_samples)
        .map(|(s, smp)| {
            let recs = by_config.get(s.key.config.as_str()).unwrap_or(&none);
            let mut hist: Vec<u64> = Vec::new();
            let mut trials: BTreeMap<usize, usize> = BTreeMap::new();
            for r in recs {
                add_into(&mut hist, &r.ledger.accept_length_hist);
                *trials.entry(r.example).or_default() += 1;
            }
            let seed = seed_of(&s.key.config);
            let n = smp.examples.len();
            let all: Vec<usize> = (0..n).collect();
            let draws = resample_indices(n, BOOTSTRAP_RESAMPLES, seed);
            let interval = |f: &dyn Fn(&[usize]) -> f64| -> (f64, f64) {
                if n <= 1 {
                    let v = f(&all);
                    return (v, v);
                }
                percentile_interval(draws.iter().map(|d| f(d)).collect())
            };
            // Quality: the summary's number (mean over examples, corpus score for BLEU).
            let (qlo, qhi) = interval(&|d| smp.quality(d));
            let (wlo, whi) = interval(&|d| smp.rel_latency(d, 0));
            let (mlo, mhi) = interval(&|d| smp.rel_latency(d, 2));
            let npos = smp.positions.iter().map(|p| p.0.len()).max().unwrap_or(0);
            let acc: Vec<f64> = (0..npos).map(|j| smp.acceptance(&all, j)).collect();
            let acc_ci: Vec<(f64, f64)> = (0..npos).map(|j| interval(&|d| smp.acceptance(d, j))).collect();
            let vs_verifier = if s.key.method == Method::Verifier {
                None
            } else {
                verifier_of(&s.key)
                    .and_then(|v| sweep.summaries.iter().position(|x| x.key.config == v.key.config))
                    .and_then(|vi| paired(smp, &all_samples[vi], seed))
            };
            Row {
                key: s.key.clone(),
                examples: s.examples,
                records: s.records,
                trials: trials.values().copied().max().unwrap_or(0),
                quality: s.quality,
                quality_lo: qlo,
                quality_hi: qhi,
                rel_latency_wall: s.rel_latency_wall,
                rel_latency_wall_lo: wlo,
                rel_latency_wall_hi: whi,
                rel_latency_modelled: s.rel_latency_modelled,
                rel_latency_modelled_lo: mlo,
                rel_latency_modelled_hi: mhi,
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
                position_acceptance: acc,
                position_acceptance_lo: acc_ci.iter().map(|c| c.0).collect(),
                position_acceptance_hi: acc_ci.iter().map(|c| c.1).collect(),
                vs_verifier,
                samples: smp.clone(),
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
            col!("method", |r| r.key.method.name().to_string()),
            col!("alpha", |r| r.key.alpha),
            col!("gamma", |r| r.key.gamma.map(|g| g as u64)),
            col!("bonus", |r| r.key.bonus.map(|b| b.name().to_string())),
            col!("temperature", |r| r.key.temperature),
            col!("top_p", |r| r.key.top_p),
            col!("seed", |r| r.key.seed),
            col!("max_new_tokens", |r| r.key.max_new_tokens as u64),
            col!("examples", |r| r.examples as u64),
            col!("records", |r| r.records as u64),
            col!("trials", |r| r.trials as u64),
            col!("quality", |r| r.quality),
            col!("quality_ci_low", |r| r.quality_lo),
            col!("quality_ci_high", |r| r.quality_hi),
            col!("diff_vs_verifier", |r| r.vs_verifier.as_ref().map(|p| p.diff)),
            col!("diff_vs_verifier_ci_low", |r| r.vs_verifier.as_ref().map(|p| p.diff_lo)),
            col!("diff_vs_verifier_ci_high", |r| r.vs_verifier.as_ref().map(|p| p.diff_hi)),
            col!("mcnemar_p", |r| r.vs_verifier.as_ref().and_then(|p| p.mcnemar_p)),
            col!("vs_verifier", |r| r.vs_verifier.as_ref().map(|p| verdict_name(p.verdict).to_string())),
            col!("rel_latency_wall", |r| r.rel_latency_wall),
            col!("rel_latency_wall_ci_low", |r| r.rel_latency_wall_lo),
            col!("rel_latency_wall_ci_high", |r| r.rel_latency_wall_hi),
            col!("rel_latency_modelled", |r| r.rel_latency_modelled),
            col!("rel_latency_modelled_ci_low", |r| r.rel_latency_modelled_lo),
            col!("rel_latency_modelled_ci_high", |r| r.rel_latency_modelled_hi),
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
    let mut f = speccascade_files::AtomicFile::create(path).map_err(|e| ReportError::io(path, e))?;
    CsvWriter::new(f.file()).include_header(true).finish(df).map_err(|e| werr(e.to_string()))?;
    f.commit().map_err(|e| ReportError::io(path, e))
}

/// Replace `path` with `text` atomically (a kill leaves the old file or the new one).
pub(crate) fn write_text(path: &Path, text: &str) -> Result<(), ReportError> {
    speccascade_files::write_atomic(path, text.as_bytes()).map_err(|e| ReportError::io(path, e))
}

/// Write `table.csv`, `table.md`, `table2.csv`, `table2.md` into `out`.
pub fn write(out: &Path, rows: &[Row], t2: &[Table2Row], sweep: &Sweep) -> Result<Vec<PathBuf>, ReportError> {
    let werr = |p: &Path, e: PolarsError| ReportError::Write { path: p.display().to_string(), msg: e.to_string() };
    let p = out.join("table.csv");
    write_csv(&p, &mut frame(rows).map_err(|e| werr(&p, e))?)?;
    let p2 = out.join("table2.csv");
    write_csv(&p2, &mut crate::table2::frame(t2).map_err(|e| werr(&p2, e))?)?;
    let md = out.join("table.md");
    write_text(&md, &markdown(rows, sweep))?;
    let md2 = out.join("table2.md");
    write_text(&md2, &crate::table2::markdown(t2))?;
    Ok(vec![p, md, p2, md2])
}

/// `0.123` with `d` decimals, `—` for NaN / missing.
pub(crate) fn num(x: f64, d: usize) -> String {
    if x.is_finite() { format!("{x:.d$}") } else { "—".into() }
}

pub(crate) fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Indistinguishable => "indistinguishable",
        Verdict::Better => "better",
        Verdict::Worse => "worse",
    }
}

/// The paired comparison in a table cell: `−0.012 [−0.03, 0.01] ≈` (McNemar p for 0/1 metrics).
fn paired_cell(p: Option<&Paired>) -> String {
    let Some(p) = p else { return "—".into() };
    let mark = match p.verdict {
        Verdict::Indistinguishable => "≈",
        Verdict::Better => "▲",
        Verdict::Worse => "▼",
    };
    let mut s = format!("{} [{}, {}] {mark}", num(p.diff, 3), num(p.diff_lo, 3), num(p.diff_hi, 3));
    if let (Some(pv), Some((b, c))) = (p.mcnemar_p, p.discordant) {
        let _ = write!(s, " (McNemar p = {}, {b}/{c})", num(pv, 3));
    }
    s
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
        let trials = rs.iter().map(|r| r.trials).max().unwrap_or(0);
        let _ = writeln!(
            s,
            "Quality: {metric}, {how} with a 95 % bootstrap interval over examples ({BOOTSTRAP_RESAMPLES} resamples; n = {} examples, \
             {trials} trial(s), seed {}). Relative latency: total over the examples ÷ the verifier alone on the same examples \
             (1.0 = verifier; the oracle charged as modelled), with its bootstrap interval; wall = the clock, or for records that \
             shared model calls their replayed seconds; replayed: each record's logical model calls at the cost table's measured \
             seconds, prefill included; modelled with c = {} (drafter step ÷ verifier step, {}); modelled b(k): every call charged \
             the {} block-cost curve. Δ vs verifier: quality − the verifier's on the same examples, 95 % \
             paired-bootstrap interval; for 0/1 metrics the exact McNemar test on the (trial, example) pairs decides (only this \
             right / only the verifier right); ≈ = indistinguishable at 5 %, ▲ / ▼ = significantly better / worse. Rejection rate = \
             rejected ÷ examined draft positions; deferral rate = deferrals ÷ emitted tokens. Hardware: {}.\n",
            r0.examples,
            r0.key.seed,
            num(r0.c, 3),
            match sweep.experiment.cost {
                speccascade_harness::config::CostModel::Measured => "measured on this run",
                speccascade_harness::config::CostModel::Fixed(_) => "fixed in the experiment",
                speccascade_harness::config::CostModel::FixedBlock { .. } => "fixed in the experiment, with a fixed b(k)",
            },
            match sweep.experiment.cost.block() {
                Some(b) => format!("fixed ({:?} for k = 1, 2, …, linear beyond)", b.values()),
                None => "cost table's measured".into(),
            },
            r0.key.hardware
        );
        let _ = writeln!(s, "| method | α | γ | bonus | T | top-p | n | quality [95 % CI] | Δ vs verifier [95 % CI] | rel. latency (wall) [95 % CI] | rel. latency (replayed) | rel. latency (modelled) [95 % CI] | rel. latency (modelled b(k)) | rejection rate | deferral rate | mean accept length | verifier calls / token | tokens/s | foreign-load records |");
        let _ = writeln!(s, "|---|---:|---:|---|---:|---:|---:|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in rs {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} [{}, {}] | {} | {} [{}, {}] | {} | {} [{}, {}] | {} | {} | {} | {} | {} | {} | {} |",
                r.key.method.label(),
                opt(r.key.alpha),
                opt(r.key.gamma),
                opt(r.key.bonus),
                r.key.temperature,
                r.key.top_p,
                r.examples,
                num(r.quality, 3),
                num(r.quality_lo, 3),
                num(r.quality_hi, 3),
                paired_cell(r.vs_verifier.as_ref()),
                num(r.rel_latency_wall, 3),
                num(r.rel_latency_wall_lo, 3),
                num(r.rel_latency_wall_hi, 3),
                num(r.rel_latency_replayed, 3),
                num(r.rel_latency_modelled, 3),
                num(r.rel_latency_modelled_lo, 3),
                num(r.rel_latency_modelled_hi, 3),
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
