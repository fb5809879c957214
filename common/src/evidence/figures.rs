//! The measured figures of an evidence bundle, recomputed from verified
//! reports alone: which agents and devices reported, how much of the window
//! the reports cover, samples expected and received, seconds per state,
//! NC seconds, parts and energy per carrier, per device and in total.
//!
//! These are sums and counts only. Rates that need a policy parameter (the
//! coverage at which a device counts as networked, the NC share at which a
//! key process counts as NC) are derived from them in `crate::claim`, with
//! the parameters from `config/claims/thresholds.toml`.
//!
//! The indicator engine (`crate::indicators`) is not filled in yet; when it
//! is, the rate arithmetic in `crate::claim` should call it instead.

use super::Enrolment;
use crate::inventory::Inventory;
use crate::report::VerifiedReport;
use crate::state::DeviceState;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How many uncovered intervals a figure set lists by name (the count is
/// always complete).
const MAX_LISTED_GAPS: usize = 50;

/// Seconds per state, by state name.
pub type StateTotals = BTreeMap<String, u64>;

/// Energy of one carrier (quantities in its unit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarrierEnergy {
    pub carrier: String,
    pub unit: String,
    pub quantity: f64,
    pub exported: f64,
}

/// One device's sums over the window.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeviceFigures {
    pub device_id: String,
    pub state_seconds: StateTotals,
    pub nc_seconds: u64,
    pub parts: u64,
    pub samples_expected: u64,
    pub samples_received: u64,
}

impl DeviceFigures {
    pub fn seconds(&self, s: DeviceState) -> u64 {
        self.state_seconds.get(s.as_str()).copied().unwrap_or(0)
    }
    /// Received / expected samples; `None` when nothing was expected.
    pub fn coverage(&self) -> Option<f64> {
        (self.samples_expected > 0)
            .then(|| self.samples_received as f64 / self.samples_expected as f64)
    }
}

/// A stretch of the window for which an agent sent no report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uncovered {
    pub agent_id: String,
    pub start: i64,
    pub end: i64,
}

/// The figures of one window.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Figures {
    pub window_start: i64,
    pub window_end: i64,
    pub reports: u64,
    /// Distinct agents with an enrolment in the bundle.
    pub agents_enrolled: u64,
    /// Distinct agents with at least one accepted report in the window.
    pub agents_reporting: u64,
    /// Seconds of the window covered by reports, summed over enrolled agents.
    pub covered_secs: u64,
    /// Enrolled agents × window length.
    pub expected_secs: u64,
    /// `covered_secs / expected_secs` (0 when nothing is expected).
    pub time_coverage: f64,
    /// Number of uncovered stretches, and the first few of them.
    pub uncovered_count: u64,
    pub uncovered: Vec<Uncovered>,
    /// Devices named in any summary.
    pub devices_seen: u64,
    /// Devices with at least one good sample.
    pub devices_reporting: u64,
    pub samples_expected: u64,
    pub samples_received: u64,
    pub state_seconds: StateTotals,
    pub nc_seconds: u64,
    pub parts: u64,
    /// Per carrier and unit, sorted.
    pub energy: Vec<CarrierEnergy>,
    pub devices: Vec<DeviceFigures>,
    /// The declared inventory: each agent's latest in the window, merged.
    pub inventory: Option<Inventory>,
}

impl Figures {
    /// Received / expected samples over all devices; `None` when nothing was expected.
    pub fn sample_coverage(&self) -> Option<f64> {
        (self.samples_expected > 0)
            .then(|| self.samples_received as f64 / self.samples_expected as f64)
    }

    pub fn device(&self, id: &str) -> Option<&DeviceFigures> {
        self.devices.iter().find(|d| d.device_id == id)
    }

    /// Sums the reports that lie wholly inside `start..end`.
    pub fn compute(
        reports: &[VerifiedReport],
        start: i64,
        end: i64,
        enrolments: &[Enrolment],
    ) -> Figures {
        let inside: Vec<&VerifiedReport> = reports
            .iter()
            .filter(|r| r.report.window_start >= start && r.report.window_end <= end)
            .collect();
        let mut f = Figures {
            window_start: start,
            window_end: end,
            ..Figures::default()
        };
        f.reports = inside.len() as u64;

        let agents: BTreeSet<&str> = enrolments.iter().map(|e| e.agent_id.as_str()).collect();
        f.agents_enrolled = agents.len() as u64;
        let len = (end - start).max(0) as u64;
        f.expected_secs = len * f.agents_enrolled;

        let mut spans: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
        let mut devices: BTreeMap<&str, DeviceFigures> = BTreeMap::new();
        let mut energy: BTreeMap<(&str, &str), (f64, f64)> = BTreeMap::new();
        let mut inventories: BTreeMap<&str, (i64, &Inventory)> = BTreeMap::new();
        for vr in &inside {
            let r = &vr.report;
            spans
                .entry(r.agent_id.as_str())
                .or_default()
                .push((r.window_start, r.window_end));
            if let Some(inv) = &r.inventory {
                let slot = inventories
                    .entry(r.agent_id.as_str())
                    .or_insert((r.window_start, inv));
                if r.window_start >= slot.0 {
                    *slot = (r.window_start, inv);
                }
            }
            for s in &r.summaries {
                let d = devices
                    .entry(s.device_id.as_str())
                    .or_insert_with(|| DeviceFigures {
                        device_id: s.device_id.clone(),
                        ..DeviceFigures::default()
                    });
                for st in DeviceState::ALL {
                    let v = u64::from(s.state_seconds.get(st));
                    if v > 0 {
                        *d.state_seconds.entry(st.as_str().to_owned()).or_default() += v;
                    }
                }
                d.nc_seconds += u64::from(s.nc_seconds);
                d.parts += s.parts.unwrap_or(0);
                d.samples_expected += u64::from(s.samples_expected);
                d.samples_received += u64::from(s.samples_received);
                for e in &s.energy {
                    let slot = energy
                        .entry((e.carrier.as_str(), e.unit.as_str()))
                        .or_default();
                    slot.0 += e.quantity;
                    slot.1 += e.exported;
                }
            }
        }
        f.agents_reporting = spans.len() as u64;

        for agent in &agents {
            let mut list = spans.remove(agent).unwrap_or_default();
            list.sort_unstable();
            let mut cursor = start;
            for (s, e) in list {
                if s > cursor {
                    f.note_gap(agent, cursor, s);
                }
                if e > cursor {
                    f.covered_secs += (e - s.max(cursor)) as u64;
                    cursor = e;
                }
            }
            if cursor < end {
                f.note_gap(agent, cursor, end);
            }
        }
        f.time_coverage = if f.expected_secs == 0 {
            0.0
        } else {
            f.covered_secs as f64 / f.expected_secs as f64
        };

        for d in devices.values() {
            f.samples_expected += d.samples_expected;
            f.samples_received += d.samples_received;
            f.nc_seconds += d.nc_seconds;
            f.parts += d.parts;
            for (k, v) in &d.state_seconds {
                *f.state_seconds.entry(k.clone()).or_default() += v;
            }
        }
        f.devices_seen = devices.len() as u64;
        f.devices_reporting = devices.values().filter(|d| d.samples_received > 0).count() as u64;
        f.devices = devices.into_values().collect();
        f.energy = energy
            .into_iter()
            .map(|((c, u), (q, x))| CarrierEnergy {
                carrier: c.to_owned(),
                unit: u.to_owned(),
                quantity: q,
                exported: x,
            })
            .collect();
        if !inventories.is_empty() {
            let mut merged = Inventory::default();
            for (_, inv) in inventories.into_values() {
                for d in &inv.devices {
                    if !merged.devices.iter().any(|m| m.id == d.id) {
                        merged.devices.push(d.clone());
                    }
                }
                for k in &inv.key_processes {
                    if !merged.key_processes.iter().any(|m| m.id == k.id) {
                        merged.key_processes.push(k.clone());
                    }
                }
            }
            f.inventory = Some(merged);
        }
        f
    }

    fn note_gap(&mut self, agent: &str, start: i64, end: i64) {
        self.uncovered_count += 1;
        if self.uncovered.len() < MAX_LISTED_GAPS {
            self.uncovered.push(Uncovered {
                agent_id: agent.to_owned(),
                start,
                end,
            });
        }
    }
}
