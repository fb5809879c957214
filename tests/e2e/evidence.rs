//! End-to-end tests: evidence. Synthetic signed reports, and reports built
//! from a generated city's ground truth, go through the aggregator's store
//! with the evidence log as its accept hook; bundles are exported in the
//! line-oriented format, verified in Rust and by the independent Python
//! checker (`tests/peers/py/verify_bundle.py`), tampered with in six ways,
//! and claims are judged into JSON and a self-contained HTML report.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use serde_json::Value;
use shuzhuan_aggregator::evidence::{self, EvidenceLog};
use shuzhuan_aggregator::store::{NoHook, SqliteStore, Store};
use shuzhuan_common::claim::{Claim, ClaimPolicy, Verdict};
use shuzhuan_common::credit_code::CreditCode;
use shuzhuan_common::evidence::{verify_bundle, verify_bundle_stream, Bundle, ProblemKind};
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
    crate::fixtures::seed_county_and_chain(&s);
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
    Gen::new(agent, ent, key, p).windows(0, windows)
}

/// One agent's report chain, generated a slice at a time so a year never
/// sits in memory.
struct Gen {
    agent: String,
    ent: CreditCode,
    key: SigningKey,
    p: Plant,
    prev: Hash32,
    seq: u64,
}

impl Gen {
    fn new(agent: &str, ent: &CreditCode, key: &SigningKey, p: Plant) -> Gen {
        Gen {
            agent: agent.to_owned(),
            ent: ent.clone(),
            key: key.clone(),
            p,
            prev: Hash32::GENESIS,
            seq: 0,
        }
    }

    /// The signed reports of windows `from..to` (continuing the chain).
    fn windows(&mut self, from: u64, to: u64) -> Vec<(VerifiedReport, String)> {
        let (agent, ent, key, p) = (self.agent.as_str(), &self.ent, &self.key, self.p);
        let (mut prev, mut seq) = (self.prev, self.seq);
        let mut out = Vec::new();
        for w in from..to {
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
        (self.prev, self.seq) = (prev, seq);
        out
    }
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
    std::fs::write(&path, bundle.to_lines()).unwrap();
    python_check_file(&path)
}

fn python_check_file(path: &Path) -> (i32, Value) {
    let script = shuzhuan_tests::repo_root().join("tests/peers/py/verify_bundle.py");
    let out = Command::new(shuzhuan_tests::python())
        .arg(&script)
        .arg(path)
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

/// The problem kinds the streaming verifier finds in the line form of `b`
/// (checked against the in-memory verifier).
fn rust_kinds(b: &Bundle) -> Vec<String> {
    let key = log_key().verifying_key();
    let v = verify_bundle_stream(b.to_lines().as_slice(), &key, &[]).unwrap();
    assert_eq!(v.problems, verify_bundle(b, &key).problems);
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

    // The offline path: the bundle streamed to a file and checked with the
    // log's public key alone, in Rust and in Python; the older one-document
    // form is still read.
    let file = shuzhuan_tests::artifacts().join("evidence-bundle.jsonl");
    let stats = evidence::export_bundle_to(
        &s,
        &log,
        &code(1),
        T0,
        T0 + DAY as i64 * WINDOW,
        std::fs::File::create(&file).unwrap(),
    )
    .unwrap();
    assert_eq!(stats.entries, 2 * DAY);
    assert!(
        stats.proof_nodes_reused > 2 * stats.proof_nodes_written,
        "{stats:?}"
    );
    let v = evidence::verify_bundle_file(&file, &log.public_key_b64()).unwrap();
    assert!(v.ok, "{:?}", v.problems);
    assert_eq!(v.reports_accepted, 2 * DAY);
    let (status, py) = python_check_file(&file);
    assert_eq!(status, 0, "{py}");
    assert_eq!(py["figures"]["reports"], 2 * DAY);
    let v1 = dir.path().join("v1.json");
    let b = evidence::export_bundle(&s, &log, &code(1), T0, T0 + DAY as i64 * WINDOW).unwrap();
    std::fs::write(&v1, b.to_json()).unwrap();
    let old = evidence::verify_bundle_file(&v1, &log.public_key_b64()).unwrap();
    assert!(old.ok && old.figures == v.figures);
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

/// A generated city (`shuzhuan_simulator::city`) of `plants` plants, one
/// gateway each, whose signed reports are built from the simulator's ground
/// truth for one day: every digitized machine reports its true seconds per
/// state, parts and full sample coverage, the main meter its true energy;
/// non-digitized machines send nothing, as in the field. Plant
/// `outage.0` loses windows `outage.1`. Returns the store, the log and the
/// plants.
fn truth_city(
    dir: &Path,
    plants: usize,
    outage: (usize, (u64, u64)),
) -> (
    SqliteStore,
    EvidenceLog,
    Vec<shuzhuan_simulator::plant::Plant>,
) {
    use shuzhuan_simulator::{city, run::PlantModel};
    let root = shuzhuan_tests::repo_root();
    let (units, _) = city::load_units(&root.join("config")).unwrap();
    let city = city::generate(&units, plants, 11, 1.0, T0 * 1000);
    let s = SqliteStore::open(&dir.join("agg.db")).unwrap();
    let mut counties: Vec<&str> = city.iter().map(|p| p.plant.county.as_str()).collect();
    counties.sort_unstable();
    counties.dedup();
    s.upsert_counties(
        &counties
            .iter()
            .map(|c| County {
                id: (*c).into(),
                name: (*c).into(),
                name_en: (*c).into(),
                kind: CountyKind::County,
                division_code: None,
            })
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let industry = |chain: &str| {
        units
            .chains
            .iter()
            .find(|c| c.id == chain)
            .unwrap()
            .industry_type
    };
    let mut chains: Vec<&str> = city.iter().map(|p| p.plant.chain.as_str()).collect();
    chains.sort_unstable();
    chains.dedup();
    s.upsert_chains(
        &chains
            .iter()
            .map(|c| IndustryChain {
                id: (*c).into(),
                name: (*c).into(),
                name_en: (*c).into(),
                cluster: None,
                industry_type: industry(c),
            })
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let ents: Vec<Enterprise> = city
        .iter()
        .map(|p| Enterprise {
            credit_code: p.plant.credit_code.clone(),
            name: p.plant.name.clone(),
            county: p.plant.county.clone(),
            chain: p.plant.chain.clone(),
            above_scale: true,
            industry_type: industry(&p.plant.chain),
            rd_design_tools: None,
            declared: DeclaredRates::default(),
        })
        .collect();
    s.import_registry(&ents, &[]).unwrap();
    let log = EvidenceLog::open(&s, ORIGIN, log_key()).unwrap();

    let mut all = Vec::new();
    for (i, plant) in city.iter().enumerate() {
        let agent = format!("gw-{}", plant.plant.id);
        let key = agent_key(60 + i as u8);
        let ent = &plant.plant.credit_code;
        let token = format!("t-city-{i}");
        let hash = shuzhuan_aggregator::enroll::secret_hash(&token);
        s.create_enrol_token(&hash, ent, T0 - 86_400, T0).unwrap();
        s.enroll(
            &hash,
            &agent,
            ent,
            &verifying_key_to_b64(&key.verifying_key()),
            T0 - 86_400,
        )
        .unwrap();
        let inventory = Inventory {
            devices: plant.devices.iter().map(|d| d.inventory()).collect(),
            key_processes: plant.key_processes.clone(),
        };
        let digitized = |id: &str| {
            plant
                .devices
                .iter()
                .any(|d| d.id == id && d.link.is_some() && !d.is_meter())
        };
        let model = PlantModel::new(plant.clone(), T0);
        let (mut prev, mut seq, mut chain) = (Hash32::GENESIS, 0, Vec::new());
        for w in 0..DAY {
            let start = T0 + w as i64 * WINDOW;
            let truth = model.truth(start, start + WINDOW);
            if i == outage.0 && (outage.1 .0..outage.1 .1).contains(&w) {
                continue;
            }
            let summaries = truth
                .iter()
                .filter_map(|t| {
                    let declared_nc = plant
                        .devices
                        .iter()
                        .any(|d| d.id == t.device && d.declared_nc);
                    let base = WindowSummary {
                        device_id: t.device.clone(),
                        state_seconds: StateSeconds::default(),
                        nc_seconds: 0,
                        energy: vec![],
                        parts: None,
                        samples_expected: 900,
                        samples_received: 900,
                        flags: vec![],
                    };
                    if t.device == "meter-main" {
                        // A meter has no production state: powered all window.
                        let mut st = StateSeconds::default();
                        st.add(DeviceState::Standby, WINDOW as u32);
                        Some(WindowSummary {
                            state_seconds: st,
                            energy: vec![EnergyDelta {
                                meter: t.device.clone(),
                                carrier: "electricity".into(),
                                quantity: t.energy_kwh,
                                unit: "kWh".into(),
                                method: EnergyMethod::Counter,
                                exported: 0.0,
                            }],
                            ..base
                        })
                    } else if digitized(&t.device) {
                        let productive = t.state_seconds.get(DeviceState::Productive);
                        Some(WindowSummary {
                            state_seconds: t.state_seconds,
                            nc_seconds: if declared_nc { productive } else { 0 },
                            parts: Some(t.parts),
                            ..base
                        })
                    } else {
                        None
                    }
                })
                .collect();
            seq += 1;
            let r = Report {
                schema: SCHEMA_VERSION,
                agent_id: agent.clone(),
                enterprise: ent.clone(),
                seq,
                prev_hash: prev,
                window_start: start,
                window_end: start + WINDOW,
                created_at: start + WINDOW + 2,
                inventory: (w % 24 == 0).then(|| inventory.clone()),
                summaries,
            };
            let (signed, h) = r.sign(&key);
            prev = h;
            chain.push((
                signed.verify(&key.verifying_key()).unwrap(),
                signed.signature,
            ));
        }
        all.push((agent, chain));
    }
    ingest_all(&s, &log, &all);
    (s, log, city)
}

/// The truth a claim for `plant` should state: the digitization rate
/// (digitized / production machines) and the utilisation of the digitized
/// production machines (productive / known seconds), over the first day.
fn truth_figures(plant: &shuzhuan_simulator::plant::Plant) -> (f64, f64) {
    let model = shuzhuan_simulator::run::PlantModel::new(plant.clone(), T0);
    let production: Vec<_> = plant
        .devices
        .iter()
        .filter(|d| d.production && !d.is_meter())
        .collect();
    let digitized: Vec<&str> = production
        .iter()
        .filter(|d| d.link.is_some())
        .map(|d| d.id.as_str())
        .collect();
    let (mut productive, mut known) = (0u64, 0u64);
    for w in 0..DAY as i64 {
        for t in model.truth(T0 + w * WINDOW, T0 + (w + 1) * WINDOW) {
            if digitized.contains(&t.device.as_str()) {
                productive += u64::from(t.state_seconds.get(DeviceState::Productive));
                known += t.state_seconds.total()
                    - u64::from(t.state_seconds.get(DeviceState::Disconnected));
            }
        }
    }
    (
        100.0 * digitized.len() as f64 / production.len() as f64,
        100.0 * productive as f64 / known as f64,
    )
}

#[test]
fn a_generated_city_truthful_claim_is_supported_inflated_is_not_outage_is_insufficient() {
    let dir = tempfile::tempdir().unwrap();
    let (s, log, city) = truth_city(dir.path(), 3, (2, (30, 50)));
    let p = policy();
    let claim_for = |plant: &shuzhuan_simulator::plant::Plant, figures: String| {
        let text = format!(
            "enterprise = \"{}\"\nrecognition = \"smart_workshop\"\n[window]\nstart = 2026-01-01T00:00:00Z\nend = 2026-01-02T00:00:00Z\n[figures]\n{figures}\n",
            plant.plant.credit_code
        );
        Claim::parse("city-claim.toml", &text).unwrap()
    };

    // Truthful: the ground truth's own figures (rounded down to 0.01).
    let (dig, util) = truth_figures(&city[0]);
    assert!(
        util > 0.0 && dig > 0.0,
        "plant 0 works on day one: {dig} {util}"
    );
    eprintln!("generated plant 0: digitization {dig:.2} %, utilisation {util:.2} %");
    let floor = |v: f64| (v * 100.0).floor() / 100.0;
    let truthful = claim_for(
        &city[0],
        format!(
            "digitization_rate_pct = {}\nutilisation_pct = {}",
            floor(dig),
            floor(util)
        ),
    );
    let out = evidence::verify_claim(&s, &log, &truthful, &p).unwrap();
    assert!(out.evidence.ok, "{:?}", out.evidence.problems);
    for f in &out.judgement.figures {
        assert_eq!(f.verdict, Verdict::Supported, "{f:?}");
    }
    let measured_util = out.judgement.figures[1].measured.unwrap();
    assert!(
        (measured_util - util).abs() < 1e-9,
        "{measured_util} vs truth {util}"
    );

    // Inflated: 20 points more utilisation than the truth; the measured
    // figure (the truth) is shown.
    let inflated = claim_for(
        &city[0],
        format!("utilisation_pct = {}", floor(util) + 20.0),
    );
    let out = evidence::verify_claim(&s, &log, &inflated, &p).unwrap();
    let f = &out.judgement.figures[0];
    assert_eq!(f.verdict, Verdict::NotSupported, "{f:?}");
    assert!((f.measured.unwrap() - util).abs() < 1e-9);
    assert!(
        f.why[0].contains(&format!("measured {util:.2}")),
        "{:?}",
        f.why
    );
    assert!(out.to_html().contains(&format!("{util:.2} %")));

    // Plant 2's gateway was down for 20 of 96 windows: insufficient data,
    // not tampering, even for a claim that the rest of the day supports.
    let (dig2, _) = truth_figures(&city[2]);
    let over_outage = claim_for(&city[2], format!("digitization_rate_pct = {}", floor(dig2)));
    let out = evidence::verify_claim(&s, &log, &over_outage, &p).unwrap();
    let f = &out.judgement.figures[0];
    assert_eq!(f.verdict, Verdict::InsufficientData, "{f:?}");
    assert!(f.why[0].contains("of the window"), "{:?}", f.why);
    assert!(out.evidence.ok, "{:?}", out.evidence.problems);
    assert_eq!(out.judgement.figures.len(), 1);
}

/// The workspace's debug `shuzhuan-aggregator`, built (or brought up to date) by cargo.
fn aggregator_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().and_then(Path::parent).unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(shuzhuan_tests::repo_root())
        .args([
            "build",
            "-p",
            "shuzhuan-aggregator",
            "--bin",
            "shuzhuan-aggregator",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    debug.join("shuzhuan-aggregator")
}

#[test]
fn export_bundle_verify_bundle_and_verify_claim_on_the_command_line() {
    let bin = aggregator_binary();
    let dir = tempfile::tempdir().unwrap();
    let (s, _log) = city(dir.path(), None);
    drop(s);
    std::fs::write(dir.path().join("log.key"), B64.encode([42u8; 32])).unwrap();
    let cfg = dir.path().join("aggregator.toml");
    std::fs::write(
        &cfg,
        format!("[store]\npath = \"agg.db\"\n[evidence]\nlog_key_file = \"log.key\"\norigin = \"{ORIGIN}\"\n"),
    )
    .unwrap();
    let run = |c: &mut Command| {
        let out = c.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), out.stdout, text)
    };
    let file = dir.path().join("b.jsonl");
    let (ok, _, text) = run(Command::new(&bin)
        .args(["export-bundle", "--config"])
        .arg(&cfg)
        .args(["--enterprise", code(1).as_str()])
        .args(["--start", "2026-01-01T08:00:00+08:00"])
        .args(["--end", &(T0 + DAY as i64 * WINDOW).to_string()])
        .arg("--out")
        .arg(&file));
    assert!(
        ok && text.contains(&format!("{} reports", 2 * DAY)),
        "{text}"
    );
    let key = verifying_key_to_b64(&log_key().verifying_key());
    let (ok, stdout, text) = run(Command::new(&bin)
        .arg("verify-bundle")
        .arg(&file)
        .args(["--log-key", &key]));
    assert!(ok, "{text}");
    let v: Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(v["reports_accepted"], 2 * DAY, "{v}");
    let (status, py) = python_check_file(&file);
    assert_eq!(status, 0, "{py}");

    // One report line removed from the file: both verifiers refuse it.
    let text = std::fs::read_to_string(&file).unwrap();
    let cut: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 40)
        .map(|(_, l)| l)
        .collect();
    let cut_file = dir.path().join("cut.jsonl");
    std::fs::write(&cut_file, cut.join("\n") + "\n").unwrap();
    let (ok, _, text) = run(Command::new(&bin)
        .arg("verify-bundle")
        .arg(&cut_file)
        .args(["--log-key", &key]));
    assert!(!ok && text.contains("problem"), "{text}");
    assert_eq!(python_check_file(&cut_file).0, 1);

    // verify-claim writes the report and the bundle it judged.
    let claim_file = dir.path().join("claim.toml");
    std::fs::write(
        &claim_file,
        format!(
            "enterprise = \"{}\"\nrecognition = \"smart_workshop\"\n[window]\nstart = 2026-01-01T00:00:00Z\nend = 2026-01-02T00:00:00Z\n[figures]\nutilisation_pct = 66\n",
            code(1)
        ),
    )
    .unwrap();
    let prefix = dir.path().join("out");
    let (ok, _, text) = run(Command::new(&bin)
        .args(["verify-claim", "--config"])
        .arg(&cfg)
        .arg("--claim")
        .arg(&claim_file)
        .arg("--policy")
        .arg(shuzhuan_tests::repo_root().join("config/claims/thresholds.toml"))
        .arg("--out")
        .arg(&prefix));
    assert!(
        ok && text.contains("Supported") && text.contains(&key),
        "{text}"
    );
    let bundle = dir.path().join("out.bundle.jsonl");
    let (ok, _, text) = run(Command::new(&bin)
        .arg("verify-bundle")
        .arg(&bundle)
        .args(["--log-key", &key]));
    assert!(ok, "{text}");
    assert!(dir.path().join("out.html").exists() && dir.path().join("out.json").exists());
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

/// Resets this process's peak RSS (Linux `clear_refs` 5), so the next
/// [`peak_rss_mb`] reads the peak of one phase. False when not possible.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// This process's peak RSS (`VmHWM`) in MB, when readable.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs `f`, printing its wall time and peak RSS under `name`.
fn phase<T>(name: &str, f: impl FnOnce() -> T) -> (T, std::time::Duration) {
    let reset = reset_peak_rss();
    let t = Instant::now();
    let out = f();
    let took = t.elapsed();
    let rss = peak_rss_mb().map_or_else(|| "?".to_owned(), |m| format!("{m:.0}"));
    eprintln!(
        "evidence bench: {name}: {:.2} s, peak RSS {rss} MB{}",
        took.as_secs_f64(),
        if reset {
            ""
        } else {
            " (whole process: clear_refs refused)"
        }
    );
    (out, took)
}

fn env_days(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|d| d.parse().ok())
}

/// The benchmark of `docs/bench/evidence.md`: an enterprise of 200 devices
/// (10 gateways × 20 devices) for `SHUZHUAN_EVIDENCE_BENCH_DAYS` days
/// (default 1, so the suite stays fast) of 96 windows a day, generated and
/// ingested a day at a time with the log as accept hook. Then, streaming:
/// export the line-oriented bundle to a file, verify the file, verify a
/// claim (export + verify + judge without a file). Baseline in the same run:
/// the whole-document format 1 in memory (export into memory, serialize,
/// parse, verify) over `SHUZHUAN_EVIDENCE_BENCH_BASELINE_DAYS` (default:
/// the span, at most 30 days), and the streaming path over the same span.
/// Prints wall time and per-phase peak RSS.
#[test]
fn bench_enterprise_of_200_devices() {
    let days = env_days("SHUZHUAN_EVIDENCE_BENCH_DAYS").unwrap_or(1);
    let base_days = env_days("SHUZHUAN_EVIDENCE_BENCH_BASELINE_DAYS")
        .unwrap_or(days.min(30))
        .min(days);
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir.path().join("agg.db"), 10);
    let log = EvidenceLog::open(&s, ORIGIN, log_key()).unwrap();
    let windows = days * DAY;
    let plant = Plant {
        devices: 20,
        ..PLANT
    };
    let trusted = log_key().verifying_key();

    phase("generate + ingest with the log (a day at a time)", || {
        let mut gens: Vec<Gen> = (0..10u8)
            .map(|i| Gen::new(&format!("gw-1-{i}"), &code(1), &agent_key(10 + i), plant))
            .collect();
        for day in 0..days {
            for g in &mut gens {
                let batch = g.windows(day * DAY, (day + 1) * DAY);
                s.ingest_batch(&g.agent, &batch, T0 + 400 * 86_400, 8 * 3600, &log)
                    .unwrap();
            }
        }
    });

    let end = T0 + windows as i64 * WINDOW;
    let file = std::env::var_os("SHUZHUAN_EVIDENCE_BENCH_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("bundle.jsonl"));
    let (stats, _) = phase("export (stream to file)", || {
        let f = std::fs::File::create(&file).unwrap();
        evidence::export_bundle_to(
            &s,
            &log,
            &code(1),
            T0,
            end,
            std::io::BufWriter::with_capacity(1 << 20, f),
        )
        .unwrap()
    });
    let bytes = std::fs::metadata(&file).unwrap().len();
    let (v, _) = phase("verify-bundle (stream from file)", || {
        evidence::verify_bundle_file(&file, &log.public_key_b64()).unwrap()
    });
    assert!(v.ok, "{:?}", v.problems.first());
    assert_eq!(v.figures.devices_reporting, 200);
    assert_eq!(v.reports_accepted, 10 * windows);

    let text = format!(
        "enterprise = \"{}\"\nrecognition = \"smart_workshop\"\n[window]\nstart = 2026-01-01T00:00:00Z\nend = {}\n[figures]\ndevices_connected = 200\nutilisation_pct = 66\n",
        code(1),
        toml_utc(end)
    );
    let c = Claim::parse("bench.toml", &text).unwrap();
    let (out, _) = phase("verify-claim (export + verify + judge, streamed)", || {
        evidence::verify_claim(&s, &log, &c, &policy()).unwrap()
    });
    assert!(out
        .judgement
        .figures
        .iter()
        .all(|f| f.verdict == Verdict::Supported));
    let full = stats.proof_nodes_written + stats.proof_nodes_reused;
    eprintln!(
        "evidence bench: days={days} reports={} summaries={} bundle_bytes={bytes} ({:.1} MB, {:.0} B/report) proof nodes: {} written of {full} ({:.1} %), full paths would add {:.1} MB",
        10 * windows,
        200 * windows,
        bytes as f64 / 1e6,
        bytes as f64 / (10 * windows) as f64,
        stats.proof_nodes_written,
        100.0 * stats.proof_nodes_written as f64 / full.max(1) as f64,
        stats.proof_nodes_reused as f64 * 67.0 / 1e6
    );

    // Baseline in the same run: the streaming path and format 1 with the
    // whole document in memory, both over `base_days`. The streaming phase
    // runs first: memory the allocator keeps after the in-memory phase
    // would otherwise count in its peak.
    let base_end = T0 + (base_days * DAY) as i64 * WINDOW;
    let base_file = dir.path().join("base.jsonl");
    let ((), t_new) = phase(
        &format!("format 2 streamed, {base_days} days: export to file + verify file"),
        || {
            let f = std::fs::File::create(&base_file).unwrap();
            evidence::export_bundle_to(
                &s,
                &log,
                &code(1),
                T0,
                base_end,
                std::io::BufWriter::with_capacity(1 << 20, f),
            )
            .unwrap();
            let v = evidence::verify_bundle_file(&base_file, &log.public_key_b64()).unwrap();
            assert!(v.ok);
            eprintln!(
                "evidence bench: format 2, {base_days} days: {} bytes",
                std::fs::metadata(&base_file).unwrap().len()
            );
        },
    );
    let ((), t_old) = phase(
        &format!(
            "baseline format 1 in memory, {base_days} days: export + serialize + parse + verify"
        ),
        || {
            let b = evidence::export_bundle(&s, &log, &code(1), T0, base_end).unwrap();
            let json = b.to_json();
            drop(b);
            let parsed = Bundle::from_json(&json).unwrap();
            let v = verify_bundle(&parsed, &trusted);
            assert!(v.ok);
            eprintln!(
                "evidence bench: format 1, {base_days} days: {} bytes",
                json.len()
            );
        },
    );
    eprintln!(
        "evidence bench: time format 2 / format 1 over {base_days} days: {:.2}",
        t_new.as_secs_f64() / t_old.as_secs_f64()
    );
}

/// A TOML offset date-time (UTC) for Unix seconds.
fn toml_utc(t: i64) -> String {
    let html = shuzhuan_aggregator::evidence::html::utc(t); // "YYYY-MM-DD HH:MM UTC"
    let (date, rest) = html.split_once(' ').unwrap();
    format!("{date}T{}:00Z", &rest[..5])
}
