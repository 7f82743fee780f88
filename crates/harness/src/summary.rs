//! Per-configuration summaries: quality, costs, rates and relative latency.
//!
//! Relative latency (methods.md, "Figures of merit") is a configuration's total latency divided by
//! the verifier-alone latency **on the same (trial, example) units**: only units present for both
//! count, so a partial or sharded store still compares like with like. Two versions sit side by
//! side: wall clock (the decode call, prefill included) and modelled, `c · drafter steps + verifier
//! calls` with c fixed in the experiment or measured as (drafter-alone seconds per drafter step) ÷
//! (verifier-alone seconds per verifier call) over the whole store.
//!
//! The oracle (`oracle_cascade_diff`) is charged as its modelled cost says on the wall clock too:
//! the verifier's seconds at δ = 0 positions (`ledger.uncharged_s`) are subtracted from its wall
//! time ([`charged_wall_s`]).
//!
//! Quality is the mean over examples of each example's mean score over trials, except for metrics
//! whose corpus score is not a mean (BLEU): there it is the corpus score of the records' summed
//! statistics ([`corpus_quality`]), as sacreBLEU reports for the same outputs.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use speccascade_core::Ledger;
use speccascade_decoding::{Bonus, Method};

use crate::HarnessError;
use crate::config::{BlockCurve, CostModel};
use crate::grid::RunConfig;
use crate::provider::Aggregation;
use crate::record::Record;

/// What names a configuration in summaries and tables: its hash, its decoding settings, the pair
/// and the hardware its records were timed on. Flattened into [`ConfigSummary`] and the report's
/// rows, so their JSON has these as top-level fields.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ConfigKey {
    /// Hash of the configuration ([`RunConfig::hash`]).
    pub config: String,
    pub task: String,
    pub method: Method,
    pub alpha: Option<f64>,
    pub gamma: Option<usize>,
    /// Bonus mode (speculative methods).
    #[serde(default)]
    pub bonus: Option<Bonus>,
    pub temperature: f64,
    pub top_p: f64,
    pub seed: u64,
    pub max_new_tokens: usize,
    pub drafter: String,
    pub verifier: String,
    /// The records' hardware tags, joined with ` + ` when they differ.
    pub hardware: String,
}

/// One row per configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ConfigSummary {
    #[serde(flatten)]
    pub key: ConfigKey,
    /// Records (trials × examples) and distinct examples.
    pub records: usize,
    pub examples: usize,
    /// Mean over examples of the per-example mean score over trials, or, for BLEU, the corpus
    /// score of all records' summed statistics.
    pub quality: f64,
    pub emitted: u64,
    pub drafter_steps: u64,
    pub verifier_calls: u64,
    pub verifier_calls_charged: u64,
    pub drafted: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub deferrals: u64,
    pub decisions: u64,
    /// Draft positions examined (up to and including each block's first rejection).
    #[serde(default)]
    pub examined: u64,
    /// Rejected ÷ examined draft positions.
    pub rejection_rate: f64,
    /// Deferrals ÷ emitted tokens (every method).
    pub deferral_rate: f64,
    pub mean_accept_length: f64,
    pub verifier_calls_per_token: f64,
    pub wall_s: f64,
    pub tokens_per_s: f64,
    /// The c used for the modelled latency.
    pub c: f64,
    pub modelled_cost: f64,
    /// Relative latencies (NaN when the verifier baseline has no common units).
    pub rel_latency_wall: f64,
    pub rel_latency_modelled: f64,
    /// Units shared with the verifier baseline.
    pub matched_units: usize,
    /// Replayed latency ([`crate::latency`]): the records' logical calls at the cost table's
    /// prices (NaN when a record has no replay), its prefill part, and relative to the verifier.
    #[serde(default)]
    pub replayed_s: f64,
    #[serde(default)]
    pub replayed_prefill_s: f64,
    #[serde(default)]
    pub rel_latency_replayed: f64,
    /// The modelled cost with the measured block-cost curve b(k) instead of the constant c
    /// (drafter and verifier calls in one-position verifier steps), and relative to the verifier.
    #[serde(default)]
    pub modelled_cost_bk: f64,
    #[serde(default)]
    pub rel_latency_modelled_bk: f64,
    pub peak_rss_bytes: u64,
    pub foreign_cpu_s: f64,
    /// Records timed under foreign load ([`crate::sysstat`]).
    pub foreign_load_records: usize,
}

/// c measured from the store: (drafter-alone s/step) ÷ (verifier-alone s/call). `None` if either
/// baseline has no decode steps.
pub fn measured_c(configs: &BTreeMap<String, RunConfig>, records: &[Record]) -> Option<f64> {
    let (mut ds, mut dn, mut vs, mut vn) = (0.0, 0u64, 0.0, 0u64);
    for r in records {
        match configs.get(&r.config).map(|c| c.method) {
            // A shared record's model seconds are its replayed ones (its clock timed lookups).
            Some(Method::Drafter) => {
                ds += match (&r.replay, r.timing.shared) {
                    (Some(x), true) => x.drafter_s,
                    _ => r.ledger.drafter_decode_s,
                };
                dn += r.ledger.drafter_steps;
            }
            Some(Method::Verifier) => {
                vs += match (&r.replay, r.timing.shared) {
                    (Some(x), true) => x.verifier_s,
                    _ => r.ledger.verifier_decode_s,
                };
                vn += r.ledger.verifier_calls;
            }
            _ => {}
        }
    }
    (dn > 0 && vn > 0 && vs > 0.0).then(|| (ds / dn as f64) / (vs / vn as f64))
}

/// Summarise every configuration that has records, in `order` (grid order; configs not in it last).
pub fn summarise(
    configs: &BTreeMap<String, RunConfig>,
    order: &[String],
    records: &[Record],
    cost: &CostModel,
) -> Vec<ConfigSummary> {
    let c = cost.fixed_c().unwrap_or_else(|| measured_c(configs, records).unwrap_or(f64::NAN));
    let block = cost.block();
    let mut by_config: HashMap<&str, Vec<&Record>> = HashMap::new();
    for r in records {
        by_config.entry(r.config.as_str()).or_default().push(r);
    }
    let mut hashes: Vec<&String> = configs.keys().filter(|h| by_config.contains_key(h.as_str())).collect();
    let pos = |h: &str| order.iter().position(|o| o == h).unwrap_or(usize::MAX);
    hashes.sort_by_key(|h| (pos(h), (*h).clone()));
    hashes
        .into_iter()
        .map(|h| {
            let cfg = &configs[h];
            let base_hash = cfg.baseline(Method::Verifier).hash();
            // A store written by an older version keys its configurations by that version's
            // hashes: find the verifier by what its configuration is today.
            let stored = if by_config.contains_key(base_hash.as_str()) {
                Some(base_hash.as_str())
            } else {
                configs.iter().find(|(_, c)| c.method == Method::Verifier && c.hash() == base_hash).map(|(k, _)| k.as_str())
            };
            let base = stored.and_then(|k| by_config.get(k)).map(Vec::as_slice).unwrap_or(&[]);
            summarise_one(h, cfg, &by_config[h.as_str()], base, c, block)
        })
        .collect()
}

/// For metrics that aggregate as a corpus ([`Aggregation::Corpus`], e.g. BLEU): the metric and each
/// example's statistics summed over its trials. `None` when the metric averages per-example scores,
/// when the records mix metrics, or when any record lacks its statistics.
pub fn corpus_stats_by_example<'r>(recs: &[&'r Record]) -> Option<(&'r str, BTreeMap<usize, Vec<u64>>)> {
    let metric = corpus_metric(recs.first()?)?.0;
    let mut per_example: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for r in recs {
        let (m, stats) = corpus_metric(r)?;
        if m != metric {
            return None;
        }
        add_stats(per_example.entry(r.example).or_default(), &stats);
    }
    Some((metric, per_example))
}

/// A record's corpus metric and statistics: from its typed score, else (records written before
/// scores were typed) from `score_inputs.metric` / `.extra`.
fn corpus_metric(r: &Record) -> Option<(&str, Vec<u64>)> {
    match &r.metric {
        Some(m) if m.aggregation == Aggregation::Corpus => Some((m.metric.as_str(), m.corpus_stats.clone()?)),
        Some(_) => None,
        None => {
            let metric = r.score_inputs.get("metric")?.as_str()?;
            Some((metric, speccascade_tasks::metrics::summable_stats(metric, r.score_inputs.get("extra")?)?))
        }
    }
}

/// How a task's records aggregate (the first record's metric; `Mean` when unknown).
pub fn aggregation(records: &[Record], task: &str) -> Aggregation {
    records
        .iter()
        .find(|r| r.task == task)
        .map(|r| match &r.metric {
            Some(m) => m.aggregation,
            None if corpus_metric(r).is_some() => Aggregation::Corpus,
            None => Aggregation::Mean,
        })
        .unwrap_or_default()
}

/// The corpus score of the sum of `stats` (each from [`corpus_stats_by_example`]).
pub fn score_summed_stats<'a>(metric: &str, stats: impl IntoIterator<Item = &'a Vec<u64>>) -> Option<f64> {
    let mut sum = Vec::new();
    for s in stats {
        add_stats(&mut sum, s);
    }
    speccascade_tasks::metrics::score_from_summed_stats(metric, &sum)
}

/// `sum += s`, element-wise (an empty `sum` takes `s`'s length).
fn add_stats(sum: &mut Vec<u64>, s: &[u64]) {
    if sum.is_empty() {
        sum.resize(s.len(), 0);
    }
    for (a, b) in sum.iter_mut().zip(s) {
        *a += b;
    }
}

/// Corpus-level quality of `recs` for metrics scored from summed statistics (BLEU): the score of
/// the statistics summed over all records (every trial of every example). `None` otherwise.
pub fn corpus_quality(recs: &[&Record]) -> Option<f64> {
    let (metric, per_example) = corpus_stats_by_example(recs)?;
    score_summed_stats(metric, per_example.values())
}

/// A record's wall-clock seconds as its cost model charges them. Run on its own: the decode call's
/// wall time less the seconds the model does not charge (the oracle's verifier calls at δ = 0;
/// zero elsewhere). Sharing its example's model calls (so its clock timed lookups): its replayed
/// seconds, less the replayed share of the verifier calls it does not charge.
pub fn charged_wall_s(r: &Record) -> f64 {
    if r.timing.shared {
        // The replay charged every logical verifier call; charge only the share the method's
        // modelled cost counts (the oracle's calls at δ = 1; every call for other methods).
        let x = replayed(r);
        let l = &r.ledger;
        match (&r.replay, l.verifier_calls) {
            (Some(rep), n) if n > 0 && l.verifier_calls_charged < n => {
                x - rep.verifier_s * (1.0 - l.verifier_calls_charged as f64 / n as f64)
            }
            _ => x,
        }
    } else {
        (r.timing.wall_s - r.ledger.uncharged_s).max(0.0)
    }
}

fn summarise_one(hash: &str, cfg: &RunConfig, recs: &[&Record], base: &[&Record], c: f64, block: Option<&BlockCurve>) -> ConfigSummary {
    let mut ledger = Ledger::default();
    let (mut wall, mut foreign, mut flagged, mut peak) = (0.0, 0.0, 0, 0u64);
    let mut per_example: BTreeMap<usize, (f64, usize)> = BTreeMap::new();
    for r in recs {
        ledger.add(&r.ledger);
        wall += charged_wall_s(r);
        foreign += r.timing.foreign_cpu_s;
        flagged += r.timing.foreign_load as usize;
        peak = peak.max(r.timing.peak_rss_bytes);
        let e = per_example.entry(r.example).or_default();
        e.0 += r.score;
        e.1 += 1;
    }
    let quality = corpus_quality(recs).unwrap_or_else(|| {
        per_example.values().map(|(s, n)| s / *n as f64).sum::<f64>() / per_example.len().max(1) as f64
    });
    // Relative latency on the units both have.
    let base_by_unit: HashMap<(usize, usize), &Record> = base.iter().map(|r| ((r.trial, r.example), *r)).collect();
    let (mut mw, mut bw, mut mm, mut bm, mut matched) = (0.0, 0.0, 0.0, 0.0, 0usize);
    let (mut mr, mut br, mut mk, mut bk) = (0.0, 0.0, 0.0, 0.0);
    for r in recs {
        if let Some(b) = base_by_unit.get(&(r.trial, r.example)) {
            matched += 1;
            mw += charged_wall_s(r);
            bw += charged_wall_s(b);
            mm += r.ledger.modelled_cost(c);
            bm += b.ledger.modelled_cost(c);
            mr += replayed(r);
            br += replayed(b);
            mk += block_cost(r, c, block);
            bk += block_cost(b, c, block);
        }
    }
    let replayed_s: f64 = recs.iter().map(|r| replayed(r)).sum();
    let replayed_prefill_s: f64 = recs.iter().map(|r| r.replay.as_ref().map_or(f64::NAN, |x| x.prefill_s)).sum();
    let modelled_cost_bk: f64 = recs.iter().map(|r| block_cost(r, c, block)).sum();
    let ratio = |a: f64, b: f64| if matched > 0 && b > 0.0 { a / b } else { f64::NAN };
    let (drafter, verifier) = cfg.models.names();
    let mut tags: Vec<&str> = recs.iter().map(|r| r.timing.hardware.as_str()).collect();
    tags.sort();
    tags.dedup();
    let hardware = tags.join(" + ");
    ConfigSummary {
        key: ConfigKey {
            config: hash.to_string(),
            task: cfg.task.name.clone(),
            method: cfg.method,
            alpha: cfg.alpha,
            gamma: cfg.gamma,
            bonus: cfg.bonus,
            temperature: cfg.temperature,
            top_p: cfg.top_p,
            seed: cfg.seed,
            max_new_tokens: cfg.task.max_new_tokens,
            drafter,
            verifier,
            hardware,
        },
        records: recs.len(),
        examples: per_example.len(),
        quality,
        emitted: ledger.emitted,
        drafter_steps: ledger.drafter_steps,
        verifier_calls: ledger.verifier_calls,
        verifier_calls_charged: ledger.verifier_calls_charged,
        drafted: ledger.drafted,
        accepted: ledger.accepted,
        rejected: ledger.rejected,
        deferrals: ledger.deferrals,
        decisions: ledger.decisions,
        examined: ledger.examined(),
        rejection_rate: ledger.rejection_rate(),
        deferral_rate: ledger.deferral_rate(),
        mean_accept_length: ledger.mean_accept_length(),
        verifier_calls_per_token: ledger.verifier_calls_per_token(),
        wall_s: wall,
        tokens_per_s: if wall > 0.0 { ledger.emitted as f64 / wall } else { 0.0 },
        c,
        modelled_cost: ledger.modelled_cost(c),
        rel_latency_wall: ratio(mw, bw),
        rel_latency_modelled: ratio(mm, bm),
        matched_units: matched,
        replayed_s,
        replayed_prefill_s,
        rel_latency_replayed: ratio(mr, br),
        modelled_cost_bk,
        rel_latency_modelled_bk: ratio(mk, bk),
        peak_rss_bytes: peak,
        foreign_cpu_s: foreign,
        foreign_load_records: flagged,
    }
}

/// A record's replayed seconds (NaN without a replay).
fn replayed(r: &Record) -> f64 {
    r.replay.as_ref().map_or(f64::NAN, |x| x.seconds)
}

/// A record's cost under the block-cost curve, in one-position verifier steps: the measured curve
/// of the cost table (its replay), or with a fixed curve ([`CostModel::FixedBlock`]) Σ b(k) over
/// the verifier's calls + c · Σ b(k) over the drafter's (prefills not counted, as in the
/// constant-c model). NaN when the record has neither.
pub fn block_cost(r: &Record, c: f64, block: Option<&BlockCurve>) -> f64 {
    match (block, &r.calls) {
        (Some(b), Some(calls)) => {
            let units = |m: &crate::share::ModelCalls| m.by_k.iter().map(|(&k, &[n, _])| n as f64 * b.at(k)).sum::<f64>();
            units(&calls.verifier) + c * units(&calls.drafter)
        }
        (Some(_), None) => f64::NAN,
        (None, _) => r.replay.as_ref().map_or(f64::NAN, |x| x.drafter_block_units + x.verifier_block_units),
    }
}

/// The summaries as a polars frame (one row each).
pub fn to_frame(rows: &[ConfigSummary]) -> PolarsResult<DataFrame> {
    macro_rules! col {
        ($name:literal, $f:expr) => {
            Column::new($name.into(), rows.iter().map($f).collect::<Vec<_>>())
        };
    }
    let cols = vec![
        col!("config", |r| r.key.config.clone()),
        col!("task", |r| r.key.task.clone()),
        col!("method", |r| r.key.method.name().to_string()),
        col!("alpha", |r| r.key.alpha),
        col!("gamma", |r| r.key.gamma.map(|g| g as u64)),
        col!("bonus", |r| r.key.bonus.map(|b| b.name().to_string())),
        col!("temperature", |r| r.key.temperature),
        col!("top_p", |r| r.key.top_p),
        col!("seed", |r| r.key.seed),
        col!("max_new_tokens", |r| r.key.max_new_tokens as u64),
        col!("drafter", |r| r.key.drafter.clone()),
        col!("verifier", |r| r.key.verifier.clone()),
        col!("hardware", |r| r.key.hardware.clone()),
        col!("records", |r| r.records as u64),
        col!("examples", |r| r.examples as u64),
        col!("quality", |r| r.quality),
        col!("emitted", |r| r.emitted),
        col!("drafter_steps", |r| r.drafter_steps),
        col!("verifier_calls", |r| r.verifier_calls),
        col!("verifier_calls_charged", |r| r.verifier_calls_charged),
        col!("drafted", |r| r.drafted),
        col!("accepted", |r| r.accepted),
        col!("rejected", |r| r.rejected),
        col!("examined", |r| r.examined),
        col!("deferrals", |r| r.deferrals),
        col!("decisions", |r| r.decisions),
        col!("rejection_rate", |r| r.rejection_rate),
        col!("deferral_rate", |r| r.deferral_rate),
        col!("mean_accept_length", |r| r.mean_accept_length),
        col!("verifier_calls_per_token", |r| r.verifier_calls_per_token),
        col!("wall_s", |r| r.wall_s),
        col!("tokens_per_s", |r| r.tokens_per_s),
        col!("c", |r| r.c),
        col!("modelled_cost", |r| r.modelled_cost),
        col!("rel_latency_wall", |r| r.rel_latency_wall),
        col!("rel_latency_modelled", |r| r.rel_latency_modelled),
        col!("matched_units", |r| r.matched_units as u64),
        col!("replayed_s", |r| r.replayed_s),
        col!("replayed_prefill_s", |r| r.replayed_prefill_s),
        col!("rel_latency_replayed", |r| r.rel_latency_replayed),
        col!("modelled_cost_bk", |r| r.modelled_cost_bk),
        col!("rel_latency_modelled_bk", |r| r.rel_latency_modelled_bk),
        col!("peak_rss_bytes", |r| r.peak_rss_bytes),
        col!("foreign_cpu_s", |r| r.foreign_cpu_s),
        col!("foreign_load_records", |r| r.foreign_load_records as u64),
    ];
    DataFrame::new(rows.len(), cols)
}

/// Write `summaries/<hash>.parquet` per configuration and `summary.parquet` for all, under `dir`.
pub fn write_parquet(dir: &Path, rows: &[ConfigSummary]) -> Result<(), HarnessError> {
    let sdir = dir.join("summaries");
    std::fs::create_dir_all(&sdir).map_err(|e| HarnessError::io(&sdir, e))?;
    for r in rows {
        write_frame(&sdir.join(format!("{}.parquet", r.key.config)), std::slice::from_ref(r))?;
    }
    write_frame(&dir.join("summary.parquet"), rows)
}

fn write_frame(path: &Path, rows: &[ConfigSummary]) -> Result<(), HarnessError> {
    let perr = |e: PolarsError| HarnessError::Parquet { path: path.display().to_string(), msg: e.to_string() };
    let mut df = to_frame(rows).map_err(perr)?;
    let mut f = speccascade_files::AtomicFile::create(path).map_err(|e| HarnessError::io(path, e))?;
    ParquetWriter::new(f.file()).finish(&mut df).map_err(perr)?;
    f.commit().map_err(|e| HarnessError::io(path, e))
}

/// Read a summary parquet file back (tests, tools).
pub fn read_parquet(path: &Path) -> Result<DataFrame, HarnessError> {
    let f = std::fs::File::open(path).map_err(|e| HarnessError::io(path, e))?;
    ParquetReader::new(f).finish().map_err(|e| HarnessError::Parquet { path: path.display().to_string(), msg: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Experiment;
    use crate::grid::Grid;
    use crate::record::Timing;

    #[test]
    fn the_oracle_is_charged_on_the_wall_clock_as_modelled() {
        let src = "name: t\noutput: out\nmodels: {synthetic: {vocab: 32}}\ntasks: [{name: synthetic, examples: 1, max_new_tokens: 8}]\nmethods:\n  oracle_cascade_diff: {alpha: 0.1}\ncost: 1\n";
        let grid = Grid::expand(&Experiment::from_str_named(src, "t.yaml").unwrap());
        let configs: BTreeMap<String, RunConfig> = grid.hashes.iter().cloned().zip(grid.configs.iter().cloned()).collect();
        let record = |h: &str, c: &RunConfig, wall: f64, uncharged: f64| Record {
            config: h.to_string(),
            task: "synthetic".into(),
            method: c.method,
            alpha: c.alpha,
            gamma: c.gamma,
            temperature: c.temperature,
            trial: 0,
            unit: 0,
            example: 0,
            example_id: "synthetic/0".into(),
            prompt_tokens: 2,
            input_limit: None,
            tokens: vec![1; 8],
            text: None,
            stop: "max_tokens".into(),
            stop_string: None,
            score: 0.0,
            metric: None,
            score_inputs: serde_json::Value::Null,
            ledger: Ledger { emitted: 8, uncharged_s: uncharged, ..Ledger::default() },
            calls: None,
            replay: None,
            trace: None,
            timing: Timing { wall_s: wall, ..Timing::default() },
        };
        let records: Vec<Record> = grid
            .hashes
            .iter()
            .zip(&grid.configs)
            .map(|(h, c)| match c.method {
                Method::Verifier => record(h, c, 2.0, 0.0),
                Method::OracleCascadeDiff => record(h, c, 3.0, 1.5),
                _ => record(h, c, 0.5, 0.0),
            })
            .collect();
        let rows = summarise(&configs, &grid.hashes, &records, &CostModel::Fixed(1.0));
        let oracle = rows.iter().find(|r| r.key.method == Method::OracleCascadeDiff).unwrap();
        // (3.0 s − 1.5 s uncharged) ÷ 2.0 s.
        assert!((oracle.rel_latency_wall - 0.75).abs() < 1e-12, "{}", oracle.rel_latency_wall);
        let drafter = rows.iter().find(|r| r.key.method == Method::Drafter).unwrap();
        assert!((drafter.rel_latency_wall - 0.25).abs() < 1e-12);
    }
}
