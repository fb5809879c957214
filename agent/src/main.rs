//! The `shuzhuan-agent` binary: parses arguments and hands over to the library.

use clap::{Parser, Subcommand};
use shuzhuan_agent::cmd;

#[derive(Debug, Parser)]
#[command(
    name = "shuzhuan-agent",
    version,
    about = "Shuzhuan factory gateway agent"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check an agent.toml (and the profiles it uses): prints a summary, or
    /// every error with its line and column and exits 1.
    CheckConfig(cmd::check_config::Args),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::CheckConfig(args) => cmd::check_config::run(&args),
    };
    std::process::exit(code);
}
