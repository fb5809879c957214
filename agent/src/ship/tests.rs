//! Shipper tests with a scripted transport and paused tokio time.

use super::*;
use crate::shutdown::Coordinator;
use crate::spool::{SpoolOptions, WhenFull};
use std::collections::VecDeque;

type Seen = Arc<Mutex<Vec<(tokio::time::Instant, Vec<u8>)>>>;

struct Scripted {
    answers: Mutex<VecDeque<Result<(u16, String), String>>>,
    bodies: Seen,
}

impl Transport for Scripted {
    async fn post(&self, body: Vec<u8>) -> Result<(u16, String), String> {
        self.bodies
            .lock()
            .unwrap()
            .push((tokio::time::Instant::now(), body));
        self.answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok((200, "{}".into())))
    }
}

fn metrics() -> ShipMetrics {
    ShipMetrics {
        shipped: IntCounter::new("s", "s").unwrap(),
        rejected: IntCounter::new("r", "r").unwrap(),
    }
}

fn spool_with(n: u64, dir: &std::path::Path) -> Arc<Mutex<Spool>> {
    let mut o = SpoolOptions::new(dir, 1 << 20, WhenFull::DropOldest);
    o.fsync = false;
    let mut s = Spool::open(o).unwrap();
    for seq in 1..=n {
        s.append(
            seq,
            seq as i64,
            &[seq as u8; 32],
            format!("{{\"n\":{seq}}}").as_bytes(),
        )
        .unwrap();
    }
    Arc::new(Mutex::new(s))
}

#[test]
fn answers_are_classified() {
    assert_eq!(classify(Ok((200, String::new()))), Answer::Acked);
    assert!(matches!(
        classify(Ok((429, String::new()))),
        Answer::Retry(_)
    ));
    assert!(matches!(
        classify(Ok((503, String::new()))),
        Answer::Retry(_)
    ));
    assert!(matches!(classify(Err("refused".into())), Answer::Retry(_)));
    assert!(matches!(
        classify(Ok((409, String::new()))),
        Answer::Rejected(_)
    ));
    assert!(matches!(
        classify(Ok((400, String::new()))),
        Answer::Rejected(_)
    ));
}

#[test]
fn backoff_is_capped_with_jitter() {
    let o = ShipOptions {
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(10),
        ..ShipOptions::default()
    };
    for a in 0..30 {
        let d = backoff(&o, a);
        let base = Duration::from_secs(1 << a.min(4)).min(Duration::from_secs(10));
        assert!(d <= base && d >= base / 2, "{a}: {d:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn retries_then_ships_in_order_and_rejects_4xx() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = spool_with(5, tmp.path());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let transport = Scripted {
        answers: Mutex::new(
            vec![
                Err("connection refused".into()),
                Ok((503, "busy".into())),
                Ok((429, "slow down".into())),
                Ok((200, "{}".into())),
                Ok((400, "{\"code\":\"bad_schema\"}".into())),
            ]
            .into(),
        ),
        bodies: bodies.clone(),
    };
    let opts = ShipOptions {
        max_batch: 3,
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(3),
        timeout: Duration::from_secs(1),
    };
    let m = metrics();
    let c = Coordinator::new();
    let wake = Arc::new(Notify::new());
    let start = tokio::time::Instant::now();
    let task = tokio::spawn(run_shipper(
        spool.clone(),
        transport,
        opts,
        m.clone(),
        wake,
        c.handle(),
    ));
    // Enough simulated time for three backoffs (≤ 1 + 2 + 3 s).
    tokio::time::sleep(Duration::from_secs(30)).await;
    c.shutdown().await;
    task.await.unwrap();
    let b = bodies.lock().unwrap();
    assert_eq!(b.len(), 5);
    // Three failures of the same first batch, then it is acknowledged.
    for (_, body) in b.iter().take(4) {
        assert_eq!(body, b"{\"reports\":[{\"n\":1},{\"n\":2},{\"n\":3}]}");
    }
    assert_eq!(b[4].1, b"{\"reports\":[{\"n\":4},{\"n\":5}]}");
    // Backoffs grew: gaps of 0.5-1 s, 1-2 s, 1.5-3 s.
    let gaps: Vec<f64> = b
        .windows(2)
        .take(3)
        .map(|w| (w[1].0 - w[0].0).as_secs_f64())
        .collect();
    assert!((0.5..=1.0).contains(&gaps[0]), "{gaps:?}");
    assert!((1.0..=2.0).contains(&gaps[1]), "{gaps:?}");
    assert!((1.5..=3.0).contains(&gaps[2]), "{gaps:?}");
    assert!(b[0].0 >= start);
    assert_eq!(m.shipped.get(), 3);
    assert_eq!(m.rejected.get(), 2);
    let s = spool.lock().unwrap();
    assert_eq!(s.stats().reports, 0);
    assert!(tmp.path().join("rejected").read_dir().unwrap().count() == 1);
}
