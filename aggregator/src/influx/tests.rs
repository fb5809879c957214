//! Unit tests of the roll-up sink: `[influxdb]` parsing and its located
//! errors, the points of a registry-only store, and a failed write that is
//! counted without failing anything.

use super::*;
use crate::config::Config;
use crate::store::{NoHook, SqliteStore};
use shuzhuan_agent::outputs::influx::line::FieldValue;
use shuzhuan_common::credit_code::CreditCode;
use shuzhuan_common::inventory::IndustryType;
use shuzhuan_common::registry::{County, CountyKind, DeclaredRates, Enterprise, IndustryChain};

const STORE: &str = "[store]\npath = \"x.sqlite\"\n";

fn parse(influx: &str) -> Result<Config, crate::config::ConfigErrors> {
    Config::parse("a.toml", &format!("{STORE}{influx}"), Path::new("/etc/sz"))
}

#[test]
fn absent_is_off_and_defaults_apply() {
    assert_eq!(parse("").unwrap().influxdb, None);
    let c = parse("[influxdb]\nurl = \"http://127.0.0.1:8086\"\norg = \"o\"\nbucket = \"b\"\ntoken_file = \"t\"\n")
        .unwrap()
        .influxdb
        .unwrap();
    assert_eq!(c.token_file.as_deref(), Some(Path::new("/etc/sz/t")));
    assert_eq!((c.timeout_ms, c.batch_lines), (10_000, 5_000));
    assert!(c.gzip && c.enterprises);
    assert_eq!(c.measurement_prefix, "shuzhuan_");
    assert_eq!(c.interval_secs, 900);
}

/// A tick writes only `interval_secs` after the last successful write
/// started; before the first write, and after a failed one, it writes.
#[test]
fn a_write_is_due_interval_secs_after_the_last_success() {
    let c = parse("[influxdb]\nurl = \"http://127.0.0.1:9\"\norg = \"o\"\nbucket = \"b\"\ninterval_secs = 300\n")
        .unwrap()
        .influxdb
        .unwrap();
    assert_eq!(c.interval_secs, 300);
    let sink = InfluxSink::new(&c).unwrap();
    assert!(sink.due(1_000), "never written: due");
    sink.last_write.store(1_000, Ordering::Release);
    assert!(!sink.due(1_000));
    assert!(!sink.due(1_299));
    assert!(sink.due(1_300));
    let e = parse("[influxdb]\nurl = \"http://127.0.0.1:9\"\norg = \"o\"\nbucket = \"b\"\ninterval_secs = 0\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("a.toml:7:1: [influxdb] interval_secs = 0 is out of range (1 to 86400)"),
        "{e}"
    );
}

#[test]
fn bad_values_are_located_and_name_the_key() {
    // Lines: 4 url, 5 org, 6 bucket, 7 timeout_ms, 8 batch_lines.
    let e = parse("[influxdb]\nurl = \"https://influx\"\norg = \" \"\nbucket = \"b\"\ntimeout_ms = 0\nbatch_lines = -2\n")
        .unwrap_err();
    let all = e.to_string();
    assert_eq!(e.0.len(), 4, "{all}");
    assert!(
        all.contains("a.toml:4:1: [influxdb] url `https://influx` is https but ca_file is missing"),
        "{all}"
    );
    assert!(
        all.contains("a.toml:5:1: [influxdb] org must not be empty"),
        "{all}"
    );
    assert!(
        all.contains("a.toml:7:1: [influxdb] timeout_ms = 0 is out of range"),
        "{all}"
    );
    assert!(
        all.contains("a.toml:8:1: [influxdb] batch_lines = -2 is out of range"),
        "{all}"
    );
    let e = parse("[influxdb]\nurl = \"influx:8086\"\norg = \"o\"\nbucket = \"b\"\n").unwrap_err();
    assert!(
        e.to_string().starts_with(
            "a.toml:4:1: [influxdb] url `influx:8086` is not an http:// or https:// URL"
        ),
        "{e}"
    );
    let e = parse("[influxdb]\nurl = \"http://\"\norg = \"o\"\nbucket = \"b\"\n").unwrap_err();
    assert!(e.to_string().contains("has no host"), "{e}");
    // Unknown keys and missing ones, located by the TOML parser.
    let e = parse("[influxdb]\nurl = \"http://x:1\"\norg = \"o\"\nbuket = \"b\"\n").unwrap_err();
    assert!(
        e.to_string().contains("unknown field `buket`") && e.0[0].line == 6,
        "{e}"
    );
    let e = parse("[influxdb]\nurl = \"http://x:1\"\norg = \"o\"\n").unwrap_err();
    assert!(e.to_string().contains("missing field `bucket`"), "{e}");
}

#[test]
fn load_reads_the_token_and_ca_files() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("agg.toml");
    let write = |influx: &str| std::fs::write(&path, format!("{STORE}{influx}")).unwrap();
    write("[influxdb]\nurl = \"http://127.0.0.1:1\"\norg = \"o\"\nbucket = \"b\"\ntoken_file = \"none.token\"\n");
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("agg.toml:7:1: [influxdb] token_file") && e.contains("none.token"),
        "{e}"
    );
    std::fs::write(d.path().join("empty.token"), "\n").unwrap();
    write("[influxdb]\nurl = \"http://127.0.0.1:1\"\norg = \"o\"\nbucket = \"b\"\ntoken_file = \"empty.token\"\n");
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(e.contains("is empty"), "{e}");
    write("[influxdb]\nurl = \"https://localhost:1\"\norg = \"o\"\nbucket = \"b\"\nca_file = \"none.pem\"\n");
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("agg.toml:7:1: ") && e.contains("[influxdb] ca_file") && e.contains("none.pem"),
        "{e}"
    );
    // A real CA certificate (the `openssl` CLI, tests/peers/install.sh) is accepted.
    let st = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=test-ca", "-keyout"])
        .arg(d.path().join("ca.key"))
        .arg("-out")
        .arg(d.path().join("ca.pem"))
        .output()
        .expect("the openssl CLI (tests/peers/install.sh)");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    write("[influxdb]\nurl = \"https://localhost:1\"\norg = \"o\"\nbucket = \"b\"\nca_file = \"ca.pem\"\n");
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.influxdb.unwrap().ca_file, Some(d.path().join("ca.pem")));
    std::fs::write(d.path().join("ok.token"), "secret-token\n").unwrap();
    write("[influxdb]\nurl = \"http://127.0.0.1:1\"\norg = \"o\"\nbucket = \"b\"\ntoken_file = \"ok.token\"\n");
    let c = Config::load(&path).unwrap();
    // The token is read by the sink and never kept in (or printed with) the config.
    let sink = InfluxSink::new(c.influxdb.as_ref().unwrap()).unwrap();
    assert!(!format!("{c:?}{sink:?}").contains("secret-token"));
}

#[test]
fn the_example_config_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("config/examples/aggregator.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("# [influxdb]"), "the example shows the block");
    // With its [influxdb] block uncommented.
    let on: String = text
        .lines()
        .skip_while(|l| !l.starts_with("# [influxdb]"))
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .filter(|l| {
            !l.starts_with('#') && !l.starts_with("token_file") && !l.starts_with("ca_file")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let c = Config::parse("e.toml", &format!("{text}\n{on}\n"), &root).unwrap();
    assert!(c.influxdb.is_some(), "{on}");
}

fn registry_store() -> SqliteStore {
    let s = SqliteStore::in_memory().unwrap();
    s.upsert_counties(&[County {
        id: "xiping".into(),
        name: "西平县".into(),
        name_en: "Xiping".into(),
        kind: CountyKind::County,
        division_code: None,
    }])
    .unwrap();
    s.upsert_chains(&[IndustryChain {
        id: "equipment".into(),
        name: "装备制造".into(),
        name_en: "Equipment".into(),
        cluster: None,
        industry_type: IndustryType::Discrete,
    }])
    .unwrap();
    let e = |n: u32, d: f64| Enterprise {
        credit_code: CreditCode::from_body(&format!("91411721{n:09}")).unwrap(),
        name: format!("企业{n}"),
        county: "xiping".into(),
        chain: "equipment".into(),
        above_scale: true,
        industry_type: IndustryType::Discrete,
        rd_design_tools: Some(n == 1),
        declared: DeclaredRates {
            digitization: Some(d),
            networking: None,
            key_process_nc: None,
        },
    };
    s.import_registry(&[e(1, 0.5), e(2, 0.75)], &[]).unwrap();
    s
}

/// 2026-11-28T00:00:00Z.
const NOW: i64 = 1_795_824_000;

fn find<'a>(pts: &'a [Point], m: &str, tags: &[(&str, &str)]) -> Vec<&'a Point> {
    pts.iter()
        .filter(|p| {
            p.measurement == m
                && tags
                    .iter()
                    .all(|(k, v)| p.tags.iter().any(|(a, b)| a == k && b == v))
        })
        .collect()
}

fn field<'a>(p: &'a Point, k: &str) -> Option<&'a FieldValue> {
    p.fields.iter().find(|(a, _)| a == k).map(|(_, v)| v)
}

#[test]
fn points_of_a_registry_only_city() {
    let s = registry_store();
    let r = Reference::default();
    let pts = points(&s, &r, NOW, "sz_", true).unwrap();
    assert!(pts
        .iter()
        .all(|p| p.ts == NOW && p.measurement.starts_with("sz_")));
    // Tags are bounded: level, id, period, indicator, basis (energy adds carrier, unit).
    for p in &pts {
        for (k, _) in &p.tags {
            assert!(
                [
                    "level",
                    "id",
                    "period",
                    "indicator",
                    "basis",
                    "carrier",
                    "unit"
                ]
                .contains(&k.as_str()),
                "{k}"
            );
        }
    }
    let periods: std::collections::BTreeSet<&str> = pts
        .iter()
        .flat_map(|p| {
            p.tags
                .iter()
                .filter(|t| t.0 == "period")
                .map(|t| t.1.as_str())
        })
        .collect();
    assert_eq!(
        periods.into_iter().collect::<Vec<_>>(),
        ["2026", "2026-11", "2026-Q4"]
    );
    // The declared mean at every group level, from group_json.
    for (level, id) in [
        ("city", "city"),
        ("county", "xiping"),
        ("chain", "equipment"),
    ] {
        let p = find(
            &pts,
            "sz_rollup_rate",
            &[
                ("level", level),
                ("id", id),
                ("period", "2026"),
                ("indicator", "digitization"),
                ("basis", "declared"),
            ],
        );
        assert_eq!(p.len(), 1, "{level}");
        assert_eq!(field(p[0], "mean"), Some(&FieldValue::Float(0.625)));
        assert_eq!(field(p[0], "pooled"), None, "no pooled share of answers");
        assert_eq!(field(p[0], "enterprises"), Some(&FieldValue::Int(2)));
    }
    // No data measured: the line says so with enterprises = 0 and no mean.
    let p = find(
        &pts,
        "sz_rollup_rate",
        &[
            ("level", "city"),
            ("period", "2026-11"),
            ("indicator", "networking"),
            ("basis", "measured"),
        ],
    );
    assert_eq!(
        p[0].fields,
        vec![("enterprises".to_owned(), FieldValue::Int(0))]
    );
    let p = find(
        &pts,
        "sz_rollup_rate",
        &[("level", "city"), ("indicator", "rd_design_tools")],
    );
    assert_eq!(p.len(), 3, "one per period");
    assert_eq!(field(p[0], "mean"), Some(&FieldValue::Float(0.5)));
    let p = find(
        &pts,
        "sz_rollup_coverage",
        &[("level", "city"), ("period", "2026-Q4")],
    );
    assert_eq!(field(p[0], "above_scale"), Some(&FieldValue::Int(2)));
    assert_eq!(field(p[0], "declared_only"), Some(&FieldValue::Int(2)));
    assert_eq!(field(p[0], "with_measured_data"), Some(&FieldValue::Int(0)));
    // Enterprises: their own declared values; nothing measured is not written as 0.
    // (no inventory: the inventory-declared rates cannot be formed either).
    let ent = find(
        &pts,
        "sz_rollup_rate",
        &[
            ("level", "enterprise"),
            ("period", "2026"),
            ("indicator", "digitization"),
        ],
    );
    assert_eq!(ent.len(), 2);
    assert!(ent
        .iter()
        .all(|p| p.tags.contains(&("basis".into(), "declared".into()))));
    let values: Vec<_> = ent
        .iter()
        .filter(|p| p.tags.contains(&("basis".into(), "declared".into())))
        .map(|p| field(p, "value").cloned())
        .collect();
    assert_eq!(
        values,
        [Some(FieldValue::Float(0.5)), Some(FieldValue::Float(0.75))]
    );
    // Without enterprises, none of their points.
    let pts = points(&s, &r, NOW, "sz_", false).unwrap();
    assert!(find(&pts, "sz_rollup_rate", &[("level", "enterprise")]).is_empty());
    assert!(pts.iter().all(|p| p.encode().is_some()));
}

#[tokio::test]
async fn a_failed_write_is_counted_and_fails_nothing() {
    let s: Arc<dyn Store> = Arc::new(registry_store());
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse("a.toml", STORE, dir.path()).unwrap();
    let state = crate::server::state(&cfg, s, Arc::new(NoHook), Arc::new(|| NOW));
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ic = section(
        RawInflux {
            url: format!("http://127.0.0.1:{port}"),
            org: "o".into(),
            bucket: "b".into(),
            token_file: None,
            ca_file: None,
            timeout_ms: Some(2_000),
            gzip: None,
            batch_lines: None,
            measurement_prefix: None,
            enterprises: None,
            interval_secs: None,
        },
        dir.path(),
        &mut |k, m| panic!("{k}: {m}"),
    )
    .unwrap();
    let sink = Arc::new(InfluxSink::new(&ic).unwrap());
    assert!(crate::server::rollup_tick(&state, 400).is_ok());
    let e = sink.write_now(&state).await.unwrap_err();
    assert_eq!(e.class, "network", "{e}");
    assert_eq!(
        state
            .metrics
            .influx_write_errors
            .with_label_values(&["network"])
            .get(),
        1
    );
    assert!(state
        .metrics
        .render()
        .contains("shuzhuan_aggregator_influx_write_errors_total{class=\"network\"} 1"));
    // after_tick returns at once; its task counts the second failure.
    sink.after_tick(state.clone());
    for _ in 0..100 {
        if !sink.busy.load(Ordering::Acquire) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        state
            .metrics
            .influx_write_errors
            .with_label_values(&["network"])
            .get(),
        2
    );
    assert!(crate::server::rollup_tick(&state, 400).is_ok());
}
