//! Tests of the InfluxDB sink: line protocol escaping (examples from the
//! spec and a proptest round trip through a strict parser), the lines built
//! from batches and summaries, the bounded buffer, the writer's retry
//! classes and backoff under paused time, and the HTTP request itself
//! against a recording server.

use super::line::{parse, FieldValue, Point};
use super::*;
use crate::sample::Sample;
use proptest::prelude::*;
use shuzhuan_common::profile::TagRole;
use shuzhuan_common::state::StateSeconds;
use shuzhuan_common::summary::{EnergyDelta, EnergyMethod};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn escaping_follows_the_line_protocol_rules() {
    let p = Point::new("my meas,ure ment", 1_700_000_000_000)
        .tag("z tag", "v=1,2")
        .tag("a", "back\\slash")
        .tag("empty", "")
        .field("f 1", FieldValue::Float(1.5))
        .field("n=", FieldValue::Int(-3))
        .field("b", FieldValue::Bool(true))
        .field("s", FieldValue::Str("say \"hi\" \\ now\nthen".into()))
        .field("nan", FieldValue::Float(f64::NAN));
    assert_eq!(
        p.encode().unwrap(),
        r#"my\ meas\,ure\ ment,a=back\\slash,z\ tag=v\=1\,2 f\ 1=1.5,n\==-3i,b=true,s="say \"hi\" \\ now then" 1700000000000"#
    );
    // No field left: nothing to write.
    assert_eq!(
        Point::new("m", 0)
            .field("x", FieldValue::Float(f64::INFINITY))
            .encode(),
        None
    );
    // Line breaks never split a line.
    let l = Point::new("m\nx", 0)
        .tag("t", "a\r\nb")
        .field("f", FieldValue::Int(1))
        .encode()
        .unwrap();
    assert!(!l.contains(['\n', '\r']), "{l}");
}

fn name() -> impl Strategy<Value = String> {
    // Any text without line breaks, weighted towards the special characters.
    prop::collection::vec(
        prop_oneof![
            3 => prop::char::any().prop_filter("no line break", |c| *c != '\n' && *c != '\r'),
            2 => prop::sample::select(vec![',', '=', ' ', '\\', '"', 'a', 'é', '数']),
        ],
        1..12,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn value() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(FieldValue::Float),
        any::<i64>().prop_map(FieldValue::Int),
        any::<bool>().prop_map(FieldValue::Bool),
        name().prop_map(FieldValue::Str),
        Just(FieldValue::Str(String::new())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn encoding_round_trips_through_a_strict_parser(
        m in name(),
        tags in prop::collection::btree_map(name(), name(), 0..4),
        fields in prop::collection::btree_map(name(), value(), 1..5),
        ts in any::<i64>(),
    ) {
        let mut p = Point::new(m.clone(), ts);
        for (k, v) in &tags {
            p = p.tag(k.clone(), v.clone());
        }
        for (k, v) in &fields {
            p = p.field(k.clone(), v.clone());
        }
        let line = p.encode().expect("fields present");
        prop_assert!(!line.contains('\n'));
        let back = parse(&line).map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
        prop_assert_eq!(back.measurement, m);
        let want_tags: Vec<(String, String)> = tags.into_iter().collect();
        prop_assert_eq!(back.tags, want_tags);
        let want_fields: Vec<(String, FieldValue)> = fields.into_iter().collect();
        prop_assert_eq!(back.fields, want_fields);
        prop_assert_eq!(back.ts, ts);
    }
}

fn section() -> InfluxDbSection {
    let text = "url = \"http://127.0.0.1:1\"\norg = \"o\"\nbucket = \"b\"\n";
    toml::from_str(text).unwrap()
}

fn metrics() -> InfluxMetrics {
    InfluxMetrics::register(&Registry::new()).unwrap()
}

fn sink(max: usize, batch: usize) -> InfluxSink {
    InfluxSink::new(
        &section(),
        "gw 1",
        Arc::new(Shared::new(max, batch, metrics())),
    )
}

fn sample(tag: &str, value: Option<Value>, quality: Quality) -> Sample {
    Sample {
        tag: tag.into(),
        role: TagRole::Custom,
        carrier: None,
        ts_ms: 0,
        value,
        quality,
    }
}

#[test]
fn a_batch_becomes_one_line_with_the_models_state() {
    let s = sink(10, 10);
    let b = SampleBatch {
        device: "cnc-01".into(),
        ts_ms: 1_764_547_200_123,
        reachable: true,
        samples: vec![
            sample("power", Some(Value::Number(12.5)), Quality::Good),
            sample("run", Some(Value::Bool(true)), Quality::Good),
            sample(
                "program",
                Some(Value::Text("Running".into())),
                Quality::Uncertain,
            ),
            sample("parts", None, Quality::Bad("timeout")),
            sample("time", Some(Value::Number(3.0)), Quality::Good),
            sample("reachable", Some(Value::Number(9.0)), Quality::Good),
        ],
    };
    let l = s
        .sample_line(&b, DeviceState::Productive, Some(12.5))
        .unwrap();
    let p = parse(&l).unwrap();
    assert_eq!(p.measurement, "shuzhuan_device");
    assert_eq!(
        p.tags,
        vec![
            ("agent".into(), "gw 1".into()),
            ("device".into(), "cnc-01".into()),
            ("state".into(), "productive".into())
        ]
    );
    assert_eq!(p.ts, 1_764_547_200_123);
    let f: std::collections::BTreeMap<_, _> = p.fields.into_iter().collect();
    assert_eq!(f["reachable"], FieldValue::Bool(true));
    assert_eq!(f["state_code"], FieldValue::Int(0));
    assert_eq!(f["power_kw"], FieldValue::Float(12.5));
    assert_eq!(f["power"], FieldValue::Float(12.5));
    assert_eq!(f["run"], FieldValue::Bool(true));
    assert_eq!(f["program"], FieldValue::Str("Running".into()));
    assert_eq!(f["time_"], FieldValue::Float(3.0));
    assert_eq!(f["bad_tags"], FieldValue::Int(1));
    assert!(!f.contains_key("parts"));
    assert_eq!(f.len(), 8);
}

#[test]
fn a_window_becomes_a_summary_line_and_energy_lines() {
    let s = sink(10, 10);
    let mut ss = StateSeconds::default();
    ss.add(DeviceState::Productive, 600);
    ss.add(DeviceState::Standby, 300);
    let sum = WindowSummary {
        device_id: "press-1".into(),
        state_seconds: ss,
        nc_seconds: 500,
        energy: vec![EnergyDelta {
            meter: "meter-1".into(),
            carrier: "electricity".into(),
            quantity: 4.25,
            unit: "kWh".into(),
            method: EnergyMethod::Counter,
            exported: 0.0,
        }],
        parts: Some(42),
        samples_expected: 900,
        samples_received: 899,
        flags: vec![QualityFlag::CounterRollover],
    };
    let lines = s.window_lines(1_764_547_200_000, 1_764_548_100_000, &[sum]);
    assert_eq!(lines.len(), 2);
    let w = parse(&lines[0]).unwrap();
    assert_eq!(w.measurement, "shuzhuan_window");
    assert_eq!(w.ts, 1_764_547_200_000);
    let f: std::collections::BTreeMap<_, _> = w.fields.into_iter().collect();
    assert_eq!(f["seconds_productive"], FieldValue::Int(600));
    assert_eq!(f["seconds_standby"], FieldValue::Int(300));
    assert_eq!(f["seconds_disconnected"], FieldValue::Int(0));
    assert_eq!(f["window_secs"], FieldValue::Int(900));
    assert_eq!(f["parts"], FieldValue::Int(42));
    assert_eq!(f["electricity_kwh"], FieldValue::Float(4.25));
    assert_eq!(f["samples_received"], FieldValue::Int(899));
    assert_eq!(f["flags"], FieldValue::Str("counter_rollover".into()));
    assert_eq!(f["partial"], FieldValue::Bool(false));
    let e = parse(&lines[1]).unwrap();
    assert_eq!(e.measurement, "shuzhuan_window_energy");
    assert!(e
        .tags
        .contains(&("method".to_owned(), "counter".to_owned())));
    assert_eq!(e.fields, vec![("quantity".into(), FieldValue::Float(4.25))]);
}

#[test]
fn precision_scales_the_timestamp() {
    assert_eq!(Precision::Seconds.from_ms(1_999), 1);
    assert_eq!(Precision::Seconds.from_ms(-1), -1);
    assert_eq!(Precision::Micros.from_ms(2), 2_000);
    assert_eq!(Precision::Nanos.from_ms(2), 2_000_000);
}

#[test]
fn the_buffer_is_bounded_and_counts_what_it_drops() {
    let shared = Shared::new(3, 2, metrics());
    shared.push((0..5).map(|i| format!("l{i}")));
    assert_eq!(shared.len(), 3);
    assert_eq!(
        shared
            .metrics
            .dropped
            .with_label_values(&["buffer_full"])
            .get(),
        2
    );
    // A batch taken, then the front dropped for room while it was in flight:
    // only what is still there is removed.
    let (first, n, body) = shared.peek().unwrap();
    assert_eq!((first, n, body.as_str()), (Token::Memory(2), 2, "l2\nl3\n"));
    shared.push(["l5".to_owned()]);
    assert_eq!(shared.remove(first, n), 1);
    let (_, _, body) = shared.peek().unwrap();
    assert_eq!(body, "l4\nl5\n");
}

type Answer = Result<(u16, String), String>;

/// Scripted answers; records the (paused) time and body of every call.
#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    calls: Arc<Mutex<Vec<(tokio::time::Instant, String)>>>,
}

impl WriteTransport for Script {
    async fn write(&self, body: String) -> Result<(u16, String), String> {
        self.calls
            .lock()
            .unwrap()
            .push((tokio::time::Instant::now(), body));
        self.answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok((204, String::new())))
    }
}

impl Script {
    /// A server that answers `n` writes with a network error, then 204s.
    fn failing(n: usize) -> Script {
        let s = Script::default();
        s.answers
            .lock()
            .unwrap()
            .extend((0..n).map(|_| Err("down".to_owned())));
        s
    }
}

/// Starts the writer on `shared` with `script`'s answers and [`opts`];
/// stop it with the returned coordinator.
fn start_writer(shared: &Arc<Shared>, script: &Script) -> crate::shutdown::Coordinator {
    let coord = crate::shutdown::Coordinator::new();
    tokio::spawn(run_writer(
        shared.clone(),
        script.clone(),
        opts(),
        coord.handle(),
    ));
    coord
}

fn opts() -> WriterOptions {
    WriterOptions {
        flush_interval: Duration::from_millis(1000),
        backoff_initial: Duration::from_millis(500),
        backoff_max: Duration::from_millis(4000),
        final_flush: Duration::from_secs(5),
        bucket: "plant".into(),
    }
}

#[test]
fn backoff_doubles_with_jitter_up_to_the_cap() {
    let o = opts();
    for attempt in 0..10 {
        let full = (500u64 << attempt.min(20)).min(4000);
        let d = backoff(&o, attempt).as_millis() as u64;
        assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d} ms");
    }
}

#[tokio::test(start_paused = true)]
async fn retryable_answers_keep_the_lines_and_back_off() {
    let script = Script::default();
    script.answers.lock().unwrap().extend([
        Err("connect: refused".to_owned()),
        Ok((503, "busy".to_owned())),
        Ok((429, "slow down".to_owned())),
        Ok((500, "oops".to_owned())),
    ]);
    let shared = Arc::new(Shared::new(100, 10, metrics()));
    shared.push(["a 1".to_owned(), "b 2".to_owned()]);
    let t0 = tokio::time::Instant::now();
    let coord = start_writer(&shared, &script);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let calls = script.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 5, "four failures then success");
    assert!(calls.iter().all(|(_, b)| b == "a 1\nb 2\n"));
    // Gaps: 500·2^k ms, jittered into its upper half.
    for (k, w) in calls.windows(2).enumerate() {
        let gap = (w[1].0 - w[0].0).as_millis() as u64;
        let full = 500u64 << k;
        assert!(gap >= full / 2 && gap <= full, "gap {k}: {gap} ms");
    }
    assert_eq!(calls[0].0, t0);
    assert!(shared.is_empty());
    let m = &shared.metrics;
    assert_eq!(m.written.get(), 2);
    assert_eq!(m.errors.with_label_values(&["network"]).get(), 1);
    assert_eq!(m.errors.with_label_values(&["server_error"]).get(), 2);
    assert_eq!(m.errors.with_label_values(&["throttled"]).get(), 1);
    coord.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_4xx_drops_the_batch_once_and_counts_it() {
    let script = Script::default();
    script.answers.lock().unwrap().push_back(Ok((
        400,
        r#"{"code":"invalid","message":"unable to parse"}"#.to_owned(),
    )));
    let shared = Arc::new(Shared::new(100, 2, metrics()));
    shared.push(["a 1".to_owned(), "b 2".to_owned(), "c 3".to_owned()]);
    let coord = start_writer(&shared, &script);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let calls = script.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "the refused batch is not retried");
    assert_eq!(calls[1].1, "c 3\n");
    let m = &shared.metrics;
    assert_eq!(m.dropped.with_label_values(&["rejected"]).get(), 2);
    assert_eq!(m.errors.with_label_values(&["rejected"]).get(), 1);
    assert_eq!(m.written.get(), 1);
    coord.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn lines_wait_for_the_flush_interval_and_shutdown_flushes_the_rest() {
    let script = Script::default();
    let shared = Arc::new(Shared::new(100, 50, metrics()));
    let coord = start_writer(&shared, &script);
    tokio::time::sleep(Duration::from_millis(10)).await;
    shared.push(["a 1".to_owned()]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        script.calls.lock().unwrap().is_empty(),
        "not before the interval"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(script.calls.lock().unwrap().len(), 1);
    // Pushed just before shutdown: written by the final flush.
    shared.push(["b 2".to_owned()]);
    coord.shutdown().await;
    let calls = script.calls.lock().unwrap().clone();
    assert_eq!(calls.last().unwrap().1, "b 2\n");
    assert_eq!(shared.metrics.written.get(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_is_sent_without_waiting_for_the_interval() {
    let script = Script::default();
    let shared = Arc::new(Shared::new(100, 2, metrics()));
    let coord = start_writer(&shared, &script);
    tokio::time::sleep(Duration::from_millis(10)).await;
    shared.push(["a 1".to_owned(), "b 2".to_owned()]);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(script.calls.lock().unwrap().len(), 1);
    coord.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn unsent_lines_at_shutdown_are_counted() {
    let script = Script::failing(10);
    let shared = Arc::new(Shared::new(100, 10, metrics()));
    shared.push(["a 1".to_owned(), "b 2".to_owned()]);
    let coord = start_writer(&shared, &script);
    tokio::time::sleep(Duration::from_secs(2)).await;
    coord.shutdown().await;
    assert_eq!(
        shared
            .metrics
            .dropped
            .with_label_values(&["shutdown"])
            .get(),
        2
    );
    assert_eq!(shared.metrics.buffered.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn with_the_disk_buffer_unsent_lines_stay_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let script = Script::failing(10);
    let q = disk::DiskQueue::open(dir.path(), 1 << 20).unwrap();
    let shared = Arc::new(Shared::with_disk(q, 10, metrics()));
    shared.push(["a 1".to_owned(), "b 2".to_owned()]);
    assert_eq!(shared.metrics.buffered.get(), 2);
    assert_eq!(shared.metrics.buffered_bytes.get(), 8);
    let coord = start_writer(&shared, &script);
    tokio::time::sleep(Duration::from_secs(2)).await;
    coord.shutdown().await;
    assert_eq!(
        shared
            .metrics
            .dropped
            .with_label_values(&["shutdown"])
            .get(),
        0
    );
    drop(shared);
    // The next start sends them, oldest first, and the buffer empties.
    let q = disk::DiskQueue::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(q.lines(), 2);
    let shared = Arc::new(Shared::with_disk(q, 10, metrics()));
    let ok = Script::default();
    let coord = start_writer(&shared, &ok);
    tokio::time::sleep(Duration::from_secs(2)).await;
    coord.shutdown().await;
    assert_eq!(ok.calls.lock().unwrap()[0].1, "a 1\nb 2\n");
    assert_eq!(shared.metrics.written.get(), 2);
    assert_eq!(
        disk::DiskQueue::open(dir.path(), 1 << 20).unwrap().lines(),
        0
    );
}

#[test]
fn https_needs_a_ca_file_and_names_a_bad_one() {
    use crate::ship::tls::TlsFiles;
    let t = Duration::from_secs(1);
    let e = client::HttpWrite::with_tls(
        "https://influx:8086",
        "o",
        "b",
        "ms",
        None,
        t,
        &TlsFiles::default(),
    )
    .unwrap_err();
    assert!(e.contains("[influxdb] ca_file"), "{e}");
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("bad.pem");
    std::fs::write(&bad, "no certificate here\n").unwrap();
    let files = TlsFiles {
        ca_file: Some(bad),
        ..TlsFiles::default()
    };
    let e =
        client::HttpWrite::with_tls("https://influx", "o", "b", "ms", None, t, &files).unwrap_err();
    assert!(
        e.contains("[influxdb] ca_file") && e.contains("bad.pem"),
        "{e}"
    );
    let w = client::HttpWrite::new("http://influx", "o", "b", "ms", None, t).unwrap();
    assert_eq!(w.authority, "influx:80");
    assert!(w.tls.is_none());
    // Through the config loader: the position of the key and the file.
    let text = "[agent]\nid = \"gw\"\nenterprise = \"91411700MA00000019\"\ndata_dir = \"data\"\n\n[influxdb]\nurl = \"https://influx\"\norg = \"o\"\nbucket = \"b\"\nca_file = \"bad.pem\"\n";
    let e = crate::config::AgentConfig::from_text(d.path().join("agent.toml"), text).unwrap_err();
    let all = e.to_string();
    assert!(
        all.contains("agent.toml:10") && all.contains("bad.pem"),
        "{all}"
    );
}

/// A one-shot recording HTTP server: answers `status` with `body` and hands
/// back the request head and body it received.
async fn recorder(
    status: &'static str,
    body: &'static str,
) -> (String, tokio::task::JoinHandle<(String, Vec<u8>)>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let h = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..i]).to_string();
                let len: usize = head
                    .to_ascii_lowercase()
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap();
                while buf.len() < i + 4 + len {
                    let n = s.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let req_body = buf[i + 4..i + 4 + len].to_vec();
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(resp.as_bytes()).await.unwrap();
                let _ = s.shutdown().await;
                return (head, req_body);
            }
        }
    });
    (addr, h)
}

#[tokio::test]
async fn the_write_request_carries_org_bucket_precision_and_token() {
    let (addr, h) = recorder(
        "401 Unauthorized",
        r#"{"code":"unauthorized","message":"unauthorized access"}"#,
    )
    .await;
    let t = client::HttpWrite::new(
        &format!("http://{addr}/influx/"),
        "my org",
        "plant&1",
        "ms",
        Some("s3cret"),
        Duration::from_secs(5),
    )
    .unwrap();
    let res = t.write("m f=1 1\n".to_owned()).await;
    let (head, body) = h.await.unwrap();
    assert!(
        head.starts_with(
            "POST /influx/api/v2/write?org=my%20org&bucket=plant%261&precision=ms HTTP/1.1"
        ),
        "{head}"
    );
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("authorization: token s3cret"), "{head}");
    assert!(
        lower.contains("content-type: text/plain; charset=utf-8"),
        "{head}"
    );
    assert!(lower.contains("content-encoding: gzip"), "{head}");
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain)
        .unwrap();
    assert_eq!(plain, "m f=1 1\n");
    match classify(&res) {
        Outcome::Rejected(401, msg) => assert!(msg.contains("unauthorized access"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_5xx_from_a_real_socket_is_retryable_and_a_dead_port_is_a_network_error() {
    let (addr, h) = recorder("503 Service Unavailable", "{}").await;
    let mut t = client::HttpWrite::new(
        &format!("http://{addr}"),
        "o",
        "b",
        "ms",
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    t.gzip = false;
    let res = t.write("m f=1 1\n".to_owned()).await;
    let (head, body) = h.await.unwrap();
    assert!(!head.to_ascii_lowercase().contains("authorization"));
    assert!(!head.to_ascii_lowercase().contains("content-encoding"));
    assert_eq!(body, b"m f=1 1\n");
    assert_eq!(classify(&res), Outcome::Retry("server_error"));
    // The recorder is gone: nothing listens there any more.
    let res = t.write("m f=1 1\n".to_owned()).await;
    assert_eq!(classify(&res), Outcome::Retry("network"));
}

#[tokio::test]
async fn the_writer_over_http_drops_a_400_batch_once_and_counts_it() {
    let (addr, h) = recorder(
        "400 Bad Request",
        r#"{"code":"invalid","message":"unable to parse 'x': missing fields"}"#,
    )
    .await;
    let t = client::HttpWrite::new(
        &format!("http://{addr}"),
        "o",
        "plant",
        "ms",
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    let shared = Arc::new(Shared::new(100, 10, metrics()));
    shared.push(["x".to_owned()]);
    let coord = crate::shutdown::Coordinator::new();
    let mut o = opts();
    o.flush_interval = Duration::from_millis(20);
    tokio::spawn(run_writer(shared.clone(), t, o, coord.handle()));
    let (head, _) = h.await.unwrap();
    assert!(head.contains("bucket=plant"), "{head}");
    for _ in 0..100 {
        if shared.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Nothing listens any more: a retry would be a network error.
    tokio::time::sleep(Duration::from_millis(100)).await;
    coord.shutdown().await;
    let m = &shared.metrics;
    assert_eq!(m.dropped.with_label_values(&["rejected"]).get(), 1);
    assert_eq!(m.errors.with_label_values(&["rejected"]).get(), 1);
    assert_eq!(m.errors.with_label_values(&["network"]).get(), 0);
    assert_eq!(m.written.get(), 0);
}
