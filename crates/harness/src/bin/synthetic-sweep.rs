//! The harness alone, for synthetic experiments: `synthetic-sweep <exp.yaml> [--resume] [--fresh]
//! [--shard i/n]` or `synthetic-sweep --merge <exp.yaml>`. The `speccascade` binary is the real
//! front end; this small one exists so that tests can run (and kill -9) a sweep as a child process
//! without building the model stack.

use std::path::PathBuf;
use std::process::ExitCode;

use speccascade_harness::runner::{RunOptions, run};
use speccascade_harness::synthetic::SyntheticProvider;
use speccascade_harness::{Experiment, Shard};

fn main() -> ExitCode {
    match main_() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn main_() -> Result<(), String> {
    let mut opts = RunOptions::default();
    let (mut path, mut merge) = (None, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--resume" => opts.resume = true,
            "--fresh" => opts.fresh = true,
            "--merge" => merge = true,
            "--progress" => opts.progress = true,
            "--shard" => opts.shard = args.next().ok_or("--shard needs i/n")?.parse::<Shard>()?,
            _ if path.is_none() && !a.starts_with('-') => path = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument {a:?}")),
        }
    }
    let path = path.ok_or("usage: synthetic-sweep <exp.yaml> [--resume] [--fresh] [--shard i/n] | --merge <exp.yaml>")?;
    let (exp, src) = Experiment::from_file(&path).map_err(|e| e.to_string())?;
    if merge {
        let (m, _) = speccascade_harness::runner::merge(&exp, false).map_err(|e| e.to_string())?;
        println!("{}", serde_json::to_string(&m).unwrap());
        return Ok(());
    }
    let r = run(&exp, &src, &SyntheticProvider, &opts).map_err(|e| e.to_string())?;
    println!("{}", serde_json::json!({"written": r.records_written, "skipped": r.records_skipped, "planned": r.records_planned}));
    Ok(())
}
