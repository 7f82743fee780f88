//! A Slurm job-array script for a sharded sweep: task `i` of the array runs `--shard i/n --resume`
//! (so a preempted or failed task simply reruns), and a dependent job merges and reports.

use std::path::Path;

/// Options for the generated script.
#[derive(Clone, Debug)]
pub struct SlurmOptions {
    pub shards: usize,
    /// `#SBATCH` resources; `None` leaves the site default.
    pub time: Option<String>,
    pub cpus: usize,
    pub mem: Option<String>,
    pub partition: Option<String>,
    /// The speccascade binary to call (default: `speccascade` on PATH).
    pub binary: String,
}

/// The script text for `experiment` (a path as the cluster sees it).
pub fn job_array_script(name: &str, experiment: &Path, output: &Path, o: &SlurmOptions) -> String {
    let mut s = String::new();
    let job = sanitize(name);
    s.push_str("#!/bin/bash\n");
    s.push_str(&format!("# Sweep {name:?} as a Slurm job array of {} shards.\n", o.shards));
    s.push_str("# Submit:  sbatch THIS_FILE   (the merge + report job is queued by the first array task)\n");
    s.push_str(&format!("#SBATCH --job-name=sc-{job}\n"));
    s.push_str(&format!("#SBATCH --array=0-{}\n", o.shards.saturating_sub(1)));
    s.push_str(&format!("#SBATCH --cpus-per-task={}\n", o.cpus));
    if let Some(t) = &o.time {
        s.push_str(&format!("#SBATCH --time={t}\n"));
    }
    if let Some(m) = &o.mem {
        s.push_str(&format!("#SBATCH --mem={m}\n"));
    }
    if let Some(p) = &o.partition {
        s.push_str(&format!("#SBATCH --partition={p}\n"));
    }
    s.push_str(&format!("#SBATCH --output={}/slurm/%x-%A_%a.out\n", output.display()));
    s.push_str("set -euo pipefail\n");
    s.push_str(&format!("mkdir -p {}/slurm\n", shell_quote(&output.display().to_string())));
    s.push_str(&format!("SC={}\n", shell_quote(&o.binary)));
    s.push_str(&format!("EXP={}\n", shell_quote(&experiment.display().to_string())));
    s.push_str(&format!("OUT={}\n", shell_quote(&output.display().to_string())));
    // Only task 0's first run queues the merge: a requeued task 0 must not queue a second one.
    s.push_str("if [ \"${SLURM_ARRAY_TASK_ID}\" = \"0\" ] && [ \"${SLURM_RESTART_COUNT:-0}\" = \"0\" ]; then\n");
    s.push_str("  # After every array task ends successfully: join the shards and write tables and plots.\n");
    s.push_str(&format!(
        "  sbatch --dependency=afterok:${{SLURM_ARRAY_JOB_ID}} --job-name=sc-{job}-merge --output=\"$OUT/slurm/%x-%j.out\" \\\n    --wrap=\"$SC merge $OUT && $SC report $OUT\"\n"
    ));
    s.push_str("fi\n");
    s.push_str(&format!("\"$SC\" run \"$EXP\" --shard \"${{SLURM_ARRAY_TASK_ID}}/{}\" --resume\n", o.shards));
    s
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
}

/// `s` as one shell word (quoted unless it is plainly safe).
pub fn shell_quote(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:=".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_runs_every_shard_and_merges() {
        let o = SlurmOptions { shards: 8, time: Some("02:00:00".into()), cpus: 4, mem: None, partition: None, binary: "speccascade".into() };
        let s = job_array_script("my sweep", Path::new("experiments/x.yaml"), Path::new("results/x"), &o);
        assert!(s.starts_with("#!/bin/bash\n"));
        assert!(s.contains("#SBATCH --array=0-7\n"));
        assert!(s.contains("#SBATCH --job-name=sc-my-sweep\n"));
        assert!(s.contains("--shard \"${SLURM_ARRAY_TASK_ID}/8\" --resume"));
        assert!(s.contains("merge $OUT && $SC report $OUT"));
        // bash accepts it
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("job.sh");
        std::fs::write(&p, &s).unwrap();
        let st = std::process::Command::new("bash").arg("-n").arg(&p).status().unwrap();
        assert!(st.success());
    }
}
