//! Plant files (`config/plants/*.toml`): an enterprise, its links, its
//! devices with their inventory facts and behaviour, which machines feed which
//! meter, and its key processes. Parsed with `deny_unknown_fields`; errors
//! carry file:line:column.
//!
//! A device's `[[devices.tags]]` entries change its profile's register map
//! the way the agent's config does (docs/dev/contracts.md): an entry naming
//! a profile tag changes only the keys it gives (a meter wired with the
//! other word order, a PLC whose counter sits elsewhere); any other entry is
//! a new tag and needs `role`, `table`, `address` and `type`.

use crate::machine::{Behaviour, Calendar};
use serde::{Deserialize, Serialize};
use shuzhuan_common::credit_code::CreditCode;
use shuzhuan_common::inventory::{Device, DeviceKind, KeyProcess};
use shuzhuan_common::profile::{DataType, ModbusTag, Profile, Protocol, Table, TagRole, WordOrder};
use shuzhuan_common::tomlpos::{self, Located};
use std::collections::BTreeMap;

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
    /// Changes to the profile's register map (`[[devices.tags]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<TagOverride>,
}

/// One `[[devices.tags]]` entry: the keys of a profile's Modbus tag
/// (`shuzhuan_common::profile::ModbusTag`), all optional but `name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagOverride {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<TagRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<Table>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<u16>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<DataType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<WordOrder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bit: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl TagOverride {
    /// Changes the keys this entry gives.
    fn apply_to(&self, t: &mut ModbusTag) {
        if let Some(v) = self.role {
            t.role = v;
        }
        if let Some(v) = self.table {
            t.table = v;
        }
        if let Some(v) = self.address {
            t.address = v;
        }
        if let Some(v) = self.data_type {
            t.data_type = v;
        }
        if let Some(v) = self.order {
            t.order = v;
        }
        if self.bit.is_some() {
            t.bit = self.bit;
        }
        if self.len.is_some() {
            t.len = self.len;
        }
        if let Some(v) = self.scale {
            t.scale = v;
        }
        if let Some(v) = self.offset {
            t.offset = v;
        }
        if self.unit.is_some() {
            t.unit = self.unit.clone();
        }
        if self.carrier.is_some() {
            t.carrier = self.carrier.clone();
        }
        if self.group.is_some() {
            t.group = self.group.clone();
        }
    }

    /// A new tag from this entry, or the keys it lacks.
    fn new_tag(&self) -> Result<ModbusTag, String> {
        let missing: Vec<&str> = [
            ("role", self.role.is_none()),
            ("table", self.table.is_none()),
            ("address", self.address.is_none()),
            ("type", self.data_type.is_none()),
        ]
        .into_iter()
        .filter_map(|(k, m)| m.then_some(k))
        .collect();
        let (Some(role), Some(table), Some(address), Some(data_type)) =
            (self.role, self.table, self.address, self.data_type)
        else {
            return Err(format!(
                "is not a tag of the profile, and a new tag needs {}",
                missing
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let mut t = ModbusTag {
            name: self.name.clone(),
            role,
            table,
            address,
            data_type,
            order: WordOrder::default(),
            bit: None,
            len: None,
            scale: 1.0,
            offset: 0.0,
            unit: None,
            carrier: None,
            group: None,
        };
        self.apply_to(&mut t);
        Ok(t)
    }
}

/// A device's tags could not be applied to its profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("device `{device}` tag `{tag}`: {message}")]
pub struct TagError {
    pub device: String,
    pub tag: String,
    pub message: String,
}

fn d_unit() -> u8 {
    1
}

impl PlantDevice {
    pub fn is_meter(&self) -> bool {
        self.kind == DeviceKind::EnergyMeter
    }

    /// The profile as this device serves it: `profile` with the device's
    /// `[[devices.tags]]` applied and the result checked (no overlapping
    /// registers, every tag inside the 65,536-address space, a bit index
    /// below 16 for `type = "bit"`, bit-sized types in coil and discrete
    /// tables only).
    pub fn served_profile(&self, profile: &Profile) -> Result<Profile, TagError> {
        let err = |tag: &str, message: String| TagError {
            device: self.id.clone(),
            tag: tag.to_owned(),
            message,
        };
        if self.tags.is_empty() {
            return Ok(profile.clone());
        }
        if profile.protocol != Protocol::Modbus {
            return Err(err(
                &self.tags[0].name,
                format!(
                    "profile `{}` is not a Modbus profile; tags change Modbus register maps only",
                    profile.id
                ),
            ));
        }
        let mut p = profile.clone();
        let mut seen = std::collections::HashSet::new();
        for o in &self.tags {
            if !seen.insert(o.name.as_str()) {
                return Err(err(&o.name, "is given twice".into()));
            }
            match p.modbus.iter_mut().find(|t| t.name == o.name) {
                Some(t) => o.apply_to(t),
                None => p.modbus.push(o.new_tag().map_err(|m| err(&o.name, m))?),
            }
        }
        // Registers (or bits) each tag occupies, by table; bits of one
        // status word may share the register.
        // (table, address) -> (tag, bit) of every tag holding it.
        type Holders<'a> = Vec<(&'a str, Option<u8>)>;
        let mut used: BTreeMap<(u8, u32), Holders<'_>> = BTreeMap::new();
        for t in &p.modbus {
            let bits = matches!(t.data_type, DataType::Bool);
            if t.table.is_bits() != bits {
                return Err(err(
                    &t.name,
                    format!(
                        "type `{}` does not fit table `{}` (coils and discrete inputs hold `bool`, registers hold the rest)",
                        format!("{:?}", t.data_type).to_lowercase(),
                        format!("{:?}", t.table).to_lowercase()
                    ),
                ));
            }
            if t.data_type == DataType::Bit && t.bit.unwrap_or(0) > 15 {
                return Err(err(&t.name, "`bit` must be 0..=15".into()));
            }
            let end = u32::from(t.address) + u32::from(t.width());
            if end > 0x1_0000 {
                return Err(err(
                    &t.name,
                    format!("registers {}..{end} run past 65535", t.address),
                ));
            }
            let bit = (t.data_type == DataType::Bit).then(|| t.bit.unwrap_or(0));
            for a in u32::from(t.address)..end {
                let key = (t.table as u8, a);
                let holders = used.entry(key).or_default();
                if let Some((other, _)) = holders
                    .iter()
                    .find(|(_, b)| bit.is_none() || b.is_none() || bit == *b)
                {
                    // Blame the entry this device wrote.
                    let (mine, theirs) = if self.tags.iter().any(|o| o.name == t.name) {
                        (t.name.as_str(), *other)
                    } else {
                        (*other, t.name.as_str())
                    };
                    return Err(err(mine, format!("overlaps tag `{theirs}` at address {a}")));
                }
                holders.push((&t.name, bit));
            }
        }
        Ok(p)
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

/// Checks every device's `[[devices.tags]]` against its profile, pointing
/// at the entry's `name` line in `text` (the file's text) on error.
pub fn check_tags(
    plant: &Plant,
    profiles: &BTreeMap<String, Profile>,
    file: &str,
    text: &str,
) -> Result<(), Located> {
    for d in &plant.devices {
        let Some(profile) = d.profile.as_ref().and_then(|p| profiles.get(p)) else {
            if let (Some(t), Some(p)) = (d.tags.first(), &d.profile) {
                return Err(locate_tag(
                    file,
                    text,
                    &d.id,
                    &t.name,
                    format!(
                        "device `{}`: profile `{p}` is not in the profiles folder",
                        d.id
                    ),
                ));
            }
            continue;
        };
        if let Err(e) = d.served_profile(profile) {
            return Err(locate_tag(file, text, &d.id, &e.tag, e.to_string()));
        }
    }
    Ok(())
}

/// The position of `name = "<tag>"` after the device's `id = "<device>"`.
fn locate_tag(file: &str, text: &str, device: &str, tag: &str, message: String) -> Located {
    let needle = |key: &str, v: &str| [format!("{key} = \"{v}\""), format!("{key}=\"{v}\"")];
    let find_from = |from: usize, key: &str, v: &str| {
        needle(key, v)
            .iter()
            .filter_map(|n| text[from..].find(n.as_str()).map(|i| from + i))
            .min()
    };
    let span = find_from(0, "id", device)
        .and_then(|d| find_from(d, "name", tag))
        .map(|i| i..i + 1);
    tomlpos::locate(file, text, span, message)
}

/// Reads and parses a plant file, and checks its tags against `profiles`.
pub fn load_checked(
    path: &std::path::Path,
    profiles: &BTreeMap<String, Profile>,
) -> Result<Plant, Located> {
    let shown = path.display().to_string();
    let plant = load(path)?;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    check_tags(&plant, profiles, &shown, &text)?;
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

    const HEAD: &str = "[plant]\nid = \"p\"\nname = \"n\"\ncredit_code = \"91350100M000100Y43\"\ncounty = \"x\"\nchain = \"c\"\n\n[[links]]\nid = \"l\"\nkind = \"modbus_tcp\"\n\n[[devices]]\nid = \"m\"\nname = \"m\"\nkind = \"press\"\nproduction = true\nlink = \"l\"\nprofile = \"generic-plc\"\n";

    fn profiles() -> BTreeMap<String, Profile> {
        crate::profiles::load_dir(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/profiles"),
        )
        .unwrap()
    }

    fn served(tags: &str) -> Result<Profile, Located> {
        let text = format!("{HEAD}{tags}");
        let p = parse("p.toml", &text)?;
        check_tags(&p, &profiles(), "p.toml", &text)?;
        Ok(p.devices[0]
            .served_profile(&profiles()["generic-plc"])
            .unwrap())
    }

    #[test]
    fn tags_change_only_the_keys_they_give_and_add_new_tags() {
        let p = served(
            "[[devices.tags]]\nname = \"parts\"\naddress = 20\norder = \"CDAB\"\n\n[[devices.tags]]\nname = \"energy\"\nrole = \"energy_counter\"\ntable = \"holding\"\naddress = 30\ntype = \"f32\"\nunit = \"kWh\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let base = &profiles()["generic-plc"];
        let tag = |p: &Profile, n: &str| p.modbus.iter().find(|t| t.name == n).unwrap().clone();
        let parts = tag(&p, "parts");
        assert_eq!((parts.address, parts.order), (20, WordOrder::CDAB));
        let was = tag(base, "parts");
        assert_eq!(
            (parts.data_type, parts.unit.clone(), parts.role),
            (was.data_type, was.unit, was.role),
            "keys not given stay the profile's"
        );
        assert_eq!(tag(&p, "power"), tag(base, "power"));
        let energy = tag(&p, "energy");
        assert_eq!(
            (energy.role, energy.address, energy.data_type, energy.scale),
            (TagRole::EnergyCounter, 30, DataType::F32, 1.0)
        );
        assert_eq!(p.modbus.len(), base.modbus.len() + 1);
    }

    #[test]
    fn bad_tags_are_refused_at_their_line() {
        // An unknown key: the toml position of the key itself.
        let e = served("[[devices.tags]]\nname = \"parts\"\nadress = 20\n").unwrap_err();
        assert_eq!((e.line, e.column), (21, 1), "{e}");
        assert!(e.message.contains("unknown field `adress`"), "{e}");
        // A new tag without its keys.
        let e = served("[[devices.tags]]\nname = \"hours\"\naddress = 40\n").unwrap_err();
        assert_eq!(e.line, 20, "{e}");
        assert!(
            e.message
                .contains("tag `hours`: is not a tag of the profile, and a new tag needs `role`, `table`, `type`"),
            "{e}"
        );
        // Moved onto another tag's registers.
        let e = served("[[devices.tags]]\nname = \"parts\"\naddress = 3\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("p.toml:20:1: device `m` tag `parts`: overlaps tag `power`"),
            "{e}"
        );
        assert!(e.message.contains("overlaps tag"), "{e}");
        // Past the end of the address space, a bool in a register table, twice the same name.
        for (tags, want) in [
            (
                "[[devices.tags]]\nname = \"power\"\naddress = 65535\n",
                "run past 65535",
            ),
            (
                "[[devices.tags]]\nname = \"power\"\ntype = \"bool\"\n",
                "does not fit table `holding`",
            ),
            (
                "[[devices.tags]]\nname = \"power\"\n[[devices.tags]]\nname = \"power\"\n",
                "given twice",
            ),
            ("[[devices.tags]]\nname = \"run\"\nbit = 16\n", "0..=15"),
        ] {
            let e = served(tags).unwrap_err();
            assert!(e.message.contains(want), "{tags}: {e}");
        }
        // The same bit of the status word twice is an overlap; another bit is not.
        assert!(served("[[devices.tags]]\nname = \"alarm\"\nbit = 0\n").is_err());
        assert!(served("[[devices.tags]]\nname = \"alarm\"\nbit = 7\n").is_ok());
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
