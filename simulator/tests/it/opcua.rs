//! Simulator integration tests: opcua. The CNC server read by an independent
//! client (Python asyncua) with security None, Basic256Sha256 Sign and
//! SignAndEncrypt, data changes delivered to a subscription, and a restart on
//! the same port, also through the control port with a client that reconnects;
//! the same reads and changes from a server with the lean namespace 0.

use serde_json::Value;
use shuzhuan_simulator::opcua::{serve, CncSnapshot, OpcUaServerConfig, RunningServer};
use shuzhuan_tests::{python, repo_root, Proc};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::watch;

fn snapshot(parts: u32) -> CncSnapshot {
    CncSnapshot {
        operation_mode: 1,
        channel_state: 0,
        channel_mode: 0,
        spindle_rotating: true,
        program_state: "Running",
        parts_produced: parts,
        machinery_item_state: 3,
        power_kw: 12.5,
    }
}

struct Fixture {
    server: RunningServer,
    machines: Vec<watch::Sender<CncSnapshot>>,
    _pki: tempfile::TempDir,
}

async fn start(cfg: impl FnOnce(&mut OpcUaServerConfig)) -> Fixture {
    let pki = tempfile::tempdir().unwrap();
    let mut c = OpcUaServerConfig::local(pki.path().join("server"));
    cfg(&mut c);
    let (a_tx, a_rx) = watch::channel(snapshot(41));
    let mut idle = snapshot(0);
    idle.operation_mode = 0;
    idle.channel_state = 2;
    idle.spindle_rotating = false;
    idle.program_state = "Ended";
    idle.machinery_item_state = 2;
    idle.power_kw = 0.4;
    let (b_tx, b_rx) = watch::channel(idle);
    let machines = vec![("cnc-01".to_owned(), a_rx), ("cnc-02".to_owned(), b_rx)];
    let server = serve(c, machines, std::future::pending())
        .await
        .expect("server starts");
    Fixture {
        server,
        machines: vec![a_tx, b_tx],
        _pki: pki,
    }
}

/// Runs the asyncua client; its JSON lines arrive on the receiver.
fn client(
    url: &str,
    machine: &str,
    security: &str,
    pki: &std::path::Path,
    watch_s: f64,
) -> (Proc, mpsc::Receiver<Value>) {
    let script = repo_root().join("tests/peers/py/opcua_cnc_client.py");
    let mut proc = Proc::spawn(
        Command::new(python())
            .arg(script)
            .args([
                "--url",
                url,
                "--machine",
                machine,
                "--security",
                security,
                "--watch",
            ])
            .arg(watch_s.to_string())
            .arg("--pki")
            .arg(pki)
            .stdout(Stdio::piped()),
    );
    let out = proc.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        }
    });
    (proc, rx)
}

async fn next_line(rx: &mpsc::Receiver<Value>, secs: u64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match rx.try_recv() {
            Ok(v) => return v,
            Err(mpsc::TryRecvError::Disconnected) => panic!("asyncua client ended without output"),
            Err(mpsc::TryRecvError::Empty) if std::time::Instant::now() > deadline => {
                panic!("asyncua client gave no output in {secs} s")
            }
            Err(mpsc::TryRecvError::Empty) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn assert_values(v: &Value, expect: &CncSnapshot, item_state: &str) {
    assert!(v.get("error").is_none(), "client failed: {v}");
    assert_eq!(v["operation_mode"], expect.operation_mode);
    assert_eq!(v["channel_state"], expect.channel_state);
    assert_eq!(v["channel_mode"], expect.channel_mode);
    assert_eq!(v["spindle_rotating"], expect.spindle_rotating);
    assert_eq!(v["program_state"], expect.program_state);
    assert_eq!(v["parts_produced"], expect.parts_produced);
    assert_eq!(v["machinery_item_state"], item_state);
    assert_eq!(v["power_kw"], expect.power_kw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncua_reads_every_cnc_node_by_spec_browse_names_and_sees_changes() {
    let f = start(|_| {}).await;
    let pki = tempfile::tempdir().unwrap();
    let (_p, rx) = client(&f.server.endpoint_url(), "cnc-01", "none", pki.path(), 8.0);
    let first = next_line(&rx, 15).await;
    assert_values(&first, &snapshot(41), "Executing");

    // The subscription's initial notification carries the current count,
    // then the change made here must follow.
    let initial = next_line(&rx, 10).await;
    assert_eq!(initial["parts_produced"], 41, "{initial}");
    f.machines[0].send(snapshot(42)).unwrap();
    let changed = next_line(&rx, 5).await;
    assert_eq!(changed["parts_produced"], 42, "{changed}");

    // The second machine is independent of the first.
    let (_p2, rx2) = client(&f.server.endpoint_url(), "cnc-02", "none", pki.path(), 0.0);
    let other = next_line(&rx2, 15).await;
    assert_eq!(other["program_state"], "Ended", "{other}");
    assert_eq!(other["machinery_item_state"], "NotExecuting", "{other}");
    assert_eq!(other["spindle_rotating"], false, "{other}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncua_reads_over_basic256sha256_sign_and_sign_and_encrypt() {
    let f = start(|_| {}).await;
    for mode in ["sign", "encrypt"] {
        let pki = tempfile::tempdir().unwrap();
        let (_p, rx) = client(&f.server.endpoint_url(), "cnc-01", mode, pki.path(), 0.0);
        let v = next_line(&rx, 15).await;
        assert_values(&v, &snapshot(41), "Executing");
    }
    // The server made its own certificate in its PKI directory.
    assert!(f._pki.path().join("server/own/cert.der").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lean_namespace_0_serves_the_same_machines_reads_and_changes() {
    let f = start(|c| c.lean_namespace0 = true).await;
    let pki = tempfile::tempdir().unwrap();
    let (_p, rx) = client(&f.server.endpoint_url(), "cnc-01", "none", pki.path(), 8.0);
    let first = next_line(&rx, 15).await;
    assert_values(&first, &snapshot(41), "Executing");
    let initial = next_line(&rx, 10).await;
    assert_eq!(initial["parts_produced"], 41, "{initial}");
    f.machines[0].send(snapshot(42)).unwrap();
    let changed = next_line(&rx, 5).await;
    assert_eq!(changed["parts_produced"], 42, "{changed}");
    let pki = tempfile::tempdir().unwrap();
    let (_p2, rx2) = client(
        &f.server.endpoint_url(),
        "cnc-01",
        "encrypt",
        pki.path(),
        0.0,
    );
    assert_values(&next_line(&rx2, 15).await, &snapshot(42), "Executing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_port_and_serves_current_values() {
    let mut f = start(|_| {}).await;
    let port = f.server.port();
    f.server.stop().await;
    assert!(!f.server.is_running());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port still open after stop"
    );
    f.machines[0].send(snapshot(50)).unwrap();
    f.server.start().await.unwrap();
    assert_eq!(f.server.port(), port);
    let pki = tempfile::tempdir().unwrap();
    let (_p, rx) = client(&f.server.endpoint_url(), "cnc-01", "none", pki.path(), 0.0);
    let v = next_line(&rx, 15).await;
    assert_values(&v, &snapshot(50), "Executing");
}

/// Sends one control command and returns the reply line.
async fn control(addr: std::net::SocketAddr, command: &str) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{command}\n").as_bytes())
        .await
        .unwrap();
    let mut reply = String::new();
    tokio::io::BufReader::new(s)
        .read_line(&mut reply)
        .await
        .unwrap();
    reply.trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_port_restarts_the_opc_ua_server_and_a_client_reconnects_to_the_same_nodes() {
    let root = repo_root();
    let plant = shuzhuan_simulator::plant::load(&root.join("config/plants/example.toml")).unwrap();
    let profiles = shuzhuan_simulator::profiles::load_dir(&root.join("config/profiles")).unwrap();
    let clock = shuzhuan_simulator::clock::SimClock::starting_now(60.0, 1_764_547_200_000);
    let out = tempfile::tempdir().unwrap();
    let running = shuzhuan_simulator::run::start(plant, &profiles, clock, Some(out.path().into()))
        .await
        .unwrap();
    let url = running.ports["cnc-ua"].clone();
    let targets = shuzhuan_simulator::control::Targets::of([&running]);
    let (addr, _task) = shuzhuan_simulator::control::serve(
        std::sync::Arc::new(targets),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();

    let mut cmd = Command::new(python());
    cmd.arg(root.join("tests/peers/py/opcua_reconnect_client.py"))
        .args(["--url", &url, "--machine", "cnc-1", "--seconds", "40"])
        .stdout(Stdio::piped());
    let mut proc = Proc::spawn(&mut cmd);
    let out_pipe = proc.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out_pipe).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        }
    });
    let first = next_line(&rx, 20).await;
    assert_eq!(first["event"], "values", "{first}");
    assert_eq!(first["session"], 1, "{first}");

    assert!(
        control(addr, "fault example-1 cnc-ua garbage on")
            .await
            .starts_with("error: unknown opc ua fault"),
        "modbus faults do not apply to an opc ua link"
    );
    let started = std::time::Instant::now();
    assert_eq!(
        control(addr, "fault example-1 cnc-ua restart 1500").await,
        "ok"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "stayed down"
    );
    assert!(running.opcua["cnc-ua"].lock().await.is_running());

    let dropped = next_line(&rx, 10).await;
    assert_eq!(dropped["event"], "dropped", "{dropped}");
    assert_eq!(dropped["session"], 1, "{dropped}");
    let again = next_line(&rx, 20).await;
    assert_eq!(again["event"], "values", "{again}");
    assert_eq!(again["session"], 2, "a new session: {again}");
    assert_eq!(
        again["node_ids"], first["node_ids"],
        "the restarted server serves the same nodes"
    );
    let keys = |v: &Value| {
        v["values"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&again), keys(&first));
    assert!(
        again["values"]["parts_produced"].as_u64() >= first["values"]["parts_produced"].as_u64(),
        "the machine's counter carried on: {first} then {again}"
    );

    // Stop and start: the port refuses while stopped.
    let port: u16 = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(control(addr, "fault example-1 cnc-ua stop").await, "ok");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert_eq!(control(addr, "fault example-1 cnc-ua start").await, "ok");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
}
