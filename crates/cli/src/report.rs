//! `speccascade report <dir>`: tables, Table-2 numbers and figures of a sweep.

use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// The sweep's output directory.
    pub dir: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let r = speccascade_report::report(&a.dir).with_context(|| format!("reporting {}", a.dir.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    print!("{}", speccascade_report::table2::markdown(&r.table2));
    println!();
    if r.foreign_load_records > 0 {
        println!("warning: {} of {} records were timed under foreign CPU load (see table.md)", r.foreign_load_records, r.records);
    }
    println!("wrote {} files under {}", r.files.len(), r.dir.display());
    Ok(())
}
