//! speccascade-report: a sweep's result store → tables, the paper's figures, Table-2 numbers and
//! the regression check.
//!
//! - [`load`]: read a store (experiment, configurations, records) and summarise it.
//! - [`stats`]: bootstrap confidence intervals over examples, the exact McNemar test, axis ranges.
//! - [`tables`]: one row per configuration with intervals and the paired comparison against the
//!   verifier, written as CSV (polars) and markdown.
//! - [`table2`]: speed-up at verifier quality (with its bootstrap interval, and the "statistically
//!   indistinguishable" reading) and best quality at relative latency ≤ 1.
//! - [`plot`]: quality vs relative latency (Fig. 2 style), vs rejection rate, vs deferral rate
//!   (the motivating figure), vs verifier calls per token; per-position acceptance and
//!   accept-length histograms; speed-up vs T and vs γ; PNG and SVG with an embedded font.
//! - [`check`]: compare against a stored baseline of like-for-like runs.
//! - [`claims`]: the paper's claims, one verdict per claim and setting from paired bootstrap
//!   intervals, by stated rules; [`coverage`]: the planned grid against the records;
//!   [`readme`]: the reproduction's README (claims table, our Table 2 beside the paper's).
//! - [`validation`]: replayed vs clock-measured latency of `run --validate-latency` records.

pub mod check;
pub mod claims;
pub mod coverage;
pub mod load;
pub mod plot;
pub mod readme;
pub mod stats;
pub mod table2;
pub mod tables;
pub mod validation;

pub use load::Sweep;

/// Errors of the report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Harness(#[from] speccascade_harness::HarnessError),
    #[error(transparent)]
    Config(#[from] speccascade_harness::ConfigError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: {msg}")]
    Write { path: String, msg: String },
    #[error("plot {path}: {msg}")]
    Plot { path: String, msg: String },
    #[error("baseline {path}: {msg}")]
    Baseline { path: String, msg: String },
    #[error("{0}")]
    Empty(String),
}

impl ReportError {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io { path: path.as_ref().display().to_string(), source }
    }
}

/// Everything `speccascade report` writes, as returned to the caller.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReportOutput {
    pub dir: std::path::PathBuf,
    /// The experiment the store ran.
    pub experiment: speccascade_harness::Experiment,
    pub rows: Vec<tables::Row>,
    pub table2: Vec<table2::Table2Row>,
    /// The paper's claims with their verdicts (also `report/claims.md` and `claims.json`).
    pub claims: Vec<claims::Claim>,
    /// The planned grid against the records.
    pub coverage: coverage::Coverage,
    pub files: Vec<std::path::PathBuf>,
    /// Records timed under foreign load (their timings are suspect).
    pub foreign_load_records: usize,
    pub records: usize,
}

/// Load `dir`, write tables and figures into `dir/report/`, return what was written.
/// Holds the store's exclusive lock meanwhile (no run or merge changes it underneath), and writes
/// every file atomically: a kill leaves each file either as it was or complete.
pub fn report(dir: &std::path::Path) -> Result<ReportOutput, ReportError> {
    if !dir.is_dir() {
        return Err(ReportError::io(dir, std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory (run the experiment first)")));
    }
    let store = speccascade_harness::Store::new(dir);
    let _lock = store.lock(speccascade_harness::Shard::WHOLE, &format!("speccascade report {}", dir.display()))?;
    let sweep = load::load(dir)?;
    let out = dir.join("report");
    std::fs::create_dir_all(&out).map_err(|e| ReportError::io(&out, e))?;
    // Temporary files of a report killed earlier (we hold the lock: no live writer owns them).
    speccascade_files::remove_stale_temps(&out).map_err(|e| ReportError::io(&out, e))?;
    let rows = tables::rows(&sweep);
    let t2 = table2::table2(&rows);
    let mut files = tables::write(&out, &rows, &t2, &sweep)?;
    files.extend(plot::all(&out, &sweep, &rows, &t2)?);
    files.extend(validation::write(dir, &out)?);
    let claims = claims::evaluate(&rows, &t2);
    let coverage = coverage::coverage(&sweep);
    files.extend(claims::write(&out, &claims, &coverage, &sweep.experiment.name)?);
    let foreign = sweep.records.iter().filter(|r| r.timing.foreign_load).count();
    Ok(ReportOutput { dir: out, experiment: sweep.experiment.clone(), rows, table2: t2, claims, coverage, files, foreign_load_records: foreign, records: sweep.records.len() })
}
