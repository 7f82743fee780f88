//! `speccascade slurm <exp.yaml> --shards n`: write a Slurm job-array script for the sweep.

use std::path::PathBuf;

use anyhow::{Context, Result};
use speccascade_harness::Experiment;
use speccascade_harness::slurm::{SlurmOptions, job_array_script};

#[derive(clap::Args)]
pub struct Args {
    pub experiment: PathBuf,
    /// Number of array tasks (shards).
    #[arg(long)]
    pub shards: usize,
    /// Where to write the script (default: <output>/slurm.sh).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// `#SBATCH --time` per task, e.g. 04:00:00.
    #[arg(long)]
    pub time: Option<String>,
    #[arg(long, default_value_t = 4)]
    pub cpus: usize,
    #[arg(long)]
    pub mem: Option<String>,
    #[arg(long)]
    pub partition: Option<String>,
    /// The speccascade binary as the cluster nodes see it.
    #[arg(long, default_value = "speccascade")]
    pub binary: String,
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    crate::limits::in_range("--shards", a.shards, 1, crate::limits::MAX_SHARDS, "array tasks")?;
    crate::limits::in_range("--cpus", a.cpus, 1, 4096, "CPUs per array task")?;
    let (exp, _) = Experiment::from_file(&a.experiment).map_err(anyhow::Error::new)?;
    let o = SlurmOptions { shards: a.shards, time: a.time, cpus: a.cpus, mem: a.mem, partition: a.partition, binary: a.binary };
    let script = job_array_script(&exp.name, &a.experiment, &exp.output, &o);
    let path = a.out.unwrap_or_else(|| exp.output.join("slurm.sh"));
    if let Some(p) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    }
    speccascade_files::write_atomic(&path, script.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    // Slurm opens `#SBATCH --output` files before the script runs: their directory must exist.
    let logs = exp.output.join("slurm");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    if a.json {
        println!("{}", serde_json::json!({"script": path, "shards": a.shards}));
    } else {
        println!("wrote {} ({} array tasks); submit with: sbatch {}", path.display(), a.shards, path.display());
    }
    Ok(())
}
