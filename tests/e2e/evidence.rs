//! End-to-end tests: evidence. Synthetic signed reports go through the
//! aggregator's store with the evidence log as its accept hook; bundles are
//! exported, verified in Rust and by the independent Python checker
//! (`tests/peers/py/verify_bundle.py`), tampered with in six ways, and
//! claims are judged into JSON and a self-contained HTML report.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use serde_json::Value;
use shuzhuan_aggregator::evidence::{self, EvidenceLog};
use shuzhuan_aggregator::store::{NoHook, SqliteStore, Store};
use shuzhuan_common::claim::{Claim, ClaimPolicy, Verdict};
use shuzhuan_common::credit_code::CreditCode;
use shuzhuan_common::evidence::{verify_bundle, Bundle, ProblemKind};
use shuzhuan_common::inventory::{Device, DeviceKind, IndustryType, Inventory, KeyProcess};
use shuzhuan_common::registry::{County, CountyKind, DeclaredRates, Enterprise, IndustryChain};
use shuzhuan_common::report::{
    verifying_key_to_b64, Hash32, Report, VerifiedReport, SCHEMA_VERSION,
};
use shuzhuan_common::state::{DeviceState, StateSeconds};
use shuzhuan_common::summary::{EnergyDelta, EnergyMethod, WindowSummary};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const WINDOW: i64 = 900;
/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600;
const ORIGIN: &str = "shuzhuan.test/evidence";

fn code(n: u32) -> CreditCode {
    CreditCode::from_body(&format!("91411721{n:09}")).unwrap()
}

fn agent_key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn log_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// A store with two enterprises (1 and 2) and agents `gw-<e>-<i>` enrolled
/// with `agent_key(10 * e + i)`.
fn store(path: &Path, agents_per_enterprise: u8) -> SqliteStore {
    let s = SqliteStore::open(path).unwrap();
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
    let ents: Vec<Enterprise> = [1, 2]
        .map(|n| Enterprise {
            credit_code: code(n),
            name: format!("企业{n}"),
            county: "xiping".into(),
            chain: "equipment".into(),
            above_scale: true,
            industry_type: IndustryType::Discrete,
            rd_design_tools: None,
            declared: DeclaredRates::default(),
        })
        .to_vec();
    s.import_registry(&ents, &[]).unwrap();
    for e in [1u32, 2] {
        for i in 0..agents_per_enterprise {
            let token = format!("t-{e}-{i}");
            let hash = shuzhuan_aggregator::enroll::secret_hash(&token);
            s.create_enrol_token(&hash, &code(e), T0 - 86_400, T0)
                .unwrap();
            let pk = verifying_key_to_b64(&agent_key(10 * e as u8 + i).verifying_key());
            s.enroll(&hash, &format!("gw-{e}-{i}"), &code(e), &pk, T0 - 86_400)
                .unwrap();
        }
    }
    s
}

/// The synthetic plant behind one agent.
#[derive(Clone, Copy)]
struct Plant {
    devices: u32,
    productive: u32,
    kwh: f64,
    /// Windows `[a, b)` in which the gateway was down (no report).
    outage: Option<(u64, u64)>,
}

fn inventory(agent: &str, devices: u32) -> Inventory {
    Inventory {
        devices: (0..devices)
            .map(|d| Device {
                id: format!("{agent}-m{d}"),
                name: format!("Machine {d}"),
                kind: DeviceKind::CncMachineTool,
                production: true,
                declared_digital: true,
                declared_networked: true,
                declared_nc: true,
                key_process: Some(format!("{agent}-kp")),
                original_value_cny: None,
            })
            .collect(),
        key_processes: vec![KeyProcess {
            id: format!("{agent}-kp"),
            name: "精加工".into(),
            declared_nc: true,
        }],
    }
}

/// Signed reports of one agent for windows `0..windows` from `T0`.
fn reports(
    agent: &str,
    ent: &CreditCode,
    key: &SigningKey,
    windows: u64,
    p: Plant,
) -> Vec<(VerifiedReport, String)> {
    let mut prev = Hash32::GENESIS;
    let mut seq = 0;
    let mut out = Vec::new();
    for w in 0..windows {
        if p.outage.is_some_and(|(a, b)| w >= a && w < b) {
            continue;
        }
        seq += 1;
        let start = T0 + w as i64 * WINDOW;
        let summaries = (0..p.devices)
            .map(|d| {
                let mut s = StateSeconds::default();
                s.add(DeviceState::Productive, p.productive);
                s.add(DeviceState::Standby, WINDOW as u32 - p.productive);
                WindowSummary {
                    device_id: format!("{agent}-m{d}"),
                    state_seconds: s,
                    nc_seconds: p.productive,
                    energy: vec![EnergyDelta {
                        meter: format!("{agent}-e{d}"),
                        carrier: "electricity".into(),
                        quantity: p.kwh,
                        unit: "kWh".into(),
                        method: EnergyMethod::Counter,
                        exported: 0.0,
                    }],
                    parts: Some(u64::from(p.productive / 60)),
                    samples_expected: 900,
                    samples_received: 900,
                    flags: vec![],
                }
            })
            .collect();
        let r = Report {
            schema: SCHEMA_VERSION,
            agent_id: agent.into(),
            enterprise: ent.clone(),
            seq,
            prev_hash: prev,
            window_start: start,
            window_end: start + WINDOW,
            created_at: start + WINDOW + 2,
            inventory: (w % 96 == 0).then(|| inventory(agent, p.devices)),
            summaries,
        };
        let (signed, h) = r.sign(key);
        prev = h;
        out.push((
            signed.verify(&key.verifying_key()).unwrap(),
            signed.signature,
        ));
    }
    out
}

/// Ingests every agent's reports, interleaved in batches as agents ship them.
fn ingest_all(
    s: &SqliteStore,
    hook: &dyn shuzhuan_aggregator::store::AcceptHook,
    chains: &[(String, Vec<(VerifiedReport, String)>)],
) {
    let longest = chains.iter().map(|c| c.1.len()).max().unwrap_or(0);
    for from in (0..longest).step_by(96) {
        for (agent, c) in chains {
            let batch = &c[from.min(c.len())..(from + 96).min(c.len())];
            if !batch.is_empty() {
                s.ingest_batch(agent, batch, T0 + 400 * 86_400, 8 * 3600, hook)
                    .unwrap();
            }
        }
    }
}

const DAY: u64 = 96;
const PLANT: Plant = Plant {
    devices: 3,
    productive: 600,
    kwh: 2.5,
    outage: None,
};

/// One day for enterprise 1 (two agents) and 2 (two agents); agent gw-1-0
/// may have an outage.
fn city(dir: &Path, outage: Option<(u64, u64)>) -> (SqliteStore, EvidenceLog) {
    let s = store(&dir.join("agg.db"), 2);
    let log = EvidenceLog::open(&s, ORIGIN, log_key()).unwrap();
    let mut chains = Vec::new();
    for e in [1u32, 2] {
        for i in 0..2u8 {
            let agent = format!("gw-{e}-{i}");
            let p = if e == 1 && i == 0 {
                Plant { outage, ..PLANT }
            } else {
                PLANT
            };
            let c = reports(&agent, &code(e), &agent_key(10 * e as u8 + i), DAY, p);
            chains.push((agent, c));
        }
    }
    ingest_all(&s, &log, &chains);
    (s, log)
}

fn python_check(bundle: &Bundle, dir: &Path, name: &str) -> (i32, Value) {
    let path = dir.join(name);
    std::fs::write(&path, bundle.to_json()).unwrap();
    let script = shuzhuan_tests::repo_root().join("tests/peers/py/verify_bundle.py");
    let out = Command::new(shuzhuan_tests::python())
        .arg(&script)
        .arg(&path)
        .arg("--log-key")
        .arg(verifying_key_to_b64(&log_key().verifying_key()))
        .output()
        .expect("run the Python bundle checker");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "checker printed no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

fn py_kinds(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap().to_owned())
        .collect();
    k.sort();
    k.dedup();
    k
}

fn rust_kinds(b: &Bundle) -> Vec<String> {
    let v = verify_bundle(b, &log_key().verifying_key());
    let mut k: Vec<String> = v
        .problems
        .iter()
        .map(|p| {
            serde_json::to_value(p.kind)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    k.sort();
    k.dedup();
    k
}

fn resign(b: &mut Bundle, i: usize, key: &SigningKey, f: impl FnOnce(&mut Report)) {
    let (mut r, _) = b.entries[i].report.peek().unwrap();
    f(&mut r);
    b.entries[i].report = r.sign(key).0;
}

#[test]
fn exported_bundle_verifies_in_rust_and_python_and_tampering_is_caught_by_both() {
    let dir = tempfile::tempdir().unwrap();
    let (s, log) = city(dir.path(), None);
    let end = T0 + DAY as i64 * WINDOW;
    let b = evidence::export_bundle(&s, &log, &code(1), T0, end).unwrap();
    assert_eq!(b.entries.len(), 2 * DAY as usize);
    assert_eq!(b.checkpoint.checkpoint.size, 4 * DAY);

    let v = verify_bundle(&b, &log_key().verifying_key());
    assert!(v.ok, "{:?}", v.problems);
    let (code_py, py) = python_check(&b, dir.path(), "honest.json");
    assert_eq!(code_py, 0, "{py}");
    let f = &py["figures"];
    // The two implementations agree on the recomputed figures.
    assert_eq!(f["reports"], v.figures.reports);
    assert_eq!(f["devices_reporting"], v.figures.devices_reporting);
    assert_eq!(f["devices_seen"], 6);
    assert_eq!(f["parts"], v.figures.parts);
    assert_eq!(f["covered_secs"], v.figures.covered_secs);
    let kwh = f["energy"][0]["quantity"].as_f64().unwrap();
    assert!((kwh - v.figures.energy[0].quantity).abs() < 1e-6);
    assert!((kwh - 2.5 * 6.0 * DAY as f64).abs() < 1e-6);

    // A second export after more reports: a new checkpoint, consistent with
    // the first (the log refuses otherwise), still verifying.
    let more = reports("gw-2-0", &code(2), &agent_key(20), DAY + 4, PLANT).split_off(DAY as usize);
    s.ingest_batch("gw-2-0", &more, T0 + 400 * 86_400, 8 * 3600, &log)
        .unwrap();
    let later = evidence::export_bundle(&s, &log, &code(1), T0, end).unwrap();
    assert_eq!(later.checkpoint.checkpoint.size, 4 * DAY + 4);
    assert!(verify_bundle(&later, &log_key().verifying_key()).ok);

    // Tampering is applied to the later bundle; "rolled back" swaps in the
    // earlier, smaller checkpoint (genuinely signed by the log).
    let earlier = b.checkpoint.clone();
    let b = later;
    type Tamper = Box<dyn Fn(&mut Bundle)>;
    let cases: Vec<(&str, Tamper, &[&str])> = vec![
        (
            "changed value",
            Box::new(|b: &mut Bundle| {
                let (mut r, _) = b.entries[7].report.peek().unwrap();
                r.summaries[1].energy[0].quantity = 99.0;
                b.entries[7].report.payload = B64.encode(r.canonical_bytes());
            }),
            &["chain", "signature"],
        ),
        (
            "removed report",
            Box::new(|b: &mut Bundle| drop(b.entries.remove(20))),
            &["chain"],
        ),
        (
            "reordered reports",
            Box::new(|b: &mut Bundle| b.entries.swap(10, 12)),
            &["chain", "order"],
        ),
        (
            "re-signed with another key",
            Box::new(|b: &mut Bundle| resign(b, 5, &agent_key(99), |_| {})),
            &["signature"],
        ),
        (
            "checkpoint rolled back",
            Box::new(move |b: &mut Bundle| b.checkpoint = earlier.clone()),
            &["enrolments", "inclusion"],
        ),
        (
            "proofs that do not match",
            Box::new(|b: &mut Bundle| {
                let p = b.entries[3].inclusion_proof.clone();
                b.entries[4].inclusion_proof = p;
            }),
            &["inclusion"],
        ),
    ];
    for (name, tamper, want) in cases {
        let mut t = b.clone();
        tamper(&mut t);
        let (status, py) = python_check(&t, dir.path(), "tampered.json");
        assert_eq!(status, 1, "{name}: Python accepted it: {py}");
        assert_eq!(py_kinds(&py), want, "{name}: Python");
        assert_eq!(rust_kinds(&t), want, "{name}: Rust");
    }
}

fn policy() -> ClaimPolicy {
    let path = shuzhuan_tests::repo_root().join("config/claims/thresholds.toml");
    evidence::load_policy(&path).unwrap()
}

fn claim(figures: &str) -> Claim {
    let text = format!(
        "enterprise = \"{}\"\nrecognition = \"smart_workshop\"\n[window]\nstart = 2026-01-01T00:00:00Z\nend = 2026-01-02T00:00:00Z\n[figures]\n{figures}\n",
        code(1)
    );
    Claim::parse("claim.toml", &text).unwrap()
}

#[test]
fn claims_are_judged_into_json_and_a_self_contained_html_report() {
    let dir = tempfile::tempdir().unwrap();
    let (s, log) = city(dir.path(), None);
    let p = policy();

    let truthful = claim("devices_connected = 6\nnetworking_rate_pct = 100\nutilisation_pct = 66\nenergy_intensity_kgce_per_part = 0.031");
    let out = evidence::verify_claim(&s, &log, &truthful, &p).unwrap();
    for f in &out.judgement.figures {
        assert_eq!(f.verdict, Verdict::Supported, "{f:?}");
    }
    let json = out.to_json();
    assert_eq!(json["judgement"]["figures"][0]["verdict"], "Supported");
    assert_eq!(json["evidence"]["ok"], true);
    let html = out.to_html();
    assert!(
        html.contains("Supported 支持") && html.contains("henan-2023"),
        "{html}"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("<script"),
        "{html}"
    );
    std::fs::write(
        shuzhuan_tests::artifacts().join("evidence-claim-supported.html"),
        &html,
    )
    .unwrap();

    let inflated = claim("devices_connected = 10\nutilisation_pct = 90");
    let out = evidence::verify_claim(&s, &log, &inflated, &p).unwrap();
    let u = &out.judgement.figures[1];
    assert_eq!(u.verdict, Verdict::NotSupported);
    assert!((u.measured.unwrap() - 200.0 / 3.0).abs() < 1e-9);
    assert!(out.to_html().contains("66.67 %"));

    // The offline path: the bundle written to a file and checked with the
    // log's public key alone.
    let file = shuzhuan_tests::artifacts().join("evidence-bundle.json");
    std::fs::write(&file, out.bundle.to_json()).unwrap();
    let v = evidence::verify_bundle_file(&file, &log.public_key_b64()).unwrap();
    assert!(v.ok);
    let wrong = verifying_key_to_b64(&agent_key(1).verifying_key());
    assert!(
        evidence::verify_bundle_file(&file, &wrong)
            .unwrap()
            .untrusted
    );
}

#[test]
fn a_claim_over_an_outage_has_insufficient_data() {
    let dir = tempfile::tempdir().unwrap();
    let (s, log) = city(dir.path(), Some((30, 50)));
    let out = evidence::verify_claim(&s, &log, &claim("utilisation_pct = 66"), &policy()).unwrap();
    let f = &out.judgement.figures[0];
    assert_eq!(f.verdict, Verdict::InsufficientData, "{f:?}");
    assert!(f.why[0].contains("of the window"), "{:?}", f.why);
    assert!(
        out.evidence.ok,
        "an outage is not tampering: {:?}",
        out.evidence.problems
    );
    assert!(out.to_html().contains("Insufficient data"));
}

#[test]
fn reports_accepted_before_the_log_existed_are_backfilled() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir.path().join("agg.db"), 1);
    let c = reports("gw-1-0", &code(1), &agent_key(10), 10, PLANT);
    s.ingest_batch("gw-1-0", &c[..6], T0 + 86_400, 0, &NoHook)
        .unwrap();
    let log = EvidenceLog::open(&s, ORIGIN, log_key()).unwrap();
    assert_eq!(log.backfill(&s).unwrap(), 6);
    assert_eq!(log.backfill(&s).unwrap(), 0);
    s.ingest_batch("gw-1-0", &c[6..], T0 + 86_400, 0, &log)
        .unwrap();
    let b = evidence::export_bundle(&s, &log, &code(1), T0, T0 + 10 * WINDOW).unwrap();
    let v = verify_bundle(&b, &log_key().verifying_key());
    assert!(v.ok, "{:?}", v.problems);
    assert_eq!(v.reports_accepted, 10);
    assert!(v.problems.iter().all(|p| p.kind != ProblemKind::Chain));
}

/// The benchmark of `docs/bench/evidence.md`: an enterprise of 200 devices
/// (10 gateways × 20 devices) for `SHUZHUAN_EVIDENCE_BENCH_DAYS` days
/// (default 1, so the suite stays fast) of 96 windows a day: ingest with the
/// log, export, verify the bundle, judge a claim. Prints the timings.
#[test]
fn bench_enterprise_of_200_devices() {
    let days: u64 = std::env::var("SHUZHUAN_EVIDENCE_BENCH_DAYS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(1);
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir.path().join("agg.db"), 10);
    let log = EvidenceLog::open(&s, ORIGIN, log_key()).unwrap();
    let windows = days * DAY;
    let plant = Plant {
        devices: 20,
        ..PLANT
    };

    let t = Instant::now();
    let chains: Vec<_> = (0..10u8)
        .map(|i| {
            let agent = format!("gw-1-{i}");
            let c = reports(&agent, &code(1), &agent_key(10 + i), windows, plant);
            (agent, c)
        })
        .collect();
    let generate = t.elapsed();
    let t = Instant::now();
    ingest_all(&s, &log, &chains);
    drop(chains);
    let ingest = t.elapsed();

    let end = T0 + windows as i64 * WINDOW;
    let t = Instant::now();
    let b = evidence::export_bundle(&s, &log, &code(1), T0, end).unwrap();
    let export = t.elapsed();
    let t = Instant::now();
    let json = b.to_json();
    let serialize = t.elapsed();
    // Kept for timing the Python checker on the same bundle.
    if let Some(path) = std::env::var_os("SHUZHUAN_EVIDENCE_BENCH_OUT") {
        std::fs::write(path, &json).unwrap();
    }
    let t = Instant::now();
    let parsed = Bundle::from_json(&json).unwrap();
    let v = verify_bundle(&parsed, &log_key().verifying_key());
    let verify = t.elapsed();
    assert!(v.ok, "{:?}", v.problems.first());
    assert_eq!(v.figures.devices_reporting, 200);
    assert_eq!(v.reports_accepted, 10 * windows);

    let text = format!(
        "enterprise = \"{}\"\nrecognition = \"smart_workshop\"\n[window]\nstart = 2026-01-01T00:00:00Z\nend = {}\n[figures]\ndevices_connected = 200\nutilisation_pct = 66\n",
        code(1),
        toml_utc(end)
    );
    let c = Claim::parse("bench.toml", &text).unwrap();
    let t = Instant::now();
    let out = evidence::verify_claim(&s, &log, &c, &policy()).unwrap();
    let claim = t.elapsed();
    assert!(out
        .judgement
        .figures
        .iter()
        .all(|f| f.verdict == Verdict::Supported));
    eprintln!(
        "evidence bench: days={days} reports={} summaries={} generate={generate:?} ingest+log={ingest:?} export={export:?} serialize={serialize:?} parse+verify={verify:?} verify-claim(export+verify+judge)={claim:?} bundle_bytes={}",
        10 * windows,
        200 * windows,
        json.len()
    );
}

/// A TOML offset date-time (UTC) for Unix seconds.
fn toml_utc(t: i64) -> String {
    let html = shuzhuan_aggregator::evidence::html::utc(t); // "YYYY-MM-DD HH:MM UTC"
    let (date, rest) = html.split_once(' ').unwrap();
    format!("{date}T{}:00Z", &rest[..5])
}
