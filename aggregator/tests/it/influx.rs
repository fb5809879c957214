//! The InfluxDB v2 roll-up sink (`[influxdb]`, aggregator/src/influx.rs):
//! its points equal the indicator API's figures at every level and period,
//! and after a roll-up tick they land in a real VictoriaMetrics
//! (`/api/v2/write`, installed by tests/peers/install.sh; started on a free
//! loopback port and killed by PID): the city's measured digitization mean
//! read back equals the API's. A write while the server is down is counted
//! and the next tick writes the current values. The `serve` binary with a
//! one-second `[rollup]` writes the points after every tick.

use crate::harness::*;
use axum::body::Body;
use axum::http::StatusCode;
use serde_json::Value;
use shuzhuan_agent::outputs::influx::line::{FieldValue, Point};
use shuzhuan_aggregator::config::Config;
use shuzhuan_aggregator::influx::{points, InfluxSink};
use shuzhuan_common::report::Hash32;
use shuzhuan_tests::free_port;
use shuzhuan_tests::victoria::{self, Series};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// A harness whose enterprise 1 reported two days of windows (enterprise 2
/// only declares).
async fn city() -> Harness {
    let h = Harness::new();
    let k = key(1);
    h.enrol("gw-1", 1, &k).await;
    let (reports, _) = chain(&k, "gw-1", 1, 1, Hash32::GENESIS, 8);
    let (s, v) = h
        .call("POST", "/api/v1/reports", None, batch(&reports))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    shuzhuan_aggregator::server::rollup_tick(&h.state, 400).unwrap();
    h
}

fn tag<'a>(p: &'a Point, k: &str) -> &'a str {
    p.tags
        .iter()
        .find(|t| t.0 == k)
        .map_or("", |t| t.1.as_str())
}

fn float(p: &Point, k: &str) -> Option<f64> {
    p.fields.iter().find(|f| f.0 == k).and_then(|f| match f.1 {
        FieldValue::Float(v) => Some(v),
        _ => None,
    })
}

#[tokio::test]
async fn points_equal_the_indicator_api() {
    let h = city().await;
    let pts = points(&*h.state.store, &h.state.reference, NOW, "shuzhuan_", true).unwrap();
    let mut checked = 0;
    for p in pts
        .iter()
        .filter(|p| p.measurement == "shuzhuan_rollup_rate")
    {
        let (level, id, period) = (tag(p, "level"), tag(p, "id"), tag(p, "period"));
        let (ind, basis) = (tag(p, "indicator"), tag(p, "basis"));
        if !["digitization", "networking", "key_process_nc"].contains(&ind) {
            continue;
        }
        let q = match level {
            "city" => format!("period={period}"),
            _ => format!("period={period}&level={level}&id={id}"),
        };
        let (s, v) = h
            .call(
                "GET",
                &format!("/api/v1/indicators?{q}"),
                Some(&h.admin),
                Body::empty(),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{q}: {v}");
        if level == "enterprise" {
            let e = &v["enterprise"];
            let want = match basis {
                "measured" => e[format!("measured_{ind}")]["value"].as_f64(),
                "declared" => e[format!("declared_{ind}")].as_f64(),
                _ => e[format!("inventory_{ind}")]["value"].as_f64(),
            };
            assert_eq!(float(p, "value"), want, "{q} {ind} {basis}");
        } else {
            let key = match basis {
                "declared" => "declared_questionnaire",
                b => b,
            };
            let g = &v["indicators"][ind][key];
            assert_eq!(float(p, "mean"), g["mean"].as_f64(), "{q} {ind} {basis}");
            assert_eq!(
                float(p, "pooled"),
                g["pooled"].as_f64(),
                "{q} {ind} {basis}"
            );
        }
        checked += 1;
    }
    // 3 periods x 3 indicators x 3 bases at city, 2 counties, 1 chain, and
    // the lines enterprises have values for.
    assert!(checked > 3 * 9 * 4, "{checked}");
    // Enterprise 1's measured digitization is a real value, written with its parts.
    let e1 = pts
        .iter()
        .find(|p| {
            tag(p, "level") == "enterprise"
                && tag(p, "id") == code(1).to_string()
                && tag(p, "period") == "2026-11"
                && tag(p, "indicator") == "digitization"
                && tag(p, "basis") == "measured"
        })
        .expect("enterprise 1 measured digitization");
    assert_eq!(float(e1, "value"), Some(2.0 / 3.0));
    assert_eq!(
        (float(e1, "numerator"), float(e1, "denominator")),
        (Some(2.0), Some(3.0))
    );
    // Energy as metered: 8 windows x (1.5 + 0.5) kWh at the city.
    let kwh = pts
        .iter()
        .find(|p| {
            p.measurement == "shuzhuan_rollup_energy"
                && tag(p, "level") == "city"
                && tag(p, "period") == "2026"
        })
        .expect("city energy");
    assert_eq!(
        (tag(kwh, "carrier"), tag(kwh, "unit")),
        ("electricity", "kWh")
    );
    assert_eq!(float(kwh, "quantity"), Some(16.0));
}

/// A free loopback port.
/// Every series matching the selector `sel`, after a forced flush
/// (VictoriaMetrics runs in its own process: the blocking client is fine).
async fn export(port: u16, sel: &str) -> Vec<Series> {
    victoria::export(port, sel)
}

/// A plain HTTP/1.0 request to a server in another process.
async fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    shuzhuan_tests::http(port, method, path)
}

/// Equal to VictoriaMetrics' precision: it keeps 12 significant decimal
/// digits of a float (0.6666666666666666 reads back as 0.666666666666).
fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-11 * want.abs().max(1e-300)
}

#[tokio::test]
async fn rollups_land_in_victoria_metrics() {
    let h = city().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(dir.path().join("influx.token"), "test-token\n").unwrap();
    let text = format!(
        "[store]\npath = \"agg.sqlite\"\n[influxdb]\nurl = \"http://127.0.0.1:{port}\"\norg = \"city\"\nbucket = \"rollups\"\ntoken_file = \"influx.token\"\ntimeout_ms = 5000\n"
    );
    let path = dir.path().join("aggregator.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = Config::load(&path).unwrap();
    let sink = Arc::new(InfluxSink::new(cfg.influxdb.as_ref().unwrap()).unwrap());
    let errors = |class: &str| {
        h.state
            .metrics
            .influx_write_errors
            .with_label_values(&[class])
            .get()
    };

    // Server down: counted, nothing else fails.
    let e = sink.write_now(&h.state).await.unwrap_err();
    assert_eq!((e.class, errors("network")), ("network", 1), "{e}");
    assert_eq!(h.state.metrics.influx_lines_written.get(), 0);

    // Server up: the next tick writes every line.
    let _vm = victoria::start(port, dir.path(), None);
    shuzhuan_aggregator::server::rollup_tick(&h.state, 400).unwrap();
    let lines = sink.lines(&h.state).unwrap().len();
    let n = sink.write_now(&h.state).await.unwrap();
    assert_eq!(n, lines);
    assert_eq!(h.state.metrics.influx_lines_written.get(), n as u64);

    let (_, api) = h
        .call(
            "GET",
            "/api/v1/indicators?period=2026",
            Some(&h.admin),
            Body::empty(),
        )
        .await;
    let want = api["indicators"]["digitization"]["measured"]["mean"]
        .as_f64()
        .expect("a measured city mean");
    let got = export(
        port,
        r#"{__name__="shuzhuan_rollup_rate_mean",level="city",id="city",period="2026",indicator="digitization",basis="measured"}"#,
    )
    .await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].values.len(), 1, "{got:?}");
    assert!(
        close(got[0].values[0], want),
        "{} vs {want}",
        got[0].values[0]
    );
    assert_eq!(got[0].timestamps, vec![NOW * 1000], "the tick's time");
    assert_eq!(got[0].metric.get("level").map(String::as_str), Some("city"));

    // Every city rate series of the year, against the API.
    let all = export(
        port,
        r#"{__name__=~"shuzhuan_rollup_rate_(mean|pooled)",level="city",period="2026"}"#,
    )
    .await;
    let mut compared = 0;
    for s in &all {
        let (ind, basis) = (&s.metric["indicator"], &s.metric["basis"]);
        let field = s.metric["__name__"].trim_start_matches("shuzhuan_rollup_rate_");
        let g: &Value = match (ind.as_str(), basis.as_str()) {
            ("rd_design_tools", _) => &api["indicators"]["rd_design_tools"]["declared"],
            ("utilisation_known_time", _) => {
                &api["indicators"]["utilisation"]["productive_over_known_time"]
            }
            ("utilisation_calendar_time", _) => {
                &api["indicators"]["utilisation"]["productive_over_calendar_time"]
            }
            (i, "declared") => &api["indicators"][i]["declared_questionnaire"],
            (i, b) => &api["indicators"][i][b],
        };
        let want = g[field]
            .as_f64()
            .expect("no series for a figure the API lacks");
        assert!(
            close(s.values[0], want),
            "{:?}: {} vs {want}",
            s.metric,
            s.values[0]
        );
        compared += 1;
    }
    assert!(compared >= 12, "{compared}");
}

/// The `serve` binary, killed by PID on drop.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_writes_after_every_tick() {
    let dir = tempfile::tempdir().unwrap();
    {
        use shuzhuan_aggregator::store::{SqliteStore, Store};
        let store = SqliteStore::open(&dir.path().join("agg.sqlite")).unwrap();
        store.upsert_counties(&counties()).unwrap();
        store.upsert_chains(&chains()).unwrap();
        store
            .import_registry(&[enterprise(1, "xiping"), enterprise(2, "suiping")], &[])
            .unwrap();
    }
    let (vm_port, http_port) = (free_port(), free_port());
    let cfg = dir.path().join("aggregator.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{http_port}\"\n[store]\npath = \"agg.sqlite\"\n[rollup]\ninterval_secs = 1\n[influxdb]\nurl = \"http://127.0.0.1:{vm_port}\"\norg = \"city\"\nbucket = \"rollups\"\ninterval_secs = 1\n"
        ),
    )
    .unwrap();
    let _vm = victoria::start(vm_port, dir.path(), None);
    let _server = Serve(
        Command::new(env!("CARGO_BIN_EXE_shuzhuan-aggregator"))
            .args(["serve", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The county's declared digitization (enterprise 1 answered 0.6), once per tick.
    let sel = r#"{__name__="shuzhuan_rollup_rate_mean",level="county",id="xiping",indicator="digitization",basis="declared",period=~"[0-9]{4}"}"#;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got = export(vm_port, sel).await;
        if got.len() == 1 && got[0].values.len() >= 2 {
            assert!(got[0].values.iter().all(|v| close(*v, 0.6)), "{got:?}");
            assert!(got[0].timestamps.windows(2).all(|w| w[0] < w[1]), "{got:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no two ticks written within 60 s: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (st, metrics) = http(http_port, "GET", "/metrics").await;
    assert_eq!(st, 200);
    assert!(
        metrics.lines().any(
            |l| l.starts_with("shuzhuan_aggregator_influx_lines_written_total ")
                && !l.ends_with(" 0")
        ),
        "{metrics}"
    );
}
