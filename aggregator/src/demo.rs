//! `shuzhuan-aggregator demo`: a whole city on one machine. It generates a
//! city with the simulator library (enterprises over several counties and
//! industry chains; PLCs and meters over Modbus TCP, the CNCs of some
//! plants over OPC UA), starts the plants, registers the enterprises,
//! runs one real agent per plant in-process (`shuzhuan_agent::run::run`,
//! polling the plant's Modbus TCP and OPC UA servers over loopback, with the
//! config the simulator writes for it), enrols each agent over the real HTTP
//! API, lets them ship signed, hash-chained reports over real HTTP, and
//! serves the API and the dashboard, all with time running `scale` times
//! faster so a simulated month fills in minutes. The aggregator's clock and
//! the agents' clocks are the same simulated clock, so ingest's time checks
//! and the dashboard's "today" follow simulated time.

use crate::api::{self, AppState};
use crate::config::Config;
use crate::server;
use crate::store::{SqliteStore, Store};
use anyhow::Context as _;
use shuzhuan_agent::config::AgentConfig;
use shuzhuan_common::inventory::DeviceKind;
use shuzhuan_common::registry::{
    County, CountyKind, DeclaredRates, Enterprise, IndustryChain, Recognition, RecognitionKind,
    RecognitionLevel,
};
use shuzhuan_simulator::clock::SimClock;
use shuzhuan_simulator::plant::{LinkConfig, LinkKind, Plant};
use shuzhuan_simulator::run::RunningPlant;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// What `demo` was asked for.
#[derive(Debug, Clone)]
pub struct DemoArgs {
    pub listen: SocketAddr,
    pub plants: usize,
    pub data_dir: PathBuf,
    /// Simulated seconds per wall second.
    pub scale: f64,
    pub seed: u64,
    /// Stop after this many wall seconds (tests); `None` runs until Ctrl-C.
    pub run_for: Option<f64>,
    /// The repository's `config/` (profiles, plan targets, city units, claim policy).
    pub config_dir: PathBuf,
    /// The shortest wall-clock poll interval a gateway is given, in ms: on a
    /// fast clock the generated configs' 1 s (simulated) poll would be far
    /// below a millisecond of wall time, and most polls would be missed.
    pub min_poll_wall_ms: f64,
}

/// The poll interval (simulated ms) for a demo gateway: the shortest divisor
/// of the window, in whole seconds, that is at least `min_wall_ms` of wall
/// time at `scale` and at least `configured_ms`; the window itself when
/// nothing shorter fits. A divisor keeps every window's expected sample
/// count whole.
pub fn demo_poll_ms(configured_ms: u64, scale: f64, window_secs: u32, min_wall_ms: f64) -> u64 {
    let want_ms = (min_wall_ms * scale.max(1.0)).max(configured_ms as f64);
    (1..=u64::from(window_secs.max(1)))
        .filter(|d| u64::from(window_secs) % d == 0)
        .map(|d| d * 1000)
        .find(|&ms| ms as f64 >= want_ms)
        .unwrap_or(u64::from(window_secs.max(1)) * 1000)
}

/// The local (UTC+8) offset the demo city keeps its days in.
const UTC_OFFSET: i64 = 8 * 3600;

/// Midnight (local) of the first day of the month before the one `wall_s` falls in.
fn start_of_previous_month(wall_s: i64) -> i64 {
    let day = crate::days::day_of(wall_s, UTC_OFFSET);
    let (y, m, _) = crate::days::civil_from_days(day);
    let (py, pm) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    crate::days::days_from_civil(py, pm, 1) * 86_400 - UTC_OFFSET
}

/// Names of counties and chains from `config/city/units.toml` when it has
/// them (`name`, `name_en`), else the ids.
fn unit_names(config_dir: &Path) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(config_dir.join("city/units.toml")) else {
        return out;
    };
    let Ok(doc) = toml::from_str::<toml::Table>(&text) else {
        return out;
    };
    for key in ["counties", "chains"] {
        for item in doc
            .get(key)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let Some(t) = item.as_table() else { continue };
            let Some(id) = t.get("id").and_then(|v| v.as_str()) else {
                continue;
            };
            let name = t
                .get("name")
                .or_else(|| t.get("zh"))
                .and_then(|v| v.as_str())
                .unwrap_or(id);
            let en = t
                .get("name_en")
                .or_else(|| t.get("en"))
                .and_then(|v| v.as_str())
                .unwrap_or(id);
            out.insert(id.to_owned(), (name.to_owned(), en.to_owned()));
        }
    }
    out
}

/// Moves the CNC machines of a plant to an OPC UA link.
fn cnc_over_opcua(p: &mut Plant) -> bool {
    let mut moved = false;
    for d in &mut p.devices {
        if d.kind == DeviceKind::CncMachineTool && d.link.is_some() {
            d.link = Some("cnc-ua".into());
            d.profile = Some("opcua-machinetool-cnc".into());
            moved = true;
        }
    }
    if moved {
        p.links.push(LinkConfig {
            id: "cnc-ua".into(),
            kind: LinkKind::Opcua,
            listen: "127.0.0.1:0".into(),
            port: None,
            agent_port: None,
        });
    }
    moved
}

/// The registry rows of a generated city.
fn registry(
    plants: &[Plant],
    names: &BTreeMap<String, (String, String)>,
    units: &shuzhuan_simulator::city::CityUnits,
    year: u16,
) -> (
    Vec<County>,
    Vec<IndustryChain>,
    Vec<Enterprise>,
    Vec<Recognition>,
) {
    let label = |id: &str| names.get(id).cloned().unwrap_or((id.into(), id.into()));
    let counties = units
        .counties
        .iter()
        .map(|c| County {
            id: c.id.clone(),
            name: label(&c.id).0,
            name_en: label(&c.id).1,
            kind: CountyKind::County,
            division_code: c.division_code.clone(),
        })
        .collect();
    let chains = units
        .chains
        .iter()
        .map(|c| IndustryChain {
            id: c.id.clone(),
            name: label(&c.id).0,
            name_en: label(&c.id).1,
            cluster: None,
            industry_type: c.industry_type,
        })
        .collect();
    let mut ents = Vec::new();
    let mut recs = Vec::new();
    for (i, p) in plants.iter().enumerate() {
        let production: Vec<_> = p.devices.iter().filter(|d| d.production).collect();
        let n = production.len().max(1) as f64;
        let digital = production.iter().filter(|d| d.declared_digital).count() as f64;
        let networked = production.iter().filter(|d| d.declared_networked).count() as f64;
        // Questionnaires run a little ahead of the machines: some enterprises round up.
        let optimism = if i % 3 == 0 { 0.15 } else { 0.0 };
        let kp = p.key_processes.len().max(1) as f64;
        let kp_nc = p.key_processes.iter().filter(|k| k.declared_nc).count() as f64;
        ents.push(Enterprise {
            credit_code: p.plant.credit_code.clone(),
            name: format!(
                "{}{}示范制造企业{:02}",
                label(&p.plant.county).0,
                label(&p.plant.chain).0,
                i + 1
            ),
            county: p.plant.county.clone(),
            chain: p.plant.chain.clone(),
            above_scale: i % 6 != 5,
            industry_type: units
                .chains
                .iter()
                .find(|c| c.id == p.plant.chain)
                .map_or(shuzhuan_common::inventory::IndustryType::Discrete, |c| {
                    c.industry_type
                }),
            rd_design_tools: Some(i % 4 != 3),
            declared: DeclaredRates {
                digitization: Some((digital / n + optimism).min(1.0)),
                networking: Some((networked / n + optimism).min(1.0)),
                key_process_nc: (i % 5 != 4).then_some(kp_nc / kp),
            },
        });
        let kinds = [
            (1, RecognitionKind::SmartWorkshop),
            (2, RecognitionKind::GreenFactory),
            (3, RecognitionKind::SmartFactory),
            (5, RecognitionKind::IntegrationDiagnosed),
        ];
        for (k, kind) in kinds {
            if i % 6 == k {
                recs.push(Recognition {
                    credit_code: p.plant.credit_code.clone(),
                    kind,
                    level: RecognitionLevel::Provincial,
                    year,
                    evidence: "demo: generated city".into(),
                });
            }
        }
    }
    (counties, chains, ents, recs)
}

/// Sends one HTTP/1.1 request to `addr` and returns the status and body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header end"))?;
    let status = std::str::from_utf8(&buf[..split])
        .ok()
        .and_then(|h| h.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status"))?;
    let mut rest = buf[split + 4..].to_vec();
    let chunked = std::str::from_utf8(&buf[..split]).is_ok_and(|h| {
        h.to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
    });
    if chunked {
        rest = dechunk(&rest);
    }
    Ok((status, rest))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let n = std::str::from_utf8(&b[..nl])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        if n == 0 || b.len() < nl + 2 + n {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[(nl + 4 + n).min(b.len())..];
    }
    out
}

/// Writes plant `rp`'s agent config under `data_dir/agents/` (the
/// simulator's `agents/<plant>.toml`, pointed at the demo's aggregator and
/// profiles) and loads it.
fn agent_config(
    rp: &RunningPlant,
    clock: &SimClock,
    data_dir: &Path,
    config_dir: &Path,
    url: &str,
    min_poll_wall_ms: f64,
) -> anyhow::Result<AgentConfig> {
    let id = &rp.model.plant.plant.id;
    let agents = data_dir.join("agents");
    let agent_data = agents.join(id);
    std::fs::create_dir_all(&agent_data)
        .with_context(|| format!("cannot create {}", agent_data.display()))?;
    let text = shuzhuan_simulator::agentcfg::agent_config(
        &rp.model.plant,
        &rp.ports,
        clock,
        &agent_data.display().to_string(),
        "127.0.0.1:0",
    );
    let mut doc: toml::Table = toml::from_str(&text).context("simulator agent config")?;
    if let Some(agent) = doc.get_mut("agent").and_then(|v| v.as_table_mut()) {
        agent.insert(
            "profiles_dir".into(),
            config_dir.join("profiles").display().to_string().into(),
        );
    }
    let window_secs = rp.model.plant.plant.window_secs;
    if let Some(devices) = doc.get_mut("devices").and_then(|v| v.as_array_mut()) {
        for d in devices.iter_mut().filter_map(|d| d.as_table_mut()) {
            if let Some(ms) = d.get("poll_interval_ms").and_then(|v| v.as_integer()) {
                let poll =
                    demo_poll_ms(ms.max(1) as u64, clock.scale, window_secs, min_poll_wall_ms);
                d.insert("poll_interval_ms".into(), (poll as i64).into());
            }
        }
    }
    let mut agg = toml::Table::new();
    agg.insert("url".into(), url.into());
    doc.insert("aggregator".into(), agg.into());
    let path = agents.join(format!("{id}.toml"));
    std::fs::write(&path, toml::to_string(&doc)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    AgentConfig::load(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Samples received and expected over every device-day the gateways reported.
fn sample_coverage(store: &SqliteStore) -> Result<(u64, u64), crate::store::StoreError> {
    store.with_read(|c| {
        Ok(c.query_row(
            "SELECT COALESCE(SUM(samples_received), 0), COALESCE(SUM(samples_expected), 0) FROM device_days",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?)
    })
}

/// Runs the demo until Ctrl-C (or `run_for`), printing what it started to `out`.
pub async fn run(args: DemoArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let config_dir = std::fs::canonicalize(&args.config_dir).with_context(|| {
        format!(
            "config folder {} (run from the repository root or pass --config-dir)",
            args.config_dir.display()
        )
    })?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    // A fresh city each run: the gateways' keys and chains are new.
    for f in [
        "demo.sqlite",
        "demo.sqlite-wal",
        "demo.sqlite-shm",
        "evidence-log.key",
    ] {
        let _ = std::fs::remove_file(data_dir.join(f));
    }
    // The agents' keys, spools and configs of the previous run.
    let _ = std::fs::remove_dir_all(data_dir.join("agents"));
    let cfg_text = format!(
        "[server]\nlisten = \"{}\"\n[store]\npath = \"demo.sqlite\"\n[city]\nutc_offset_secs = {UTC_OFFSET}\nreference_dir = {:?}\n[rollup]\ninterval_secs = 2\n",
        args.listen,
        config_dir.display().to_string()
    );
    let cfg = Config::parse("demo", &cfg_text, &data_dir).map_err(|e| anyhow::anyhow!("{e}"))?;

    // Simulated time: from the first day of last month, `scale` times faster.
    let wall_s = shuzhuan_simulator::clock::wall_ms() / 1000;
    let sim_epoch_s = start_of_previous_month(wall_s);
    let clock = SimClock::starting_now(args.scale, sim_epoch_s * 1000);
    let app_clock: api::Clock = Arc::new(move || clock.now_ms().div_euclid(1000));

    // City and registry.
    let (units, fallback) =
        shuzhuan_simulator::city::load_units(&config_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut plants = shuzhuan_simulator::city::generate(
        &units,
        args.plants,
        args.seed,
        args.scale,
        sim_epoch_s * 1000,
    );
    let mut opcua_plants = 0;
    for p in plants.iter_mut() {
        if opcua_plants < 3 && cnc_over_opcua(p) {
            opcua_plants += 1;
        }
    }
    let year = crate::days::civil_from_days(crate::days::day_of(sim_epoch_s, UTC_OFFSET)).0 as u16;
    let (counties, chains, ents, recs) = registry(&plants, &unit_names(&config_dir), &units, year);
    let sqlite = Arc::new(SqliteStore::open(&cfg.store_path)?);
    sqlite.upsert_counties(&counties)?;
    sqlite.upsert_chains(&chains)?;
    sqlite.import_registry(&ents, &recs)?;
    let ev = server::open_evidence(&cfg, &sqlite)?;
    let mut st: AppState = server::state(&cfg, sqlite.clone(), ev.log.clone(), app_clock.clone());
    st.evidence = Some(ev);

    // The plants.
    let profiles = shuzhuan_simulator::profiles::load_dir(&config_dir.join("profiles"))?;
    let mut running: Vec<RunningPlant> = Vec::new();
    for p in plants {
        running.push(shuzhuan_simulator::run::start(p, &profiles, clock, None).await?);
    }

    // The aggregator: API and dashboard.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let app = api::router(st.clone()).merge(crate::web::router(st.clone(), &config_dir));
    // Gateways stop first (their last reports still reach the server), then the server.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (server_stop_tx, mut server_stop) = watch::channel(false);
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = server_stop.changed().await;
            })
            .await
    });
    let bg = st.clone();
    let rollups = tokio::spawn(async move {
        let mut iv = tokio::time::interval(Duration::from_secs(2));
        loop {
            iv.tick().await;
            let s = bg.clone();
            match tokio::task::spawn_blocking(move || server::rollup_tick(&s, 400)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "roll-up failed; will retry"),
                Err(e) => tracing::warn!(error = %e, "roll-up task failed"),
            }
        }
    });

    // One real agent per plant, enrolled over HTTP, polling its plant.
    let now = app_clock();
    let url = format!("http://{addr}");
    let endpoint =
        shuzhuan_agent::ship::http::Endpoint::parse(&url).map_err(|e| anyhow::anyhow!(e))?;
    let mut gateways = Vec::new();
    let n = running.len();
    for (i, rp) in running.iter().enumerate() {
        let info = &rp.model.plant.plant;
        let acfg = agent_config(
            rp,
            &clock,
            &data_dir,
            &config_dir,
            &url,
            args.min_poll_wall_ms,
        )?;
        let key = shuzhuan_agent::keys::load_or_create(&acfg.agent.data_dir)?;
        let token = crate::enroll::create_token(&*sqlite, &info.credit_code, now, 86_400)?;
        shuzhuan_agent::ship::enroll(
            &endpoint,
            &token,
            &acfg.agent.id,
            acfg.agent.enterprise.as_str(),
            &key,
        )
        .await
        .with_context(|| format!("enrolling {}", acfg.agent.id))?;
        // The last plant's site goes quiet after three weeks (the bulletin
        // lists it): its agent is stopped then.
        let quiet_after =
            (n > 2 && i == n - 1).then(|| Duration::from_secs_f64(21.0 * 86_400.0 / args.scale));
        let mut stop = stop_rx.clone();
        let agent_id = acfg.agent.id.clone();
        gateways.push(tokio::spawn(async move {
            let shutdown = async move {
                match quiet_after {
                    Some(d) => {
                        tokio::select! {
                            _ = stop.changed() => {}
                            _ = tokio::time::sleep(d) => {
                                tracing::info!(agent = %agent_id, "site goes quiet: agent stopped");
                            }
                        }
                    }
                    None => {
                        let _ = stop.changed().await;
                    }
                }
            };
            if let Err(e) = shuzhuan_agent::run::run(acfg, shutdown).await {
                tracing::error!(error = %e, "agent stopped with an error");
            }
        }));
    }

    // Who may look.
    let bureau = api::auth::create_api_token(
        &*sqlite,
        "demo-bureau",
        crate::store::Role::Bureau,
        None,
        now,
    )?;
    let first = &ents[0];
    let county_tok = api::auth::create_api_token(
        &*sqlite,
        "demo-county",
        crate::store::Role::County,
        Some(first.county.clone()),
        now,
    )?;
    let ent_tok = api::auth::create_api_token(
        &*sqlite,
        "demo-enterprise",
        crate::store::Role::Enterprise,
        Some(first.credit_code.to_string()),
        now,
    )?;
    writeln!(out, "Shuzhuan demo")?;
    writeln!(out, "dashboard: {url}/login?token={bureau}")?;
    writeln!(out, "  bureau token:     {bureau}")?;
    writeln!(
        out,
        "  county token:     {county_tok}  (county {})",
        first.county
    )?;
    writeln!(
        out,
        "  enterprise token: {ent_tok}  ({} {})",
        first.credit_code, first.name
    )?;
    writeln!(
        out,
        "api: {url}/api/v1/  (Authorization: Bearer <token>); metrics: {url}/metrics"
    )?;
    writeln!(
        out,
        "city: {} plants over {} counties and {} chains{}; {} of them with CNCs over OPC UA",
        n,
        counties.len(),
        chains.len(),
        if fallback {
            " (config/plants/city-fallback.toml)"
        } else {
            ""
        },
        opcua_plants
    )?;
    for rp in running.iter().take(3) {
        writeln!(
            out,
            "  plant {}: {}",
            rp.model.plant.plant.id,
            rp.ports
                .iter()
                .map(|(l, a)| format!("{l}={a}"))
                .collect::<Vec<_>>()
                .join(" ")
        )?;
    }
    writeln!(
        out,
        "time: simulated from {} at {}x (a month every {:.0} s)",
        crate::web::html::local_time(sim_epoch_s, UTC_OFFSET),
        args.scale,
        30.0 * 86_400.0 / args.scale
    )?;
    writeln!(out, "store: {}", cfg.store_path.display())?;
    writeln!(
        out,
        "gateways: one shuzhuan-agent per plant, in-process, polling its plant over loopback (configs in {})",
        data_dir.join("agents").display()
    )?;
    writeln!(out, "Ctrl-C stops everything.")?;
    out.flush()?;

    match args.run_for {
        Some(secs) => tokio::time::sleep(Duration::from_secs_f64(secs)).await,
        None => {
            tokio::signal::ctrl_c().await?;
        }
    }
    let _ = stop_tx.send(true);
    for g in gateways {
        let _ = g.await;
    }
    let _ = server_stop_tx.send(true);
    rollups.abort();
    let _ = server.await;
    match sample_coverage(&sqlite) {
        Ok((received, expected)) if expected > 0 => writeln!(
            out,
            "samples: {received} received of {expected} expected ({:.1} %)",
            100.0 * received as f64 / expected as f64
        )?,
        Ok(_) => writeln!(out, "samples: none expected yet")?,
        Err(e) => writeln!(out, "samples: cannot count ({e})")?,
    }
    drop(running);
    writeln!(out, "demo stopped; data kept in {}", data_dir.display())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_month_start_is_local_midnight() {
        // 2026-11-29 02:00 UTC → 2026-10-01 00:00 local = 2026-09-30 16:00 UTC.
        let t = crate::days::days_from_civil(2026, 11, 29) * 86_400 + 2 * 3600;
        let s = start_of_previous_month(t);
        assert_eq!(
            s,
            crate::days::days_from_civil(2026, 9, 30) * 86_400 + 16 * 3600
        );
        let jan = crate::days::days_from_civil(2026, 1, 10) * 86_400;
        assert_eq!(
            crate::days::day_string(crate::days::day_of(
                start_of_previous_month(jan),
                UTC_OFFSET
            )),
            "2025-12-01"
        );
    }

    #[test]
    fn demo_poll_divides_the_window_and_respects_the_wall_floor() {
        // Real time: the configured 1 s stays.
        assert_eq!(demo_poll_ms(1000, 1.0, 900, 25.0), 1000);
        // 8640x with a 25 ms floor: 216 s wanted, 225 s divides 900.
        assert_eq!(demo_poll_ms(1000, 8640.0, 900, 25.0), 225_000);
        // 300x: 7.5 s wanted → 9 s (900 / 100).
        assert_eq!(demo_poll_ms(1000, 300.0, 900, 25.0), 9_000);
        // Nothing shorter than the window fits: the window.
        assert_eq!(demo_poll_ms(1000, 1e6, 900, 25.0), 900_000);
        // A configured interval above the floor is kept (rounded up to a divisor).
        assert_eq!(demo_poll_ms(7000, 1.0, 900, 25.0), 9_000);
        for scale in [1.0, 60.0, 600.0, 8640.0, 20_000.0] {
            let ms = demo_poll_ms(1000, scale, 900, 25.0);
            assert_eq!(900_000 % ms, 0, "{ms} divides the window");
            assert!(ms as f64 >= (25.0 * scale).min(900_000.0));
        }
    }

    #[test]
    fn dechunks() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
    }
}
