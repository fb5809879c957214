//! Agent integration tests: opcua. The agent's OPC UA link against servers
//! others wrote (Python asyncua, node-opcua) and against the simulator's
//! CNC server: browse-path resolution across differing namespace indexes,
//! subscriptions, polling, Basic256Sha256 Sign and SignAndEncrypt with an
//! untrusted server certificate refused into `rejected/` until trusted, and
//! recovery after a server restart.

use prometheus::Registry;
use shuzhuan_agent::clock::Clock;
use shuzhuan_agent::sample::{Quality, SampleBatch, Value};
use shuzhuan_agent::shutdown::Coordinator;
use shuzhuan_agent::sources::opcua::{
    pki, run_link, AcquisitionMode, CertificateIdentity, Deadband, Identity, OpcUaDeviceConfig,
    OpcUaLinkConfig, SecurityModeName, SecurityPolicyName, UserNameIdentity,
};
use shuzhuan_common::profile::{OpcUaTag, TagRole};
use shuzhuan_tests::{free_port, node_modules, python, repo_root, wait_for_port, Proc};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

fn tag(name: &str, role: TagRole, path: &str) -> OpcUaTag {
    OpcUaTag {
        name: name.into(),
        role,
        node_id: None,
        browse_path: Some(path.into()),
        scale: 1.0,
        unit: None,
        carrier: None,
    }
}

fn cnc_tags() -> Vec<OpcUaTag> {
    vec![
        tag("parts", TagRole::PartCounter, "Production/Statistics/PartsProducedInLifetime"),
        tag("program", TagRole::ProgramState, "Production/ActiveProgram/State/CurrentState"),
        tag("spindle", TagRole::Spindle, "Monitoring/Spindle1/IsRotating"),
        tag(
            "mode",
            TagRole::OperationMode,
            "nsu=http://opcfoundation.org/UA/MachineTool/;Monitoring/MachineTool/nsu=http://opcfoundation.org/UA/MachineTool/;OperationMode",
        ),
        tag("missing", TagRole::Custom, "Monitoring/MachineTool/NoSuchVariable"),
    ]
}

fn device(id: &str, root: &str, tags: Vec<OpcUaTag>) -> OpcUaDeviceConfig {
    OpcUaDeviceConfig {
        id: id.into(),
        root: root.into(),
        poll_interval_ms: 200,
        tags: tags.into(),
    }
}

fn link_cfg(endpoint: &str, pki: &Path) -> OpcUaLinkConfig {
    let mut c = OpcUaLinkConfig::new("ua-test", endpoint);
    c.pki_dir = Some(pki.to_path_buf());
    c.timeout_ms = 3_000;
    c.publishing_interval_ms = 100;
    c.backoff_initial_ms = 100;
    c.backoff_max_ms = 800;
    c
}

struct Link {
    rx: mpsc::Receiver<SampleBatch>,
    registry: Registry,
    coordinator: Coordinator,
    task: JoinHandle<()>,
}

fn start_link(cfg: OpcUaLinkConfig, devices: Vec<OpcUaDeviceConfig>) -> Link {
    // Logs of the link (RUST_LOG=shuzhuan_agent=debug) when a test fails.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let (tx, rx) = mpsc::channel(64);
    let registry = Registry::new();
    let coordinator = Coordinator::new();
    let shutdown = coordinator.handle();
    let r = registry.clone();
    let task =
        tokio::spawn(async move { run_link(cfg, devices, Clock::real(), tx, &r, shutdown).await });
    Link {
        rx,
        registry,
        coordinator,
        task,
    }
}

impl Link {
    /// The first batch that satisfies `want`, or a panic naming the last one seen.
    async fn until(
        &mut self,
        secs: u64,
        what: &str,
        want: impl Fn(&SampleBatch) -> bool,
    ) -> SampleBatch {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = None;
        while Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(500), self.rx.recv()).await {
                Ok(Some(b)) if want(&b) => return b,
                Ok(Some(b)) => last = Some(b),
                Ok(None) => panic!("link ended while waiting for {what}"),
                Err(_) => {}
            }
        }
        panic!("no batch with {what} in {secs} s; last: {last:#?}");
    }

    fn metrics(&self) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap()
    }

    async fn stop(self) {
        tokio::time::timeout(Duration::from_secs(5), self.coordinator.shutdown())
            .await
            .expect("link stops on shutdown");
        self.task.await.unwrap();
    }
}

fn value<'a>(b: &'a SampleBatch, tag: &str) -> (&'a Option<Value>, &'a Quality) {
    let s = b
        .samples
        .iter()
        .find(|s| &*s.tag == tag)
        .unwrap_or_else(|| panic!("no tag {tag} in {b:#?}"));
    (&s.value, &s.quality)
}

fn number(b: &SampleBatch, tag: &str) -> Option<f64> {
    match value(b, tag) {
        (Some(v), Quality::Good) => v.as_f64(),
        _ => None,
    }
}

/// The CNC-shaped values every peer serves, with the unknown node isolated.
fn assert_cnc_batch(b: &SampleBatch) {
    assert!(b.reachable, "{b:#?}");
    assert_eq!(
        value(b, "program"),
        (&Some(Value::Text("Running".into())), &Quality::Good),
        "{b:#?}"
    );
    assert_eq!(
        value(b, "spindle"),
        (&Some(Value::Bool(true)), &Quality::Good),
        "{b:#?}"
    );
    assert_eq!(
        value(b, "mode"),
        (&Some(Value::Number(1.0)), &Quality::Good),
        "{b:#?}"
    );
    assert_eq!(
        value(b, "missing"),
        (&None, &Quality::Bad("unresolved")),
        "{b:#?}"
    );
}

fn all_good_but_missing(b: &SampleBatch) -> bool {
    b.samples
        .iter()
        .filter(|s| &*s.tag != "missing")
        .all(|s| s.quality.is_good())
}

/// Starts a peer script and waits for it to listen on `port`.
fn peer(cmd: &mut Command, port: u16, what: &str) -> Proc {
    let mut p = Proc::spawn(cmd.stdout(Stdio::piped()));
    let out = p.0.stdout.take().unwrap();
    std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
    assert!(
        wait_for_port(port, 20),
        "{what} did not listen on port {port}"
    );
    p
}

fn asyncua_server(port: u16, security: &str, pki: &Path) -> Proc {
    let script = repo_root().join("tests/peers/py/opcua_peer_server.py");
    peer(
        Command::new(python())
            .arg(script)
            .args(["--port", &port.to_string(), "--security", security, "--pki"])
            .arg(pki),
        port,
        "asyncua server",
    )
}

fn node_opcua_server(port: u16, pki: &Path) -> Proc {
    node_opcua_server_with(port, pki, true)
}

/// `own_cert = false`: node-opcua's own certificate (this host's DNS name
/// first, no 127.0.0.1), as a real controller's might be.
fn node_opcua_server_with(port: u16, pki: &Path, own_cert: bool) -> Proc {
    if !own_cert {
        return peer(
            Command::new("node")
                .arg(repo_root().join("tests/peers/js/opcua_peer_server.js"))
                .arg(port.to_string())
                .arg(pki)
                .env("NODE_PATH", node_modules()),
            port,
            "node-opcua server",
        );
    }
    let make_cert = repo_root().join("tests/peers/py/opcua_make_cert.py");
    let status = Command::new(python())
        .arg(make_cert)
        .args(["--uri", "urn:shuzhuan:tests:node-opcua-server", "--pki"])
        .arg(pki)
        .status()
        .unwrap();
    assert!(status.success(), "opcua_make_cert.py failed");
    let script = repo_root().join("tests/peers/js/opcua_peer_server.js");
    peer(
        Command::new("node")
            .arg(script)
            .arg(port.to_string())
            .arg(pki)
            .env("NODE_PATH", node_modules()),
        port,
        "node-opcua server",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncua_subscription_delivers_changes_and_a_missing_node_stays_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = asyncua_server(port, "none", &dir.path().join("server"));
    let url = format!("opc.tcp://127.0.0.1:{port}/shuzhuan/peer/");
    let mut link = start_link(
        link_cfg(&url, &dir.path().join("agent")),
        vec![device("lathe-1", "Machines/lathe-1", cnc_tags())],
    );
    let first = link.until(15, "good values", all_good_but_missing).await;
    assert_cnc_batch(&first);
    let parts = number(&first, "parts").unwrap();
    // The server counts every 200 ms: the subscription must deliver the changes.
    let later = link
        .until(5, "a higher part count", |b| {
            number(b, "parts").is_some_and(|p| p >= parts + 3.0)
        })
        .await;
    assert_cnc_batch(&later);
    let m = link.metrics();
    assert!(
        m.contains("shuzhuan_agent_link_up{link=\"ua-test\"} 1"),
        "{m}"
    );
    assert!(m.contains("shuzhuan_agent_opcua_requests_total{link=\"ua-test\",service=\"create_monitored_items\"}"), "{m}");
    // A path that matches nothing is a configuration problem, not a failed read.
    assert!(
        m.contains("shuzhuan_agent_read_errors_total{device=\"lathe-1\",link=\"ua-test\"} 0"),
        "{m}"
    );
    link.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncua_unknown_server_certificate_is_rejected_until_trusted_then_sign_and_encrypt_work() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = asyncua_server(port, "sign,encrypt", &dir.path().join("server"));
    let url = format!("opc.tcp://127.0.0.1:{port}/shuzhuan/peer/");
    let agent_pki = dir.path().join("agent");
    let mut cfg = link_cfg(&url, &agent_pki);
    cfg.security_policy = SecurityPolicyName::Basic256Sha256;
    cfg.security_mode = SecurityModeName::Sign;
    let mut link = start_link(
        cfg.clone(),
        vec![device("lathe-1", "Machines/lathe-1", cnc_tags())],
    );

    // Refused: nothing is read and the server's certificate waits in rejected/.
    let deadline = Instant::now() + Duration::from_secs(15);
    while pki::rejected_certificates(&agent_pki).unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "server certificate never landed in rejected/"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b = link.until(5, "a batch", |_| true).await;
    assert!(!b.reachable, "{b:#?}");
    assert!(
        b.samples
            .iter()
            .all(|s| s.quality == Quality::Bad("disconnected")),
        "{b:#?}"
    );
    assert!(
        agent_pki.join("own/cert.der").exists(),
        "the agent made its own certificate"
    );
    let m = link.metrics();
    assert!(m.contains("shuzhuan_agent_opcua_errors_total{link=\"ua-test\",reason=\"BadCertificateUntrusted\"}"), "{m}");

    // The operator trusts it; the link connects by itself.
    let rejected = pki::rejected_certificates(&agent_pki).unwrap();
    let name = rejected[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    pki::trust_rejected(&agent_pki, &name).unwrap();
    let b = link
        .until(15, "good values over Sign", all_good_but_missing)
        .await;
    assert_cnc_batch(&b);
    link.stop().await;

    cfg.security_mode = SecurityModeName::SignAndEncrypt;
    let mut link = start_link(cfg, vec![device("lathe-1", "Machines/lathe-1", cnc_tags())]);
    let b = link
        .until(15, "good values over SignAndEncrypt", all_good_but_missing)
        .await;
    assert_cnc_batch(&b);
    link.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_the_asyncua_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = asyncua_server(port, "none", &dir.path().join("server"));
    let url = format!("opc.tcp://127.0.0.1:{port}/shuzhuan/peer/");
    let mut link = start_link(
        link_cfg(&url, &dir.path().join("agent")),
        vec![device("lathe-1", "Machines/lathe-1", cnc_tags())],
    );
    link.until(15, "good values", all_good_but_missing).await;
    drop(server); // killed by PID
    let down = link.until(10, "disconnected", |b| !b.reachable).await;
    assert!(
        down.samples
            .iter()
            .all(|s| s.quality == Quality::Bad("disconnected")),
        "{down:#?}"
    );
    let m = link.metrics();
    assert!(
        m.contains("shuzhuan_agent_link_up{link=\"ua-test\"} 0"),
        "{m}"
    );

    let _server = asyncua_server(port, "none", &dir.path().join("server"));
    // A new process counts from 0 again: values come from the new session.
    let back = link
        .until(15, "good values after the restart", all_good_but_missing)
        .await;
    assert_cnc_batch(&back);
    link.until(5, "the count moving again", |b| {
        number(b, "parts").is_some_and(|p| p >= 3.0)
    })
    .await;
    link.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_opcua_polling_and_sign_and_encrypt_after_trust() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = node_opcua_server(port, &dir.path().join("server"));
    let url = format!("opc.tcp://127.0.0.1:{port}/UA/ShuzhuanPeer");
    let agent_pki = dir.path().join("agent");

    let mut cfg = link_cfg(&url, &agent_pki);
    cfg.mode = AcquisitionMode::Poll;
    let mut link = start_link(
        cfg.clone(),
        vec![device("mill-1", "Machines/mill-1", cnc_tags())],
    );
    let b = link.until(15, "polled values", all_good_but_missing).await;
    assert_cnc_batch(&b);
    let parts = number(&b, "parts").unwrap();
    link.until(5, "a higher polled count", |b| {
        number(b, "parts").is_some_and(|p| p > parts)
    })
    .await;
    assert!(link.metrics().contains("service=\"read\""));
    link.stop().await;

    cfg.mode = AcquisitionMode::Subscribe;
    cfg.security_policy = SecurityPolicyName::Basic256Sha256;
    cfg.security_mode = SecurityModeName::SignAndEncrypt;
    let mut link = start_link(cfg, vec![device("mill-1", "Machines/mill-1", cnc_tags())]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while pki::rejected_certificates(&agent_pki).unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "node-opcua certificate never landed in rejected/"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let name = pki::rejected_certificates(&agent_pki).unwrap()[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    pki::trust_rejected(&agent_pki, &name).unwrap();
    let b = link
        .until(15, "good values over SignAndEncrypt", all_good_but_missing)
        .await;
    assert_cnc_batch(&b);
    link.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_simulator_cnc_server_and_follows_its_restart() {
    use shuzhuan_simulator::opcua::{serve, CncSnapshot, OpcUaServerConfig};
    let dir = tempfile::tempdir().unwrap();
    let snap = CncSnapshot {
        operation_mode: 1,
        channel_state: 0,
        channel_mode: 0,
        spindle_rotating: true,
        program_state: "Running",
        parts_produced: 5,
        machinery_item_state: 3,
        power_kw: 9.5,
    };
    let (tx, rx) = tokio::sync::watch::channel(snap.clone());
    let mut scfg = OpcUaServerConfig::local(dir.path().join("server"));
    scfg.max_nodes_per_read = 2; // the polling link must batch its reads
    scfg.max_monitored_items_per_call = 3; // and the subscribing one its monitored items
    let mut server = serve(scfg, vec![("cnc-01".into(), rx)], std::future::pending())
        .await
        .unwrap();

    let mut tags = cnc_tags();
    tags.push(tag(
        "state",
        TagRole::MachineryItemState,
        "MachineryItemState/CurrentState",
    ));
    tags.push(tag(
        "power",
        TagRole::ActivePower,
        "Monitoring/MachineTool/Power",
    ));
    tags.push(tag(
        "channel",
        TagRole::ChannelState,
        "Monitoring/Channel1/ChannelState",
    ));
    let mut cfg = link_cfg(&server.endpoint_url(), &dir.path().join("agent"));
    cfg.mode = AcquisitionMode::Poll;
    let mut link = start_link(
        cfg.clone(),
        vec![device("cnc-01", "Machines/cnc-01", tags.clone())],
    );
    let b = link.until(15, "polled values", all_good_but_missing).await;
    assert_cnc_batch(&b);
    assert_eq!(number(&b, "parts"), Some(5.0));
    assert_eq!(number(&b, "power"), Some(9.5));
    assert_eq!(number(&b, "channel"), Some(0.0));
    assert_eq!(value(&b, "state").0, &Some(Value::Text("Executing".into())));
    link.stop().await;

    // Subscribed with an absolute deadband of 0.5: the text and boolean
    // variables refuse a deadband and are monitored without one.
    cfg.mode = AcquisitionMode::Subscribe;
    cfg.deadband = Some(Deadband::Absolute(0.5));
    let mut link = start_link(cfg, vec![device("cnc-01", "Machines/cnc-01", tags)]);
    let b = link
        .until(15, "subscribed values", all_good_but_missing)
        .await;
    assert_cnc_batch(&b);
    let mut next = snap.clone();
    next.parts_produced = 6;
    next.power_kw = 9.7; // within the deadband: not reported
    tx.send(next.clone()).unwrap();
    let b = link
        .until(5, "the new part count", |b| number(b, "parts") == Some(6.0))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b2 = link.until(5, "a batch", |_| true).await;
    assert_eq!(
        (number(&b, "power"), number(&b2, "power")),
        (Some(9.5), Some(9.5))
    );
    next.power_kw = 11.0;
    tx.send(next.clone()).unwrap();
    link.until(5, "the power change beyond the deadband", |b| {
        number(b, "power") == Some(11.0)
    })
    .await;

    server.stop().await;
    link.until(10, "disconnected", |b| !b.reachable).await;
    next.parts_produced = 7;
    tx.send(next).unwrap();
    server.start().await.unwrap();
    link.until(15, "values after the restart", |b| {
        number(b, "parts") == Some(7.0) && all_good_but_missing(b)
    })
    .await;
    link.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_login_is_refused_with_a_wrong_password_and_accepted_with_the_right_one() {
    use shuzhuan_simulator::opcua::{serve, CncSnapshot, OpcUaServerConfig, ServerUser};
    let dir = tempfile::tempdir().unwrap();
    let snap = CncSnapshot {
        operation_mode: 1,
        channel_state: 0,
        channel_mode: 0,
        spindle_rotating: true,
        program_state: "Running",
        parts_produced: 5,
        machinery_item_state: 3,
        power_kw: 9.5,
    };
    let (_tx, rx) = tokio::sync::watch::channel(snap);
    let mut scfg = OpcUaServerConfig::local(dir.path().join("server"));
    scfg.users = vec![ServerUser {
        username: "operator".into(),
        password: Some("s3cret".into()),
        cert: None,
    }];
    let server = serve(scfg, vec![("cnc-01".into(), rx)], std::future::pending())
        .await
        .unwrap();
    let tags = vec![tag(
        "parts",
        TagRole::PartCounter,
        "Production/Statistics/PartsProducedInLifetime",
    )];

    let mut cfg = link_cfg(&server.endpoint_url(), &dir.path().join("agent"));
    cfg.identity = Identity::UserName(UserNameIdentity {
        username: "operator".into(),
        password: "wrong".into(),
    });
    let mut link = start_link(
        cfg.clone(),
        vec![device("cnc-01", "Machines/cnc-01", tags.clone())],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = link.metrics();
        if m.contains("reason=\"BadUserAccessDenied\"")
            || m.contains("reason=\"BadIdentityTokenRejected\"")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no login refusal counted: {m}");
        let b = link.until(5, "a batch", |_| true).await;
        assert!(!b.reachable, "logged in with a wrong password: {b:#?}");
    }
    link.stop().await;

    cfg.identity = Identity::UserName(UserNameIdentity {
        username: "operator".into(),
        password: "s3cret".into(),
    });
    let mut link = start_link(cfg, vec![device("cnc-01", "Machines/cnc-01", tags)]);
    let b = link
        .until(15, "values after logging in", |b| b.reachable)
        .await;
    assert_eq!(number(&b, "parts"), Some(5.0));
    link.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_simulator_over_sign_and_encrypt_once_its_certificate_is_trusted() {
    use shuzhuan_simulator::opcua::{serve, CncSnapshot, OpcUaServerConfig};
    let dir = tempfile::tempdir().unwrap();
    let snap = CncSnapshot {
        operation_mode: 0,
        channel_state: 2,
        channel_mode: 2,
        spindle_rotating: false,
        program_state: "Aborted",
        parts_produced: 17,
        machinery_item_state: 1,
        power_kw: 0.3,
    };
    let (_tx, rx) = tokio::sync::watch::channel(snap);
    let scfg = OpcUaServerConfig::local(dir.path().join("server"));
    let server = serve(scfg, vec![("cnc-07".into(), rx)], std::future::pending())
        .await
        .unwrap();
    let agent_pki = dir.path().join("agent");
    let mut cfg = link_cfg(&server.endpoint_url(), &agent_pki);
    cfg.security_policy = SecurityPolicyName::Basic256Sha256;
    cfg.security_mode = SecurityModeName::SignAndEncrypt;
    let tags = vec![
        tag(
            "parts",
            TagRole::PartCounter,
            "Production/Statistics/PartsProducedInLifetime",
        ),
        tag(
            "program",
            TagRole::ProgramState,
            "Production/ActiveProgram/State/CurrentState",
        ),
        tag(
            "state",
            TagRole::MachineryItemState,
            "MachineryItemState/CurrentState",
        ),
        tag(
            "channel_mode",
            TagRole::ChannelMode,
            "Monitoring/Channel1/ChannelMode",
        ),
    ];
    let mut link = start_link(cfg, vec![device("cnc-07", "Machines/cnc-07", tags)]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pki::rejected_certificates(&agent_pki).unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "simulator certificate never landed in rejected/"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let name = pki::rejected_certificates(&agent_pki).unwrap()[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    pki::trust_rejected(&agent_pki, &name).unwrap();
    let b = link
        .until(10, "values over SignAndEncrypt", |b| {
            b.samples.iter().all(|s| s.quality.is_good())
        })
        .await;
    assert_eq!(number(&b, "parts"), Some(17.0));
    assert_eq!(number(&b, "channel_mode"), Some(2.0));
    assert_eq!(value(&b, "program").0, &Some(Value::Text("Aborted".into())));
    assert_eq!(
        value(&b, "state").0,
        &Some(Value::Text("OutOfService".into()))
    );
    link.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_gives_disconnected_batches_on_time_and_backed_off_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port(); // nothing listens here
    let cfg = link_cfg(
        &format!("opc.tcp://127.0.0.1:{port}/"),
        &dir.path().join("agent"),
    );
    let mut link = start_link(cfg, vec![device("lathe-1", "Machines/lathe-1", cnc_tags())]);
    let start = Instant::now();
    let mut batches = 0;
    while start.elapsed() < Duration::from_secs(2) {
        let b = link.until(5, "a batch", |_| true).await;
        assert!(!b.reachable);
        assert_eq!(b.samples.len(), 5);
        assert!(
            b.samples
                .iter()
                .all(|s| s.quality == Quality::Bad("disconnected")),
            "{b:#?}"
        );
        batches += 1;
    }
    // One batch per 200 ms poll interval: never more (10 or 11 in 2 s), and
    // on a loaded 2-core machine not all that much fewer.
    assert!((4..=12).contains(&batches), "{batches} batches in 2 s");
    // Attempts back off from 100 ms towards 800 ms (halved at most by jitter):
    // at most 9 fit in the ~2.4 s measured, without backoff there would be dozens.
    let m = link.metrics();
    let attempts: u64 = m
        .lines()
        .find(|l| {
            l.starts_with("shuzhuan_agent_opcua_requests_total")
                && l.contains("service=\"connect\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no connect count: {m}"));
    assert!(
        (2..=10).contains(&attempts),
        "{attempts} connect attempts in 2 s"
    );
    assert!(
        m.contains("shuzhuan_agent_link_up{link=\"ua-test\"} 0"),
        "{m}"
    );
    link.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deprecated_policy_without_consent_reports_disconnected_and_never_connects() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = link_cfg("opc.tcp://127.0.0.1:1/", &dir.path().join("agent"));
    cfg.security_policy = SecurityPolicyName::Basic128Rsa15;
    cfg.security_mode = SecurityModeName::SignAndEncrypt;
    let mut link = start_link(cfg, vec![device("lathe-1", "Machines/lathe-1", cnc_tags())]);
    let b = link.until(5, "a batch", |_| true).await;
    assert!(
        !b.reachable
            && b.samples
                .iter()
                .all(|s| s.quality == Quality::Bad("disconnected"))
    );
    let m = link.metrics();
    assert!(m.contains("reason=\"config\"} 1"), "{m}");
    assert!(!m.contains("service=\"connect\""), "{m}");
    link.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_login_with_a_user_certificate_the_server_knows() {
    use shuzhuan_simulator::opcua::{serve, CncSnapshot, OpcUaServerConfig, ServerUser};
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("user");
    let status = Command::new(python())
        .arg(repo_root().join("tests/peers/py/opcua_make_cert.py"))
        .args(["--uri", "urn:shuzhuan:tests:operator", "--client", "--pki"])
        .arg(&user)
        .status()
        .unwrap();
    assert!(status.success(), "opcua_make_cert.py failed");
    let snap = CncSnapshot {
        operation_mode: 1,
        channel_state: 0,
        channel_mode: 0,
        spindle_rotating: true,
        program_state: "Running",
        parts_produced: 23,
        machinery_item_state: 3,
        power_kw: 9.5,
    };
    let (_tx, rx) = tokio::sync::watch::channel(snap);
    let mut scfg = OpcUaServerConfig::local(dir.path().join("server"));
    scfg.users = vec![ServerUser {
        username: "operator".into(),
        password: None,
        cert: Some(user.join("cert.der")),
    }];
    let server = serve(scfg, vec![("cnc-01".into(), rx)], std::future::pending())
        .await
        .unwrap();

    let agent_pki = dir.path().join("agent");
    let mut cfg = link_cfg(&server.endpoint_url(), &agent_pki);
    cfg.security_policy = SecurityPolicyName::Basic256Sha256;
    cfg.security_mode = SecurityModeName::Sign;
    cfg.identity = Identity::Certificate(CertificateIdentity {
        cert: user.join("cert.der"),
        key: user.join("key.pem"),
    });
    let tags = vec![tag(
        "parts",
        TagRole::PartCounter,
        "Production/Statistics/PartsProducedInLifetime",
    )];
    let mut link = start_link(cfg, vec![device("cnc-01", "Machines/cnc-01", tags)]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pki::rejected_certificates(&agent_pki).unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "simulator certificate never landed in rejected/"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let name = pki::rejected_certificates(&agent_pki).unwrap()[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    pki::trust_rejected(&agent_pki, &name).unwrap();
    let b = link
        .until(10, "values after a certificate login", |b| b.reachable)
        .await;
    assert_eq!(number(&b, "parts"), Some(23.0));
    link.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_certificate_naming_another_host_needs_relaxed_checks() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = node_opcua_server_with(port, &dir.path().join("server"), false);
    let url = format!("opc.tcp://127.0.0.1:{port}/UA/ShuzhuanPeer");
    let agent_pki = dir.path().join("agent");
    let mut cfg = link_cfg(&url, &agent_pki);
    cfg.security_policy = SecurityPolicyName::Basic256Sha256;
    cfg.security_mode = SecurityModeName::Sign;
    let mut link = start_link(
        cfg.clone(),
        vec![device("mill-1", "Machines/mill-1", cnc_tags())],
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while pki::rejected_certificates(&agent_pki).unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "node-opcua certificate never landed in rejected/"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let name = pki::rejected_certificates(&agent_pki).unwrap()[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    pki::trust_rejected(&agent_pki, &name).unwrap();
    // Trusted, but it names neither 127.0.0.1 nor its URI first: still refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = link.metrics();
        if m.contains("reason=\"BadCertificateHostNameInvalid\"")
            || m.contains("reason=\"BadCertificateUriInvalid\"")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no certificate name refusal: {m}"
        );
        let b = link.until(5, "a batch", |_| true).await;
        assert!(!b.reachable, "{b:#?}");
    }
    link.stop().await;

    cfg.verify_server_certificate = false;
    let mut link = start_link(cfg, vec![device("mill-1", "Machines/mill-1", cnc_tags())]);
    let b = link
        .until(15, "good values with relaxed checks", all_good_but_missing)
        .await;
    assert_cnc_batch(&b);
    link.stop().await;

    // The trust list still holds: a fresh store trusts nothing.
    let mut cfg = link_cfg(&url, &dir.path().join("agent-2"));
    cfg.security_policy = SecurityPolicyName::Basic256Sha256;
    cfg.security_mode = SecurityModeName::Sign;
    cfg.verify_server_certificate = false;
    let mut link = start_link(cfg, vec![device("mill-1", "Machines/mill-1", cnc_tags())]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pki::rejected_certificates(&dir.path().join("agent-2"))
        .unwrap()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "an untrusted certificate was not refused"
        );
        let b = link.until(5, "a batch", |_| true).await;
        assert!(!b.reachable, "{b:#?}");
    }
    link.stop().await;
}
