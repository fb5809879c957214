//! `shuzhuan-agent check-config --config FILE`: reads and checks an agent.toml
//! and the profiles it uses without starting anything. Exit 0 prints a
//! summary on stdout; exit 1 prints every error (`file:line:column: message`)
//! on stderr.

use crate::config::AgentConfig;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `check-config`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The agent.toml to check.
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
}

/// Runs the check; returns the process exit code.
pub fn run(args: &Args) -> i32 {
    match AgentConfig::load(&args.config) {
        Ok(cfg) => {
            let _ = writeln!(std::io::stdout().lock(), "{}\nconfig ok", cfg.summary());
            0
        }
        Err(errors) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{errors}");
            let _ = writeln!(
                err,
                "{}: {} error{}",
                args.config.display(),
                errors.0.len(),
                if errors.0.len() == 1 { "" } else { "s" }
            );
            1
        }
    }
}
