//! The `shuzhuan-aggregator` binary: parses arguments and hands over to the library.
//!
//! Adding a subcommand (`demo`, `verify-claim`, `verify-bundle`) is one
//! variant in [`Command`] and one arm in [`main`].

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use shuzhuan_aggregator::config::Config;
use shuzhuan_aggregator::store::{Role, SqliteStore, Store};
use shuzhuan_aggregator::{api, enroll, registry, server};
use shuzhuan_common::credit_code::CreditCode;
use std::io::Write as _;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "shuzhuan-aggregator",
    version,
    about = "Shuzhuan's city service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API, ingest and roll-ups.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate aggregator.toml and print every problem with file:line:column.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// Create tokens: an agent enrolment token (--enterprise) or an API token (--role).
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Import or export the registry.
    Registry {
        #[command(subcommand)]
        action: RegistryAction,
    },
    /// Revoke an agent's keys.
    RevokeAgent {
        #[arg(long)]
        config: PathBuf,
        agent_id: String,
    },
    /// Judge an award claim against the signed evidence: writes the JSON
    /// report, the printable HTML report and the evidence bundle.
    VerifyClaim {
        #[arg(long)]
        config: PathBuf,
        /// The claim file (TOML), e.g. config/claims/examples/truthful.toml.
        #[arg(long)]
        claim: PathBuf,
        /// The claim policy.
        #[arg(long, default_value = "config/claims/thresholds.toml")]
        policy: PathBuf,
        /// The evidence log's key file (created when missing); default: the
        /// config's `[evidence] log_key_file` (the server's key).
        #[arg(long)]
        log_key_file: Option<PathBuf>,
        /// The log's origin line in checkpoints; default: the config's `[evidence] origin`.
        #[arg(long)]
        origin: Option<String>,
        /// Output prefix: writes PREFIX.json, PREFIX.html and the evidence
        /// bundle PREFIX.bundle.jsonl (line-oriented, format 2).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a consistent copy of the store (SQLite online backup API) while
    /// the server may keep running. Back up the evidence log key file too.
    Backup {
        #[arg(long)]
        config: PathBuf,
        /// The backup file to create (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Replace the store with a checked backup (stop the server first).
    Restore {
        #[arg(long)]
        config: PathBuf,
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// Replace an existing store.
        #[arg(long)]
        force: bool,
    },
    /// Run a whole generated city on this machine: simulated plants, one
    /// gateway per plant shipping signed reports over HTTP, the API and the
    /// dashboard, with time running fast. Stops on Ctrl-C.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Number of plants (enterprises).
        #[arg(long, default_value_t = 24)]
        plants: usize,
        /// Where the SQLite store and keys go (reset on each run).
        #[arg(long, default_value = "data/demo")]
        data_dir: PathBuf,
        /// Simulated seconds per wall second (8640: a month in 5 minutes).
        #[arg(long, default_value_t = 8640.0)]
        scale: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Stop after this many seconds instead of waiting for Ctrl-C.
        #[arg(long)]
        run_for: Option<f64>,
        /// The repository's config folder.
        #[arg(long, default_value = "config")]
        config_dir: PathBuf,
        /// The shortest wall-clock poll interval given to a gateway (ms): the
        /// simulated poll interval becomes the shortest divisor of the 900 s
        /// window at least this long in wall time (8640x: 225 s, 4 per window).
        #[arg(long, default_value_t = 25.0)]
        min_poll_wall_ms: f64,
    },
    /// Export the evidence bundle of one enterprise and window (line-oriented,
    /// format 2 of docs/specs/evidence.md), streamed from the store.
    ExportBundle {
        #[arg(long)]
        config: PathBuf,
        /// The enterprise (unified social credit code).
        #[arg(long)]
        enterprise: String,
        /// Window start, RFC 3339 with offset (2026-01-01T00:00:00+08:00) or Unix seconds.
        #[arg(long)]
        start: String,
        /// Window end (exclusive), same forms.
        #[arg(long)]
        end: String,
        /// The evidence log's key file (created when missing); default: the
        /// config's `[evidence] log_key_file` (the server's key).
        #[arg(long)]
        log_key_file: Option<PathBuf>,
        /// The log's origin line in checkpoints; default: the config's `[evidence] origin`.
        #[arg(long)]
        origin: Option<String>,
        /// The bundle file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify an evidence bundle offline (no database) against the log's public key.
    VerifyBundle {
        file: PathBuf,
        /// The trusted log public key, base64.
        #[arg(long)]
        log_key: String,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    Create {
        #[arg(long)]
        config: PathBuf,
        /// Create a one-time enrolment token for this enterprise (credit code).
        #[arg(long, conflicts_with = "role")]
        enterprise: Option<String>,
        /// Create an API token with this role: admin, bureau, county, enterprise, evaluator.
        #[arg(long)]
        role: Option<String>,
        /// County id (role county) or credit code (role enterprise).
        #[arg(long)]
        scope: Option<String>,
        /// Who the API token is for (shown in logs instead of the secret).
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

#[derive(Subcommand)]
enum RegistryAction {
    /// Import enterprises and/or recognitions from CSV. Nothing is imported
    /// from a file with bad rows unless --skip-bad-rows.
    Import {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        enterprises: Option<PathBuf>,
        #[arg(long)]
        recognitions: Option<PathBuf>,
        #[arg(long)]
        skip_bad_rows: bool,
    },
    /// Export a table as CSV or XLSX (by the --out extension).
    Export {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        table: String,
        #[arg(long)]
        out: PathBuf,
    },
}

fn now() -> i64 {
    (api::system_clock())()
}

fn open(config: &std::path::Path) -> anyhow::Result<(Config, SqliteStore)> {
    let cfg = Config::load(config)?;
    let store = SqliteStore::open(&cfg.store_path)?;
    Ok((cfg, store))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Serve { config } => {
            let cfg = Config::load(&config)?;
            tokio::runtime::Runtime::new()?.block_on(server::serve(cfg))?;
        }
        Command::CheckConfig { config } => {
            Config::load(&config)?;
            writeln!(out, "{}: ok", config.display())?;
        }
        Command::Token {
            action:
                TokenAction::Create {
                    config,
                    enterprise,
                    role,
                    scope,
                    name,
                },
        } => {
            let (cfg, store) = open(&config)?;
            match (enterprise, role) {
                (Some(code), None) => {
                    let code = CreditCode::parse(&code)?;
                    let token =
                        enroll::create_token(&store, &code, now(), cfg.enrol_token_ttl_secs)?;
                    writeln!(out, "{token}")?;
                }
                (None, Some(role)) => {
                    let role = Role::parse(&role).with_context(|| {
                        format!(
                            "role `{role}` is not admin, bureau, county, enterprise or evaluator"
                        )
                    })?;
                    if role.needs_scope() != scope.is_some() {
                        bail!(
                            "role `{}` {} --scope",
                            role.as_str(),
                            if role.needs_scope() {
                                "needs"
                            } else {
                                "takes no"
                            }
                        );
                    }
                    let token = api::auth::create_api_token(&store, &name, role, scope, now())?;
                    writeln!(out, "{token}")?;
                }
                _ => bail!("give --enterprise CODE (enrolment token) or --role ROLE (API token)"),
            }
        }
        Command::Registry {
            action:
                RegistryAction::Import {
                    config,
                    enterprises,
                    recognitions,
                    skip_bad_rows,
                },
        } => {
            let (_, store) = open(&config)?;
            let mut bad_total = 0;
            if let Some(path) = enterprises {
                let data =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                let (ok, bad) =
                    registry::parse_enterprises(&data, &store.counties()?, &store.chains()?)
                        .with_context(|| path.display().to_string())?;
                for b in &bad {
                    eprintln!("{}: {b}", path.display());
                }
                bad_total += bad.len();
                if bad.is_empty() || skip_bad_rows {
                    store.import_registry(&ok, &[])?;
                    writeln!(
                        out,
                        "{}: imported {} enterprises, skipped {}",
                        path.display(),
                        ok.len(),
                        bad.len()
                    )?;
                }
            }
            if let Some(path) = recognitions {
                let data =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                let known = store
                    .enterprises()?
                    .into_iter()
                    .map(|e| e.credit_code.to_string())
                    .collect();
                let (ok, bad) = registry::parse_recognitions(&data, &known)
                    .with_context(|| path.display().to_string())?;
                for b in &bad {
                    eprintln!("{}: {b}", path.display());
                }
                bad_total += bad.len();
                if bad.is_empty() || skip_bad_rows {
                    store.import_registry(&[], &ok)?;
                    writeln!(
                        out,
                        "{}: imported {} recognitions, skipped {}",
                        path.display(),
                        ok.len(),
                        bad.len()
                    )?;
                }
            }
            if bad_total > 0 && !skip_bad_rows {
                bail!("{bad_total} bad rows: nothing imported from the files with errors (fix them or pass --skip-bad-rows)");
            }
        }
        Command::Registry {
            action:
                RegistryAction::Export {
                    config,
                    table,
                    out: path,
                },
        } => {
            let (_, store) = open(&config)?;
            let t = match table.as_str() {
                "enterprises" => registry::enterprises_table(&store.enterprises()?),
                "recognitions" => registry::recognitions_table(&store.recognitions()?),
                other => store.export_table(other)?.with_context(|| {
                    format!(
                        "`{other}` is not exportable; tables: {}",
                        shuzhuan_aggregator::store::EXPORTABLE.join(", ")
                    )
                })?,
            };
            let bytes = match path.extension().and_then(|e| e.to_str()) {
                Some("csv") => registry::to_csv(&t)?,
                Some("xlsx") => registry::to_xlsx(&t, &table)?,
                _ => bail!("--out must end in .csv or .xlsx"),
            };
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            writeln!(out, "{}: {} rows", path.display(), t.rows.len())?;
        }
        Command::RevokeAgent { config, agent_id } => {
            let (_, store) = open(&config)?;
            if !store.revoke_agent(&agent_id, now())? {
                bail!("agent `{agent_id}` is not enrolled or already revoked");
            }
            writeln!(out, "agent `{agent_id}` revoked")?;
        }
        Command::VerifyClaim {
            config,
            claim,
            policy,
            log_key_file,
            origin,
            out: prefix,
        } => {
            use shuzhuan_aggregator::evidence;
            let (cfg, store) = open(&config)?;
            let key_path = log_key_file.unwrap_or_else(|| cfg.log_key_file.clone());
            let log = evidence::EvidenceLog::open(
                &store,
                origin.unwrap_or_else(|| cfg.log_origin.clone()),
                evidence::load_or_create_log_key(&key_path)?,
            )?;
            // Reports accepted while no log hook was installed get their leaves now.
            log.backfill(&store)?;
            let with = |ext: &str| PathBuf::from(format!("{}.{ext}", prefix.display()));
            let bundle_path = with("bundle.jsonl");
            let bundle_file = std::fs::File::create(&bundle_path)
                .with_context(|| format!("creating {}", bundle_path.display()))?;
            let outcome = evidence::verify_claim_writing(
                &store,
                &log,
                &evidence::load_claim(&claim)?,
                &evidence::load_policy(&policy)?,
                Some(std::io::BufWriter::new(bundle_file)),
            )?;
            std::fs::write(with("json"), serde_json::to_vec_pretty(&outcome.to_json())?)?;
            std::fs::write(with("html"), outcome.to_html())?;
            for f in &outcome.judgement.figures {
                writeln!(
                    out,
                    "{}: claimed {} {}, measured {}, {:?}",
                    f.figure.key(),
                    f.claimed,
                    f.unit,
                    f.measured
                        .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
                    f.verdict
                )?;
            }
            writeln!(out, "log public key: {}", log.public_key_b64())?;
        }
        Command::Backup { config, out: file } => {
            let cfg = Config::load(&config)?;
            let s = shuzhuan_aggregator::store::backup::backup(&cfg.store_path, &file)?;
            writeln!(
                out,
                "{}: schema {}, {} reports, {} evidence leaves, {} bytes",
                file.display(),
                s.schema_version,
                s.reports,
                s.evidence_leaves,
                s.bytes
            )?;
            if !cfg.log_key_file.exists() {
                eprintln!(
                    "note: no evidence log key at {}",
                    cfg.log_key_file.display()
                );
            } else {
                eprintln!(
                    "note: keep a copy of the evidence log key {} with the backup (it is not inside it)",
                    cfg.log_key_file.display()
                );
            }
        }
        Command::Restore {
            config,
            from,
            force,
        } => {
            let cfg = Config::load(&config)?;
            let s = shuzhuan_aggregator::store::backup::restore(&from, &cfg.store_path, force)?;
            writeln!(
                out,
                "{} restored from {}: schema {}, {} reports, {} evidence leaves",
                cfg.store_path.display(),
                from.display(),
                s.schema_version,
                s.reports,
                s.evidence_leaves
            )?;
        }
        Command::Demo {
            listen,
            plants,
            data_dir,
            scale,
            seed,
            run_for,
            config_dir,
            min_poll_wall_ms,
        } => {
            let args = shuzhuan_aggregator::demo::DemoArgs {
                listen,
                plants,
                data_dir,
                scale,
                seed,
                run_for,
                config_dir,
                min_poll_wall_ms,
            };
            tokio::runtime::Runtime::new()?
                .block_on(shuzhuan_aggregator::demo::run(args, &mut out))?;
        }
        Command::ExportBundle {
            config,
            enterprise,
            start,
            end,
            log_key_file,
            origin,
            out: file,
        } => {
            use shuzhuan_aggregator::evidence;
            let instant = |what: &str, v: &str| {
                v.parse::<i64>()
                    .ok()
                    .or_else(|| shuzhuan_common::claim::parse_datetime(v))
                    .with_context(|| {
                        format!("--{what} `{v}` is neither Unix seconds nor a date-time with offset like 2026-01-01T00:00:00+08:00")
                    })
            };
            let (start, end) = (instant("start", &start)?, instant("end", &end)?);
            if end <= start {
                bail!("--end is not after --start");
            }
            let enterprise = shuzhuan_common::credit_code::CreditCode::parse(&enterprise)
                .with_context(|| format!("--enterprise `{enterprise}`"))?;
            let (cfg, store) = open(&config)?;
            let key_path = log_key_file.unwrap_or_else(|| cfg.log_key_file.clone());
            let log = evidence::EvidenceLog::open(
                &store,
                origin.unwrap_or_else(|| cfg.log_origin.clone()),
                evidence::load_or_create_log_key(&key_path)?,
            )?;
            log.backfill(&store)?;
            let f = std::fs::File::create(&file)
                .with_context(|| format!("creating {}", file.display()))?;
            let stats = evidence::export_bundle_to(
                &store,
                &log,
                &enterprise,
                start,
                end,
                std::io::BufWriter::with_capacity(1 << 20, f),
            )?;
            writeln!(
                out,
                "{}: {} reports; log public key: {}",
                file.display(),
                stats.entries,
                log.public_key_b64()
            )?;
        }
        Command::VerifyBundle { file, log_key } => {
            let verdict = shuzhuan_aggregator::evidence::verify_bundle_file(&file, &log_key)?;
            writeln!(out, "{}", serde_json::to_string_pretty(&verdict)?)?;
            if !verdict.ok {
                bail!(
                    "{}: {} problem(s) found",
                    file.display(),
                    verdict.problems.len()
                );
            }
        }
    }
    Ok(())
}
