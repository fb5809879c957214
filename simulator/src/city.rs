//! A generated city: N plants spread over the city's counties and industry
//! chains, each with a realistic mix of digitized and non-digitized
//! equipment, meters feeding machines, and key processes; deterministic for
//! a seed. Counties and chains come from `config/city/units.toml` when it
//! exists (a top-level `counties` array of tables with `id` and
//! `division_code`, and `chains` with `id` and `industry_type`), else from
//! `config/plants/city-fallback.toml`.

use crate::machine::Calendar;
use crate::plant::{ClockConfig, LinkConfig, LinkKind, Plant, PlantDevice, PlantInfo};
use crate::rng::Rng;
use serde::Deserialize;
use shuzhuan_common::credit_code::CreditCode;
use shuzhuan_common::inventory::{DeviceKind, IndustryType, KeyProcess};
use shuzhuan_common::tomlpos::{self, Located};

#[derive(Debug, Clone, Deserialize)]
pub struct CityCounty {
    pub id: String,
    #[serde(default)]
    pub division_code: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CityChain {
    pub id: String,
    pub industry_type: IndustryType,
}

/// The units a city is generated over.
#[derive(Debug, Clone, Deserialize)]
pub struct CityUnits {
    pub counties: Vec<CityCounty>,
    pub chains: Vec<CityChain>,
}

/// Reads `config_dir/city/units.toml`, or the fallback beside the plants;
/// the flag says whether the fallback was used.
pub fn load_units(config_dir: &std::path::Path) -> Result<(CityUnits, bool), Located> {
    let main = config_dir.join("city/units.toml");
    let (path, fallback) = if main.exists() {
        (main, false)
    } else {
        (config_dir.join("plants/city-fallback.toml"), true)
    };
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|e| Located {
        file: shown.clone(),
        line: 0,
        column: 0,
        message: format!("cannot read: {e}"),
    })?;
    Ok((tomlpos::parse(&shown, &text)?, fallback))
}

/// Choices of a generated city beyond its size and seed. The default is the
/// city every test and the demo use; other values change only what they name
/// (the random draws stay the same, so the plants keep their counties,
/// chains, machine kinds and meters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CityOptions {
    /// Machines per plant, smallest and largest (inclusive; at most 99, as
    /// they take Modbus unit ids 1..=99 beside the meters' 100 and 101).
    pub machines: (u8, u8),
    /// Serve digitized CNC machines over OPC UA (one server per plant that
    /// has one, link `cnc-ua`, OPC UA for Machine Tools names) instead of as
    /// PLC-style Modbus devices.
    pub cnc_opcua: bool,
}

impl Default for CityOptions {
    fn default() -> Self {
        CityOptions {
            machines: (3, 8),
            cnc_opcua: false,
        }
    }
}

impl CityOptions {
    /// Parses `MIN-MAX` (or a single number) for [`CityOptions::machines`].
    pub fn parse_machines(text: &str) -> Result<(u8, u8), String> {
        let (lo, hi) = text.split_once('-').unwrap_or((text, text));
        let num = |s: &str| {
            s.trim()
                .parse::<u8>()
                .map_err(|_| format!("machines per plant `{text}`: expected MIN-MAX, e.g. 3-8"))
        };
        let (lo, hi) = (num(lo)?, num(hi)?);
        if lo == 0 || lo > hi || hi > 99 {
            return Err(format!(
                "machines per plant `{text}`: need 1 <= MIN <= MAX <= 99"
            ));
        }
        Ok((lo, hi))
    }
}

/// `n` plants for `seed`, all listening on loopback with chosen ports.
pub fn generate(
    units: &CityUnits,
    n: usize,
    seed: u64,
    scale: f64,
    sim_epoch_ms: i64,
) -> Vec<Plant> {
    generate_with(units, n, seed, scale, sim_epoch_ms, CityOptions::default())
}

/// [`generate`] with [`CityOptions`].
pub fn generate_with(
    units: &CityUnits,
    n: usize,
    seed: u64,
    scale: f64,
    sim_epoch_ms: i64,
    options: CityOptions,
) -> Vec<Plant> {
    let (min_machines, max_machines) = options.machines;
    let mut rng = Rng::for_stream(seed, "city");
    (1..=n)
        .map(|i| {
            let county = rng.pick(&units.counties).clone();
            let chain = rng.pick(&units.chains).clone();
            let division = county
                .division_code
                .clone()
                .unwrap_or_else(|| "411700".into());
            // 91 = enterprise registered by market regulation; 9 organisation characters from the plant number.
            let code = CreditCode::from_body(&format!(
                "91{division}{:09}",
                seed.wrapping_mul(1000).wrapping_add(i as u64) % 1_000_000_000
            ))
            .expect("digits are valid credit code characters");
            let id = format!("{}-{i:04}", county.id);
            let kinds: &[DeviceKind] = match chain.industry_type {
                IndustryType::Discrete => &[
                    DeviceKind::CncMachineTool,
                    DeviceKind::Press,
                    DeviceKind::InjectionMoulding,
                    DeviceKind::ConventionalMachine,
                ],
                IndustryType::Process => &[
                    DeviceKind::Furnace,
                    DeviceKind::ProductionLine,
                    DeviceKind::ConventionalMachine,
                ],
            };
            let machines = usize::from(min_machines)
                + rng.below(u64::from(max_machines.saturating_sub(min_machines)) + 1) as usize;
            let digitized_share = rng.range(0.3, 0.9);
            let opcua = |kind| options.cnc_opcua && kind == DeviceKind::CncMachineTool;
            let mut devices = Vec::new();
            for m in 1..=machines {
                let kind = *rng.pick(kinds);
                let digitized =
                    kind != DeviceKind::ConventionalMachine && rng.chance(digitized_share);
                devices.push(PlantDevice {
                    id: format!("m{m:02}"),
                    name: format!("{kind:?} {m}"),
                    kind,
                    production: true,
                    declared_digital: digitized || rng.chance(0.1),
                    declared_networked: digitized,
                    declared_nc: kind != DeviceKind::ConventionalMachine,
                    key_process: (m == 1).then(|| "key".to_owned()),
                    original_value_cny: Some((rng.range(50.0, 1200.0) * 1000.0).round()),
                    // By default CNC machines are served as PLC-style Modbus devices: one
                    // OPC UA server per plant costs ~11 MB (its own namespace 0).
                    link: digitized.then(|| if opcua(kind) { "cnc-ua" } else { "plc" }.to_owned()),
                    unit: m as u8,
                    profile: digitized.then(|| {
                        if opcua(kind) {
                            "opcua-machinetool-cnc"
                        } else {
                            "generic-plc"
                        }
                        .to_owned()
                    }),
                    feeds: Vec::new(),
                    base_load_kw: 0.0,
                    initial_kwh: 0.0,
                    rollover_kwh: None,
                    behaviour: None,
                    tags: Vec::new(),
                });
            }
            let all: Vec<String> = devices.iter().map(|d| d.id.clone()).collect();
            let meter =
                |id: &str, unit: u8, profile: &str, feeds: Vec<String>, base: f64, initial: f64| {
                    PlantDevice {
                        id: id.into(),
                        name: id.into(),
                        kind: DeviceKind::EnergyMeter,
                        production: false,
                        declared_digital: true,
                        declared_networked: true,
                        declared_nc: false,
                        key_process: None,
                        original_value_cny: None,
                        link: Some("plc".into()),
                        unit,
                        profile: Some(profile.into()),
                        feeds,
                        base_load_kw: base,
                        initial_kwh: initial,
                        rollover_kwh: None,
                        behaviour: None,
                        tags: Vec::new(),
                    }
                };
            let main_profile = *rng.pick(&["eastron-sdm630", "chint-dtsu666", "schneider-pm5xxx"]);
            let initial = (rng.range(1e4, 5e5)).round();
            devices.push(meter(
                "meter-main",
                100,
                main_profile,
                all.clone(),
                rng.range(2.0, 20.0),
                initial,
            ));
            devices.push(meter(
                "meter-sub",
                101,
                "acrel-adl400",
                vec![all[0].clone()],
                0.0,
                0.0,
            ));
            let link = |id: &str, kind| LinkConfig {
                id: id.into(),
                kind,
                listen: "127.0.0.1:0".into(),
                port: None,
                agent_port: None,
            };
            let mut links = vec![link("plc", LinkKind::ModbusTcp)];
            if devices.iter().any(|d| d.link.as_deref() == Some("cnc-ua")) {
                links.push(link("cnc-ua", LinkKind::Opcua));
            }
            Plant {
                plant: PlantInfo {
                    id,
                    name: format!("Plant {i}"),
                    credit_code: code,
                    county: county.id,
                    chain: chain.id,
                    seed: seed ^ i as u64,
                    window_secs: 900,
                },
                clock: ClockConfig {
                    scale,
                    sim_epoch_ms: Some(sim_epoch_ms),
                },
                calendar: Calendar::default(),
                links,
                devices,
                key_processes: vec![KeyProcess {
                    id: "key".into(),
                    name: "key process".into(),
                    declared_nc: true,
                }],
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_city_is_deterministic_valid_and_mixed() {
        let (units, _) =
            load_units(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config"))
                .unwrap();
        let a = generate(&units, 30, 7, 60.0, 1_764_547_200_000);
        let b = generate(&units, 30, 7, 60.0, 1_764_547_200_000);
        assert_eq!(a, b);
        let devices: Vec<_> = a
            .iter()
            .flat_map(|p| &p.devices)
            .filter(|d| d.production)
            .collect();
        let digitized = devices.iter().filter(|d| d.link.is_some()).count();
        assert!(
            digitized > 0 && digitized < devices.len(),
            "{digitized} of {}",
            devices.len()
        );
        let counties: std::collections::HashSet<_> = a.iter().map(|p| &p.plant.county).collect();
        assert!(counties.len() > 3);
        for p in &a {
            let text = toml::to_string(p).unwrap();
            crate::plant::parse("generated", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        }
    }

    #[test]
    fn options_change_only_what_they_name() {
        let (units, _) =
            load_units(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config"))
                .unwrap();
        let base = generate(&units, 40, 3, 1.0, 0);
        let ua = generate_with(
            &units,
            40,
            3,
            1.0,
            0,
            CityOptions {
                cnc_opcua: true,
                ..CityOptions::default()
            },
        );
        let mut on_opcua = 0;
        for (b, u) in base.iter().zip(&ua) {
            assert_eq!(b.plant, u.plant);
            assert_eq!(b.devices.len(), u.devices.len());
            for (bd, ud) in b.devices.iter().zip(&u.devices) {
                assert_eq!((&bd.id, bd.kind), (&ud.id, ud.kind));
                let cnc = ud.kind == DeviceKind::CncMachineTool && ud.link.is_some();
                assert_eq!(bd.link.is_some(), ud.link.is_some());
                if cnc {
                    on_opcua += 1;
                    assert_eq!(ud.link.as_deref(), Some("cnc-ua"));
                    assert_eq!(ud.profile.as_deref(), Some("opcua-machinetool-cnc"));
                } else {
                    assert_eq!(bd, ud);
                }
            }
            let has_ua = u.links.iter().any(|l| l.kind == LinkKind::Opcua);
            assert_eq!(
                has_ua,
                u.devices
                    .iter()
                    .any(|d| d.link.as_deref() == Some("cnc-ua"))
            );
            let text = toml::to_string(u).unwrap();
            crate::plant::parse("generated", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        }
        assert!(on_opcua > 0, "some CNC machines are on OPC UA");

        let big = generate_with(
            &units,
            40,
            3,
            1.0,
            0,
            CityOptions {
                machines: (12, 24),
                ..CityOptions::default()
            },
        );
        for p in &big {
            let machines = p.devices.iter().filter(|d| !d.is_meter()).count();
            assert!((12..=24).contains(&machines), "{machines}");
        }
        assert_eq!(CityOptions::parse_machines("12-24"), Ok((12, 24)));
        assert_eq!(CityOptions::parse_machines("5"), Ok((5, 5)));
        for bad in ["0-3", "9-4", "3-100", "x", "3-"] {
            assert!(CityOptions::parse_machines(bad).is_err(), "{bad}");
        }
    }
}
