//! Aggregator benchmarks (docs/bench/aggregator.md):
//! `cargo bench -p shuzhuan-aggregator --bench aggregator -- [ingest] [http] [agents] [city]`.
//!
//! - ingest: window summaries per second through `ingest::ingest` (JSON
//!   parse, Ed25519 verification of every report, chain check, one SQLite
//!   transaction per batch with the daily roll-up), HTTP excluded.
//! - http: the same signed batches posted over real HTTP and HTTPS to the
//!   router `serve` runs, by N keep-alive clients, against in-process
//!   `ingest` in the same run (see `http/mod.rs`).
//! - agents: 2,000 gateways of 50 devices each ship two hours of 15-minute
//!   reports in batches of 4 (one batch per agent per hour, interleaved);
//!   per-batch latency p50/p99 and the ingest rate with the evidence log as
//!   the accept hook (as `serve` runs), against the same load without it
//!   (baseline) in the same run; bytes on disk per report and per
//!   enterprise-year.
//! - city: a full-size city (2,000 enterprises, 100,000 devices, a year of
//!   device-days generated straight into the store), then the period refresh,
//!   the city overview and a county page: p50/p95 latency and database size.

use shuzhuan_aggregator::config::IngestLimits;
use shuzhuan_aggregator::days::days_from_civil;
use shuzhuan_aggregator::enroll::secret_hash;
use shuzhuan_aggregator::influx::points;
use shuzhuan_aggregator::ingest::ingest;
use shuzhuan_aggregator::rollup::{build_enterprise_facts, indicators_json, Reference};
use shuzhuan_aggregator::store::{AcceptHook, NoHook, Period, SqliteStore, Store};
use shuzhuan_common::credit_code::CreditCode;
use shuzhuan_common::inventory::{Device, DeviceKind, IndustryType, Inventory, KeyProcess};
use shuzhuan_common::registry::{County, CountyKind, DeclaredRates, Enterprise, IndustryChain};
use shuzhuan_common::report::{verifying_key_to_b64, Hash32, Report, SCHEMA_VERSION};
use shuzhuan_common::state::{DeviceState, StateSeconds};
use shuzhuan_common::summary::{EnergyDelta, EnergyMethod, WindowSummary};
use std::io::Write as _;
use std::time::Instant;

mod http;

fn code(n: u32) -> CreditCode {
    CreditCode::from_body(&format!("91411721{n:09}")).unwrap()
}

fn city(store: &SqliteStore, counties: usize, chains: usize, enterprises: u32) {
    store
        .upsert_counties(
            &(0..counties)
                .map(|i| County {
                    id: format!("c{i:02}"),
                    name: format!("县{i}"),
                    name_en: format!("County {i}"),
                    kind: CountyKind::County,
                    division_code: None,
                })
                .collect::<Vec<_>>(),
        )
        .unwrap();
    store
        .upsert_chains(
            &(0..chains)
                .map(|i| IndustryChain {
                    id: format!("ch{i:02}"),
                    name: format!("链{i}"),
                    name_en: format!("Chain {i}"),
                    cluster: None,
                    industry_type: IndustryType::Discrete,
                })
                .collect::<Vec<_>>(),
        )
        .unwrap();
    let ents: Vec<Enterprise> = (0..enterprises)
        .map(|n| Enterprise {
            credit_code: code(n),
            name: format!("企业{n}"),
            county: format!("c{:02}", n as usize % counties),
            chain: format!("ch{:02}", n as usize % chains),
            above_scale: n % 5 != 0,
            industry_type: IndustryType::Discrete,
            rd_design_tools: Some(n % 3 != 0),
            declared: DeclaredRates {
                digitization: Some(0.5),
                networking: Some(0.4),
                key_process_nc: Some(0.6),
            },
        })
        .collect();
    store.import_registry(&ents, &[]).unwrap();
}

fn summary(i: usize, secs: u32) -> WindowSummary {
    let mut st = StateSeconds::default();
    let p = (i as u32 * 37) % secs;
    st.add(DeviceState::Productive, p);
    st.add(DeviceState::Standby, secs - p);
    WindowSummary {
        device_id: format!("dev-{i:04}"),
        state_seconds: st,
        nc_seconds: p / 2,
        energy: vec![EnergyDelta {
            meter: format!("m-{i:04}"),
            carrier: "electricity".into(),
            quantity: 1.25 + i as f64 / 100.0,
            unit: "kWh".into(),
            method: EnergyMethod::Counter,
            exported: 0.0,
        }],
        parts: Some(u64::from(p / 60)),
        samples_expected: secs,
        samples_received: secs - (i as u32 % 7),
        flags: vec![],
    }
}

/// Process CPU time (user + system, all threads) in seconds, from
/// `/proc/self/stat` (clock ticks of 10 ms).
fn cpu_secs() -> f64 {
    stat_cpu_secs("/proc/self/stat")
}

/// User + system CPU seconds in a `/proc/…/stat` file.
fn stat_cpu_secs(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / 100.0
}

const ING_AGENTS: u32 = 40;
const ING_REPORTS: u64 = 25;
const ING_DEVICES: usize = 200;
const ING_PER_BATCH: usize = 25;
const ING_NOW: i64 = 1_795_824_000;

/// A fresh store in `dir` with the ingest bench's city and agents enrolled.
fn ingest_store(dir: &std::path::Path) -> SqliteStore {
    let store = SqliteStore::open(&dir.join("bench.sqlite")).unwrap();
    city(&store, 13, 15, ING_AGENTS);
    for a in 0..ING_AGENTS {
        let key = ed25519_dalek::SigningKey::from_bytes(&[a as u8 + 1; 32]);
        let token = format!("tok-{a}");
        store
            .create_enrol_token(&secret_hash(&token), &code(a), ING_NOW, ING_NOW + 60)
            .unwrap();
        store
            .enroll(
                &secret_hash(&token),
                &format!("gw-{a:03}"),
                &code(a),
                &verifying_key_to_b64(&key.verifying_key()),
                ING_NOW,
            )
            .unwrap();
    }
    store
}

/// The request bodies, per agent in seq order: `reports` reports per agent
/// in batches of `ING_PER_BATCH`.
fn ingest_bodies(reports: u64) -> Vec<Vec<Vec<u8>>> {
    (0..ING_AGENTS)
        .map(|a| {
            let key = ed25519_dalek::SigningKey::from_bytes(&[a as u8 + 1; 32]);
            let agent = format!("gw-{a:03}");
            let mut prev = Hash32::GENESIS;
            let mut signed = Vec::new();
            for seq in 1..=reports {
                let start = ING_NOW - 2 * 86_400 + seq as i64 * 900;
                let r = Report {
                    schema: SCHEMA_VERSION,
                    agent_id: agent.clone(),
                    enterprise: code(a),
                    seq,
                    prev_hash: prev,
                    window_start: start,
                    window_end: start + 900,
                    created_at: start + 900,
                    inventory: None,
                    summaries: (0..ING_DEVICES).map(|i| summary(i, 900)).collect(),
                };
                let (sr, h) = r.sign(&key);
                prev = h;
                signed.push(sr);
            }
            signed
                .chunks(ING_PER_BATCH)
                .map(|chunk| serde_json::to_vec(&serde_json::json!({ "reports": chunk })).unwrap())
                .collect()
        })
        .collect()
}

fn ingest_limits() -> IngestLimits {
    IngestLimits {
        max_batch: 256,
        max_body_bytes: 64 << 20,
        ..IngestLimits::default()
    }
}

/// Ingests every body with `clients` threads (agents dealt round-robin, each
/// agent's batches in order, as concurrent HTTP requests reach `serve`'s
/// blocking pool). Returns (wall seconds, CPU seconds, summaries stored).
fn ingest_run(
    store: &SqliteStore,
    hook: &dyn AcceptHook,
    limits: &IngestLimits,
    bodies: &[Vec<Vec<u8>>],
    clients: usize,
) -> (f64, f64, u64) {
    let (t, c) = (Instant::now(), cpu_secs());
    let summaries: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|k| {
                scope.spawn(move || {
                    let mine: Vec<&Vec<Vec<u8>>> = bodies.iter().skip(k).step_by(clients).collect();
                    let mut n = 0u64;
                    for round in 0..mine.iter().map(|b| b.len()).max().unwrap_or(0) {
                        for agent in &mine {
                            if let Some(body) = agent.get(round) {
                                let o =
                                    ingest(store, hook, limits, 8 * 3600, body, ING_NOW).unwrap();
                                n += o.accepted * ING_DEVICES as u64;
                            }
                        }
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    (t.elapsed().as_secs_f64(), cpu_secs() - c, summaries)
}

/// The single writer alone: every batch parsed and verified before the
/// clock starts, then `Store::ingest_batch` (chain check, evidence, window
/// and day rows, commit) called batch after batch on one thread. Its rate is
/// the ceiling of `ingest` with any number of clients, as batches are
/// stored one at a time. Returns (wall seconds, this thread's CPU seconds,
/// summaries stored).
fn writer_run(store: &SqliteStore, bodies: &[Vec<Vec<u8>>]) -> (f64, f64, u64) {
    let mut prepared = Vec::new();
    for (a, agent) in bodies.iter().enumerate() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[a as u8 + 1; 32]).verifying_key();
        for body in agent {
            let batch: shuzhuan_aggregator::ingest::Batch = serde_json::from_slice(body).unwrap();
            let verified: Vec<_> = batch
                .reports
                .into_iter()
                .map(|sr| (sr.verify(&key).unwrap(), sr.signature))
                .collect();
            prepared.push((format!("gw-{a:03}"), verified));
        }
    }
    let (t, c) = (Instant::now(), http::thread_cpu_secs());
    let mut n = 0u64;
    for (agent, batch) in &prepared {
        let o = store
            .ingest_batch(agent, batch, ING_NOW, 8 * 3600, &NoHook)
            .unwrap();
        n += o.accepted * ING_DEVICES as u64;
    }
    (t.elapsed().as_secs_f64(), http::thread_cpu_secs() - c, n)
}

/// Baseline: the same window rows as plain SQLite inserts (the same table
/// and pragmas, one transaction and one cached statement per batch), no
/// parsing, verification, evidence or daily roll-up.
fn plain_sqlite_run(dir: &std::path::Path) -> (f64, f64, u64) {
    let conn = rusqlite::Connection::open(dir.join("plain.sqlite")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(
        "CREATE TABLE window_summaries (agent_id TEXT NOT NULL, seq INTEGER NOT NULL,
         device_id TEXT NOT NULL, enterprise TEXT NOT NULL, window_start INTEGER NOT NULL,
         window_end INTEGER NOT NULL, productive INTEGER NOT NULL, standby INTEGER NOT NULL,
         nc_seconds INTEGER NOT NULL, parts INTEGER, samples_expected INTEGER NOT NULL,
         samples_received INTEGER NOT NULL, energy TEXT, PRIMARY KEY (agent_id, seq, device_id))
         WITHOUT ROWID",
    )
    .unwrap();
    let rows: Vec<Vec<WindowSummary>> = (0..ING_PER_BATCH)
        .map(|_| (0..ING_DEVICES).map(|i| summary(i, 900)).collect())
        .collect();
    let energy: Vec<String> = rows[0]
        .iter()
        .map(|s| serde_json::to_string(&s.energy).unwrap())
        .collect();
    let mut conn = conn;
    let (t, c) = (Instant::now(), cpu_secs());
    let mut n = 0u64;
    for batch in 0..ING_REPORTS as usize / ING_PER_BATCH {
        for a in 0..ING_AGENTS {
            let agent = format!("gw-{a:03}");
            let ent = code(a).to_string();
            let tx = conn.transaction().unwrap();
            {
                let mut st = tx
                    .prepare_cached(
                        "INSERT INTO window_summaries VALUES
                         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    )
                    .unwrap();
                for (i, report) in rows.iter().enumerate() {
                    let seq = (batch * ING_PER_BATCH + i + 1) as i64;
                    let start = ING_NOW - 2 * 86_400 + seq * 900;
                    for (s, e) in report.iter().zip(&energy) {
                        st.execute(rusqlite::params![
                            agent,
                            seq,
                            s.device_id,
                            ent,
                            start,
                            start + 900,
                            s.state_seconds.get(DeviceState::Productive),
                            s.state_seconds.get(DeviceState::Standby),
                            s.nc_seconds,
                            s.parts.map(|p| p as i64),
                            s.samples_expected,
                            s.samples_received,
                            e
                        ])
                        .unwrap();
                        n += 1;
                    }
                }
            }
            tx.commit().unwrap();
        }
    }
    (t.elapsed().as_secs_f64(), cpu_secs() - c, n)
}

fn bench_ingest(out: &mut impl std::io::Write) {
    let bodies = ingest_bodies(ING_REPORTS);
    let flat: Vec<&Vec<u8>> = bodies.iter().flatten().collect();
    let total_bytes: usize = flat.iter().map(|b| b.len()).sum();
    let reports = u64::from(ING_AGENTS) * ING_REPORTS;
    writeln!(
        out,
        "ingest: {} batches of {ING_PER_BATCH} reports of {ING_DEVICES} summaries from {ING_AGENTS} agents ({reports} reports, {:.1} MB JSON); load average {}",
        flat.len(),
        total_bytes as f64 / 1e6,
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    )
    .unwrap();
    let line = |out: &mut dyn std::io::Write, label: &str, (wall, cpu, n): (f64, f64, u64)| {
        writeln!(
            out,
            "ingest {label}: {n} summaries in {wall:.2} s = {:.0} summaries/s ({:.0} reports/s); CPU {cpu:.2} s = {:.0} summaries per CPU-second",
            n as f64 / wall,
            n as f64 / wall / ING_DEVICES as f64,
            n as f64 / cpu.max(0.01),
        )
        .unwrap();
    };
    // Parse and verify alone: the CPU-bound half, no store.
    let key_of = |a: u32| ed25519_dalek::SigningKey::from_bytes(&[a as u8 + 1; 32]).verifying_key();
    let (t, c) = (Instant::now(), cpu_secs());
    let mut n = 0u64;
    for (a, agent) in bodies.iter().enumerate() {
        let key = key_of(a as u32);
        for body in agent {
            let batch: shuzhuan_aggregator::ingest::Batch = serde_json::from_slice(body).unwrap();
            for sr in &batch.reports {
                n += sr.verify(&key).unwrap().report.summaries.len() as u64;
            }
        }
    }
    line(
        out,
        "parse + verify only (1 thread, no store)",
        (t.elapsed().as_secs_f64(), cpu_secs() - c, n),
    );
    let dir = tempfile::tempdir().unwrap();
    line(
        out,
        "plain SQLite inserts of the same rows (baseline)",
        plain_sqlite_run(dir.path()),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = ingest_store(dir.path());
    line(
        out,
        "the writer alone (`Store::ingest_batch` of verified batches, 1 thread)",
        writer_run(&store, &bodies),
    );
    for clients in [1usize, 2, 4] {
        let dir = tempfile::tempdir().unwrap();
        let store = ingest_store(dir.path());
        let label = format!(
            "`ingest`, {clients} client thread{}",
            if clients == 1 { "" } else { "s" }
        );
        line(
            out,
            &label,
            ingest_run(&store, &NoHook, &ingest_limits(), &bodies, clients),
        );
    }
}

/// One run of the 2,000-agent load; returns (batch latencies in ms, total
/// seconds, bytes on disk, reports).
fn agents_run(with_log: bool) -> (Vec<f64>, f64, u64, u64) {
    const AGENTS: u32 = 2_000;
    const DEVICES: usize = 50;
    const ROUNDS: u64 = 2;
    const PER_BATCH: u64 = 4;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("agents.sqlite")).unwrap();
    city(&store, 13, 15, AGENTS);
    let log = with_log.then(|| {
        shuzhuan_aggregator::evidence::EvidenceLog::open(
            &store,
            "bench/evidence",
            ed25519_dalek::SigningKey::from_bytes(&[99; 32]),
        )
        .unwrap()
    });
    let hook: &dyn shuzhuan_aggregator::store::AcceptHook = match &log {
        Some(l) => l,
        None => &NoHook,
    };
    let now: i64 = 1_795_824_000;
    let limits = IngestLimits::default();
    let mut keys = Vec::new();
    for a in 0..AGENTS {
        let key = ed25519_dalek::SigningKey::from_bytes(&{
            let mut seed = [7u8; 32];
            seed[..4].copy_from_slice(&a.to_le_bytes());
            seed
        });
        let token = format!("tok-{a}");
        store
            .create_enrol_token(&secret_hash(&token), &code(a), now, now + 60)
            .unwrap();
        store
            .enroll(
                &secret_hash(&token),
                &format!("gw-{a:04}"),
                &code(a),
                &verifying_key_to_b64(&key.verifying_key()),
                now,
            )
            .unwrap();
        keys.push((key, Hash32::GENESIS));
    }
    let mut lat = Vec::new();
    let mut total = 0.0;
    for round in 0..ROUNDS {
        for a in 0..AGENTS {
            let (key, prev) = &mut keys[a as usize];
            let mut signed = Vec::new();
            for i in 0..PER_BATCH {
                let seq = round * PER_BATCH + i + 1;
                let start = now - 86_400 + seq as i64 * 900;
                let r = Report {
                    schema: SCHEMA_VERSION,
                    agent_id: format!("gw-{a:04}"),
                    enterprise: code(a),
                    seq,
                    prev_hash: *prev,
                    window_start: start,
                    window_end: start + 900,
                    created_at: start + 900,
                    inventory: None,
                    summaries: (0..DEVICES).map(|i| summary(i, 900)).collect(),
                };
                let (sr, h) = r.sign(key);
                *prev = h;
                signed.push(sr);
            }
            let body = serde_json::to_vec(&serde_json::json!({ "reports": signed })).unwrap();
            let t = Instant::now();
            ingest(&store, hook, &limits, 8 * 3600, &body, now).unwrap();
            let e = t.elapsed().as_secs_f64();
            total += e;
            lat.push(e * 1e3);
        }
    }
    drop(store);
    let size: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    (lat, total, size, u64::from(AGENTS) * ROUNDS * PER_BATCH)
}

fn bench_agents(out: &mut impl std::io::Write) {
    let (mut base_lat, base_secs, base_size, reports) = agents_run(false);
    let (mut lat, secs, size, _) = agents_run(true);
    let summaries = reports * 50;
    for (label, l, s, sz) in [
        (
            "baseline (no evidence log)",
            &mut base_lat,
            base_secs,
            base_size,
        ),
        ("with evidence log (as serve)", &mut lat, secs, size),
    ] {
        writeln!(
            out,
            "agents {label}: {reports} reports ({summaries} summaries) from 2000 agents in {} batches: {:.0} reports/s, {:.0} summaries/s; batch p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {:.2} MB on disk = {:.0} bytes/report, {:.1} MB per enterprise-year (35,040 reports of 50 devices)",
            l.len(),
            reports as f64 / s,
            summaries as f64 / s,
            percentile(l, 0.5),
            percentile(l, 0.99),
            percentile(l, 1.0),
            sz as f64 / 1e6,
            sz as f64 / reports as f64,
            sz as f64 / reports as f64 * 35_040.0 / 1e6,
        )
        .unwrap();
    }
    writeln!(
        out,
        "agents: ingest time with the log / without = {:.2}",
        secs / base_secs
    )
    .unwrap();
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn bench_city(out: &mut impl std::io::Write) {
    const ENTERPRISES: u32 = 2_000;
    const DEVICES: u32 = 50;
    const DAYS: i64 = 365;
    // SHUZHUAN_BENCH_CITY_DB=path keeps the generated city there and reuses
    // it on the next run (generation and refresh take minutes; the page
    // timings are what one iterates on).
    let dir = tempfile::tempdir().unwrap();
    let kept = std::env::var_os("SHUZHUAN_BENCH_CITY_DB").map(std::path::PathBuf::from);
    let path = kept
        .clone()
        .unwrap_or_else(|| dir.path().join("city.sqlite"));
    let reuse = path.exists();
    let store = SqliteStore::open(&path).unwrap();
    let first = days_from_civil(2025, 1, 1);
    let t = Instant::now();
    if !reuse {
        city(&store, 13, 15, ENTERPRISES);
    }
    for chunk in (0..ENTERPRISES)
        .collect::<Vec<_>>()
        .chunks(50)
        .filter(|_| !reuse)
    {
        store
            .with_write_tx(|tx| {
                let mut inv_st = tx.prepare(
                    "INSERT INTO inventories (enterprise, agent_id, seq, inventory) VALUES (?1, ?2, 1, ?3)",
                )?;
                let mut day_st = tx.prepare(
                    "INSERT INTO device_days VALUES (?1, ?2, ?3, 96, ?4, ?5, 0, 0, 0, 0, ?6, ?7, ?8, 86400, ?9)",
                )?;
                let mut en_st = tx.prepare(
                    "INSERT INTO device_day_energy VALUES (?1, 'meter', ?2, 'electricity', 'kWh', ?3, 0)",
                )?;
                let mut dirty = tx.prepare("INSERT OR IGNORE INTO dirty_days VALUES (?1, ?2)")?;
                for &e in chunk {
                    let ent = code(e).to_string();
                    let inv = Inventory {
                        devices: (0..DEVICES)
                            .map(|d| Device {
                                id: format!("d{d:02}"),
                                name: format!("d{d:02}"),
                                kind: DeviceKind::CncMachineTool,
                                production: true,
                                declared_digital: d % 4 != 0,
                                declared_networked: d % 3 != 0,
                                declared_nc: d % 2 == 0,
                                key_process: (d < 3).then(|| format!("kp{d}")),
                                original_value_cny: None,
                            })
                            .collect(),
                        key_processes: (0..3)
                            .map(|k| KeyProcess { id: format!("kp{k}"), name: format!("工序{k}"), declared_nc: k != 2 })
                            .collect(),
                    };
                    inv_st.execute(rusqlite::params![ent, format!("gw-{e}"), serde_json::to_string(&inv).unwrap()])?;
                    // Devices d40.. deliver nothing (not digitized in fact).
                    for d in 0..DEVICES.min(40) {
                        let dev = format!("d{d:02}");
                        for day in first..first + DAYS {
                            let productive = 20_000 + ((e + d) as i64 * 7919 + day) % 40_000;
                            let disconnected = if (d + e) % 9 == 0 { 20_000 } else { 0 };
                            let received = 86_400 - disconnected;
                            day_st.execute(rusqlite::params![
                                ent,
                                dev,
                                day,
                                productive,
                                86_400 - productive - disconnected,
                                disconnected,
                                if d % 2 == 0 { productive / 2 } else { 0 },
                                productive / 60,
                                received
                            ])?;
                        }
                    }
                    for day in first..first + DAYS {
                        en_st.execute(rusqlite::params![ent, day, 5_000.0 + (day % 17) as f64])?;
                        dirty.execute(rusqlite::params![ent, day])?;
                    }
                }
                Ok(())
            })
            .unwrap();
    }
    let gen_secs = t.elapsed().as_secs_f64();
    let rows = u64::from(ENTERPRISES) * u64::from(DEVICES.min(40)) * DAYS as u64;
    let t = Instant::now();
    let pairs = store.refresh_periods().unwrap();
    let refresh_secs = t.elapsed().as_secs_f64();
    writeln!(
        out,
        "city{}: {ENTERPRISES} enterprises, {} inventory devices, {rows} device-day rows generated in {gen_secs:.1} s; period refresh of {pairs} (enterprise, period) pairs in {refresh_secs:.1} s; load average {}",
        if reuse { " (reused database)" } else { "" },
        ENTERPRISES * DEVICES,
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    )
    .unwrap();
    let reference = Reference::default();
    // What a roll-up tick that changed anything costs the next page: the
    // enterprise facts built from the rows (the pages below then find them
    // in the store's cache until the next refresh).
    for (label, period) in [
        ("year", Period::Year(2025)),
        ("month", Period::Month(2025, 6)),
    ] {
        let mut v = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let facts = build_enterprise_facts(&store, &reference, period).unwrap();
            std::hint::black_box(facts);
            v.push(t.elapsed().as_secs_f64() * 1e3);
        }
        writeln!(
            out,
            "enterprise facts rebuilt from the rows ({label}, once per refresh): p50 {:.0} ms, max {:.0} ms (5 runs)",
            percentile(&mut v, 0.5),
            percentile(&mut v, 1.0)
        )
        .unwrap();
    }
    let time = |level: &str, id: Option<&str>, period: Period| {
        // The first call builds the facts if no refresh did (not counted).
        indicators_json(&store, &reference, period, level, id).unwrap();
        let mut v = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let page = indicators_json(&store, &reference, period, level, id)
                .unwrap()
                .unwrap();
            let bytes = serde_json::to_vec(&page).unwrap();
            std::hint::black_box(bytes);
            v.push(t.elapsed().as_secs_f64() * 1e3);
        }
        (percentile(&mut v, 0.5), percentile(&mut v, 0.95))
    };
    for (label, level, id, period) in [
        ("city overview, year", "city", None, Period::Year(2025)),
        ("city overview, month", "city", None, Period::Month(2025, 6)),
        (
            "county page, year",
            "county",
            Some("c03"),
            Period::Year(2025),
        ),
    ] {
        let (p50, p95) = time(level, id, period);
        writeln!(out, "{label}: p50 {p50:.0} ms, p95 {p95:.0} ms (20 runs)").unwrap();
    }
    // The optional InfluxDB sink's lines for one tick in June 2025 (month,
    // quarter, year; every level, enterprises included), from the cached facts.
    let tick = days_from_civil(2025, 6, 30) * 86_400;
    let mut v = Vec::new();
    let mut lines = (0, 0);
    for _ in 0..5 {
        let t = Instant::now();
        let pts = points(&store, &reference, tick, "shuzhuan_", true).unwrap();
        let encoded: Vec<String> = pts.iter().filter_map(|p| p.encode()).collect();
        v.push(t.elapsed().as_secs_f64() * 1e3);
        lines = (
            encoded.len(),
            encoded.iter().map(|l| l.len() + 1).sum::<usize>(),
        );
    }
    writeln!(
        out,
        "influx sink, one tick: {} lines, {:.1} MB, built and encoded in p50 {:.0} ms (5 runs)",
        lines.0,
        lines.1 as f64 / 1e6,
        percentile(&mut v, 0.5)
    )
    .unwrap();
    drop(store);
    let size: u64 = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&*path.file_name().unwrap().to_string_lossy())
        })
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    writeln!(
        out,
        "database size (file + WAL): {:.2} GB",
        size as f64 / 1e9
    )
    .unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let all = args.is_empty();
    let mut out = std::io::stderr();
    if all || args.iter().any(|a| a == "ingest") {
        bench_ingest(&mut out);
    }
    if all || args.iter().any(|a| a == "http") {
        http::bench_http(&mut out);
    }
    if all || args.iter().any(|a| a == "agents") {
        bench_agents(&mut out);
    }
    if all || args.iter().any(|a| a == "city") {
        bench_city(&mut out);
    }
    out.flush().unwrap();
}
