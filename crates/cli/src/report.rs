//! `speccascade report <dir>…`: tables, Table-2 numbers, the paper's claims and figures of one or
//! more sweeps; with `--readme FILE`, also the reproduction README drawn from all of them.

use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// The sweeps' output directories (each gets its own `report/`).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Also write a README with the claims table and Table 2 of all the sweeps (e.g.
    /// results/reproduction/README.md).
    #[arg(long, value_name = "FILE")]
    pub readme: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let mut reports = Vec::new();
    for dir in &a.dirs {
        reports.push(speccascade_report::report(dir).with_context(|| format!("reporting {}", dir.display()))?);
    }
    if let Some(path) = &a.readme {
        let command = format!(
            "speccascade report {} --readme {}",
            a.dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(" "),
            path.display()
        );
        let text = speccascade_report::readme::readme(&reports, &command);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        speccascade_files::write_atomic(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    }
    if a.json {
        // One store without a README: the report object itself (as before); else all of them.
        if reports.len() == 1 && a.readme.is_none() {
            println!("{}", serde_json::to_string_pretty(&reports[0])?);
        } else {
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({"reports": reports, "readme": a.readme}))?);
        }
        return Ok(());
    }
    for r in &reports {
        if reports.len() > 1 {
            println!("== {}", r.dir.display());
        }
        print!("{}", speccascade_report::table2::markdown(&r.table2));
        println!();
        print!("{}", r.coverage.banner());
        let verdicts: Vec<String> = r
            .claims
            .iter()
            .filter(|c| c.cost == speccascade_report::claims::Cost::Modelled)
            .map(|c| format!("({}) {} T={}: {}", c.id, c.task, c.temperature, c.verdict.text()))
            .collect();
        if !verdicts.is_empty() {
            println!("claims (modelled latency; report/claims.md): {}", verdicts.join("; "));
        }
        if r.foreign_load_records > 0 {
            println!("warning: {} of {} records were timed under foreign CPU load (see table.md)", r.foreign_load_records, r.records);
        }
        println!("wrote {} files under {}", r.files.len(), r.dir.display());
    }
    if let Some(p) = &a.readme {
        println!("wrote {}", p.display());
    }
    Ok(())
}
