//! Plant files (`config/plants/*.toml`): an enterprise, its links, its
//! devices with their inventory facts and behaviour, which machines feed which
//! meter, and its key processes. Parsed with `deny_unknown_fields`; errors
//! carry file:line:column.

use crate::machine::{Behaviour, Calendar};
use serde::{Deserialize, Serialize};
use shuzhuan_common::credit_code::CreditCode;
use shuzhuan_common::inventory::{Device, DeviceKind, KeyProcess};
use shuzhuan_common::tomlpos::{self, Located};

/// A plant file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plant {
    pub plant: PlantInfo,
    #[serde(default)]
    pub clock: ClockConfig,
    #[serde(default)]
    pub calendar: Calendar,
    #[serde(default)]
    pub links: Vec<LinkConfig>,
    pub devices: Vec<PlantDevice>,
    #[serde(default)]
    pub key_processes: Vec<KeyProcess>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlantInfo {
    pub id: String,
    pub name: String,
    pub credit_code: CreditCode,
    pub county: String,
    pub chain: String,
    /// Seed of every random choice in the plant.
    #[serde(default = "one_u64")]
    pub seed: u64,
    /// Ground-truth window length, seconds.
    #[serde(default = "d_window")]
    pub window_secs: u32,
}

fn one_u64() -> u64 {
    1
}
fn d_window() -> u32 {
    900
}

/// The scaled clock; `sim_epoch_ms` absent means "now".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockConfig {
    #[serde(default = "one_f64")]
    pub scale: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim_epoch_ms: Option<i64>,
}

fn one_f64() -> f64 {
    1.0
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig {
            scale: 1.0,
            sim_epoch_ms: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    ModbusTcp,
    /// Modbus RTU on the serial device or pty named by `port`.
    ModbusRtu,
    Opcua,
}

/// A listener the plant's devices are reached through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    pub id: String,
    pub kind: LinkKind,
    /// Address to bind; port 0 picks a free one.
    #[serde(default = "d_listen")]
    pub listen: String,
    /// `modbus_rtu`: the serial device or pty the simulator serves on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// `modbus_rtu`: the device the agent should open (the other end of a pty pair).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_port: Option<String>,
}

fn d_listen() -> String {
    "127.0.0.1:0".into()
}

/// A device: inventory facts, where it is served, how it behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlantDevice {
    pub id: String,
    pub name: String,
    pub kind: DeviceKind,
    pub production: bool,
    #[serde(default)]
    pub declared_digital: bool,
    #[serde(default)]
    pub declared_networked: bool,
    #[serde(default)]
    pub declared_nc: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_process: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_value_cny: Option<f64>,
    /// Link serving the device; absent: not digitized, no data at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default = "d_unit")]
    pub unit: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Meters: the devices whose power this meter measures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feeds: Vec<String>,
    #[serde(default)]
    pub base_load_kw: f64,
    #[serde(default)]
    pub initial_kwh: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollover_kwh: Option<f64>,
    /// Machines: overrides the defaults of its kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behaviour: Option<Behaviour>,
}

fn d_unit() -> u8 {
    1
}

impl PlantDevice {
    pub fn is_meter(&self) -> bool {
        self.kind == DeviceKind::EnergyMeter
    }

    /// The inventory facts of the device.
    pub fn inventory(&self) -> Device {
        Device {
            id: self.id.clone(),
            name: self.name.clone(),
            kind: self.kind,
            production: self.production,
            declared_digital: self.declared_digital,
            declared_networked: self.declared_networked,
            declared_nc: self.declared_nc,
            key_process: self.key_process.clone(),
            original_value_cny: self.original_value_cny,
        }
    }
}

/// Parses and checks a plant file's text.
pub fn parse(file: &str, text: &str) -> Result<Plant, Located> {
    let plant: Plant = tomlpos::parse(file, text)?;
    let at = |key: &str, msg: String| {
        tomlpos::locate(
            file,
            text,
            tomlpos::find_key(text, "[devices]", key)
                .or_else(|| tomlpos::find_key(text, "devices", key)),
            msg,
        )
    };
    let mut ids = std::collections::HashSet::new();
    for d in &plant.devices {
        if !ids.insert(d.id.as_str()) {
            return Err(at("id", format!("device `{}` is declared twice", d.id)));
        }
        if let Some(l) = &d.link {
            if !plant.links.iter().any(|x| &x.id == l) {
                return Err(at(
                    "link",
                    format!("device `{}`: link `{l}` is not declared in [[links]]", d.id),
                ));
            }
            if d.profile.is_none() {
                return Err(at(
                    "link",
                    format!("device `{}` has a link but no profile", d.id),
                ));
            }
        }
    }
    for d in &plant.devices {
        for f in &d.feeds {
            if !plant.devices.iter().any(|x| &x.id == f && !x.is_meter()) {
                return Err(at(
                    "feeds",
                    format!(
                        "meter `{}` feeds `{f}`, which is not a machine of this plant",
                        d.id
                    ),
                ));
            }
        }
    }
    Ok(plant)
}

/// Reads and parses a plant file.
pub fn load(path: &std::path::Path) -> Result<Plant, Located> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Located {
        file: shown.clone(),
        line: 0,
        column: 0,
        message: format!("cannot read: {e}"),
    })?;
    parse(&shown, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_plant_parses() {
        let p = load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/plants/example.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            p.devices.iter().any(|d| d.link.is_none()),
            "example has non-digitized equipment"
        );
        assert!(p
            .devices
            .iter()
            .any(|d| d.is_meter() && !d.feeds.is_empty()));
    }

    #[test]
    fn errors_point_at_the_line() {
        let text = "[plant]\nid = \"p\"\nname = \"n\"\ncredit_code = \"91350100M000100Y43\"\ncounty = \"x\"\nchain = \"c\"\ncolour = 1\n";
        let e = parse("p.toml", text).unwrap_err();
        assert_eq!((e.line, e.column), (7, 1), "{e}");
        let text = "[plant]\nid = \"p\"\nname = \"n\"\ncredit_code = \"91350100M000100Y43\"\ncounty = \"x\"\nchain = \"c\"\n\n[[devices]]\nid = \"m\"\nname = \"m\"\nkind = \"press\"\nproduction = true\nlink = \"nowhere\"\nprofile = \"generic-plc\"\n";
        let e = parse("p.toml", text).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("p.toml:13:1: device `m`: link `nowhere`"),
            "{e}"
        );
    }
}
