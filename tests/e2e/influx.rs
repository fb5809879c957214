//! End-to-end tests: the agent's InfluxDB v2 sink against a real
//! InfluxDB-v2-compatible server, VictoriaMetrics (`/api/v2/write`, see
//! ../shared/testing/PEERS.md), started on a free loopback port in a temp
//! dir and stopped by PID. The example plant runs in the simulator, the real
//! agent polls it with `[influxdb]` pointing at VictoriaMetrics and no
//! aggregator (reports stay in its spool). Afterwards every window summary
//! the agent sealed (read back from its spool) must be in VictoriaMetrics
//! with the same values, and the per-poll device lines must number exactly
//! the poll cycles the summaries counted. The second test starts the server
//! only after the agent has sealed windows: nothing may be lost. The third
//! serves VictoriaMetrics over HTTPS (its `-tls` flags, a certificate from a
//! private CA made with the `openssl` CLI): an agent trusting another CA
//! writes nothing and keeps its lines; one with the right `ca_file` lands
//! every window. The fourth stops the agent while the server is down and
//! starts it again with the server up: the lines kept in the disk buffer
//! over the restart are all written.

use shuzhuan_agent::spool::{Spool, SpoolOptions, WhenFull};
use shuzhuan_common::report::SignedReport;
use shuzhuan_common::state::DeviceState;
use shuzhuan_common::summary::{QualityFlag, WindowSummary};
use shuzhuan_tests::victoria::{self, Series};
use shuzhuan_tests::{free_port, repo_root, Proc};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Simulated seconds per wall second: a 900 s window lasts 3 wall seconds.
const SCALE: f64 = 300.0;

/// VictoriaMetrics on 127.0.0.1:`port` storing in `dir`; killed on drop.
fn start_vm(port: u16, dir: &Path) -> Proc {
    start_vm_tls(port, dir, None)
}

/// [`start_vm`], serving HTTPS with `(cert, key)` when given (VictoriaMetrics'
/// `-tls` flags).
fn start_vm_tls(port: u16, dir: &Path, tls: Option<(&Path, &Path)>) -> Proc {
    victoria::start(port, dir, tls)
}

/// A plain HTTP/1.0 request (no chunking); returns status and body.
async fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Every series whose name matches the regex `re`, after a forced flush.
/// (VictoriaMetrics runs in its own process: the blocking client is fine.)
async fn export(port: u16, re: &str) -> Vec<Series> {
    victoria::export(port, &format!("{{__name__=~\"{re}\"}}"))
}

/// `(window_start_ms, summary)` of every report the agent sealed, from its spool.
fn spooled_summaries(data_dir: &Path) -> Vec<(i64, WindowSummary)> {
    let spool = Spool::open(SpoolOptions::new(
        data_dir.join("spool"),
        1 << 30,
        WhenFull::DropOldest,
    ))
    .unwrap();
    let mut out = Vec::new();
    for rec in spool.pending(100_000).unwrap() {
        let r: SignedReport = serde_json::from_slice(&rec.payload).unwrap();
        let (rep, _) = r.peek().unwrap();
        for s in rep.summaries {
            out.push((rep.window_start * 1000, s));
        }
    }
    out
}

/// Stops VictoriaMetrics with SIGTERM (it flushes what it holds) and waits.
fn stop_vm(mut vm: Proc) {
    let st = Command::new("kill")
        .args(["-TERM", &vm.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while vm.0.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "victoria-metrics did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The simulator running the example plant, and an agent config polling it
/// with `[influxdb]` at `url` plus `extra` keys; no aggregator.
async fn plant_and_config(
    out: &Path,
    url: &str,
    extra: toml::Table,
) -> (
    shuzhuan_simulator::run::RunningPlant,
    shuzhuan_agent::config::AgentConfig,
    u16,
) {
    let root = repo_root();
    let plant = shuzhuan_simulator::plant::load(&root.join("config/plants/example.toml")).unwrap();
    let profiles = shuzhuan_simulator::profiles::load_dir(&root.join("config/profiles")).unwrap();
    let clock =
        shuzhuan_simulator::clock::SimClock::starting_now(SCALE, plant.clock.sim_epoch_ms.unwrap());
    let running = shuzhuan_simulator::run::start(plant, &profiles, clock, Some(out.into()))
        .await
        .unwrap();
    let id = running.model.plant.plant.id.clone();
    let http_port = free_port();
    let text = shuzhuan_simulator::agentcfg::agent_config(
        &running.model.plant,
        &running.ports,
        &clock,
        &out.join("agent-data").display().to_string(),
        &format!("127.0.0.1:{http_port}"),
    );
    let mut v: toml::Value = toml::from_str(&text).unwrap();
    v["agent"].as_table_mut().unwrap().insert(
        "profiles_dir".into(),
        root.join("config/profiles").display().to_string().into(),
    );
    v.as_table_mut().unwrap().remove("aggregator");
    std::fs::write(out.join("influx.token"), "test-token\n").unwrap();
    let mut influx = toml::toml! {
            url = url
            org = "shuzhuan"
            bucket = "plant"
            token_file = "influx.token"
            flush_interval_ms = 200
            batch_lines = 500
            backoff_initial_ms = 100
            backoff_max_ms = 800
    };
    influx.extend(extra);
    v.as_table_mut()
        .unwrap()
        .insert("influxdb".into(), influx.into());
    let path = out.join(format!("{id}.toml"));
    std::fs::write(&path, toml::to_string(&v).unwrap()).unwrap();
    let cfg = shuzhuan_agent::config::AgentConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.influxdb.as_ref().unwrap().token.as_deref(),
        Some("test-token")
    );
    (running, cfg, http_port)
}

/// Runs the simulator and the agent; `late`: VictoriaMetrics starts only
/// after `late` wall time. Returns the VM process (still running), its port
/// and the agent's data dir.
async fn run_case(
    late: Option<Duration>,
    run_for: Duration,
) -> (Proc, u16, tempfile::TempDir, String) {
    let out = tempfile::tempdir().unwrap();
    let vm_port = free_port();
    let mut vm = late.is_none().then(|| start_vm(vm_port, out.path()));
    let (running, cfg, http_port) = plant_and_config(
        out.path(),
        &format!("http://127.0.0.1:{vm_port}"),
        toml::Table::new(),
    )
    .await;
    let agent_id = cfg.agent.id.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(shuzhuan_agent::run::run(cfg, async move {
        let _ = stop_rx.await;
    }));
    if let Some(d) = late {
        tokio::time::sleep(d).await;
        // The server was down: the agent noticed and kept the lines.
        let (_, m) = http(http_port, "GET", "/metrics").await;
        let errors = metric(
            &m,
            "shuzhuan_agent_influx_write_errors_total{class=\"network\"}",
        );
        assert!(
            errors >= 1.0,
            "no network error while the server was down:\n{m}"
        );
        assert!(metric(&m, "shuzhuan_agent_influx_buffer_lines") > 0.0);
        assert!(metric(&m, "shuzhuan_agent_reports_sealed_total") >= 1.0);
        vm = Some(start_vm(vm_port, out.path()));
        tokio::time::sleep(run_for).await;
    } else {
        tokio::time::sleep(run_for).await;
    }
    let (_, m) = http(http_port, "GET", "/metrics").await;
    for reason in ["buffer_full", "rejected", "shutdown"] {
        assert_eq!(
            metric(
                &m,
                &format!("shuzhuan_agent_influx_lines_dropped_total{{reason=\"{reason}\"}}")
            ),
            0.0,
            "{reason}"
        );
    }
    assert!(metric(&m, "shuzhuan_agent_influx_lines_written_total") > 0.0);
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(20), agent)
        .await
        .expect("the agent stops within 20 s")
        .unwrap()
        .unwrap();
    drop(running);
    (vm.unwrap(), vm_port, out, agent_id)
}

/// The value of one sample line of a Prometheus text exposition (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// Compares what VictoriaMetrics holds with the agent's own summaries.
async fn check(vm_port: u16, data_dir: &Path, agent_id: &str) {
    check_windows(vm_port, data_dir, agent_id).await;
    check_polls(vm_port, data_dir).await;
}

/// Every window summary of the spool is in VictoriaMetrics with its values.
async fn check_windows(vm_port: u16, data_dir: &Path, agent_id: &str) {
    let sums = spooled_summaries(data_dir);
    assert!(!sums.is_empty());
    let windows = export(vm_port, "shuzhuan_window_.*").await;
    let energy = export(vm_port, "shuzhuan_window_energy_quantity").await;
    // (name, device, ts) → value; VictoriaMetrics names series measurement_field.
    let mut landed: BTreeMap<(String, String, i64), f64> = BTreeMap::new();
    for s in windows
        .iter()
        .filter(|s| !s.metric["__name__"].starts_with("shuzhuan_window_energy_"))
    {
        assert_eq!(s.metric["agent"], agent_id);
        for (t, v) in s.timestamps.iter().zip(&s.values) {
            let prev = landed.insert(
                (s.metric["__name__"].clone(), s.metric["device"].clone(), *t),
                *v,
            );
            // Delivery is at least once: a write the server stored but
            // answered too late for the agent is sent again. InfluxDB keeps
            // one point per series and timestamp (a second write of it
            // overwrites); VictoriaMetrics exports both, so a repeat must
            // carry the same value.
            assert!(
                prev.is_none() || prev == Some(*v),
                "two values for one point {s:?}"
            );
        }
    }
    let mut compared = 0;
    for (w, s) in &sums {
        let dev = s.device_id.clone();
        let get = |field: &str| {
            landed
                .get(&(format!("shuzhuan_window_{field}"), dev.clone(), *w))
                .copied()
                .unwrap_or_else(|| panic!("{dev} @{w}: no {field} in VictoriaMetrics"))
        };
        for st in DeviceState::ALL {
            assert_eq!(
                get(&format!("seconds_{}", st.as_str())),
                f64::from(s.state_seconds.get(st)),
                "{dev} @{w} {}",
                st.as_str()
            );
        }
        assert_eq!(get("samples_received"), f64::from(s.samples_received));
        assert_eq!(get("samples_expected"), f64::from(s.samples_expected));
        assert_eq!(get("nc_seconds"), f64::from(s.nc_seconds));
        assert_eq!(
            get("partial"),
            if s.flags.contains(&QualityFlag::PartialWindow) {
                1.0
            } else {
                0.0
            }
        );
        if let Some(p) = s.parts {
            assert_eq!(get("parts"), p as f64, "{dev} @{w} parts");
        }
        for e in &s.energy {
            let got = energy
                .iter()
                .find(|x| {
                    x.metric["device"] == dev
                        && x.metric["meter"] == e.meter
                        && x.metric["carrier"] == e.carrier
                })
                .and_then(|x| {
                    x.timestamps
                        .iter()
                        .position(|t| t == w)
                        .map(|i| x.values[i])
                })
                .unwrap_or_else(|| panic!("{dev} @{w}: no energy of {}", e.meter));
            assert!(
                (got - e.quantity).abs() <= 1e-9 * e.quantity.abs().max(1.0),
                "{dev} @{w} {}: {got} vs {}",
                e.meter,
                e.quantity
            );
        }
        compared += 1;
    }
    assert!(compared > 0);
    eprintln!("influx: {compared} device-windows matched");
}

/// The per-poll lines match the summaries' received counts.
async fn check_polls(vm_port: u16, data_dir: &Path) {
    let sums = spooled_summaries(data_dir);
    let devices = export(vm_port, "shuzhuan_device_.*").await;
    // Per-poll lines: one per batch the model was fed, stamped with the
    // batch time. Per device and window, the reachable ones are what the
    // summary counted as received, give or take the one batch at a window
    // edge that the run loop may feed into the neighbouring window, and
    // except that the model caps the count at the expected number (a
    // jittery poll can land twice in one interval).
    let first = sums.iter().map(|(w, _)| *w).min().unwrap();
    let mut reachable: BTreeMap<(String, i64), u32> = BTreeMap::new();
    let mut lines = 0u64;
    for s in devices
        .iter()
        .filter(|s| s.metric["__name__"] == "shuzhuan_device_reachable")
    {
        let dev = &s.metric["device"];
        for (t, v) in s.timestamps.iter().zip(&s.values) {
            assert!(*t >= first, "a device line before the first window");
            lines += 1;
            if *v == 1.0 {
                let w = sums
                    .iter()
                    .filter(|(w, x)| x.device_id == *dev && *w <= *t)
                    .map(|(w, _)| *w)
                    .max()
                    .unwrap();
                *reachable.entry((dev.clone(), w)).or_default() += 1;
            }
        }
    }
    for s in devices
        .iter()
        .filter(|s| s.metric["__name__"] == "shuzhuan_device_state_code")
    {
        let st = DeviceState::ALL
            .iter()
            .find(|x| x.as_str() == s.metric["state"])
            .unwrap();
        assert!(s.values.iter().all(|v| *v == st.index() as f64), "{s:?}");
    }
    let mut extra = 0;
    for (w, s) in &sums {
        let n = reachable
            .get(&(s.device_id.clone(), *w))
            .copied()
            .unwrap_or(0);
        let counted = n.min(s.samples_expected);
        assert!(
            counted.abs_diff(s.samples_received) <= 1,
            "{} @{w}: {n} reachable device lines vs samples_received {} (expected {})",
            s.device_id,
            s.samples_received,
            s.samples_expected
        );
        extra += n - counted;
    }
    assert!(lines > 0);
    eprintln!("influx: {lines} poll lines matched ({extra} polls beyond the expected count)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_and_window_summaries_land_in_victoria_metrics() {
    let (_vm, port, out, id) = run_case(None, Duration::from_secs(11)).await;
    check(port, &out.path().join("agent-data"), &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_starts_late_loses_nothing_within_the_bound() {
    let (_vm, port, out, id) = run_case(Some(Duration::from_secs(7)), Duration::from_secs(4)).await;
    check(port, &out.path().join("agent-data"), &id).await;
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private CA `ca.pem` and a server certificate `server.pem`/`server.key`
/// for 127.0.0.1 signed by it, in `dir`; also an unrelated `other-ca.pem`.
fn make_pki(dir: &Path) {
    for ca in ["ca", "other-ca"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "30",
                "-subj",
                &format!("/CN={ca} influx test"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=influx",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
}

/// Runs the agent in-process for `wall`; returns its last `/metrics`.
async fn run_agent(
    cfg: shuzhuan_agent::config::AgentConfig,
    http_port: u16,
    wall: Duration,
) -> String {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(shuzhuan_agent::run::run(cfg, async move {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(wall).await;
    let (_, m) = http(http_port, "GET", "/metrics").await;
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(20), agent)
        .await
        .expect("the agent stops within 20 s")
        .unwrap()
        .unwrap();
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_private_ca_to_victoria_metrics() {
    let out = tempfile::tempdir().unwrap();
    let pki = out.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    make_pki(&pki);
    let vm_port = free_port();
    let vm = start_vm_tls(
        vm_port,
        out.path(),
        Some((&pki.join("server.pem"), &pki.join("server.key"))),
    );
    let url = format!("https://127.0.0.1:{vm_port}");

    // A CA that did not sign the server's certificate: nothing is written,
    // every attempt is a (retried) network error, the lines wait on disk.
    let wrong = tempfile::tempdir().unwrap();
    let mut extra = toml::Table::new();
    extra.insert(
        "ca_file".into(),
        pki.join("other-ca.pem").display().to_string().into(),
    );
    let (running, cfg, http_port) = plant_and_config(wrong.path(), &url, extra).await;
    let m = run_agent(cfg, http_port, Duration::from_secs(3)).await;
    drop(running);
    assert_eq!(
        metric(&m, "shuzhuan_agent_influx_lines_written_total"),
        0.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "shuzhuan_agent_influx_write_errors_total{class=\"network\"}"
        ) >= 1.0
    );
    assert!(
        metric(&m, "shuzhuan_agent_influx_buffer_bytes") > 0.0,
        "{m}"
    );

    // The city's CA: everything lands.
    let mut extra = toml::Table::new();
    extra.insert(
        "ca_file".into(),
        pki.join("ca.pem").display().to_string().into(),
    );
    let (running, cfg, http_port) = plant_and_config(out.path(), &url, extra).await;
    let id = cfg.agent.id.clone();
    let m = run_agent(cfg, http_port, Duration::from_secs(10)).await;
    drop(running);
    assert!(
        metric(&m, "shuzhuan_agent_influx_lines_written_total") > 0.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "shuzhuan_agent_influx_write_errors_total{class=\"network\"}"
        ),
        0.0,
        "{m}"
    );
    // Read back over plain HTTP: the same storage, served without TLS.
    stop_vm(vm);
    let _vm = start_vm(vm_port, out.path());
    // The windows (the per-poll timing checks run in the plain-HTTP tests).
    check_windows(vm_port, &out.path().join("agent-data"), &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_buffer_keeps_lines_over_an_agent_restart() {
    let out = tempfile::tempdir().unwrap();
    let vm_port = free_port();
    let url = format!("http://127.0.0.1:{vm_port}");
    let data = out.path().join("agent-data");
    // First run: the server is down the whole time.
    let (running, cfg, http_port) = plant_and_config(out.path(), &url, toml::Table::new()).await;
    let id = cfg.agent.id.clone();
    let m = run_agent(cfg.clone(), http_port, Duration::from_secs(7)).await;
    assert_eq!(metric(&m, "shuzhuan_agent_influx_lines_written_total"), 0.0);
    let waiting =
        shuzhuan_agent::outputs::influx::disk::DiskQueue::open(&data.join("influx"), 1 << 30)
            .unwrap()
            .lines();
    assert!(waiting > 0, "nothing kept on disk");
    let first: Vec<(i64, WindowSummary)> = spooled_summaries(&data);
    let last_w = first.iter().map(|(w, _)| *w).max().unwrap();
    // Windows sealed whole in the first run (the last one was cut by the stop).
    let whole: Vec<_> = first.into_iter().filter(|(w, _)| *w < last_w).collect();
    assert!(!whole.is_empty(), "no whole window in the first run");

    // Second run with the server up: the first run's lines go out first.
    let _vm = start_vm(vm_port, out.path());
    let m = run_agent(cfg, http_port, Duration::from_secs(5)).await;
    drop(running);
    assert!(
        metric(&m, "shuzhuan_agent_influx_lines_written_total") >= waiting as f64,
        "{m}"
    );
    for reason in ["buffer_full", "rejected", "shutdown", "disk_error"] {
        assert_eq!(
            metric(
                &m,
                &format!("shuzhuan_agent_influx_lines_dropped_total{{reason=\"{reason}\"}}")
            ),
            0.0,
            "{reason}"
        );
    }
    let left =
        shuzhuan_agent::outputs::influx::disk::DiskQueue::open(&data.join("influx"), 1 << 30)
            .unwrap()
            .lines();
    assert_eq!(left, 0, "lines left on disk after a run with the server up");
    let got = export(vm_port, "shuzhuan_window_samples_received").await;
    for (w, s) in &whole {
        let v = got
            .iter()
            .filter(|x| x.metric["device"] == s.device_id && x.metric["agent"] == id)
            .find_map(|x| {
                x.timestamps
                    .iter()
                    .position(|t| t == w)
                    .map(|i| x.values[i])
            })
            .unwrap_or_else(|| panic!("{} @{w}: the first run's window is missing", s.device_id));
        assert_eq!(v, f64::from(s.samples_received), "{} @{w}", s.device_id);
    }
    // And the first run's per-poll lines, stamped before the second run began.
    let polls = export(vm_port, "shuzhuan_device_reachable").await;
    let before: usize = polls
        .iter()
        .map(|x| x.timestamps.iter().filter(|t| **t < last_w).count())
        .sum();
    let received: u32 = whole.iter().map(|(_, s)| s.samples_received).sum();
    assert!(
        before as u32 >= received,
        "{before} poll lines for {received} polls"
    );
}
