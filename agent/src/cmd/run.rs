//! `shuzhuan-agent run --config FILE`: loads the config and runs the agent
//! until SIGTERM or Ctrl-C.

use crate::config::AgentConfig;
use std::path::PathBuf;

/// Arguments of `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The agent.toml.
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
}

/// How often the config file is looked at for a change.
const RELOAD_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Resolves on SIGTERM or Ctrl-C.
pub async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs; returns the exit code.
pub fn run(args: &Args) -> i32 {
    let cfg = match AgentConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return 1;
        }
    };
    let reloads = async {
        // SIGHUP or a change of the file reloads it (crate::reload).
        let triggers = crate::reload::triggers(&cfg.path, RELOAD_POLL);
        crate::run::run_reloadable(cfg, terminated(), Some(triggers)).await
    };
    match rt.block_on(reloads) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shuzhuan-agent: {e:#}");
            1
        }
    }
}
