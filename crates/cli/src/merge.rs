//! `speccascade merge <dir>`: join the shards of a sweep into one store.

use std::path::PathBuf;

use anyhow::{Context, Result};
use speccascade_harness::{Experiment, Store};

#[derive(clap::Args)]
pub struct Args {
    /// The sweep's output directory (holding experiment.yaml and shards/).
    pub dir: PathBuf,
    /// Merge even if some shards are missing.
    #[arg(long)]
    pub partial: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let store = Store::new(&a.dir);
    let (mut exp, _) = Experiment::from_file(&store.experiment_path()).map_err(anyhow::Error::new)?;
    // The store may have moved since it was written: merge where it is now.
    exp.output = a.dir.clone();
    let (m, summaries) = speccascade_harness::runner::merge(&exp, a.partial).with_context(|| format!("merging {}", a.dir.display()))?;
    if a.json {
        println!("{}", serde_json::json!({"merge": m, "configurations": summaries.len()}));
    } else {
        println!(
            "{}: {} records from {} of {} shards ({} duplicate copies dropped), {} configuration summaries",
            a.dir.join("records.jsonl").display(),
            m.records,
            m.shards,
            m.of,
            m.duplicates_dropped,
            summaries.len()
        );
        if !m.missing.is_empty() {
            println!("warning: shards {:?} are missing", m.missing);
        }
    }
    Ok(())
}
