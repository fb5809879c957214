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

/// `n` plants for `seed`, all listening on loopback with chosen ports.
pub fn generate(
    units: &CityUnits,
    n: usize,
    seed: u64,
    scale: f64,
    sim_epoch_ms: i64,
) -> Vec<Plant> {
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
            let machines = 3 + rng.below(6) as usize;
            let digitized_share = rng.range(0.3, 0.9);
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
                    // CNC machines are served as PLC-style Modbus devices here: one OPC
                    // UA server per generated plant would dominate the process.
                    link: digitized.then(|| "plc".to_owned()),
                    unit: m as u8,
                    profile: digitized.then(|| "generic-plc".to_owned()),
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
                links: vec![LinkConfig {
                    id: "plc".into(),
                    kind: LinkKind::ModbusTcp,
                    listen: "127.0.0.1:0".into(),
                    port: None,
                    agent_port: None,
                }],
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
}
