//! Agent pipeline test: the agent runs in-process on a fast scaled clock and
//! ships to an oracle aggregator (a test HTTP server that checks the chain
//! and counts reports). The oracle goes down for a while and comes back:
//! every window must arrive exactly once, in order, signed, with a valid chain.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use shuzhuan_agent::config::AgentConfig;
use shuzhuan_common::report::{follow, ChainHead, SignedReport};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Oracle {
    down: AtomicBool,
    head: Mutex<Option<ChainHead>>,
    stored: Mutex<Vec<SignedReport>>,
    duplicates: Mutex<u64>,
    refused_while_down: Mutex<u64>,
}

#[derive(serde::Deserialize)]
struct Batch {
    reports: Vec<SignedReport>,
}

async fn reports(
    State(o): State<Arc<Oracle>>,
    Json(b): Json<Batch>,
) -> (StatusCode, Json<serde_json::Value>) {
    if o.down.load(Ordering::SeqCst) {
        *o.refused_while_down.lock().unwrap() += 1;
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"error": "down", "code": "unavailable"})),
        );
    }
    let mut head = o.head.lock().unwrap();
    let mut stored = o.stored.lock().unwrap();
    for r in b.reports {
        let (rep, payload) = r.peek().unwrap();
        let hash = shuzhuan_common::report::Hash32::of(&payload);
        if head.is_some_and(|h| rep.seq <= h.seq) {
            *o.duplicates.lock().unwrap() += 1;
            continue;
        }
        match follow(*head, &rep, hash) {
            Ok(h) => {
                *head = Some(h);
                stored.push(r);
            }
            Err(e) => {
                return (
                    StatusCode::CONFLICT,
                    Json(serde_json::json!({"error": e.to_string(), "code": "chain"})),
                )
            }
        }
    }
    (StatusCode::OK, Json(serde_json::json!({"accepted": 1})))
}

fn config(dir: &std::path::Path, agg: &str, sim_epoch: i64, real_epoch: i64) -> AgentConfig {
    let text = format!(
        r#"[agent]
id = "gw-test-1"
enterprise = "91411700MA00000019"
data_dir = "{data}"
window_secs = 900

[clock]
scale = 900.0
sim_epoch_ms = {sim_epoch}
real_epoch_ms = {real_epoch}

[aggregator]
url = "http://{agg}"

[http]
listen = "127.0.0.1:0"

[[devices]]
id = "press-1"
name = "Press 1"
kind = "press"
production = true
"#,
        data = dir.join("data").display(),
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, &text).unwrap();
    AgentConfig::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_then_recovery_delivers_every_window_once_in_order() {
    let oracle = Arc::new(Oracle::default());
    let app = Router::new()
        .route("/api/v1/reports", post(reports))
        .with_state(oracle.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let tmp = tempfile::tempdir().unwrap();
    let now = shuzhuan_agent::clock::wall_ms();
    // Simulated time starts 100 s into a window; 1 wall second = one window.
    let cfg = config(
        tmp.path(),
        &addr.to_string(),
        1_764_547_200_000 + 100_000,
        now,
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(shuzhuan_agent::run::run(cfg, async move {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    oracle.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(4000)).await;
    oracle.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let _ = stop_tx.send(());
    agent.await.unwrap().unwrap();

    let key = shuzhuan_agent::keys::load(&tmp.path().join("data").join("agent.key")).unwrap();
    let vk = key.verifying_key();
    let stored = oracle.stored.lock().unwrap();
    assert!(stored.len() >= 8, "only {} reports arrived", stored.len());
    assert!(
        *oracle.refused_while_down.lock().unwrap() > 0,
        "the outage was not seen"
    );
    let mut prev_end = None;
    for (i, r) in stored.iter().enumerate() {
        let v = r.verify(&vk).unwrap();
        assert_eq!(v.report.seq, i as u64 + 1);
        if let Some(e) = prev_end {
            assert_eq!(v.report.window_start, e, "windows are contiguous");
        }
        prev_end = Some(v.report.window_end);
        assert_eq!(v.report.window_end - v.report.window_start, 900);
        assert_eq!(v.report.window_start % 900, 0);
        assert_eq!(v.report.summaries.len(), 1);
    }
    // The first window began before the agent started; the inventory rides along.
    let first = stored[0].peek().unwrap().0;
    assert!(first.inventory.is_some());
    // Sealed on shutdown: the last report, and everything else, reached the oracle.
    let spool = shuzhuan_agent::spool::Spool::open(shuzhuan_agent::spool::SpoolOptions::new(
        tmp.path().join("data").join("spool"),
        1 << 30,
        shuzhuan_agent::spool::WhenFull::DropOldest,
    ))
    .unwrap();
    let pending = spool.stats().reports;
    assert_eq!(
        spool.head().unwrap().0,
        stored.len() as u64 + pending,
        "every sealed report was shipped or is still spooled"
    );
    assert!(pending <= 1, "{pending} reports left behind after recovery");
}
