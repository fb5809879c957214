//! The worked example of `docs/specs/report.md`: two chained reports signed
//! with a fixed key, written to `docs/specs/report-v1-example.json`. The test
//! regenerates the example and fails when the file or the spec's quoted
//! values differ, so the spec cannot drift from the code. After an
//! intended change run `SHUZHUAN_BLESS=1 cargo test -p shuzhuan-common
//! --test report_example` and update the quoted values in the spec.

use base64::Engine as _;
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use shuzhuan_common::credit_code::CreditCode;
use shuzhuan_common::inventory::{Device, DeviceKind, Inventory, KeyProcess};
use shuzhuan_common::report::{
    follow, verifying_key_to_b64, ChainError, Hash32, Report, ReportError, SignedReport,
    SCHEMA_VERSION,
};
use shuzhuan_common::state::{DeviceState, StateSeconds};
use shuzhuan_common::summary::{EnergyDelta, EnergyMethod, QualityFlag, WindowSummary};
use std::path::PathBuf;

const SEED: [u8; 32] = [0x5a; 32];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn states(pairs: &[(DeviceState, u32)]) -> StateSeconds {
    let mut s = StateSeconds::default();
    for &(st, v) in pairs {
        s.add(st, v);
    }
    s
}

/// Report 1 (with the inventory) and report 2 of agent `gw-0001`.
fn reports() -> (Report, Report) {
    let enterprise = CreditCode::parse("91350100M000100Y43").unwrap();
    let inventory = Inventory {
        devices: vec![
            Device {
                id: "cnc-01".into(),
                name: "立式加工中心 1".into(),
                kind: DeviceKind::CncMachineTool,
                production: true,
                declared_digital: true,
                declared_networked: true,
                declared_nc: true,
                key_process: Some("machining".into()),
                original_value_cny: Some(850000.0),
            },
            Device {
                id: "meter-01".into(),
                name: "Main meter".into(),
                kind: DeviceKind::EnergyMeter,
                production: false,
                declared_digital: true,
                declared_networked: true,
                declared_nc: false,
                key_process: None,
                original_value_cny: None,
            },
        ],
        key_processes: vec![KeyProcess {
            id: "machining".into(),
            name: "精加工".into(),
            declared_nc: true,
        }],
    };
    let cnc = |productive: u32, standby: u32, parts: u64| WindowSummary {
        device_id: "cnc-01".into(),
        state_seconds: states(&[
            (DeviceState::Productive, productive),
            (DeviceState::Standby, standby),
        ]),
        nc_seconds: productive,
        energy: vec![],
        parts: Some(parts),
        samples_expected: 900,
        samples_received: 900,
        flags: vec![],
    };
    let meter = |kwh: f64, received: u32, flags: Vec<QualityFlag>| WindowSummary {
        device_id: "meter-01".into(),
        state_seconds: states(&[
            (DeviceState::Productive, received),
            (DeviceState::Disconnected, 900 - received),
        ]),
        nc_seconds: 0,
        energy: vec![EnergyDelta {
            meter: "meter-01".into(),
            carrier: "electricity".into(),
            quantity: kwh,
            unit: "kWh".into(),
            method: EnergyMethod::Counter,
            exported: 0.0,
        }],
        parts: None,
        samples_expected: 900,
        samples_received: received,
        flags,
    };
    let t0 = 1_767_225_600; // 2026-01-01T00:00:00Z
    let first = Report {
        schema: SCHEMA_VERSION,
        agent_id: "gw-0001".into(),
        enterprise: enterprise.clone(),
        seq: 1,
        prev_hash: Hash32::GENESIS,
        window_start: t0,
        window_end: t0 + 900,
        created_at: t0 + 902,
        inventory: Some(inventory),
        summaries: vec![cnc(720, 180, 12), meter(3.25, 900, vec![])],
    };
    let second = Report {
        schema: SCHEMA_VERSION,
        agent_id: "gw-0001".into(),
        enterprise,
        seq: 2,
        prev_hash: Hash32::GENESIS, // set after signing the first
        window_start: t0 + 900,
        window_end: t0 + 1800,
        created_at: t0 + 1801,
        inventory: None,
        summaries: vec![
            cnc(900, 0, 15),
            meter(2.5, 840, vec![QualityFlag::CounterReset]),
        ],
    };
    (first, second)
}

fn entry(r: &Report, signed: &SignedReport, hash: Hash32) -> Value {
    json!({
        "report": serde_json::to_value(r).unwrap(),
        "canonical_payload": String::from_utf8(r.canonical_bytes()).unwrap(),
        "signed": signed,
        "hash": hash.to_hex(),
    })
}

/// The example as it must be in the fixture.
fn example() -> (Value, Vec<(Report, SignedReport, Hash32)>) {
    let key = SigningKey::from_bytes(&SEED);
    let (first, mut second) = reports();
    let (s1, h1) = first.sign(&key);
    second.prev_hash = h1;
    let (s2, h2) = second.sign(&key);
    let v = json!({
        "about": "Worked example of docs/specs/report.md, regenerated and compared by common/tests/report_example.rs",
        "signing_key_seed_hex": hex::encode(SEED),
        "public_key": verifying_key_to_b64(&key.verifying_key()),
        "reports": [entry(&first, &s1, h1), entry(&second, &s2, h2)],
    });
    (v, vec![(first, s1, h1), (second, s2, h2)])
}

#[test]
fn the_fixture_is_what_the_code_produces() {
    let (v, _) = example();
    let want = serde_json::to_string_pretty(&v).unwrap() + "\n";
    let path = root().join("docs/specs/report-v1-example.json");
    if std::env::var_os("SHUZHUAN_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let got = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        got == want,
        "{} differs from the code's output; rerun with SHUZHUAN_BLESS=1 and update docs/specs/report.md",
        path.display()
    );
}

#[test]
fn the_spec_quotes_the_example() {
    let spec = std::fs::read_to_string(root().join("docs/specs/report.md")).unwrap();
    let (_, rs) = example();
    for (r, s, h) in &rs {
        assert!(
            spec.contains(&h.to_hex()),
            "spec lacks hash of report {}",
            r.seq
        );
        assert!(
            spec.contains(&s.signature),
            "spec lacks signature of report {}",
            r.seq
        );
    }
    let payload = String::from_utf8(rs[1].0.canonical_bytes()).unwrap();
    assert!(
        spec.contains(&payload),
        "spec lacks report 2's canonical payload"
    );
    let key = SigningKey::from_bytes(&SEED);
    assert!(spec.contains(&verifying_key_to_b64(&key.verifying_key())));
}

#[test]
fn the_example_verifies_and_its_error_cases_hold() {
    let (_, rs) = example();
    let vk = SigningKey::from_bytes(&SEED).verifying_key();
    let mut head = None;
    for (r, s, h) in &rs {
        let v = s.verify(&vk).unwrap();
        assert_eq!((&v.report, v.hash), (r, *h));
        // the hash is SHA-256 of the decoded payload bytes
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&s.payload)
            .unwrap();
        assert_eq!(Hash32::of(&bytes), *h);
        assert_eq!(bytes, r.canonical_bytes());
        head = Some(follow(head, &v.report, v.hash).unwrap());
    }
    // §6 error cases, in the order the spec gives
    let s = &rs[1].1;
    let bad = |payload: &str, signature: &str| SignedReport {
        payload: payload.into(),
        signature: signature.into(),
    };
    assert_eq!(
        bad("not base64!", &s.signature).verify(&vk),
        Err(ReportError::PayloadEncoding)
    );
    assert_eq!(
        bad(&s.payload, "AAAA").verify(&vk),
        Err(ReportError::SignatureEncoding)
    );
    let mut flipped = s.signature.clone().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        bad(&s.payload, std::str::from_utf8(&flipped).unwrap()).verify(&vk),
        Err(ReportError::BadSignature)
    );
    // replaying report 2 after it was accepted, or skipping to 3
    let v2 = rs[1].1.verify(&vk).unwrap();
    assert_eq!(
        follow(head, &v2.report, v2.hash),
        Err(ChainError::Replay { seq: 2 })
    );
    let mut third = v2.report.clone();
    third.seq = 4;
    assert_eq!(
        follow(head, &third, v2.hash),
        Err(ChainError::Gap {
            expected: 3,
            got: 4
        })
    );
}

#[test]
fn duplicate_members_in_the_payload() {
    let (first, _) = reports();
    let text = String::from_utf8(first.canonical_bytes()).unwrap();
    // a report member twice is refused
    let twice = text.replacen("\"seq\":1,", "\"seq\":1,\"seq\":1,", 1);
    assert!(serde_json::from_str::<Report>(&twice).is_err());
    // a state twice inside state_seconds: the last value is kept (spec §3.3 note)
    let twice = text.replacen("\"standby\":180}", "\"standby\":180,\"standby\":180}", 1);
    let r: Report = serde_json::from_str(&twice).unwrap();
    assert_eq!(r, first);
}
