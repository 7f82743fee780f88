//! speccascade: the command-line tool. One module per subcommand; `main` only dispatches.

mod data;
mod demo;
mod generate;
mod models;
mod score;
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
}

fn main() {
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
    }
}
