//! Reading a store and summarising it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use speccascade_harness::grid::RunConfig;
use speccascade_harness::summary::{ConfigSummary, summarise};
use speccascade_harness::{Experiment, Grid, Record, Store};

use crate::ReportError;

/// A loaded sweep.
pub struct Sweep {
    pub dir: PathBuf,
    pub experiment: Experiment,
    pub grid: Grid,
    pub configs: BTreeMap<String, RunConfig>,
    pub records: Vec<Record>,
    pub summaries: Vec<ConfigSummary>,
    /// Metric label per task (from the records' tasks; see [`metric_label`]).
    pub metric: BTreeMap<String, String>,
}

/// Load `dir` (an experiment's output directory, merged if it was sharded).
pub fn load(dir: &Path) -> Result<Sweep, ReportError> {
    let store = Store::new(dir);
    let (experiment, _) = Experiment::from_file(&store.experiment_path())?;
    let grid = Grid::expand(&experiment);
    let configs = store.read_configs()?;
    let records = store.read_all()?;
    if records.is_empty() {
        return Err(ReportError::Empty(format!("{}: no records yet", store.records_path(speccascade_harness::Shard::WHOLE).display())));
    }
    let summaries = summarise(&configs, &grid.hashes, &records, &experiment.cost);
    let stored = store.read_metrics();
    let metric = experiment
        .tasks
        .iter()
        .map(|t| (t.name.clone(), stored.get(&t.name).cloned().unwrap_or_else(|| metric_label(&t.name))))
        .collect();
    Ok(Sweep { dir: dir.to_path_buf(), experiment, grid, configs, records, summaries, metric })
}

/// The quality axis label of a task when the store has none (metric and unit).
pub fn metric_label(task: &str) -> String {
    match task {
        "synthetic" => "log-likelihood under truth (nats/token)".into(),
        "humaneval" | "mbpp" => "pass@1 (%)".into(),
        "gsm8k" | "trivia_qa" | "web_questions" | "natural_questions" => "exact match (%)".into(),
        "wmt14_en_de" => "BLEU".into(),
        "xsum" | "cnn_dailymail" => "ROUGE-2".into(),
        "squad_v2" => "F1 (%)".into(),
        _ => "quality (task metric)".into(),
    }
}
