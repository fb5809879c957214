//! Aggregator integration tests: crash safety. A real `serve` process is
//! killed (SIGKILL) while an agent streams batches at it; after the kill no
//! acknowledged report is missing, nothing is stored twice, and a restarted
//! server accepts the agent's resend as duplicates plus the rest.

use crate::harness::*;
use shuzhuan_aggregator::enroll::secret_hash;
use shuzhuan_aggregator::store::{SqliteStore, Store};
use shuzhuan_common::report::{verifying_key_to_b64, Hash32, Report, SignedReport, SCHEMA_VERSION};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEVICES: usize = 60;
const REPORTS: u64 = 240;
const PER_BATCH: usize = 4;

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(cfg: &std::path::Path, addr: SocketAddr) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_shuzhuan-aggregator"))
        .args(["serve", "--config"])
        .arg(cfg)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "aggregator did not start listening on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Server(child)
}

/// A minimal HTTP/1.1 POST; `None` when the connection failed.
fn post(addr: SocketAddr, body: &[u8]) -> Option<(u16, serde_json::Value)> {
    let mut s = TcpStream::connect(addr).ok()?;
    let head = format!(
        "POST /api/v1/reports HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let text = String::from_utf8_lossy(&resp);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let json = text.split_once("\r\n\r\n")?.1;
    Some((status, serde_json::from_str(json).ok()?))
}

fn reports(now: i64) -> Vec<SignedReport> {
    let k = key(1);
    let mut prev = Hash32::GENESIS;
    (1..=REPORTS)
        .map(|seq| {
            let start = now - 86_400 + seq as i64 * 60;
            let r = Report {
                schema: SCHEMA_VERSION,
                agent_id: "gw-1".into(),
                enterprise: code(1),
                seq,
                prev_hash: prev,
                window_start: start,
                window_end: start + 60,
                created_at: start + 60,
                inventory: None,
                summaries: (0..DEVICES)
                    .map(|d| summary(&format!("d{d}"), 60, 30, 60, 0.1))
                    .collect(),
            };
            let (sr, h) = r.sign(&k);
            prev = h;
            sr
        })
        .collect()
}

fn check_store(db: &std::path::Path, acked: u64) -> u64 {
    let store = SqliteStore::open(db).unwrap();
    let head = store.agent("gw-1").unwrap().unwrap().head_seq.unwrap_or(0);
    assert!(head >= acked, "acknowledged {acked} but only {head} stored");
    let (reports, windows, days): (i64, i64, i64) = store
        .with_read(|c| {
            Ok(c.query_row(
                "SELECT (SELECT COUNT(*) FROM reports), (SELECT COUNT(*) FROM window_summaries),
                 (SELECT COALESCE(SUM(windows), 0) FROM device_days)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?)
        })
        .unwrap();
    assert_eq!(reports as u64, head, "reports stored = chain head");
    assert_eq!(
        windows as u64,
        head * DEVICES as u64,
        "every report's summaries, once"
    );
    assert_eq!(days, windows, "daily rows hold each window exactly once");
    head
}

#[test]
fn killed_mid_batch_loses_nothing_acknowledged_and_stores_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("agg.sqlite");
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = dir.path().join("aggregator.toml");
    std::fs::write(
        &cfg,
        format!("[server]\nlisten = \"{addr}\"\n[store]\npath = \"agg.sqlite\"\n"),
    )
    .unwrap();
    {
        let store = SqliteStore::open(&db).unwrap();
        store.upsert_counties(&counties()).unwrap();
        store.upsert_chains(&chains()).unwrap();
        store
            .import_registry(&[enterprise(1, "xiping")], &[])
            .unwrap();
        store
            .create_enrol_token(&secret_hash("t"), &code(1), 0, i64::MAX)
            .unwrap();
        store
            .enroll(
                &secret_hash("t"),
                "gw-1",
                &code(1),
                &verifying_key_to_b64(&key(1).verifying_key()),
                0,
            )
            .unwrap();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let bodies: Vec<Vec<u8>> = reports(now)
        .chunks(PER_BATCH)
        .map(|c| batch(c).into_bytes())
        .collect();

    // Stream batches; the main thread kills the server after a few acknowledgements.
    let mut server = start(&cfg, addr);
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    let sender_bodies = bodies.clone();
    let sender = std::thread::spawn(move || {
        let mut acked = 0;
        for b in &sender_bodies {
            match post(addr, b) {
                Some((200, v)) => {
                    acked = v["head_seq"].as_u64().unwrap();
                    let _ = tx.send(acked);
                }
                Some((status, v)) => panic!("unexpected {status}: {v}"),
                None => break,
            }
        }
        acked
    });
    let mut seen = 0;
    while seen < 8 * PER_BATCH as u64 {
        seen = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server acknowledges batches");
    }
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let acked = sender.join().unwrap();
    assert!(acked < REPORTS, "the kill should interrupt the stream");
    let head = check_store(&db, acked);

    // Restart; the agent resends everything from its last acknowledgement's
    // batch on (here: from the start, the harshest case).
    let restarted = start(&cfg, addr);
    let (mut accepted, mut duplicates) = (0, 0);
    for b in &bodies {
        let (status, v) = post(addr, b).expect("restarted server answers");
        assert_eq!(status, 200, "{v}");
        accepted += v["accepted"].as_u64().unwrap();
        duplicates += v["duplicates"].as_u64().unwrap();
    }
    assert_eq!((accepted + duplicates, duplicates), (REPORTS, head));
    drop(restarted);
    assert_eq!(check_store(&db, REPORTS), REPORTS);
}
