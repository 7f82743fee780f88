//! `speccascade replay <dir> [--cost-table FILE]`: charge a store's records again at a cost
//! table's prices (its own final table, or one measured on an idle machine).

use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// The sweep's output directory.
    pub dir: PathBuf,
    /// Price the calls at this cost_table.json (e.g. from a short run of the same models on an idle
    /// machine) instead of the store's own.
    #[arg(long)]
    pub cost_table: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let o = speccascade_harness::replay::replay_store(&a.dir, a.cost_table.as_deref()).with_context(|| format!("replaying {}", a.dir.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&o)?);
    } else {
        println!(
            "{}: {} of {} records replayed at the prices of {} ({}; drafter {}, verifier {})",
            o.records_path.display(),
            o.replayed,
            o.records,
            o.prices.display(),
            o.hardware,
            o.drafter_model,
            o.verifier_model
        );
    }
    Ok(())
}
