//! Enterprise-level digital-maturity rates (INDICATORS.md §1): equipment
//! digitization (count and original-value weighted), networking (over all
//! production equipment or over digitized equipment) and key-process NC,
//! each on the declared basis (inventory flags) and the measured basis
//! (what the agents actually delivered over an assessment window).

use super::{order_free_sum, Insufficient, Period, Rate};
use crate::inventory::{Device, IndustryType, Inventory};
use crate::report::Report;
use crate::state::DeviceState;
use crate::summary::WindowSummary;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How many of a key process's devices must be NC for the process to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quorum {
    /// Every device serving the process (the strict reading).
    All,
    /// At least one device serving the process.
    Any,
}

/// The thresholds that turn agent data into measured facts; loaded from
/// `config/scoring/measurement.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasurementRules {
    /// A device is networked (measured) when received / expected samples over
    /// the window reaches this share.
    pub networked_min_coverage: f64,
    /// A device is NC (measured) when NC/automatic seconds / productive
    /// seconds reaches this share.
    pub nc_min_share: f64,
    /// Below this share of the window covered by reports, measured rates are
    /// "insufficient data" rather than low.
    pub min_report_coverage: f64,
    /// How many of a key process's devices must be NC.
    pub key_process_quorum: Quorum,
}

impl MeasurementRules {
    /// Problems with the thresholds, as (field, message) pairs.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (field, v) in [
            ("networked_min_coverage", self.networked_min_coverage),
            ("nc_min_share", self.nc_min_share),
            ("min_report_coverage", self.min_report_coverage),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                out.push((field, format!("{field} must be in (0, 1], got {v}")));
            }
        }
        out
    }
}

/// One device's totals over an assessment window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceData {
    pub samples_expected: u64,
    pub samples_received: u64,
    pub productive_seconds: u64,
    /// Productive seconds under NC/automatic control.
    pub nc_seconds: u64,
}

impl DeviceData {
    pub fn add_summary(&mut self, s: &WindowSummary) {
        self.samples_expected += u64::from(s.samples_expected);
        self.samples_received += u64::from(s.samples_received);
        self.productive_seconds += u64::from(s.state_seconds.get(DeviceState::Productive));
        self.nc_seconds += u64::from(s.nc_seconds);
    }
}

/// What one enterprise's agents delivered over an assessment window.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MeasuredData {
    pub window: Period,
    /// Seconds of the window covered by at least one report.
    pub reported_seconds: u64,
    pub devices: BTreeMap<String, DeviceData>,
}

impl MeasuredData {
    /// Adds up the summaries of the reports that lie wholly inside `window`
    /// (a summary cannot be split, so a report straddling an edge is left
    /// out). Reports of several agents over the same time count that time once.
    pub fn from_reports<'a>(window: Period, reports: impl IntoIterator<Item = &'a Report>) -> Self {
        let mut devices: BTreeMap<String, DeviceData> = BTreeMap::new();
        let mut spans = Vec::new();
        for r in reports {
            if r.window_start < window.start || r.window_end > window.end {
                continue;
            }
            spans.push((r.window_start, r.window_end));
            for s in &r.summaries {
                devices
                    .entry(s.device_id.clone())
                    .or_default()
                    .add_summary(s);
            }
        }
        MeasuredData {
            window,
            reported_seconds: union_seconds(spans),
            devices,
        }
    }

    /// Share of the window covered by reports.
    pub fn report_coverage(&self) -> Rate {
        Rate::ratio(self.reported_seconds as f64, self.window.seconds() as f64)
    }
}

fn union_seconds(mut spans: Vec<(i64, i64)>) -> u64 {
    spans.sort_unstable();
    let mut total = 0u64;
    let mut cur: Option<(i64, i64)> = None;
    for (s, e) in spans {
        match cur {
            Some((cs, ce)) if s <= ce => cur = Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += (ce - cs) as u64;
                cur = Some((s, e));
            }
            None => cur = Some((s, e)),
        }
    }
    if let Some((cs, ce)) = cur {
        total += (ce - cs) as u64;
    }
    total
}

/// What the data says about one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceVerdict {
    /// Delivered any good data in the window.
    pub digitized: bool,
    /// Delivered at least `networked_min_coverage` of expected samples.
    pub networked: bool,
    /// Ran under NC/automatic control for at least `nc_min_share` of its
    /// productive time (false when it never produced: no evidence).
    pub nc: bool,
}

/// Judges one device's window totals (`None`: the agents never mentioned it).
pub fn judge_device(data: Option<&DeviceData>, rules: &MeasurementRules) -> DeviceVerdict {
    let Some(d) = data else {
        return DeviceVerdict {
            digitized: false,
            networked: false,
            nc: false,
        };
    };
    let networked = d.samples_expected > 0
        && d.samples_received as f64 >= rules.networked_min_coverage * d.samples_expected as f64;
    let nc = d.productive_seconds > 0
        && d.nc_seconds as f64 >= rules.nc_min_share * d.productive_seconds as f64;
    DeviceVerdict {
        digitized: d.samples_received > 0,
        networked,
        nc,
    }
}

/// The rates of one enterprise on one basis.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EnterpriseRates {
    /// Digitized production devices / production devices (count ratio, the
    /// questionnaire's definition).
    pub digitization: Rate,
    /// Original value of digitized production devices / original value of
    /// production devices; insufficient when a production device has no value.
    pub digitization_by_value: Rate,
    /// Networked production devices / production devices (the default).
    pub networking: Rate,
    /// Networked production devices / digitized production devices.
    pub networking_of_digitized: Rate,
    /// NC key processes / key processes.
    pub key_process_nc: Rate,
}

/// Data coverage behind a measured figure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DataCoverage {
    pub window: Period,
    /// Share of the window covered by reports.
    pub reports: Rate,
    /// Samples received / expected over the production devices the agents know.
    pub samples: Rate,
    /// Production devices the agents delivered any data for.
    pub devices_with_data: u64,
    pub production_devices: u64,
}

/// Measured rates with the coverage behind them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeasuredRates {
    pub rates: EnterpriseRates,
    pub coverage: DataCoverage,
}

/// Per-device facts the rate formulas count.
#[derive(Clone, Copy)]
struct Facts {
    digitized: bool,
    networked: bool,
    nc: bool,
}

fn production(inv: &Inventory) -> impl Iterator<Item = &Device> {
    inv.devices.iter().filter(|d| d.production)
}

fn rates_from(
    inv: &Inventory,
    industry: IndustryType,
    quorum: Quorum,
    facts: &dyn Fn(&Device) -> Facts,
    process_nc: &dyn Fn(&crate::inventory::KeyProcess) -> Option<bool>,
) -> EnterpriseRates {
    let (mut n, mut dig, mut net, mut net_dig) = (0u64, 0u64, 0u64, 0u64);
    // Values are summed in sorted order (order_free_sum) so the ratio does
    // not depend on the order devices are listed in, to the last bit.
    let (mut value_all, mut value_dig, mut value_missing) = (Vec::new(), Vec::new(), false);
    for d in production(inv) {
        let f = facts(d);
        n += 1;
        dig += u64::from(f.digitized);
        net += u64::from(f.networked);
        net_dig += u64::from(f.networked && f.digitized);
        match d.original_value_cny {
            Some(v) if v.is_finite() && v >= 0.0 => {
                value_all.push(v);
                if f.digitized {
                    value_dig.push(v);
                }
            }
            _ => value_missing = true,
        }
    }
    let digitization_by_value = if n == 0 {
        Rate::insufficient(Insufficient::ZeroDenominator)
    } else if value_missing {
        Rate::insufficient(Insufficient::NoData)
    } else {
        let (dig_sum, all_sum) = (order_free_sum(value_dig), order_free_sum(value_all));
        // each part ≤ its whole, but the sums round separately
        Rate::ratio(dig_sum.min(all_sum), all_sum)
    };
    let mut kp_nc = 0u64;
    for kp in &inv.key_processes {
        let own = process_nc(kp).filter(|_| industry == IndustryType::Process);
        let is_nc = own.unwrap_or_else(|| {
            let mut serving = inv
                .devices
                .iter()
                .filter(|d| d.key_process.as_deref() == Some(kp.id.as_str()));
            match quorum {
                Quorum::All => {
                    let mut any = false;
                    let all = serving.all(|d| {
                        any = true;
                        facts(d).nc
                    });
                    any && all
                }
                Quorum::Any => serving.any(|d| facts(d).nc),
            }
        });
        kp_nc += u64::from(is_nc);
    }
    EnterpriseRates {
        digitization: Rate::of_counts(dig, n),
        digitization_by_value,
        networking: Rate::of_counts(net, n),
        networking_of_digitized: Rate::of_counts(net_dig, dig),
        key_process_nc: Rate::of_counts(kp_nc, inv.key_processes.len() as u64),
    }
}

/// Rates from the inventory's declared flags. Key-process NC follows the
/// industry rule: discrete manufacturing judges a key process by its
/// equipment (`Device::declared_nc` under `quorum`), process industry by the
/// process's own control system (`KeyProcess::declared_nc`).
pub fn declared_rates(inv: &Inventory, industry: IndustryType, quorum: Quorum) -> EnterpriseRates {
    rates_from(
        inv,
        industry,
        quorum,
        &|d| Facts {
            digitized: d.declared_digital,
            networked: d.declared_networked,
            nc: d.declared_nc,
        },
        &|kp| Some(kp.declared_nc),
    )
}

/// Rates from what the agents delivered. Both industry rules read the
/// devices serving the key process: a CNC's channel mode for discrete
/// equipment, a PLC/DCS automatic bit for process control, both arrive as
/// `nc_seconds`. When reports cover less of the window than
/// `rules.min_report_coverage`, every rate is insufficient data.
pub fn measured_rates(
    inv: &Inventory,
    industry: IndustryType,
    data: &MeasuredData,
    rules: &MeasurementRules,
) -> MeasuredRates {
    let verdict = |d: &Device| judge_device(data.devices.get(&d.id), rules);
    let (mut exp, mut rec, mut with_data, mut n) = (0u64, 0u64, 0u64, 0u64);
    for d in production(inv) {
        n += 1;
        if let Some(t) = data.devices.get(&d.id) {
            exp += t.samples_expected;
            rec += t.samples_received;
            with_data += u64::from(t.samples_received > 0);
        }
    }
    let coverage = DataCoverage {
        window: data.window,
        reports: data.report_coverage(),
        samples: Rate::of_counts(rec, exp),
        devices_with_data: with_data,
        production_devices: n,
    };
    let reports = coverage.reports.value().unwrap_or(0.0);
    let rates = if reports < rules.min_report_coverage {
        let r = Rate::insufficient(Insufficient::LowCoverage {
            coverage: reports,
            required: rules.min_report_coverage,
        });
        EnterpriseRates {
            digitization: r,
            digitization_by_value: r,
            networking: r,
            networking_of_digitized: r,
            key_process_nc: r,
        }
    } else {
        rates_from(
            inv,
            industry,
            rules.key_process_quorum,
            &|d| {
                let v = verdict(d);
                Facts {
                    digitized: v.digitized,
                    networked: v.networked,
                    nc: v.nc,
                }
            },
            &|_| None,
        )
    };
    MeasuredRates { rates, coverage }
}

/// Share of enterprises using digital R&D design tools (a declared yes/no
/// each); enterprises that did not answer are left out of both counts.
pub fn rd_design_tool_penetration<'a>(answers: impl IntoIterator<Item = &'a Option<bool>>) -> Rate {
    let (mut yes, mut answered) = (0u64, 0u64);
    for a in answers.into_iter().flatten() {
        answered += 1;
        yes += u64::from(*a);
    }
    Rate::of_counts(yes, answered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{DeviceKind, KeyProcess};

    pub(crate) fn rules() -> MeasurementRules {
        MeasurementRules {
            networked_min_coverage: 0.9,
            nc_min_share: 0.5,
            min_report_coverage: 0.5,
            key_process_quorum: Quorum::All,
        }
    }

    fn device(id: &str, digital: bool, value: Option<f64>) -> Device {
        Device {
            id: id.into(),
            name: id.into(),
            kind: DeviceKind::CncMachineTool,
            production: true,
            declared_digital: digital,
            declared_networked: digital,
            declared_nc: digital,
            key_process: None,
            original_value_cny: value,
        }
    }

    /// 40 production devices, the first 23 digitized; 2 meters that must
    /// not count. Digitized ones are worth 300,000 CNY, the rest 100,000.
    fn forty() -> Inventory {
        let mut devices: Vec<Device> = (0..40)
            .map(|i| {
                let dig = i < 23;
                device(
                    &format!("d{i:02}"),
                    dig,
                    Some(if dig { 300_000.0 } else { 100_000.0 }),
                )
            })
            .collect();
        for m in 0..2 {
            let mut meter = device(&format!("meter{m}"), true, None);
            meter.production = false;
            meter.kind = DeviceKind::EnergyMeter;
            devices.push(meter);
        }
        Inventory {
            devices,
            key_processes: Vec::new(),
        }
    }

    #[test]
    fn forty_devices_twenty_three_digitized() {
        let r = declared_rates(&forty(), IndustryType::Discrete, Quorum::All);
        // 23 / 40 = 0.575: the meters are not production equipment.
        assert_eq!(
            r.digitization,
            Rate::Value {
                num: 23.0,
                den: 40.0,
                value: 0.575
            }
        );
        // by value: 23 × 300,000 = 6,900,000 of 6,900,000 + 17 × 100,000
        // = 8,600,000 → 0.80233
        let v = r.digitization_by_value.value().unwrap();
        assert!((v - 6_900_000.0 / 8_600_000.0).abs() < 1e-12, "{v}");
        // no key processes declared: nothing to count
        assert_eq!(
            r.key_process_nc,
            Rate::insufficient(Insufficient::ZeroDenominator)
        );
    }

    #[test]
    fn value_weighted_needs_every_value() {
        let mut inv = forty();
        inv.devices[5].original_value_cny = None;
        let r = declared_rates(&inv, IndustryType::Discrete, Quorum::All);
        assert_eq!(
            r.digitization_by_value,
            Rate::insufficient(Insufficient::NoData)
        );
        assert_eq!(r.digitization.value(), Some(0.575));
    }

    #[test]
    fn networking_has_two_denominators() {
        let mut inv = forty();
        // 10 of the 23 digitized devices are networked; one non-digitized
        // device claims to be networked too (a declaration error the
        // digitized-base ratio ignores).
        for (i, d) in inv.devices.iter_mut().enumerate() {
            d.declared_networked = i < 10 || i == 30;
        }
        let r = declared_rates(&inv, IndustryType::Discrete, Quorum::All);
        // all production equipment: 11 / 40
        assert_eq!(r.networking.parts(), Some((11.0, 40.0)));
        // digitized equipment: 10 / 23
        assert_eq!(r.networking_of_digitized.parts(), Some((10.0, 23.0)));
    }

    fn with_key_processes(industry_declares: bool) -> Inventory {
        let mut inv = forty();
        inv.key_processes = vec![
            KeyProcess {
                id: "turn".into(),
                name: "车削".into(),
                declared_nc: industry_declares,
            },
            KeyProcess {
                id: "weld".into(),
                name: "焊接".into(),
                declared_nc: false,
            },
            KeyProcess {
                id: "paint".into(),
                name: "涂装".into(),
                declared_nc: true,
            },
        ];
        // turn: d00 (NC) and d30 (not NC); weld: d01 (NC); paint: no devices
        inv.devices[0].key_process = Some("turn".into());
        inv.devices[30].key_process = Some("turn".into());
        inv.devices[1].key_process = Some("weld".into());
        inv
    }

    #[test]
    fn key_process_rule_depends_on_industry() {
        let inv = with_key_processes(false);
        // discrete, all devices: turn has a non-NC device (no), weld yes,
        // paint has no equipment (no) → 1 / 3
        let d = declared_rates(&inv, IndustryType::Discrete, Quorum::All);
        assert_eq!(d.key_process_nc.parts(), Some((1.0, 3.0)));
        // discrete, any device: turn yes, weld yes, paint no → 2 / 3
        let d = declared_rates(&inv, IndustryType::Discrete, Quorum::Any);
        assert_eq!(d.key_process_nc.parts(), Some((2.0, 3.0)));
        // process industry reads the process's own control flag:
        // turn no, weld no, paint yes → 1 / 3, whatever the equipment says
        let p = declared_rates(
            &with_key_processes(false),
            IndustryType::Process,
            Quorum::Any,
        );
        assert_eq!(p.key_process_nc.parts(), Some((1.0, 3.0)));
        let p = declared_rates(
            &with_key_processes(true),
            IndustryType::Process,
            Quorum::Any,
        );
        assert_eq!(p.key_process_nc.parts(), Some((2.0, 3.0)));
    }

    fn data(window: Period, devs: &[(&str, u64, u64, u64, u64)]) -> MeasuredData {
        MeasuredData {
            window,
            reported_seconds: window.seconds(),
            devices: devs
                .iter()
                .map(|&(id, e, r, p, nc)| {
                    (
                        id.to_owned(),
                        DeviceData {
                            samples_expected: e,
                            samples_received: r,
                            productive_seconds: p,
                            nc_seconds: nc,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn device_verdicts_follow_the_thresholds() {
        let r = rules();
        let d = |e, rec, p, nc| DeviceData {
            samples_expected: e,
            samples_received: rec,
            productive_seconds: p,
            nc_seconds: nc,
        };
        // 900 of 1000 samples is exactly 90%: networked
        assert!(judge_device(Some(&d(1000, 900, 0, 0)), &r).networked);
        // 899 of 1000: digitized (some good data) but not networked
        let v = judge_device(Some(&d(1000, 899, 0, 0)), &r);
        assert!(v.digitized && !v.networked);
        // NC for 50 of 100 productive seconds meets 0.5; 49 does not
        assert!(judge_device(Some(&d(10, 10, 100, 50)), &r).nc);
        assert!(!judge_device(Some(&d(10, 10, 100, 49)), &r).nc);
        // never produced: no evidence of NC
        assert!(!judge_device(Some(&d(10, 10, 0, 0)), &r).nc);
        // no data at all
        let v = judge_device(None, &r);
        assert!(!v.digitized && !v.networked && !v.nc);
        // expected nothing, received nothing
        assert!(!judge_device(Some(&d(0, 0, 0, 0)), &r).networked);
    }

    #[test]
    fn measured_beside_declared() {
        let inv = with_key_processes(false);
        let w = Period::new(0, 86_400);
        // d00: full data, NC; d01: 95% data, NC; d02: 50% data; d30: full, not NC
        let m = data(
            w,
            &[
                ("d00", 1000, 1000, 3600, 3600),
                ("d01", 1000, 950, 3600, 2000),
                ("d02", 1000, 500, 0, 0),
                ("d30", 1000, 1000, 3600, 0),
            ],
        );
        let r = measured_rates(&inv, IndustryType::Discrete, &m, &rules());
        // digitized (any data): d00 d01 d02 d30 → 4 / 40
        assert_eq!(r.rates.digitization.parts(), Some((4.0, 40.0)));
        // networked (≥ 90%): d00 d01 d30 → 3 / 40, and 3 / 4 of digitized
        assert_eq!(r.rates.networking.parts(), Some((3.0, 40.0)));
        assert_eq!(r.rates.networking_of_digitized.parts(), Some((3.0, 4.0)));
        // turn: d00 NC, d30 not → no (quorum all); weld: d01 NC → yes; paint: none → 1/3
        assert_eq!(r.rates.key_process_nc.parts(), Some((1.0, 3.0)));
        // samples: 3450 of 4000
        assert_eq!(r.coverage.samples.parts(), Some((3450.0, 4000.0)));
        assert_eq!(r.coverage.devices_with_data, 4);
        assert_eq!(r.coverage.production_devices, 40);
    }

    #[test]
    fn low_report_coverage_is_insufficient_not_zero() {
        let inv = forty();
        let mut m = data(Period::new(0, 1000), &[("d00", 10, 10, 0, 0)]);
        m.reported_seconds = 400; // 40% < 50%
        let r = measured_rates(&inv, IndustryType::Discrete, &m, &rules());
        assert_eq!(
            r.rates.digitization,
            Rate::insufficient(Insufficient::LowCoverage {
                coverage: 0.4,
                required: 0.5
            })
        );
        assert_eq!(r.coverage.reports.value(), Some(0.4));
    }

    #[test]
    fn report_windows_are_united_and_clipped() {
        assert_eq!(union_seconds(vec![(0, 10), (5, 20), (30, 40)]), 30);
        assert_eq!(union_seconds(vec![(30, 40), (0, 10), (0, 10)]), 20);
        assert_eq!(union_seconds(vec![]), 0);
    }

    #[test]
    fn from_reports_sums_the_window_only() {
        use crate::credit_code::CreditCode;
        use crate::report::{Hash32, SCHEMA_VERSION};
        let mk = |start: i64, received: u32| {
            let mut s = WindowSummary::disconnected("d00", 0, 60);
            s.state_seconds = Default::default();
            s.state_seconds.add(DeviceState::Productive, 60);
            s.nc_seconds = 30;
            s.samples_received = received;
            Report {
                schema: SCHEMA_VERSION,
                agent_id: "a".into(),
                enterprise: CreditCode::from_body("91350100M000100Y4").unwrap(),
                seq: 1,
                prev_hash: Hash32::GENESIS,
                window_start: start,
                window_end: start + 60,
                created_at: start + 60,
                inventory: None,
                summaries: vec![s],
            }
        };
        let reports = [mk(0, 60), mk(60, 30), mk(90, 60), mk(600, 60)];
        // window [0, 300): the report at 600 is outside; [0,60) ∪ [60,120) ∪ [90,150) = 150 s
        let m = MeasuredData::from_reports(Period::new(0, 300), &reports);
        assert_eq!(m.reported_seconds, 150);
        let d = m.devices["d00"];
        assert_eq!((d.samples_expected, d.samples_received), (180, 150));
        assert_eq!((d.productive_seconds, d.nc_seconds), (180, 90));
    }

    #[test]
    fn rd_tools_leave_out_unanswered() {
        let answers = [Some(true), Some(false), None, Some(true)];
        // 2 yes of 3 answered
        assert_eq!(
            rd_design_tool_penetration(&answers).parts(),
            Some((2.0, 3.0))
        );
        assert_eq!(
            rd_design_tool_penetration(&[None]),
            Rate::insufficient(Insufficient::ZeroDenominator)
        );
    }
}

#[cfg(test)]
mod props {
    //! Every rate is in [0, 1] or "insufficient data", for any inventory and
    //! any agent data, and does not depend on the order devices are listed in.

    use super::*;
    use crate::inventory::{DeviceKind, KeyProcess};
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Dev {
        production: bool,
        digital: bool,
        networked: bool,
        nc: bool,
        process: Option<u8>,
        value: Option<f64>,
        data: Option<(u64, u64, u64, u64)>,
    }

    fn dev() -> impl Strategy<Value = Dev> {
        (
            any::<bool>(),
            any::<(bool, bool, bool)>(),
            prop::option::of(0u8..4),
            prop::option::of(0f64..2e6),
            prop::option::of((0u64..2000, 0u64..2000, 0u64..900, 0u64..900)),
        )
            .prop_map(
                |(production, (digital, networked, nc), process, value, data)| Dev {
                    production,
                    digital,
                    networked,
                    nc,
                    process,
                    value,
                    data,
                },
            )
    }

    fn build(devs: &[Dev], processes: u8) -> (Inventory, MeasuredData) {
        let window = Period::new(0, 86_400);
        let mut inv = Inventory {
            devices: Vec::new(),
            key_processes: (0..processes)
                .map(|p| KeyProcess {
                    id: format!("k{p}"),
                    name: format!("k{p}"),
                    declared_nc: p % 2 == 0,
                })
                .collect(),
        };
        let mut data = MeasuredData {
            window,
            reported_seconds: 86_400,
            devices: BTreeMap::new(),
        };
        for (i, d) in devs.iter().enumerate() {
            let id = format!("d{i}");
            inv.devices.push(Device {
                id: id.clone(),
                name: id.clone(),
                kind: DeviceKind::Other,
                production: d.production,
                declared_digital: d.digital,
                declared_networked: d.networked,
                declared_nc: d.nc,
                key_process: d.process.map(|p| format!("k{p}")),
                original_value_cny: d.value,
            });
            if let Some((e, r, p, nc)) = d.data {
                data.devices.insert(
                    id,
                    DeviceData {
                        samples_expected: e,
                        samples_received: r,
                        productive_seconds: p,
                        nc_seconds: nc.min(p),
                    },
                );
            }
        }
        (inv, data)
    }

    fn ok(r: &Rate) -> bool {
        match r {
            Rate::Value { num, den, value } => {
                (0.0..=1.0).contains(value) && *num <= *den && *den > 0.0
            }
            Rate::InsufficientData { .. } => true,
        }
    }

    fn all_ok(r: &EnterpriseRates) -> bool {
        [
            r.digitization,
            r.digitization_by_value,
            r.networking,
            r.networking_of_digitized,
            r.key_process_nc,
        ]
        .iter()
        .all(ok)
    }

    fn rules(quorum: Quorum) -> MeasurementRules {
        MeasurementRules {
            networked_min_coverage: 0.9,
            nc_min_share: 0.5,
            min_report_coverage: 0.5,
            key_process_quorum: quorum,
        }
    }

    proptest! {
        #[test]
        fn every_rate_is_a_fraction_or_insufficient(
            devs in prop::collection::vec(dev(), 0..25),
            processes in 0u8..4,
            process_industry in any::<bool>(),
            any_quorum in any::<bool>(),
        ) {
            let (inv, data) = build(&devs, processes);
            let industry = if process_industry { IndustryType::Process } else { IndustryType::Discrete };
            let quorum = if any_quorum { Quorum::Any } else { Quorum::All };
            let d = declared_rates(&inv, industry, quorum);
            prop_assert!(all_ok(&d), "{:?}", d);
            let m = measured_rates(&inv, industry, &data, &rules(quorum));
            prop_assert!(all_ok(&m.rates), "{:?}", m.rates);
            prop_assert!(ok(&m.coverage.reports) && ok(&m.coverage.samples));
        }

        #[test]
        fn rates_do_not_depend_on_device_order(
            devs in prop::collection::vec(dev(), 0..25),
            processes in 0u8..4,
        ) {
            let (inv, data) = build(&devs, processes);
            let mut rev = inv.clone();
            rev.devices.reverse();
            rev.key_processes.reverse();
            let r = rules(Quorum::All);
            prop_assert_eq!(
                declared_rates(&inv, IndustryType::Discrete, Quorum::All).digitization,
                declared_rates(&rev, IndustryType::Discrete, Quorum::All).digitization
            );
            let (a, b) = (
                measured_rates(&inv, IndustryType::Discrete, &data, &r).rates,
                measured_rates(&rev, IndustryType::Discrete, &data, &r).rates,
            );
            prop_assert_eq!(a.digitization, b.digitization);
            prop_assert_eq!(a.digitization_by_value, b.digitization_by_value);
            prop_assert_eq!(a.networking, b.networking);
            prop_assert_eq!(a.key_process_nc, b.key_process_nc);
        }
    }
}
