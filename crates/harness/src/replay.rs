//! Replaying a finished store at another cost table's prices (`speccascade replay`).
//!
//! A record keeps the calls it logically made (`calls`), so its replayed latency can be priced again
//! after the fact: at the end of a run every record is charged at the run's final table (the
//! runner does it), and a store swept on a loaded machine can be charged at a table measured on an
//! idle one (`--cost-table`: e.g. the `cost_table.json` of a short idle run of the same models on
//! the same machine). Tokens, scores and ledgers are untouched; only `replay` changes.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::latency::{self, CostFit, CostTable};
use crate::record::Record;
use crate::store::{Store, read_records, write_atomic};
use crate::{Experiment, Grid, HarnessError, Shard, summary};

/// What `replay_store` did.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayOutcome {
    pub records_path: PathBuf,
    pub records: usize,
    pub replayed: usize,
    /// The table whose prices were used, its machine, and the models priced from it.
    pub prices: PathBuf,
    pub hardware: String,
    pub drafter_model: String,
    pub verifier_model: String,
}

/// Charge every record of `store` again, at the prices of the table at `prices` (default: the
/// store's own `cost_table.json`), rewrite the records atomically (in the format they are in:
/// `records.jsonl` or `records.jsonl.gz`) and the summaries.
pub fn replay_store(dir: &Path, prices: Option<&Path>) -> Result<ReplayOutcome, HarnessError> {
    let store = Store::new(dir);
    let _lock = store.lock(Shard::WHOLE, &format!("speccascade replay {}", dir.display()))?;
    let own_path = dir.join(CostTable::FILE);
    let own = CostTable::read(&own_path)?;
    let prices_path = prices.map(Path::to_path_buf).unwrap_or_else(|| own_path.clone());
    let table = if prices.is_some() { CostTable::read(&prices_path)? } else { own.clone() };
    let (exp, _) = Experiment::from_file(&store.experiment_path())?;
    let names = |role: &str, configured: Option<&str>| -> Result<String, HarnessError> {
        own.role(role, configured).ok_or_else(|| {
            HarnessError::Store(format!(
                "{}: cannot tell which model is the {role} (models {:?}, configured {configured:?})",
                own_path.display(),
                own.models.keys().collect::<Vec<_>>()
            ))
        })
    };
    let drafter = names("drafter", exp.models.drafter.as_deref())?;
    let verifier = names("verifier", exp.models.verifier.as_deref())?;
    let fit = |m: &str| -> Result<CostFit, HarnessError> {
        table.fit(m).ok_or_else(|| HarnessError::Store(format!("{} has no timed calls of {m}", prices_path.display())))
    };
    let (d, v) = (fit(&drafter)?, fit(&verifier)?);

    let plain = store.records_path(Shard::WHOLE);
    let path = if plain.exists() { plain } else { plain.with_extension("jsonl.gz") };
    let mut records = read_records(&path)?;
    let replayed = reprice(&mut records, Some(&d), Some(&v));
    write_records(&path, &records)?;
    // `--validate-latency` predictions are the records' replays: price them again too.
    let mut validations = crate::runner::read_validations(dir)?;
    if !validations.is_empty() {
        let by_key: std::collections::HashMap<_, _> = records.iter().map(|r| ((r.config.as_str(), r.trial, r.example), r)).collect();
        let mut out = Vec::new();
        for v in &mut validations {
            if let Some(r) = by_key.get(&(v.config.as_str(), v.trial, v.example)) {
                v.predicted_s = r.replay.as_ref().map_or(f64::NAN, |x| x.seconds);
                v.rel_error = (v.predicted_s - v.measured_s) / v.measured_s;
            }
            out.extend(serde_json::to_vec(v).expect("validation serialises"));
            out.push(b'\n');
        }
        write_atomic(&dir.join(crate::runner::Validation::FILE), &out)?;
    }
    let configs = store.read_configs()?;
    let grid = Grid::expand(&exp);
    summary::write_parquet(dir, &summary::summarise(&configs, &grid.hashes, &records, &exp.cost))?;
    Ok(ReplayOutcome {
        records_path: path,
        records: records.len(),
        replayed,
        prices: prices_path,
        hardware: table.hardware.clone(),
        drafter_model: drafter,
        verifier_model: verifier,
    })
}

/// Replay every record that kept its logical calls at the fits given; returns how many.
pub fn reprice(records: &mut [Record], drafter: Option<&CostFit>, verifier: Option<&CostFit>) -> usize {
    let mut n = 0;
    for r in records.iter_mut() {
        if let Some(calls) = &r.calls {
            r.replay = latency::replay(calls, r.ledger.overhead_s, drafter, verifier);
            n += 1;
        }
    }
    n
}

/// Write `records` as JSON lines to `path` atomically (gzip-compressed when it ends in `.gz`).
pub fn write_records(path: &Path, records: &[Record]) -> Result<(), HarnessError> {
    let mut out = Vec::new();
    for r in records {
        out.extend(serde_json::to_vec(r).expect("record serialises"));
        out.push(b'\n');
    }
    if path.extension().is_some_and(|e| e == "gz") {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&out).map_err(|e| HarnessError::io(path, e))?;
        out = gz.finish().map_err(|e| HarnessError::io(path, e))?;
    }
    write_atomic(path, &out)
}
