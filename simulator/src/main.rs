//! The `shuzhuan-sim` binary: parses arguments and hands over to the library.

use anyhow::Context;
use clap::Parser;
use shuzhuan_simulator::clock::SimClock;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Simulated plants speaking Modbus TCP and OPC UA, with ground truth.
#[derive(Debug, Parser)]
#[command(name = "shuzhuan-sim")]
struct Args {
    /// Plant file(s) to serve.
    #[arg(long = "config", required_unless_present = "plants")]
    configs: Vec<PathBuf>,
    /// Generate a city of this many plants instead (written to OUT/plants/).
    #[arg(long)]
    plants: Option<usize>,
    /// Machines per generated plant, `MIN-MAX` (default 3-8).
    #[arg(long, value_parser = shuzhuan_simulator::city::CityOptions::parse_machines)]
    machines: Option<(u8, u8)>,
    /// Serve the generated plants' digitized CNC machines over OPC UA (one
    /// server per plant that has one) instead of as Modbus devices.
    #[arg(long)]
    cnc_opcua: bool,
    /// OPC UA servers without namespace 0's instance declarations (about
    /// 7 MB less each; standard types then show no declared children).
    #[arg(long)]
    opcua_lean_ns0: bool,
    /// Seed of the generated city.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Reference data folder (city units, fallback lists).
    #[arg(long, default_value = "config")]
    config_dir: PathBuf,
    /// Simulated seconds per wall second (overrides the plant file's `[clock] scale`).
    #[arg(long)]
    time_scale: Option<f64>,
    /// Output folder: ports.json, `truth/<plant>.jsonl` and `agents/<plant>.toml`.
    #[arg(long, default_value = "sim-out")]
    out: PathBuf,
    /// Device profiles folder.
    #[arg(long, default_value = "config/profiles")]
    profiles: PathBuf,
    /// Control port (fault injection, loopback line protocol; port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:0")]
    control: std::net::SocketAddr,
    /// Stop after this many wall seconds (default: run until Ctrl-C).
    #[arg(long)]
    run_for: Option<f64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    shuzhuan_simulator::opcua::set_lean_namespace0_default(args.opcua_lean_ns0);
    let profiles = shuzhuan_simulator::profiles::load_dir(&args.profiles)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut plants = Vec::new();
    let mut ports = BTreeMap::new();
    let mut all = Vec::new();
    for path in &args.configs {
        all.push(shuzhuan_simulator::plant::load_checked(path, &profiles)?);
    }
    if let Some(n) = args.plants {
        let (units, fallback) = shuzhuan_simulator::city::load_units(&args.config_dir)?;
        if fallback {
            tracing::warn!(
                "config/city/units.toml not found: using config/plants/city-fallback.toml"
            );
        }
        // 2025-12-01 00:00 UTC (08:00 in China), a Monday.
        let mut options = shuzhuan_simulator::city::CityOptions {
            cnc_opcua: args.cnc_opcua,
            ..Default::default()
        };
        if let Some(m) = args.machines {
            options.machines = m;
        }
        let generated = shuzhuan_simulator::city::generate_with(
            &units,
            n,
            args.seed,
            args.time_scale.unwrap_or(1.0),
            1_764_547_200_000,
            options,
        );
        let dir = args.out.join("plants");
        std::fs::create_dir_all(&dir)?;
        for p in &generated {
            std::fs::write(
                dir.join(format!("{}.toml", p.plant.id)),
                toml::to_string(p)?,
            )?;
        }
        all.extend(generated);
    }
    for plant in all {
        let scale = args.time_scale.unwrap_or(plant.clock.scale);
        let sim_epoch = plant
            .clock
            .sim_epoch_ms
            .unwrap_or_else(shuzhuan_simulator::clock::wall_ms);
        let clock = SimClock::starting_now(scale, sim_epoch);
        let running =
            shuzhuan_simulator::run::start(plant, &profiles, clock, Some(args.out.clone())).await?;
        let id = running.model.plant.plant.id.clone();
        let agents = args.out.join("agents");
        std::fs::create_dir_all(&agents)?;
        let data_dir = args.out.join("agent-data").join(&id);
        let text = shuzhuan_simulator::agentcfg::agent_config(
            &running.model.plant,
            &running.ports,
            &clock,
            &data_dir.display().to_string(),
            "127.0.0.1:0",
        );
        let agent_path = agents.join(format!("{id}.toml"));
        std::fs::write(&agent_path, text)
            .with_context(|| format!("cannot write {}", agent_path.display()))?;
        ports.insert(
            id,
            serde_json::json!({
                "links": running.ports,
                "clock": { "scale": clock.scale, "sim_epoch_ms": clock.sim_epoch_ms, "real_epoch_ms": clock.real_epoch_ms },
            }),
        );
        plants.push(running);
    }
    let links = shuzhuan_simulator::control::Targets::of(&plants);
    let (control, _control_task) =
        shuzhuan_simulator::control::serve(std::sync::Arc::new(links), args.control)
            .await
            .with_context(|| format!("cannot listen on {}", args.control))?;
    let mut ports = serde_json::to_value(ports)?;
    ports["control"] = serde_json::json!(control.to_string());
    let ports_path = args.out.join("ports.json");
    std::fs::write(&ports_path, serde_json::to_string_pretty(&ports)?)
        .with_context(|| format!("cannot write {}", ports_path.display()))?;
    tracing::info!(path = %ports_path.display(), plants = plants.len(), "serving");
    match args.run_for {
        Some(secs) => tokio::time::sleep(std::time::Duration::from_secs_f64(secs)).await,
        None => tokio::signal::ctrl_c().await?,
    }
    drop(plants);
    Ok(())
}
