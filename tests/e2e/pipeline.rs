//! End-to-end tests: pipeline. The example plant runs in the simulator
//! (library, in-process, on loopback ports), the real agent polls it over
//! Modbus TCP and OPC UA on the generated `agents/<plant>.toml`, and ships
//! signed reports to a small recording HTTP receiver. Every complete window's
//! measured state seconds and energy must match `truth/<plant>.jsonl`.

use shuzhuan_common::report::SignedReport;
use shuzhuan_common::state::DeviceState;
use shuzhuan_common::summary::{QualityFlag, WindowSummary};
use shuzhuan_tests::repo_root;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Simulated seconds per wall second: a 900 s window lasts 3 wall seconds
/// and the agent's 1 s poll is 3.3 ms of wall time.
const SCALE: f64 = 300.0;
/// Wall time the agent runs: about six windows, so at least four complete ones.
const RUN_WALL: Duration = Duration::from_secs(20);

/// Reports received, as `(window_start, summary)`.
type Received = Arc<Mutex<Vec<(i64, WindowSummary)>>>;

/// A minimal HTTP/1.1 receiver for `POST /api/v1/reports`: reads one request
/// per connection (Content-Length body), records every report's summaries
/// and answers 200 with `Connection: close`.
async fn receiver() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let got: Received = Arc::default();
    let store = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head_end, len) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .expect("the agent sends a Content-Length");
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let body = &buf[head_end..head_end + len];
                let (status, reply) = if head.starts_with("POST /api/v1/reports ") {
                    #[derive(serde::Deserialize)]
                    struct Batch {
                        reports: Vec<SignedReport>,
                    }
                    let batch: Batch = serde_json::from_slice(body).expect("a report batch");
                    let n = batch.reports.len();
                    let mut s = store.lock().unwrap();
                    for r in batch.reports {
                        let (rep, _) = r.peek().expect("a readable report");
                        for sum in rep.summaries {
                            s.push((rep.window_start, sum));
                        }
                    }
                    ("200 OK", format!("{{\"accepted\":{n}}}"))
                } else {
                    ("404 Not Found", "{\"error\":\"not here\"}".to_owned())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (addr, got)
}

#[derive(Debug, serde::Deserialize)]
struct Truth {
    device: String,
    window_start: i64,
    window_end: i64,
    state_seconds: BTreeMap<DeviceState, u32>,
    energy_kwh: f64,
}

fn electricity_kwh(s: &WindowSummary) -> f64 {
    s.energy
        .iter()
        .filter(|e| e.carrier == "electricity")
        .map(|e| e.quantity)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measured_state_seconds_and_energy_match_the_simulators_truth() {
    let root = repo_root();
    let out = tempfile::tempdir().unwrap();
    let plant = shuzhuan_simulator::plant::load(&root.join("config/plants/example.toml")).unwrap();
    let profiles = shuzhuan_simulator::profiles::load_dir(&root.join("config/profiles")).unwrap();
    let clock =
        shuzhuan_simulator::clock::SimClock::starting_now(SCALE, plant.clock.sim_epoch_ms.unwrap());
    let started = std::time::Instant::now();
    let running = shuzhuan_simulator::run::start(plant, &profiles, clock, Some(out.path().into()))
        .await
        .unwrap();
    let id = running.model.plant.plant.id.clone();

    // The generated agent config, pointed at our data dir, profiles and receiver.
    let (agg, got) = receiver().await;
    let text = shuzhuan_simulator::agentcfg::agent_config(
        &running.model.plant,
        &running.ports,
        &clock,
        &out.path().join("agent-data").display().to_string(),
        "127.0.0.1:0",
    );
    let mut v: toml::Value = toml::from_str(&text).unwrap();
    v["agent"].as_table_mut().unwrap().insert(
        "profiles_dir".into(),
        root.join("config/profiles").display().to_string().into(),
    );
    v.as_table_mut().unwrap().insert(
        "aggregator".into(),
        toml::toml! { url = (format!("http://{agg}")) }.into(),
    );
    // OPC UA subscriptions publish on wall time (500 ms default, 50 ms at
    // least): at scale 300 that is 150 s simulated, far coarser than the
    // 1 s poll. The simulator's generated config therefore reads OPC UA by
    // polling on a scaled clock; check that it does.
    for link in v["links"].as_array().unwrap() {
        if link["kind"].as_str() == Some("opcua") {
            assert_eq!(
                link.get("mode").and_then(|m| m.as_str()),
                Some("poll"),
                "generated OPC UA link on a scaled clock must poll: {link:?}"
            );
        }
    }
    let path = out.path().join(format!("{id}.toml"));
    std::fs::write(&path, toml::to_string(&v).unwrap()).unwrap();
    let cfg = shuzhuan_agent::config::AgentConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(shuzhuan_agent::run::run(cfg, async move {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(RUN_WALL).await;
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(20), agent)
        .await
        .expect("the agent stops within 20 s")
        .unwrap()
        .unwrap();
    // The truth writer appends right at each window end: let it finish.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(running);

    let truth: Vec<Truth> = std::fs::read_to_string(out.path().join(format!("truth/{id}.jsonl")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got = got.lock().unwrap().clone();
    let truth: BTreeMap<(i64, &str), &Truth> = truth
        .iter()
        .map(|t| ((t.window_start, t.device.as_str()), t))
        .collect();

    // Tolerances, from first principles. The agent polls every device once a
    // simulated second (P = 1 s), so each state change inside a window is
    // seen up to one poll late. The simulator refreshes the CNC's OPC UA
    // values every 20 ms of wall time (6 s simulated at scale 300), and on a
    // shared 2-core machine a poll can be a few wall ms late (~1-2 s
    // simulated). A window here holds one or two changes per machine, so
    // 2 × (1 + 6 + 2) s ≈ 20 s per state, plus every poll that returned
    // nothing (those seconds become `disconnected`, by design).
    const STATE_SLACK_S: f64 = 20.0;
    // Power integration misplaces the power step of each change by the same
    // lag (45 kW × 3 s for the moulding machine, 15 kW × 9 s for the CNC:
    // ≈ 0.04 kWh), and power ripple within a cycle is sampled once a
    // second: 1 % + 0.05 kWh.
    const MACHINE_REL: f64 = 0.01;
    const MACHINE_ABS_KWH: f64 = 0.05;
    // Meters: the counter is read at the first poll after each window edge
    // (≤ ~2 s late at ≤ 102 kW plant load ≈ 0.06 kWh, under 0.5 % of a
    // 15-minute window here) plus one counter step: the SDM630's f32 kWh at
    // ~152 MWh has a step of 2^-6 kWh, the ADL400's u32 counts 0.1 kWh.
    const METER_REL: f64 = 0.005;
    let meter_step = |id: &str| if id == "meter-imm" { 0.1 } else { 1.0 / 64.0 };

    let mut failures = Vec::new();
    let mut compared = 0;
    let (mut max_state, mut max_machine_rel, mut max_meter) = (0.0f64, 0.0f64, 0.0f64);
    let mut worst = 0.0f64;
    let mut windows = std::collections::BTreeSet::new();
    for (w, s) in &got {
        let id = s.device_id.as_str();
        if s.samples_expected == 0 {
            // Not digitized (the grinder): present, but nothing measured.
            assert_eq!(
                s.samples_received, 0,
                "{id}: samples from a device with no link"
            );
            assert!(
                s.energy.is_empty(),
                "{id}: energy from a device with no link"
            );
            assert_eq!(s.parts, None, "{id}: parts from a device with no link");
            assert_eq!(
                s.state_seconds.known(),
                0,
                "{id}: a known state with no link"
            );
            continue;
        }
        if s.flags.contains(&QualityFlag::PartialWindow) {
            continue;
        }
        let Some(t) = truth.get(&(*w, id)) else {
            continue;
        };
        assert_eq!(
            s.state_seconds.total(),
            (t.window_end - t.window_start) as u64
        );
        windows.insert(*w);
        compared += 1;
        let missed = f64::from(s.samples_expected - s.samples_received);
        let measured = electricity_kwh(s);
        if id.starts_with("meter") {
            let err = (measured - t.energy_kwh).abs();
            max_meter = max_meter.max(err);
            let tol = METER_REL * t.energy_kwh + meter_step(id);
            worst = worst.max(err / tol);
            if err > tol {
                failures.push(format!(
                    "{id} @{w}: meter {measured:.4} kWh vs truth {:.4} (tol {tol:.4})",
                    t.energy_kwh
                ));
            }
            continue;
        }
        for st in DeviceState::ALL {
            let want = f64::from(t.state_seconds.get(&st).copied().unwrap_or(0));
            let have = f64::from(s.state_seconds.get(st));
            let err = (have - want).abs();
            max_state = max_state.max(err);
            let tol = STATE_SLACK_S + missed;
            worst = worst.max(err / tol);
            if err > tol {
                failures.push(format!(
                    "{id} @{w}: {} {have} s vs truth {want} s (tol {tol})",
                    st.as_str()
                ));
            }
        }
        let err = (measured - t.energy_kwh).abs();
        max_machine_rel = max_machine_rel.max(err / t.energy_kwh.max(1e-9));
        let tol = MACHINE_REL * t.energy_kwh + MACHINE_ABS_KWH;
        worst = worst.max(err / tol);
        if err > tol {
            failures.push(format!(
                "{id} @{w}: energy {measured:.4} kWh vs truth {:.4} (tol {tol:.4})",
                t.energy_kwh
            ));
        }
    }
    eprintln!(
        "pipeline: {compared} device-windows over {} complete windows in {:.1} s wall; \
         max state error {max_state} s, max machine energy error {:.2} %, max meter error {max_meter:.4} kWh; \
         worst check used {:.0} % of its tolerance",
        windows.len(),
        started.elapsed().as_secs_f64(),
        max_machine_rel * 100.0,
        worst * 100.0
    );
    assert!(
        windows.len() >= 3,
        "only {} complete windows to compare",
        windows.len()
    );
    assert!(
        failures.is_empty(),
        "measured vs truth:\n{}",
        failures.join("\n")
    );
}
