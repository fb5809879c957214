//! A machine's state process: shifts, breaks, setups, random stops and
//! alarms, planned maintenance. The process is a timeline of segments in
//! whole simulated seconds, generated lazily and deterministically from the
//! seed, so every value (state, power, cumulative energy and parts) is a pure
//! function of simulated time: the servers read it at request time, the
//! ground truth integrates it exactly, and the time scale changes nothing.

use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use shuzhuan_common::inventory::DeviceKind;
use shuzhuan_common::state::{DeviceState, StateSeconds};

/// A time of day, `"HH:MM"` in the plant's local time (`"24:00"` allowed as an end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeOfDay(pub u32);

impl TryFrom<String> for TimeOfDay {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a time of day HH:MM");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        let h: u32 = h.parse().map_err(|_| bad())?;
        let m: u32 = m.parse().map_err(|_| bad())?;
        if m > 59 || h * 60 + m > 24 * 60 {
            return Err(bad());
        }
        Ok(TimeOfDay((h * 60 + m) * 60))
    }
}

impl From<TimeOfDay> for String {
    fn from(t: TimeOfDay) -> String {
        format!("{:02}:{:02}", t.0 / 3600, t.0 / 60 % 60)
    }
}

/// A stretch of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Span {
    pub start: TimeOfDay,
    pub end: TimeOfDay,
}

/// When the plant works.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calendar {
    /// Shifts within a local day (a shift ends at or before 24:00).
    #[serde(default = "default_shifts")]
    pub shifts: Vec<Span>,
    /// Breaks inside shifts: machines stand by.
    #[serde(default = "default_breaks")]
    pub breaks: Vec<Span>,
    /// Working weekdays, Monday = 1 … Sunday = 7.
    #[serde(default = "default_workdays")]
    pub workdays: Vec<u8>,
    /// Weekday of planned maintenance at the start of the first shift (none when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_weekday: Option<u8>,
    #[serde(default = "default_maintenance_minutes")]
    pub maintenance_minutes: u32,
    /// Local time = UTC + this many hours (China: 8).
    #[serde(default = "default_utc_offset")]
    pub utc_offset_hours: i32,
}

fn default_shifts() -> Vec<Span> {
    vec![
        Span {
            start: TimeOfDay(8 * 3600),
            end: TimeOfDay(16 * 3600),
        },
        Span {
            start: TimeOfDay(16 * 3600),
            end: TimeOfDay(24 * 3600),
        },
    ]
}
fn default_breaks() -> Vec<Span> {
    vec![
        Span {
            start: TimeOfDay(12 * 3600),
            end: TimeOfDay(12 * 3600 + 1800),
        },
        Span {
            start: TimeOfDay(19 * 3600),
            end: TimeOfDay(19 * 3600 + 1800),
        },
    ]
}
fn default_workdays() -> Vec<u8> {
    vec![1, 2, 3, 4, 5, 6]
}
fn default_maintenance_minutes() -> u32 {
    120
}
fn default_utc_offset() -> i32 {
    8
}

impl Default for Calendar {
    fn default() -> Self {
        Calendar {
            shifts: default_shifts(),
            breaks: default_breaks(),
            workdays: default_workdays(),
            maintenance_weekday: None,
            maintenance_minutes: default_maintenance_minutes(),
            utc_offset_hours: default_utc_offset(),
        }
    }
}

/// What the calendar says about a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Planned {
    OffShift,
    Break,
    Maintenance,
    /// Working; `shift_start` when this piece begins a shift (setups happen then).
    Working {
        shift_start: bool,
    },
}

impl Calendar {
    /// The planned activity at Unix second `t` and the Unix second it ends.
    fn at(&self, t: i64) -> (Planned, i64) {
        let offset = i64::from(self.utc_offset_hours) * 3600;
        let local = t + offset;
        let day = local.div_euclid(86_400);
        let sod = local.rem_euclid(86_400) as u32;
        let weekday = ((day + 3).rem_euclid(7) + 1) as u8; // 1970-01-01 was a Thursday
        let day_start = day * 86_400 - offset;
        let mut pieces: Vec<(u32, u32, Planned)> = Vec::new();
        if self.workdays.contains(&weekday) {
            let mut shifts = self.shifts.clone();
            shifts.sort_by_key(|s| s.start.0);
            for (i, s) in shifts.iter().enumerate() {
                let (mut a, b) = (s.start.0, s.end.0.min(86_400));
                if i == 0 && self.maintenance_weekday == Some(weekday) {
                    let m = (a + self.maintenance_minutes * 60).min(b);
                    pieces.push((a, m, Planned::Maintenance));
                    a = m;
                }
                let mut cuts: Vec<(u32, u32)> = self
                    .breaks
                    .iter()
                    .map(|br| (br.start.0.max(a), br.end.0.min(b)))
                    .filter(|(x, y)| x < y)
                    .collect();
                cuts.sort_unstable();
                let mut cursor = a;
                let mut first = true;
                for (x, y) in cuts {
                    if x > cursor {
                        pieces.push((cursor, x, Planned::Working { shift_start: first }));
                    }
                    first = false;
                    pieces.push((x.max(cursor), y, Planned::Break));
                    cursor = cursor.max(y);
                }
                if cursor < b {
                    pieces.push((cursor, b, Planned::Working { shift_start: first }));
                }
            }
        }
        pieces.retain(|p| p.0 < p.1);
        pieces.sort_by_key(|p| p.0);
        let mut gap_start = 0;
        for (a, b, what) in pieces {
            if sod < a {
                return (Planned::OffShift, day_start + i64::from(a));
            }
            if sod < b {
                return (what, day_start + i64::from(b));
            }
            gap_start = b;
        }
        let _ = gap_start;
        (Planned::OffShift, day_start + 86_400)
    }
}

/// How a machine behaves; every field has a default by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    /// Power while cycling, kW.
    pub rated_kw: f64,
    /// Power while standing by (powered, ready), kW.
    pub idle_kw: f64,
    /// Power when switched off, kW.
    #[serde(default)]
    pub off_kw: f64,
    /// Seconds per part while productive.
    pub cycle_secs: f64,
    /// Mean length of an uninterrupted run, minutes.
    #[serde(default = "d_run")]
    pub mean_run_min: f64,
    /// Mean length of a short stop (waiting for material, operator), minutes.
    #[serde(default = "d_stop")]
    pub mean_stop_min: f64,
    /// Share of interruptions that are alarms (breakdowns) rather than short stops.
    #[serde(default = "d_alarm_share")]
    pub alarm_share: f64,
    /// Mean length of an alarm, minutes.
    #[serde(default = "d_alarm")]
    pub mean_alarm_min: f64,
    /// Probability of a setup at the start of a shift.
    #[serde(default = "d_setup_p")]
    pub setup_probability: f64,
    /// Mean setup length, minutes.
    #[serde(default = "d_setup")]
    pub mean_setup_min: f64,
}

fn d_run() -> f64 {
    45.0
}
fn d_stop() -> f64 {
    4.0
}
fn d_alarm_share() -> f64 {
    0.15
}
fn d_alarm() -> f64 {
    20.0
}
fn d_setup_p() -> f64 {
    0.6
}
fn d_setup() -> f64 {
    20.0
}

impl Behaviour {
    /// Typical figures for a kind of machine (a simulation assumption, not reference data).
    pub fn for_kind(kind: DeviceKind) -> Behaviour {
        let (rated_kw, idle_kw, cycle_secs) = match kind {
            DeviceKind::CncMachineTool => (15.0, 3.0, 240.0),
            DeviceKind::InjectionMoulding => (45.0, 12.0, 35.0),
            DeviceKind::Press => (30.0, 6.0, 6.0),
            DeviceKind::Furnace => (120.0, 60.0, 3600.0),
            DeviceKind::ProductionLine => (80.0, 20.0, 20.0),
            DeviceKind::IndustrialRobot => (6.0, 1.0, 60.0),
            DeviceKind::ConventionalMachine => (7.5, 1.0, 600.0),
            _ => (10.0, 2.0, 120.0),
        };
        Behaviour {
            rated_kw,
            idle_kw,
            off_kw: 0.0,
            cycle_secs,
            mean_run_min: d_run(),
            mean_stop_min: d_stop(),
            alarm_share: d_alarm_share(),
            mean_alarm_min: d_alarm(),
            setup_probability: d_setup_p(),
            mean_setup_min: d_setup(),
        }
    }
}

/// One stretch of constant state and power, `[start, end)` in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub start: i64,
    pub end: i64,
    pub state: DeviceState,
    pub power_kw: f64,
    /// Energy used from the timeline's origin to `start`, kWh.
    pub energy_before: f64,
    /// Parts finished from the origin to `start`.
    pub parts_before: u64,
}

impl Segment {
    fn energy_at(&self, t: f64) -> f64 {
        self.energy_before
            + self.power_kw * (t.clamp(self.start as f64, self.end as f64) - self.start as f64)
                / 3600.0
    }
    fn parts_at(&self, t: f64, cycle: f64) -> u64 {
        if self.state != DeviceState::Productive || cycle <= 0.0 {
            return self.parts_before;
        }
        let run = t.clamp(self.start as f64, self.end as f64) - self.start as f64;
        self.parts_before + (run / cycle).floor() as u64
    }
}

/// Everything a machine shows at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MachineSignals {
    pub state: DeviceState,
    pub power_kw: f64,
    /// Energy since the origin, kWh.
    pub energy_kwh: f64,
    /// Parts since the origin (before any counter reset).
    pub parts: u64,
    pub run: bool,
    pub auto: bool,
    pub alarm: bool,
    pub spindle: bool,
}

/// The ground truth of one window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WindowTruth {
    pub state_seconds: StateSeconds,
    pub energy_kwh: f64,
    pub parts: u64,
}

/// A machine's lazily generated timeline.
#[derive(Debug)]
pub struct Timeline {
    calendar: Calendar,
    behaviour: Behaviour,
    rng: Rng,
    origin: i64,
    segments: Vec<Segment>,
    /// Next working piece starts with a run (false after a run ended in an interruption).
    next_is_run: bool,
}

impl Timeline {
    /// A timeline starting at local midnight of the day that holds `start_s`.
    pub fn new(
        calendar: Calendar,
        behaviour: Behaviour,
        seed: u64,
        stream: &str,
        start_s: i64,
    ) -> Timeline {
        let offset = i64::from(calendar.utc_offset_hours) * 3600;
        let origin = (start_s + offset).div_euclid(86_400) * 86_400 - offset;
        Timeline {
            calendar,
            behaviour,
            rng: Rng::for_stream(seed, stream),
            origin,
            segments: Vec::new(),
            next_is_run: true,
        }
    }

    pub fn origin(&self) -> i64 {
        self.origin
    }

    pub fn cycle_secs(&self) -> f64 {
        self.behaviour.cycle_secs
    }

    fn end(&self) -> i64 {
        self.segments.last().map_or(self.origin, |s| s.end)
    }

    fn push(&mut self, end: i64, state: DeviceState, power_kw: f64) {
        let start = self.end();
        let (energy_before, parts_before) = match self.segments.last() {
            Some(s) => (
                s.energy_at(s.end as f64),
                s.parts_at(s.end as f64, self.behaviour.cycle_secs),
            ),
            None => (0.0, 0),
        };
        self.segments.push(Segment {
            start,
            end,
            state,
            power_kw,
            energy_before,
            parts_before,
        });
    }

    /// Minutes drawn from an exponential with the given mean, as whole seconds (at least 60).
    fn draw_secs(&mut self, mean_min: f64) -> i64 {
        (self.rng.exp(mean_min * 60.0).round() as i64).max(60)
    }

    /// Appends segments up to the next calendar boundary.
    fn extend_once(&mut self) {
        let t = self.end();
        let (planned, until) = self.calendar.at(t);
        let b = self.behaviour.clone();
        match planned {
            Planned::OffShift => self.push(until, DeviceState::NonScheduled, b.off_kw),
            Planned::Break => self.push(until, DeviceState::Standby, b.idle_kw),
            Planned::Maintenance => self.push(
                until,
                DeviceState::ScheduledDown,
                b.off_kw + 0.2 * b.idle_kw,
            ),
            Planned::Working { shift_start } => {
                let mut now = t;
                if shift_start && self.rng.chance(b.setup_probability) {
                    let end = (now + self.draw_secs(b.mean_setup_min)).min(until);
                    self.push(
                        end,
                        DeviceState::Engineering,
                        b.idle_kw + 0.3 * (b.rated_kw - b.idle_kw),
                    );
                    now = end;
                    self.next_is_run = true;
                }
                while now < until {
                    if self.next_is_run {
                        let end = (now + self.draw_secs(b.mean_run_min)).min(until);
                        let power = b.rated_kw * self.rng.range(0.8, 1.05);
                        self.push(end, DeviceState::Productive, power);
                        now = end;
                        self.next_is_run = false;
                    } else {
                        let (state, mean, power) = if self.rng.chance(b.alarm_share) {
                            (
                                DeviceState::UnscheduledDown,
                                b.mean_alarm_min,
                                0.8 * b.idle_kw,
                            )
                        } else {
                            (DeviceState::Standby, b.mean_stop_min, b.idle_kw)
                        };
                        let end = (now + self.draw_secs(mean)).min(until);
                        self.push(end, state, power);
                        now = end;
                        self.next_is_run = true;
                    }
                }
                // A piece cut by the calendar resumes with a run.
                self.next_is_run = true;
            }
        }
    }

    /// The segment holding Unix second `t` (times before the origin read as the origin).
    fn segment(&mut self, t: f64) -> Segment {
        let t = t.max(self.origin as f64);
        while (self.end() as f64) <= t {
            self.extend_once();
        }
        let i = self.segments.partition_point(|s| (s.end as f64) <= t);
        self.segments[i]
    }

    /// The machine at Unix time `t_ms` (milliseconds).
    pub fn at(&mut self, t_ms: i64) -> MachineSignals {
        let t = t_ms as f64 / 1000.0;
        let s = self.segment(t);
        let state = s.state;
        MachineSignals {
            state,
            power_kw: s.power_kw,
            energy_kwh: s.energy_at(t),
            parts: s.parts_at(t, self.behaviour.cycle_secs),
            run: state == DeviceState::Productive,
            auto: matches!(
                state,
                DeviceState::Productive | DeviceState::Standby | DeviceState::UnscheduledDown
            ),
            alarm: state == DeviceState::UnscheduledDown,
            spindle: matches!(state, DeviceState::Productive | DeviceState::Engineering),
        }
    }

    /// Energy (kWh) and parts from the origin to Unix second `t`.
    fn cumulative(&mut self, t: i64) -> (f64, u64) {
        let s = self.segment(t as f64);
        (
            s.energy_at(t as f64),
            s.parts_at(t as f64, self.behaviour.cycle_secs),
        )
    }

    /// The truth of `[start, end)` (Unix seconds): seconds per state (adding up
    /// to the window), energy used and parts finished.
    pub fn window(&mut self, start: i64, end: i64) -> WindowTruth {
        let mut out = WindowTruth::default();
        let mut t = start;
        while t < end {
            let s = self.segment(t as f64);
            let stop = if t < self.origin {
                self.origin.min(end)
            } else {
                s.end.min(end)
            };
            out.state_seconds.add(s.state, (stop - t) as u32);
            t = stop;
        }
        let (e0, p0) = self.cumulative(start);
        let (e1, p1) = self.cumulative(end);
        out.energy_kwh = e1 - e0;
        out.parts = p1 - p0;
        out
    }

    /// Forgets segments that end before `t` once there are many (keeps memory
    /// flat over long runs; later queries before `t` are not supported).
    pub fn prune_before(&mut self, t: i64) {
        if self.segments.len() > 2048 {
            let keep = self
                .segments
                .partition_point(|s| s.end < t)
                .saturating_sub(1);
            self.segments.drain(..keep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    /// 2025-12-01 00:00 UTC (a Monday, 08:00 in China).
    const T0: i64 = 1_764_547_200;

    fn cnc(seed: u64) -> Timeline {
        Timeline::new(
            Calendar::default(),
            Behaviour::for_kind(DeviceKind::CncMachineTool),
            seed,
            "cnc-01",
            T0,
        )
    }

    #[test]
    fn calendar_knows_shifts_breaks_and_weekends() {
        let cal = Calendar {
            maintenance_weekday: Some(3),
            ..Calendar::default()
        };
        let at_local = |day: i64, h: i64, m: i64| T0 - 8 * 3600 + day * DAY + h * 3600 + m * 60;
        assert_eq!(cal.at(at_local(0, 3, 0)).0, Planned::OffShift);
        assert_eq!(cal.at(at_local(0, 3, 0)).1, at_local(0, 8, 0));
        assert_eq!(
            cal.at(at_local(0, 8, 0)).0,
            Planned::Working { shift_start: true }
        );
        assert_eq!(
            cal.at(at_local(0, 12, 10)),
            (Planned::Break, at_local(0, 12, 30))
        );
        assert_eq!(
            cal.at(at_local(0, 13, 0)).0,
            Planned::Working { shift_start: false }
        );
        assert_eq!(
            cal.at(at_local(0, 16, 0)).0,
            Planned::Working { shift_start: true }
        );
        // Wednesday (day 2) starts with maintenance; Sunday (day 6) is off.
        assert_eq!(
            cal.at(at_local(2, 8, 30)),
            (Planned::Maintenance, at_local(2, 10, 0))
        );
        assert_eq!(cal.at(at_local(6, 10, 0)).0, Planned::OffShift);
    }

    #[test]
    fn windows_cover_exactly_and_add_up_to_the_day() {
        let mut m = cnc(3);
        let mut day = WindowTruth::default();
        for w in 0..96 {
            let start = T0 + w * 900;
            let t = m.window(start, start + 900);
            assert_eq!(t.state_seconds.total(), 900, "window {w}");
            day.state_seconds.merge(&t.state_seconds);
            day.energy_kwh += t.energy_kwh;
            day.parts += t.parts;
        }
        let whole = m.window(T0, T0 + 96 * 900);
        assert_eq!(whole.state_seconds, day.state_seconds);
        assert!((whole.energy_kwh - day.energy_kwh).abs() < 1e-6);
        // Parts of adjacent windows add up exactly: a cycle is counted once.
        assert_eq!(whole.parts, day.parts);
        // A working day has production, stops and off-shift time.
        for s in [
            DeviceState::Productive,
            DeviceState::Standby,
            DeviceState::NonScheduled,
        ] {
            assert!(
                whole.state_seconds.get(s) > 0,
                "{s:?} missing: {:?}",
                whole.state_seconds
            );
        }
        assert!(whole.parts > 10 && whole.energy_kwh > 10.0, "{whole:?}");
    }

    #[test]
    fn same_seed_same_timeline_other_seed_differs() {
        let (mut a, mut b, mut c) = (cnc(9), cnc(9), cnc(10));
        let wa = a.window(T0, T0 + 2 * DAY);
        assert_eq!(wa, b.window(T0, T0 + 2 * DAY));
        assert_ne!(wa, c.window(T0, T0 + 2 * DAY));
    }

    #[test]
    fn energy_is_the_integral_of_power() {
        let mut m = cnc(5);
        let mut integral = 0.0;
        let mut t = T0 * 1000;
        let step = 1000;
        let e0 = m.at(t).energy_kwh;
        while t < (T0 + 6 * 3600) * 1000 {
            integral += m.at(t).power_kw * step as f64 / 3_600_000.0;
            t += step;
        }
        let e1 = m.at(t).energy_kwh;
        assert!(
            (e1 - e0 - integral).abs() < 1e-6,
            "{} vs {integral}",
            e1 - e0
        );
    }

    #[test]
    fn signals_follow_the_state() {
        let mut m = cnc(1);
        for k in 0..2000 {
            let s = m.at((T0 + k * 97) * 1000);
            assert_eq!(s.run, s.state == DeviceState::Productive);
            assert_eq!(s.alarm, s.state == DeviceState::UnscheduledDown);
            if s.state == DeviceState::NonScheduled {
                assert_eq!(s.power_kw, 0.0);
            }
        }
    }
}
