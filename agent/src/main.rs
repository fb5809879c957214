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
    /// Run the agent until SIGTERM or Ctrl-C.
    Run(cmd::run::Args),
    /// Create the agent key if needed and enrol it with the aggregator.
    Enroll(cmd::enroll::Args),
    /// Test helper: append to a spool, printing each stored seq.
    #[command(hide = true)]
    SpoolStress(cmd::spool_stress::Args),
}

fn main() {
    let cli = Cli::parse();
    // The daemon runs with tuned glibc malloc (shuzhuan_agent::malloc); this
    // returns only when no re-exec was wanted or it failed.
    let untuned = match cli.command {
        Command::Run(_) => shuzhuan_agent::malloc::reexec_with_tunables(),
        _ => None,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Some(e) = untuned {
        tracing::warn!(error = %e, "cannot restart with tuned malloc; running with glibc's defaults");
    }
    let code = match cli.command {
        Command::CheckConfig(args) => cmd::check_config::run(&args),
        Command::Run(args) => cmd::run::run(&args),
        Command::Enroll(args) => cmd::enroll::run(&args),
        Command::SpoolStress(args) => cmd::spool_stress::run(&args),
    };
    std::process::exit(code);
}
