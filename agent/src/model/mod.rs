//! The device model: machine state, energy and part counts from samples,
//! accumulated per device over report windows aligned to wall-clock
//! boundaries (of the agent's clock, so simulated time in dry runs).
//!
//! Accounting uses the batches' own timestamps: a classified state holds
//! from one batch to the next, for at most `max_gap_polls` poll intervals;
//! after that, and whenever a device does not answer, time counts as
//! `Disconnected`, never as off.

pub mod classify;
pub mod counter;

use crate::sample::{Quality, SampleBatch};
use classify::{classify, PowerThresholds, Signals};
use counter::Counter;
use shuzhuan_common::profile::TagRole;
use shuzhuan_common::state::{DeviceState, StateSeconds};
use shuzhuan_common::summary::{EnergyDelta, EnergyMethod, QualityFlag, WindowSummary};
use std::collections::{BTreeMap, BTreeSet};

/// Model parameters of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceParams {
    pub id: String,
    /// `false`: the device has no link (not digitized): always disconnected.
    pub has_link: bool,
    pub poll_interval_ms: u64,
    pub thresholds: PowerThresholds,
    /// A new state must persist this long before it is taken (0: at once).
    pub min_dwell_ms: i64,
    /// A state holds this many poll intervals after the last good batch.
    pub max_gap_polls: u32,
    /// Upper bound of plausible power (kW), for counter plausibility.
    pub max_kw: f64,
    /// Upper bound of plausible parts per second.
    pub max_parts_per_s: f64,
}

impl DeviceParams {
    /// Defaults for a linked device.
    pub fn new(id: impl Into<String>, poll_interval_ms: u64) -> DeviceParams {
        DeviceParams {
            id: id.into(),
            has_link: true,
            poll_interval_ms: poll_interval_ms.max(1),
            thresholds: PowerThresholds::default(),
            min_dwell_ms: 0,
            max_gap_polls: 3,
            max_kw: 10_000.0,
            max_parts_per_s: 100.0,
        }
    }
}

/// Unit of an energy carrier's quantity.
pub fn carrier_unit(carrier: &str) -> &'static str {
    match carrier {
        "natural_gas" | "water" | "compressed_air" => "m3",
        "steam" => "t",
        _ => "kWh",
    }
}

/// One device's running model and the current window's accumulators.
#[derive(Debug, Clone)]
pub struct DeviceModel {
    pub params: DeviceParams,
    /// The state in force.
    pub state: DeviceState,
    nc: bool,
    candidate: Option<(DeviceState, i64)>,
    /// Time is accounted up to here.
    cursor: Option<i64>,
    /// Where accounting began in the current window.
    acc_start: Option<i64>,
    last_good: Option<i64>,
    ms: [i64; 7],
    nc_ms: i64,
    counters: BTreeMap<String, Counter>,
    energy: BTreeMap<(String, String), (f64, f64)>,
    has_energy_counter: bool,
    power: Option<(i64, f64)>,
    integrated_kwh: f64,
    parts_counter: Counter,
    parts: Option<u64>,
    parts_acc: f64,
    received: u32,
    flags: BTreeSet<QualityFlag>,
    /// Last good power reading (for metrics and the status page).
    pub last_power_kw: Option<f64>,
}

impl DeviceModel {
    pub fn new(params: DeviceParams) -> DeviceModel {
        DeviceModel {
            params,
            state: DeviceState::Disconnected,
            nc: false,
            candidate: None,
            cursor: None,
            acc_start: None,
            last_good: None,
            ms: [0; 7],
            nc_ms: 0,
            counters: BTreeMap::new(),
            energy: BTreeMap::new(),
            has_energy_counter: false,
            power: None,
            integrated_kwh: 0.0,
            parts_counter: Counter::default(),
            parts: None,
            parts_acc: 0.0,
            received: 0,
            flags: BTreeSet::new(),
            last_power_kw: None,
        }
    }

    fn gap_ms(&self) -> i64 {
        self.params.poll_interval_ms as i64 * i64::from(self.params.max_gap_polls.max(1))
    }

    /// Starts accounting at `t` (the agent's start, or a window start).
    pub fn start_at(&mut self, t: i64) {
        if self.cursor.is_none() {
            self.cursor = Some(t);
        }
        if self.acc_start.is_none() {
            self.acc_start = Some(t);
        }
    }

    /// Attributes `[cursor, to)` to the state in force, the part after the
    /// hold limit to `Disconnected`.
    fn advance(&mut self, to: i64) {
        let Some(from) = self.cursor else {
            self.cursor = Some(to);
            return;
        };
        if to <= from {
            return;
        }
        let hold_until = match self.last_good {
            Some(g) if self.state != DeviceState::Disconnected => (g + self.gap_ms()).max(from),
            _ => from,
        };
        let known_end = hold_until.min(to);
        if known_end > from {
            self.ms[self.state.index()] += known_end - from;
            if self.state == DeviceState::Productive && self.nc {
                self.nc_ms += known_end - from;
            }
            // Power integration over the same held stretch.
            if let Some((_, p)) = self.power {
                self.integrated_kwh += p.max(0.0) * (known_end - from) as f64 / 3_600_000.0;
            }
        }
        if to > known_end {
            self.ms[DeviceState::Disconnected.index()] += to - known_end;
        }
        self.cursor = Some(to);
    }

    /// Feeds one poll cycle. Batches older than the accounted time are
    /// counted but do not move time backwards.
    pub fn feed(&mut self, b: &SampleBatch) {
        let ts = b.ts_ms.max(self.cursor.unwrap_or(b.ts_ms));
        self.advance(ts);
        let any_good = b.samples.iter().any(|s| s.quality.is_good());
        if !b.reachable || !any_good {
            self.state = DeviceState::Disconnected;
            self.candidate = None;
            self.power = None;
            return;
        }
        self.received = self.received.saturating_add(1);
        self.last_good = Some(ts);
        if b.samples.iter().any(|s| s.quality == Quality::Uncertain) {
            self.flags.insert(QualityFlag::Uncertain);
        }
        let sig = Signals::of(b);
        if let Some(new) = classify(&sig, self.state, &self.params.thresholds) {
            if new == self.state
                || self.state == DeviceState::Disconnected
                || self.params.min_dwell_ms <= 0
            {
                self.state = new;
                self.candidate = None;
            } else {
                match self.candidate {
                    Some((c, since)) if c == new => {
                        if ts - since >= self.params.min_dwell_ms {
                            self.state = new;
                            self.candidate = None;
                        }
                    }
                    _ => self.candidate = Some((new, ts)),
                }
            }
        }
        self.nc = sig.nc();
        self.power = sig.power_kw.map(|p| (ts, p));
        if sig.power_kw.is_some() {
            self.last_power_kw = sig.power_kw;
        }
        for s in &b.samples {
            if !s.quality.is_good() {
                continue;
            }
            let Some(v) = s.value.as_ref().and_then(|v| v.as_f64()) else {
                continue;
            };
            match s.role {
                TagRole::EnergyCounter | TagRole::EnergyExport => {
                    let export = s.role == TagRole::EnergyExport;
                    if !export {
                        self.has_energy_counter = true;
                    }
                    let carrier = s.carrier.as_deref().unwrap_or("electricity").to_owned();
                    let (d, flag) = self.counters.entry(s.tag.to_string()).or_default().update(
                        ts,
                        v,
                        self.params.max_kw / 3600.0,
                    );
                    if let Some(f) = flag {
                        self.flags.insert(f);
                    }
                    let e = self
                        .energy
                        .entry((s.tag.to_string(), carrier))
                        .or_insert((0.0, 0.0));
                    if export {
                        e.1 += d;
                    } else {
                        e.0 += d;
                    }
                }
                TagRole::PartCounter => {
                    let (d, flag) = self
                        .parts_counter
                        .update(ts, v, self.params.max_parts_per_s);
                    if let Some(f) = flag {
                        self.flags.insert(f);
                    }
                    self.parts_acc += d;
                    self.parts = Some(self.parts.unwrap_or(0));
                }
                _ => {}
            }
        }
    }

    /// Closes the window `[start_ms, end_ms)` and returns its summary,
    /// resetting the accumulators (state, counters and hold carry on).
    /// `partial` marks a window the agent did not see whole.
    pub fn seal(&mut self, start_ms: i64, end_ms: i64, partial: bool) -> WindowSummary {
        self.seal_until(start_ms, end_ms, end_ms, partial)
    }

    /// [`DeviceModel::seal`] for an agent that stops at `stop_ms` inside the
    /// window (shutdown): time is accounted up to `stop_ms`, the rest of the
    /// window is unknown (`Disconnected`), and only the polls due before
    /// `stop_ms` are expected, so a stop does not read as missed samples.
    pub fn seal_until(
        &mut self,
        start_ms: i64,
        end_ms: i64,
        stop_ms: i64,
        partial: bool,
    ) -> WindowSummary {
        let stop_ms = stop_ms.clamp(start_ms, end_ms);
        let window_secs = ((end_ms - start_ms) / 1000) as u32;
        let mut flags = std::mem::take(&mut self.flags);
        if !self.params.has_link {
            self.ms = [0; 7];
            self.cursor = Some(end_ms);
            self.acc_start = Some(end_ms);
            let expected = 0;
            return WindowSummary::disconnected(self.params.id.clone(), window_secs, expected);
        }
        let started = self
            .acc_start
            .or(self.cursor)
            .unwrap_or(end_ms)
            .clamp(start_ms, end_ms);
        if started > start_ms {
            flags.insert(QualityFlag::PartialWindow);
            // Time before the agent started is unknown.
            self.ms[DeviceState::Disconnected.index()] += started - start_ms;
        }
        if self.cursor.is_none() {
            self.cursor = Some(started);
        }
        if partial || stop_ms < end_ms {
            flags.insert(QualityFlag::PartialWindow);
        }
        // Accounted to the stop; `round_seconds` gives the rest to Disconnected.
        self.advance(stop_ms.max(started));
        let state_seconds = round_seconds(&self.ms, window_secs);
        let productive = state_seconds.get(DeviceState::Productive);
        let nc_seconds = ((self.nc_ms / 1000) as u32).min(productive);
        let mut energy: Vec<EnergyDelta> = self
            .energy
            .iter()
            .map(|((meter, carrier), (q, x))| EnergyDelta {
                meter: meter.clone(),
                carrier: carrier.clone(),
                quantity: *q,
                unit: carrier_unit(carrier).to_owned(),
                method: EnergyMethod::Counter,
                exported: *x,
            })
            .collect();
        if !self.has_energy_counter && (self.integrated_kwh > 0.0 || self.last_power_kw.is_some()) {
            flags.insert(QualityFlag::PowerIntegrated);
            energy.push(EnergyDelta {
                meter: format!("{}:power", self.params.id),
                carrier: "electricity".into(),
                quantity: self.integrated_kwh,
                unit: "kWh".into(),
                method: EnergyMethod::PowerIntegration,
                exported: 0.0,
            });
        }
        let parts = self.parts.map(|_| self.parts_acc.round().max(0.0) as u64);
        let covered = (stop_ms - started).max(0) as u64;
        let expected = covered.div_ceil(self.params.poll_interval_ms) as u32;
        let summary = WindowSummary {
            device_id: self.params.id.clone(),
            state_seconds,
            nc_seconds,
            energy,
            parts,
            samples_expected: expected,
            samples_received: self.received.min(expected),
            flags: flags.into_iter().collect(),
        };
        self.ms = [0; 7];
        self.acc_start = Some(end_ms);
        self.nc_ms = 0;
        self.energy.clear();
        self.integrated_kwh = 0.0;
        self.parts = None;
        self.parts_acc = 0.0;
        self.received = 0;
        summary
    }
}

/// Milliseconds per state to whole seconds adding up to `window_secs`
/// exactly (largest remainder; any shortfall of accounted time goes to
/// `Disconnected`).
pub fn round_seconds(ms: &[i64; 7], window_secs: u32) -> StateSeconds {
    let total_ms = i64::from(window_secs) * 1000;
    let mut ms = *ms;
    let sum: i64 = ms.iter().sum();
    if sum < total_ms {
        ms[DeviceState::Disconnected.index()] += total_ms - sum;
    } else if sum > total_ms {
        // Scale down (cannot happen when accounting is exact).
        for m in ms.iter_mut() {
            *m = *m * total_ms / sum;
        }
    }
    let mut secs = [0u32; 7];
    let mut rem: Vec<(i64, usize)> = Vec::new();
    let mut used = 0u32;
    for (i, m) in ms.iter().enumerate() {
        secs[i] = (*m / 1000) as u32;
        used += secs[i];
        rem.push((*m % 1000, i));
    }
    rem.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut left = window_secs.saturating_sub(used);
    for (_, i) in rem {
        if left == 0 {
            break;
        }
        secs[i] += 1;
        left -= 1;
    }
    StateSeconds(secs)
}

/// The window `[start, end)` (ms) holding `t_ms`, aligned to multiples of
/// `window_secs` since the Unix epoch.
pub fn window_of(t_ms: i64, window_secs: u32) -> (i64, i64) {
    let w = i64::from(window_secs.max(1)) * 1000;
    let start = t_ms.div_euclid(w) * w;
    (start, start + w)
}

#[cfg(test)]
mod tests;
