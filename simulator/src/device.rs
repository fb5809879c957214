//! Simulated devices as a Modbus server sees them: a machine (its timeline)
//! or an energy meter whose counters integrate the power of the machines it
//! feeds, with rollover and a reset on demand (meter replacement).
//!
//! Simulated plants only consume: no machine or feeder generates, so power
//! through a meter never reverses and its export counter (`energy_export`
//! registers, e.g. SDM630 0x004A) stays at 0 while the import counter
//! integrates the load. That is what a bidirectional meter on a pure
//! consumer shows; on-site generation (a PV feeder) is not modelled
//! (simulator/README.md).

use crate::machine::{MachineSignals, Timeline};
use crate::modbus::regmap::Values;
use shuzhuan_common::profile::TagRole;
use std::sync::{Arc, Mutex};

/// A machine shared between the servers and the ground truth.
pub type SharedTimeline = Arc<Mutex<Timeline>>;

/// What a device computes its values from.
#[derive(Debug)]
pub enum Source {
    Machine {
        timeline: SharedTimeline,
        /// Subtracted from the part counter (a reset on demand sets it).
        parts_offset: u64,
    },
    /// A consumer's meter: import integrates the feeds plus base load;
    /// export stays 0 (nothing generates).
    Meter {
        feeds: Vec<SharedTimeline>,
        /// Load not modelled as machines (lighting, compressors), kW.
        base_load_kw: f64,
        /// Reading of the import counter at the timelines' origin, kWh.
        initial_kwh: f64,
        /// Subtracted from the import counter (a reset on demand sets it).
        reset_kwh: f64,
        /// The counter wraps to zero here (float registers), when set.
        rollover_kwh: Option<f64>,
        /// Origin of the base load's integral, Unix seconds.
        origin_s: i64,
    },
}

/// A device's values at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Snapshot {
    pub power_kw: f64,
    pub import_kwh: f64,
    pub export_kwh: f64,
    pub parts: f64,
    pub run: bool,
    pub auto: bool,
    pub alarm: bool,
    pub spindle: bool,
}

impl Values for Snapshot {
    fn value(&self, role: TagRole) -> Option<f64> {
        let b = |x: bool| f64::from(u8::from(x));
        Some(match role {
            TagRole::ActivePower => self.power_kw,
            TagRole::EnergyCounter => self.import_kwh,
            TagRole::EnergyExport => self.export_kwh,
            TagRole::PartCounter => self.parts,
            TagRole::RunSignal => b(self.run),
            TagRole::AutoMode => b(self.auto),
            TagRole::Alarm => b(self.alarm),
            TagRole::Spindle => b(self.spindle),
            _ => return None,
        })
    }
}

impl Source {
    /// Import energy of a meter before reset and rollover, kWh.
    fn meter_total(
        feeds: &[SharedTimeline],
        base_load_kw: f64,
        initial_kwh: f64,
        origin_s: i64,
        t_ms: i64,
    ) -> (f64, f64) {
        let mut power = base_load_kw;
        let mut energy = initial_kwh
            + base_load_kw * ((t_ms as f64 / 1000.0 - origin_s as f64).max(0.0)) / 3600.0;
        for f in feeds {
            let s: MachineSignals = f.lock().expect("timeline lock").at(t_ms);
            power += s.power_kw;
            energy += s.energy_kwh;
        }
        (power, energy)
    }

    /// The device's values at Unix time `t_ms`.
    pub fn at(&self, t_ms: i64) -> Snapshot {
        match self {
            Source::Machine {
                timeline,
                parts_offset,
            } => {
                let s = timeline.lock().expect("timeline lock").at(t_ms);
                Snapshot {
                    power_kw: s.power_kw,
                    import_kwh: s.energy_kwh,
                    export_kwh: 0.0,
                    parts: s.parts.wrapping_sub(*parts_offset) as f64,
                    run: s.run,
                    auto: s.auto,
                    alarm: s.alarm,
                    spindle: s.spindle,
                }
            }
            Source::Meter {
                feeds,
                base_load_kw,
                initial_kwh,
                reset_kwh,
                rollover_kwh,
                origin_s,
            } => {
                let (power, total) =
                    Self::meter_total(feeds, *base_load_kw, *initial_kwh, *origin_s, t_ms);
                let mut reading = total - reset_kwh;
                if let Some(r) = rollover_kwh.filter(|r| *r > 0.0) {
                    reading = reading.rem_euclid(r);
                }
                Snapshot {
                    power_kw: power,
                    import_kwh: reading,
                    ..Snapshot::default()
                }
            }
        }
    }

    /// Resets the device's counter to zero at `t_ms` (part counter of a
    /// machine; import counter of a meter, as after a meter replacement).
    pub fn reset_counter(&mut self, t_ms: i64) {
        match self {
            Source::Machine {
                timeline,
                parts_offset,
            } => {
                *parts_offset = timeline.lock().expect("timeline lock").at(t_ms).parts;
            }
            Source::Meter {
                feeds,
                base_load_kw,
                initial_kwh,
                reset_kwh,
                origin_s,
                ..
            } => {
                *reset_kwh =
                    Self::meter_total(feeds, *base_load_kw, *initial_kwh, *origin_s, t_ms).1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{Behaviour, Calendar};
    use shuzhuan_common::inventory::DeviceKind;

    const T0: i64 = 1_764_547_200;

    fn machine(name: &str) -> SharedTimeline {
        Arc::new(Mutex::new(Timeline::new(
            Calendar::default(),
            Behaviour::for_kind(DeviceKind::Press),
            4,
            name,
            T0,
        )))
    }

    #[test]
    fn meter_counter_is_the_integral_of_its_power_and_resets_and_rolls_over() {
        let feeds = vec![machine("a"), machine("b")];
        let mut meter = Source::Meter {
            feeds: feeds.clone(),
            base_load_kw: 2.0,
            initial_kwh: 0.0,
            reset_kwh: 0.0,
            rollover_kwh: None,
            origin_s: T0 - 8 * 3600,
        };
        let (t0, t1) = (T0 * 1000, (T0 + 8 * 3600) * 1000);
        let mut integral = 0.0;
        let mut t = t0;
        while t < t1 {
            integral += meter.at(t).power_kw * 1000.0 / 3_600_000.0;
            t += 1000;
        }
        let delta = meter.at(t1).import_kwh - meter.at(t0).import_kwh;
        assert!(
            (delta - integral).abs() < 1e-6 * integral.max(1.0),
            "{delta} vs {integral}"
        );
        assert!(delta > 16.0, "base load alone is 16 kWh: {delta}");
        meter.reset_counter(t1);
        assert!(meter.at(t1).import_kwh.abs() < 1e-9);
        assert!(meter.at(t1 + 3_600_000).import_kwh > 2.0);
        let wrapping = Source::Meter {
            feeds,
            base_load_kw: 2.0,
            initial_kwh: 99.0,
            reset_kwh: 0.0,
            rollover_kwh: Some(100.0),
            origin_s: T0,
        };
        assert!((wrapping.at(T0 * 1000).import_kwh - 99.0).abs() < 1.0);
        assert!(wrapping.at((T0 + 3600) * 1000).import_kwh < 99.0, "wrapped");
    }

    #[test]
    fn a_consumers_meter_exports_nothing_while_import_integrates_its_load() {
        use crate::modbus::frame::Request;
        use crate::modbus::regmap::answer;
        use shuzhuan_common::profile::{decode_registers, DataType, WordOrder};
        let meter = Source::Meter {
            feeds: vec![machine("a")],
            base_load_kw: 1.0,
            initial_kwh: 100.0,
            reset_kwh: 0.0,
            rollover_kwh: None,
            origin_s: T0,
        };
        let profiles = crate::profiles::load_dir(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/profiles"),
        )
        .unwrap();
        let sdm = &profiles["eastron-sdm630"];
        let read = |snap: &Snapshot, address: u16| {
            let pdu = answer(
                sdm,
                Request {
                    function: 4,
                    address,
                    quantity: 2,
                },
                snap,
            );
            let words: Vec<u16> = pdu[2..]
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            decode_registers(DataType::F32, WordOrder::ABCD, None, &words)
                .unwrap()
                .as_f64()
                .unwrap()
        };
        let mut integral = 0.0;
        let mut last = meter.at(T0 * 1000);
        for k in 1..=86_400 {
            let t = (T0 + k) * 1000;
            integral += last.power_kw / 3600.0;
            let now = meter.at(t);
            assert_eq!(now.export_kwh, 0.0, "second {k}");
            assert!(now.power_kw >= 1.0, "power never reverses: {now:?}");
            assert!(now.import_kwh >= last.import_kwh, "import never falls");
            last = now;
        }
        // Power is constant within whole seconds: the sum is the integral.
        let delta = last.import_kwh - 100.0;
        assert!(
            (delta - integral).abs() < 1e-6 * integral,
            "{delta} vs {integral}"
        );
        assert!(delta > 24.0, "base load alone is 24 kWh: {delta}");
        // On the wire: SDM630 export (0x004A) reads 0, import (0x0048) the counter.
        assert_eq!(read(&last, 0x004A), 0.0);
        assert!((read(&last, 0x0048) - last.import_kwh).abs() < 0.01 * last.import_kwh);
    }
}
