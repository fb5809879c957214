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
//! [`FiguresBuilder`] accumulates them report by report (per-device,
//! per-carrier and per-agent totals only), so a bundle of any length is
//! verified in bounded memory. The indicator engine's
//! `crate::indicators::rates::MeasuredData` accumulates the same per-device
//! totals from an iterator; the claim arithmetic could move onto it.

use super::Enrolment;
use crate::inventory::Inventory;
use crate::report::{Report, VerifiedReport};
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
        let mut b = FiguresBuilder::new(start, end, enrolments);
        for r in reports {
            b.add(&r.report);
        }
        b.finish()
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

/// Accumulates the figures of one window report by report, so a bundle can
/// be verified as a stream: it keeps per-device and per-carrier totals, one
/// inventory and a few merged time spans per agent, never the reports.
#[derive(Debug, Clone)]
pub struct FiguresBuilder {
    start: i64,
    end: i64,
    reports: u64,
    agents: BTreeSet<String>,
    /// Per agent, covered spans; adjacent or overlapping spans arriving in
    /// time order are merged on the fly, so this stays as small as the gaps.
    spans: BTreeMap<String, Vec<(i64, i64)>>,
    devices: BTreeMap<String, DeviceFigures>,
    energy: BTreeMap<(String, String), (f64, f64)>,
    inventories: BTreeMap<String, (i64, Inventory)>,
}

impl FiguresBuilder {
    /// An empty accumulator for `start..end` and these enrolled agents.
    pub fn new(start: i64, end: i64, enrolments: &[Enrolment]) -> FiguresBuilder {
        FiguresBuilder {
            start,
            end,
            reports: 0,
            agents: enrolments.iter().map(|e| e.agent_id.clone()).collect(),
            spans: BTreeMap::new(),
            devices: BTreeMap::new(),
            energy: BTreeMap::new(),
            inventories: BTreeMap::new(),
        }
    }

    /// The window this accumulator sums.
    pub fn window(&self) -> (i64, i64) {
        (self.start, self.end)
    }

    /// Adds one verified report; a report not wholly inside the window is
    /// ignored.
    pub fn add(&mut self, r: &Report) {
        if r.window_start < self.start || r.window_end > self.end {
            return;
        }
        self.reports += 1;
        let spans = match self.spans.get_mut(r.agent_id.as_str()) {
            Some(s) => s,
            None => self.spans.entry(r.agent_id.clone()).or_default(),
        };
        match spans.last_mut() {
            Some(last) if r.window_start >= last.0 && r.window_start <= last.1 => {
                last.1 = last.1.max(r.window_end);
            }
            _ => spans.push((r.window_start, r.window_end)),
        }
        if let Some(inv) = &r.inventory {
            match self.inventories.get_mut(r.agent_id.as_str()) {
                Some(slot) if r.window_start >= slot.0 => *slot = (r.window_start, inv.clone()),
                Some(_) => {}
                None => {
                    self.inventories
                        .insert(r.agent_id.clone(), (r.window_start, inv.clone()));
                }
            }
        }
        for s in &r.summaries {
            let d = match self.devices.get_mut(s.device_id.as_str()) {
                Some(d) => d,
                None => self
                    .devices
                    .entry(s.device_id.clone())
                    .or_insert_with(|| DeviceFigures {
                        device_id: s.device_id.clone(),
                        ..DeviceFigures::default()
                    }),
            };
            for st in DeviceState::ALL {
                let v = u64::from(s.state_seconds.get(st));
                if v > 0 {
                    match d.state_seconds.get_mut(st.as_str()) {
                        Some(x) => *x += v,
                        None => {
                            d.state_seconds.insert(st.as_str().to_owned(), v);
                        }
                    }
                }
            }
            d.nc_seconds += u64::from(s.nc_seconds);
            d.parts += s.parts.unwrap_or(0);
            d.samples_expected += u64::from(s.samples_expected);
            d.samples_received += u64::from(s.samples_received);
            for e in &s.energy {
                let slot = self
                    .energy
                    .entry((e.carrier.clone(), e.unit.clone()))
                    .or_default();
                slot.0 += e.quantity;
                slot.1 += e.exported;
            }
        }
    }

    /// The figures of the window.
    pub fn finish(self) -> Figures {
        let (start, end) = (self.start, self.end);
        let mut f = Figures {
            window_start: start,
            window_end: end,
            reports: self.reports,
            ..Figures::default()
        };
        f.agents_enrolled = self.agents.len() as u64;
        let len = (end - start).max(0) as u64;
        f.expected_secs = len * f.agents_enrolled;
        f.agents_reporting = self.spans.len() as u64;
        let mut spans = self.spans;
        for agent in &self.agents {
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

        for d in self.devices.values() {
            f.samples_expected += d.samples_expected;
            f.samples_received += d.samples_received;
            f.nc_seconds += d.nc_seconds;
            f.parts += d.parts;
            for (k, v) in &d.state_seconds {
                *f.state_seconds.entry(k.clone()).or_default() += v;
            }
        }
        f.devices_seen = self.devices.len() as u64;
        f.devices_reporting = self
            .devices
            .values()
            .filter(|d| d.samples_received > 0)
            .count() as u64;
        f.devices = self.devices.into_values().collect();
        f.energy = self
            .energy
            .into_iter()
            .map(|((carrier, unit), (quantity, exported))| CarrierEnergy {
                carrier,
                unit,
                quantity,
                exported,
            })
            .collect();
        if !self.inventories.is_empty() {
            let mut merged = Inventory::default();
            for (_, inv) in self.inventories.into_values() {
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
}
