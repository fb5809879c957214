//! End-to-end tests: TLS between agent and aggregator with a private CA.
//! Certificates are made in the test with the `openssl` CLI (a city CA, a
//! second unrelated CA, server certificates: good, wrong name, expired; an
//! agent client certificate). The real aggregator binary serves HTTPS; the
//! real agent (library, in-process) enrols and ships to it. An agent that
//! trusts the wrong CA keeps its reports in the spool and ships them all
//! after a restart with the right `ca_file`. `curl --cacert` must agree.

use shuzhuan_agent::ship::http::{post_json, Endpoint};
use shuzhuan_agent::ship::tls::TlsFiles;
use shuzhuan_aggregator::config::ServerTls;
use shuzhuan_aggregator::store::{SqliteStore, Store};
use shuzhuan_common::inventory::IndustryType;
use shuzhuan_common::registry::{DeclaredRates, Enterprise};
use shuzhuan_tests::{free_port, repo_root, wait_for_port, Proc};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A valid unified social credit code (the agent config example's).
const ENTERPRISE: &str = "91411700MA00000019";

fn aggregator_binary() -> PathBuf {
    let p = repo_root().join("target/debug/shuzhuan-aggregator");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p shuzhuan-aggregator`",
        p.display()
    );
    p
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI (tests/peers/install.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

/// A self-signed CA: `<name>.pem`, `<name>.key`.
fn make_ca(dir: &Path, name: &str) {
    let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
    let subj = format!("/CN={name} test CA");
    let mut a = vec!["req", "-x509"];
    a.extend(EC);
    a.extend(["-nodes", "-days", "30", "-subj", &subj, "-keyout", &key]);
    a.extend(["-out", &pem, "-addext", "basicConstraints=critical,CA:TRUE"]);
    a.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(dir, &a);
}

/// A leaf `<name>.pem`/`<name>.key` signed by CA `ca`, valid for `days`
/// (negative: expired), with `san` (e.g. `IP:127.0.0.1`) and `usage`
/// (`serverAuth` or `clientAuth`).
fn make_leaf(dir: &Path, name: &str, ca: &str, san: &str, days: i32, usage: &str) {
    let ext = format!("{name}.ext");
    let mut text = format!(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\n"
    );
    if !san.is_empty() {
        text.push_str(&format!("subjectAltName={san}\n"));
    }
    std::fs::write(dir.join(&ext), text).unwrap();
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    let subj = format!("/CN={name}");
    let mut a = vec!["req", "-new"];
    a.extend(EC);
    a.extend(["-nodes", "-subj", &subj, "-keyout", &key, "-out", &csr]);
    openssl(dir, &a);
    let (ca_pem, ca_key, days) = (format!("{ca}.pem"), format!("{ca}.key"), days.to_string());
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            &days,
            "-extfile",
            &ext,
            "-out",
            &pem,
        ],
    );
}

/// Every certificate the tests use, in `dir`.
fn make_pki(dir: &Path) {
    make_ca(dir, "city-ca");
    make_ca(dir, "other-ca");
    let both = "IP:127.0.0.1,DNS:localhost";
    make_leaf(dir, "server", "city-ca", both, 30, "serverAuth");
    make_leaf(
        dir,
        "wrong-name",
        "city-ca",
        "DNS:elsewhere.example",
        30,
        "serverAuth",
    );
    make_leaf(dir, "expired", "city-ca", both, -1, "serverAuth");
    make_leaf(dir, "gateway", "city-ca", "", 30, "clientAuth");
}

/// A tiny in-process HTTPS peer with the aggregator's own TLS acceptor: it
/// answers every request `200 {}`. Returns its port.
async fn tls_peer(tls: ServerTls) -> u16 {
    let acceptor = shuzhuan_aggregator::server::tls_acceptor(&tls).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(sock).await else {
                    return;
                };
                let mut buf = vec![0u8; 65536];
                if s.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                    )
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

fn files(dir: &Path, ca: &str) -> TlsFiles {
    TlsFiles {
        ca_file: Some(dir.join(format!("{ca}.pem"))),
        ..TlsFiles::default()
    }
}

async fn post(url: &str, files: &TlsFiles) -> Result<(u16, String), String> {
    let ep = Endpoint::with_tls(url, files)?;
    post_json(
        &ep,
        "/api/v1/reports",
        b"{}".to_vec(),
        Duration::from_secs(10),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_problems_are_named_and_mutual_tls_works() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_pki(d);
    let leaf = |name: &str| ServerTls {
        cert_file: d.join(format!("{name}.pem")),
        key_file: d.join(format!("{name}.key")),
        client_ca_file: None,
    };

    let good = format!("https://127.0.0.1:{}", tls_peer(leaf("server")).await);
    assert_eq!(post(&good, &files(d, "city-ca")).await.unwrap().0, 200);
    let e = post(&good, &files(d, "other-ca")).await.unwrap_err();
    eprintln!("wrong CA: {e}");
    assert!(
        e.contains(&good) && e.contains("not signed by a CA") && e.contains("other-ca.pem"),
        "{e}"
    );

    let wrong = format!("https://127.0.0.1:{}", tls_peer(leaf("wrong-name")).await);
    let e = post(&wrong, &files(d, "city-ca")).await.unwrap_err();
    eprintln!("wrong name: {e}");
    assert!(
        e.contains(&wrong)
            && e.contains("does not name \"127.0.0.1\"")
            && e.contains("elsewhere.example"),
        "{e}"
    );

    let expired = format!("https://127.0.0.1:{}", tls_peer(leaf("expired")).await);
    let e = post(&expired, &files(d, "city-ca")).await.unwrap_err();
    eprintln!("expired: {e}");
    assert!(e.contains(&expired) && e.contains("expired"), "{e}");

    // Plain http to a TLS port gets an error, not a hang.
    let port = good.rsplit(':').next().unwrap();
    let plain = Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    assert!(post_json(&plain, "/x", Vec::new(), Duration::from_secs(10))
        .await
        .is_err());

    // Mutual TLS: the server asks for a certificate signed by the city CA.
    let mtls = format!(
        "https://127.0.0.1:{}",
        tls_peer(ServerTls {
            client_ca_file: Some(d.join("city-ca.pem")),
            ..leaf("server")
        })
        .await
    );
    assert!(post(&mtls, &files(d, "city-ca")).await.is_err());
    let with_cert = TlsFiles {
        client_cert_file: Some(d.join("gateway.pem")),
        client_key_file: Some(d.join("gateway.key")),
        ..files(d, "city-ca")
    };
    assert_eq!(post(&mtls, &with_cert).await.unwrap(), (200, "{}".into()));
}

/// The agent's config: one device without a link (reports of a
/// disconnected device), a scaled clock a day behind real time so windows
/// close every 1.5 s without running into the future.
fn agent_toml(d: &Path, url: &str, ca: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    format!(
        r#"[agent]
id = "gw-tls"
enterprise = "{ENTERPRISE}"
data_dir = "agent-data"
window_secs = 900

[clock]
scale = 600.0
sim_epoch_ms = {sim}
real_epoch_ms = {now}

[aggregator]
url = "{url}"
ca_file = "{ca}.pem"

[http]
listen = "127.0.0.1:0"

[[devices]]
id = "press-1"
name = "Press 1"
kind = "press"
production = true
"#,
        sim = now - 2 * 86_400_000,
    )
    .replace("agent-data", &d.join("agent-data").display().to_string())
}

fn load_agent(d: &Path, url: &str, ca: &str) -> shuzhuan_agent::config::AgentConfig {
    let path = d.join(format!("agent-{ca}.toml"));
    let text = agent_toml(d, url, ca);
    std::fs::write(&path, &text).unwrap();
    shuzhuan_agent::config::AgentConfig::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the agent for `wall`, then stops it (it seals the open window and
/// makes a last shipping attempt).
async fn run_agent(cfg: shuzhuan_agent::config::AgentConfig, wall: Duration) {
    tokio::time::timeout(
        Duration::from_secs(60),
        shuzhuan_agent::run::run(cfg, tokio::time::sleep(wall)),
    )
    .await
    .expect("the agent stops")
    .expect("the agent runs");
}

/// Spooled reports not yet acknowledged, and the spool's last seq.
fn spool_state(d: &Path) -> (usize, u64) {
    use shuzhuan_agent::spool::{Spool, SpoolOptions, WhenFull};
    let s = Spool::open(SpoolOptions::new(
        d.join("agent-data/spool"),
        256 << 20,
        WhenFull::DropOldest,
    ))
    .unwrap();
    (
        s.pending(100_000).unwrap().len(),
        s.head().map_or(0, |(seq, _)| seq),
    )
}

/// The enterprise of the agent in the aggregator's registry (enrolment needs it).
fn register_enterprise(db: &Path) {
    let s = SqliteStore::open(db).unwrap();
    crate::fixtures::seed_county_and_chain(&s);
    s.import_registry(
        &[Enterprise {
            credit_code: ENTERPRISE.parse().unwrap(),
            name: "企业1".into(),
            county: "xiping".into(),
            chain: "equipment".into(),
            above_scale: true,
            industry_type: IndustryType::Discrete,
            rd_design_tools: None,
            declared: DeclaredRates::default(),
        }],
        &[],
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_ships_to_a_tls_aggregator_and_keeps_reports_while_the_ca_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_pki(d);
    let port = free_port();
    let cfg = d.join("agg.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ntls_cert_file = \"server.pem\"\ntls_key_file = \"server.key\"\n[store]\npath = \"agg.sqlite\"\n[city]\nreference_dir = {:?}\n",
            repo_root().join("config").display().to_string()
        ),
    )
    .unwrap();
    register_enterprise(&d.join("agg.sqlite"));
    let out = Command::new(aggregator_binary())
        .args(["token", "create", "--enterprise", ENTERPRISE, "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let _server = Proc::spawn(
        Command::new(aggregator_binary())
            .args(["serve", "--config"])
            .arg(&cfg)
            .stderr(Stdio::null()),
    );
    assert!(wait_for_port(port, 30), "the aggregator listens");
    let url = format!("https://127.0.0.1:{port}");

    // curl agrees: the city CA is accepted, another CA refused.
    if Command::new("curl").arg("--version").output().is_ok() {
        let curl = |ca: &str| {
            Command::new("curl")
                .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
                .arg(d.join(format!("{ca}.pem")))
                .arg(format!("{url}/api/v1/openapi.json"))
                .output()
                .unwrap()
        };
        let ok = curl("city-ca");
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&ok.stdout), "200");
        assert!(!curl("other-ca").status.success());
    }

    // Enrolment over TLS: refused with the wrong CA (and the reason), done with the right one.
    let wrong = load_agent(d, &url, "other-ca");
    let right = load_agent(d, &url, "city-ca");
    let key = shuzhuan_agent::keys::load_or_create(&right.agent.data_dir).unwrap();
    let ep = |c: &shuzhuan_agent::config::AgentConfig| {
        Endpoint::from_config(c.aggregator.as_ref().unwrap()).unwrap()
    };
    let e = shuzhuan_agent::ship::enroll(&ep(&wrong), &token, "gw-tls", ENTERPRISE, &key)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&url) && e.contains("not signed by a CA"), "{e}");
    shuzhuan_agent::ship::enroll(&ep(&right), &token, "gw-tls", ENTERPRISE, &key)
        .await
        .unwrap();

    // Wrong CA: reports are sealed and stay in the spool.
    run_agent(wrong, Duration::from_secs(6)).await;
    let (pending, head) = spool_state(d);
    assert!(head >= 3, "windows were sealed (head seq {head})");
    assert_eq!(pending as u64, head, "nothing was acknowledged");
    let store = SqliteStore::open(&d.join("agg.sqlite")).unwrap();
    assert!(store.raw_report("gw-tls", 1).unwrap().is_none());

    // The CA fixed, the agent restarted: the backlog and new windows arrive.
    run_agent(right, Duration::from_secs(4)).await;
    let (pending, head2) = spool_state(d);
    assert_eq!(pending, 0, "the spool drained");
    assert!(head2 > head, "new windows were sealed too");
    for seq in 1..=head2 {
        assert!(
            store.raw_report("gw-tls", seq).unwrap().is_some(),
            "report {seq} of {head2} reached the aggregator"
        );
    }
}
