//! Synthetic signed reports, a log and bundles for the evidence and claim
//! unit tests: two agents of one enterprise, plus a neighbour enterprise
//! whose reports share the log.

use super::*;
use crate::inventory::{Device, DeviceKind, Inventory, KeyProcess};
use crate::merkle::{CheckpointSigner, MerkleLog};
use crate::report::{Report, SCHEMA_VERSION};
use crate::state::{DeviceState, StateSeconds};
use crate::summary::{EnergyDelta, EnergyMethod, WindowSummary};

pub const ENTERPRISE: &str = "91350100M000100Y43";
pub const WINDOW: i64 = 900;
pub const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

pub fn enterprise() -> CreditCode {
    CreditCode::parse(ENTERPRISE).unwrap()
}

pub fn neighbour() -> CreditCode {
    CreditCode::from_body("91410100MA0000000").unwrap()
}

pub fn agent_key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

pub fn log_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// How the synthetic plant behaves in window `w` for device `d`.
#[derive(Debug, Clone, Copy)]
pub struct Plant {
    /// Productive seconds per window.
    pub productive: u32,
    /// kWh per window per device.
    pub kwh: f64,
    /// Windows `[from, to)` in which agent 1 was down (no report at all).
    pub outage: Option<(u64, u64)>,
}

impl Default for Plant {
    fn default() -> Self {
        Plant {
            productive: 600,
            kwh: 2.5,
            outage: None,
        }
    }
}

pub fn inventory(agent: &str) -> Inventory {
    Inventory {
        devices: (1..=3)
            .map(|d| Device {
                id: format!("{agent}-cnc-{d}"),
                name: format!("Lathe {d}"),
                kind: DeviceKind::CncMachineTool,
                production: true,
                declared_digital: true,
                declared_networked: true,
                declared_nc: true,
                key_process: Some("machining".into()),
                original_value_cny: None,
            })
            .collect(),
        key_processes: vec![KeyProcess {
            id: "machining".into(),
            name: "精加工".into(),
            declared_nc: true,
        }],
    }
}

fn summary(device: String, p: &Plant) -> WindowSummary {
    let mut s = StateSeconds::default();
    s.add(DeviceState::Productive, p.productive);
    s.add(DeviceState::Standby, WINDOW as u32 - p.productive);
    WindowSummary {
        device_id: device,
        state_seconds: s,
        nc_seconds: p.productive,
        energy: vec![EnergyDelta {
            meter: "m".into(),
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
}

/// `windows` reports of one agent, starting at `T0`, in seq order.
pub fn chain(
    agent: &str,
    ent: &CreditCode,
    key: &SigningKey,
    windows: u64,
    p: &Plant,
) -> Vec<SignedReport> {
    let mut prev = Hash32::GENESIS;
    let mut seq = 0;
    let mut out = Vec::new();
    for w in 0..windows {
        if p.outage.is_some_and(|(a, b)| w >= a && w < b) {
            continue;
        }
        seq += 1;
        let start = T0 + w as i64 * WINDOW;
        let r = Report {
            schema: SCHEMA_VERSION,
            agent_id: agent.into(),
            enterprise: ent.clone(),
            seq,
            prev_hash: prev,
            window_start: start,
            window_end: start + WINDOW,
            created_at: start + WINDOW + 3,
            inventory: (w % 96 == 0).then(|| inventory(agent)),
            summaries: (1..=3)
                .map(|d| summary(format!("{agent}-cnc-{d}"), p))
                .collect(),
        };
        let (signed, h) = r.sign(key);
        prev = h;
        out.push(signed);
    }
    out
}

/// A log holding both agents' reports and the neighbour's, interleaved as
/// an aggregator would append them, with a checkpoint over all of it.
pub struct World {
    pub log: MerkleLog,
    pub checkpoint: SignedCheckpoint,
    /// `(leaf_index, report)` of the enterprise's reports.
    pub ours: Vec<(u64, SignedReport)>,
    pub enrolments: Vec<Enrolment>,
    /// A checkpoint signed earlier, at a smaller size.
    pub earlier: SignedCheckpoint,
}

pub fn enrolment(agent: &str, ent: &CreditCode, key: &SigningKey) -> Enrolment {
    Enrolment {
        agent_id: agent.into(),
        enterprise: ent.clone(),
        public_key: crate::report::verifying_key_to_b64(&key.verifying_key()),
        enrolled_at: T0 - 86_400,
        revoked_at: None,
    }
}

pub fn world(windows: u64, p: &Plant) -> World {
    let ent = enterprise();
    let a = chain("gw-1", &ent, &agent_key(7), windows, p);
    let b = chain(
        "gw-2",
        &ent,
        &agent_key(8),
        windows,
        &Plant { outage: None, ..*p },
    );
    let n = chain(
        "gw-n",
        &neighbour(),
        &agent_key(9),
        windows,
        &Plant::default(),
    );
    let mut log = MerkleLog::new();
    let mut signer = CheckpointSigner::new("shuzhuan.test/evidence", log_key(), None);
    let mut ours = Vec::new();
    let mut earlier = None;
    let push = |log: &mut MerkleLog, r: &SignedReport, mine: bool, ours: &mut Vec<_>| {
        let (_, payload) = r.peek().unwrap();
        let i = log.push_leaf_hash(report_leaf_hash(&payload));
        if mine {
            ours.push((i, r.clone()));
        }
    };
    let longest = a.len().max(b.len()).max(n.len());
    for i in 0..longest {
        if let Some(r) = n.get(i) {
            push(&mut log, r, false, &mut ours);
        }
        if let Some(r) = a.get(i) {
            push(&mut log, r, true, &mut ours);
        }
        if let Some(r) = b.get(i) {
            push(&mut log, r, true, &mut ours);
        }
        if i == longest / 2 {
            earlier = Some(signer.sign_log(&log).unwrap());
        }
    }
    let checkpoint = signer.sign_log(&log).unwrap();
    World {
        log,
        checkpoint,
        ours,
        enrolments: vec![
            enrolment("gw-1", &ent, &agent_key(7)),
            enrolment("gw-2", &ent, &agent_key(8)),
        ],
        earlier: earlier.unwrap(),
    }
}

impl World {
    pub fn bundle(&self, windows: u64) -> Bundle {
        self.bundle_with(windows, self.enrolments.clone(), self.ours.clone())
    }

    pub fn bundle_with(
        &self,
        windows: u64,
        enrolments: Vec<Enrolment>,
        entries: Vec<(u64, SignedReport)>,
    ) -> Bundle {
        build_bundle(
            BundleScope {
                enterprise: enterprise(),
                window_start: T0,
                window_end: T0 + windows as i64 * WINDOW,
                enrolments,
            },
            &self.log,
            &log_key(),
            self.checkpoint.clone(),
            entries,
        )
        .unwrap()
    }
}
