//! `speccascade check <dir> --baseline <file>`: fail (exit 1) when a speed-up or a quality
//! regressed beyond the tolerance against a stored like-for-like baseline.

use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// The sweep's output directory.
    pub dir: PathBuf,
    /// Baseline JSON file (written with --update).
    #[arg(long)]
    pub baseline: PathBuf,
    /// Relative tolerance.
    #[arg(long, default_value_t = 0.10)]
    pub tolerance: f64,
    /// Write the current numbers into the baseline instead of failing.
    #[arg(long)]
    pub update: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let o = speccascade_report::check::check(&a.dir, &a.baseline, a.tolerance, a.update)
        .with_context(|| format!("checking {} against {}", a.dir.display(), a.baseline.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&o)?);
    } else if o.updated {
        println!("{}: baseline updated ({} numbers)", a.baseline.display(), o.compared);
    } else if o.passed() {
        println!(
            "ok: {} numbers within {:.0} % of {} ({} without a baseline entry, {} wall-clock speed-ups skipped under foreign load)",
            o.compared,
            o.tolerance * 100.0,
            a.baseline.display(),
            o.not_in_baseline,
            o.skipped_foreign_load
        );
    } else {
        println!("REGRESSION: {} of {} numbers worse than {} by more than {:.0} %:\n", o.offenders.len(), o.compared, a.baseline.display(), o.tolerance * 100.0);
        print!("{}", o.table());
    }
    if !o.updated && !o.passed() {
        std::process::exit(1);
    }
    Ok(())
}
