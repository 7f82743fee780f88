//! speccascade: the command-line tool. One module per subcommand; `main` only dispatches.

mod check;
mod data;
mod demo;
mod generate;
mod limits;
mod merge;
mod models;
mod replay;
mod report;
mod run;
mod score;
mod slurm;
mod tokenize;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "speccascade", version, about = "Speculative cascades: run, score and report cost-quality sweeps")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate on the synthetic drafter/verifier pair and print the text and the cost ledger.
    Demo(demo::DemoArgs),
    /// Score predictions (JSONL) against references with a task metric (BLEU, ROUGE, EM/F1, GSM8K, pass@k).
    Score(score::ScoreArgs),
    /// Datasets: `data list`, `data fetch <task> [--from FILE]`.
    Data(data::DataArgs),
    /// Models: `models list`, `models fetch <name>…` (pinned GGUF files into the cache).
    Models(models::ModelsArgs),
    /// Print the token ids of a text under a model's tokenizer.
    Tokenize(tokenize::TokenizeArgs),
    /// Generate text with one model, or with a drafter/verifier pair through a decoding method.
    Generate(generate::GenerateArgs),
    /// Run an experiment sweep (YAML): grid → records → summaries; `--resume`, `--shard i/n`.
    Run(run::Args),
    /// Tables, Table-2 numbers and figures of a sweep's output directory.
    Report(report::Args),
    /// Charge a sweep's records again at a cost table's prices (its own, or an idle machine's).
    Replay(replay::Args),
    /// Compare a sweep with a stored baseline; exit 1 on a regression beyond the tolerance.
    Check(check::Args),
    /// Join the shards of a sweep (`run --shard i/n`) into one store.
    Merge(merge::Args),
    /// Write a Slurm job-array script that runs a sweep as n shards, then merges and reports.
    Slurm(slurm::Args),
}

fn main() {
    // Large per-position buffers: keep freed memory instead of unmapping it (see the function).
    speccascade_core::alloc::keep_freed_memory();
    // Sweep records' `hardware: auto` tags name the matmul kernels as well as the CPU.
    speccascade_harness::sysstat::set_kernel_paths(speccascade_models::cpu::paths());
    if let Err(e) = dispatch(Cli::parse()) {
        // `{:#}` prints the whole context chain on one line: what failed and why.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(a) => demo::run(a),
        Command::Score(a) => score::run(a),
        Command::Data(a) => data::run(a),
        Command::Models(a) => models::run(a),
        Command::Tokenize(a) => tokenize::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Run(a) => run::run(a),
        Command::Report(a) => report::run(a),
        Command::Check(a) => check::run(a),
        Command::Merge(a) => merge::run(a),
        Command::Replay(a) => replay::run(a),
        Command::Slurm(a) => slurm::run(a),
    }
}
