//! `shuzhuan-agent enroll --config FILE --token T`: creates the agent key if
//! needed and registers its public half with the aggregator.

use crate::config::AgentConfig;
use std::path::PathBuf;

/// Arguments of `enroll`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The agent.toml (names the aggregator, agent id, enterprise, data_dir).
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// The one-time enrolment token from the aggregator's operator.
    #[arg(long, value_name = "TOKEN")]
    pub token: String,
}

/// Enrols; returns the exit code.
pub fn run(args: &Args) -> i32 {
    let cfg = match AgentConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let Some(agg) = &cfg.aggregator else {
        eprintln!(
            "{}: no [aggregator] section: nothing to enrol with",
            args.config.display()
        );
        return 1;
    };
    let endpoint = match crate::ship::http::Endpoint::from_config(agg) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{}: {e}", args.config.display());
            return 1;
        }
    };
    let result = (|| -> anyhow::Result<String> {
        let key = crate::keys::load_or_create(&cfg.agent.data_dir)?;
        let rt = tokio::runtime::Runtime::new()?;
        rt.block_on(crate::ship::enroll(
            &endpoint,
            &args.token,
            &cfg.agent.id,
            cfg.agent.enterprise.as_str(),
            &key,
        ))
    })();
    match result {
        Ok(answer) => {
            eprintln!("enrolled: {answer}");
            0
        }
        Err(e) => {
            eprintln!("shuzhuan-agent enroll: {e:#}");
            1
        }
    }
}
