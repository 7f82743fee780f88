//! speccascade: the command-line tool. One module per subcommand; `main` only dispatches.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "speccascade", version, about = "Speculative cascades: run, score and report cost-quality sweeps")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
    }
}
