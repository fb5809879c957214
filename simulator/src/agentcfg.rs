//! The agent config a running plant needs (`agents/<plant>.toml`), in the
//! format outlined in docs/dev/contracts.md: links at the bound addresses,
//! devices with their inventory facts and profiles, meters that feed each
//! machine, the shared scaled clock. Devices without a link are listed too:
//! they are in the inventory but have no data.

use crate::clock::SimClock;
use crate::plant::{LinkKind, Plant};
use serde::Serialize;
use shuzhuan_common::inventory::{DeviceKind, KeyProcess};
use std::collections::BTreeMap;

#[derive(Debug, Serialize)]
struct AgentFile {
    agent: AgentSection,
    clock: ClockSection,
    http: HttpSection,
    links: Vec<LinkSection>,
    devices: Vec<DeviceSection>,
    key_processes: Vec<KeyProcess>,
}

#[derive(Debug, Serialize)]
struct AgentSection {
    id: String,
    enterprise: String,
    data_dir: String,
    window_secs: u32,
}

#[derive(Debug, Serialize)]
struct ClockSection {
    scale: f64,
    sim_epoch_ms: i64,
    real_epoch_ms: i64,
}

#[derive(Debug, Serialize)]
struct HttpSection {
    listen: String,
}

#[derive(Debug, Serialize)]
struct LinkSection {
    id: String,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<String>,
    /// OPC UA only: `"poll"` on a scaled clock, where a subscription's
    /// publishing interval (wall time) would stretch to minutes of simulated
    /// time and miss short states.
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<&'static str>,
    timeout_ms: u32,
}

#[derive(Debug, Serialize)]
struct DeviceSection {
    id: String,
    name: String,
    kind: DeviceKind,
    production: bool,
    declared_digital: bool,
    declared_networked: bool,
    declared_nc: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_process: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_value_cny: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    root: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    poll_interval_ms: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    meters: Vec<String>,
    /// The plant file's `[[devices.tags]]`, so the agent reads the registers
    /// where this device serves them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<crate::plant::TagOverride>,
}

/// The agent config for `plant` whose links are bound at `ports` (link id →
/// `ip:port` or OPC UA endpoint URL). `data_dir` and `http_listen` are the
/// agent's own.
pub fn agent_config(
    plant: &Plant,
    ports: &BTreeMap<String, String>,
    clock: &SimClock,
    data_dir: &str,
    http_listen: &str,
) -> String {
    let links = plant
        .links
        .iter()
        .map(|l| {
            let bound = ports.get(&l.id).cloned();
            match l.kind {
                LinkKind::ModbusTcp => LinkSection {
                    id: l.id.clone(),
                    kind: "modbus_tcp",
                    address: bound,
                    endpoint: None,
                    port: None,
                    mode: None,
                    timeout_ms: 1000,
                },
                LinkKind::ModbusRtu => LinkSection {
                    id: l.id.clone(),
                    kind: "modbus_rtu",
                    address: None,
                    endpoint: None,
                    port: l.agent_port.clone().or(bound),
                    mode: None,
                    timeout_ms: 1000,
                },
                LinkKind::Opcua => LinkSection {
                    id: l.id.clone(),
                    kind: "opcua",
                    address: None,
                    endpoint: bound,
                    port: None,
                    mode: (clock.scale > 1.0).then_some("poll"),
                    timeout_ms: 1000,
                },
            }
        })
        .collect();
    let opcua_links: Vec<&str> = plant
        .links
        .iter()
        .filter(|l| l.kind == LinkKind::Opcua)
        .map(|l| l.id.as_str())
        .collect();
    let devices = plant
        .devices
        .iter()
        .map(|d| {
            let on_opcua = d.link.as_deref().is_some_and(|l| opcua_links.contains(&l));
            DeviceSection {
                id: d.id.clone(),
                name: d.name.clone(),
                kind: d.kind,
                production: d.production,
                declared_digital: d.declared_digital,
                declared_networked: d.declared_networked,
                declared_nc: d.declared_nc,
                key_process: d.key_process.clone(),
                original_value_cny: d.original_value_cny,
                link: d.link.clone(),
                unit: d.link.as_ref().filter(|_| !on_opcua).map(|_| d.unit),
                // The OPC UA server's machine objects live under Objects/Machines.
                root: on_opcua.then(|| format!("Machines/{}", d.id)),
                profile: d.link.as_ref().and(d.profile.clone()),
                poll_interval_ms: d.link.as_ref().map(|_| 1000),
                meters: plant
                    .devices
                    .iter()
                    .filter(|m| m.feeds.contains(&d.id))
                    .map(|m| m.id.clone())
                    .collect(),
                tags: d.tags.clone(),
            }
        })
        .collect();
    let file = AgentFile {
        agent: AgentSection {
            id: format!("gw-{}", plant.plant.id),
            enterprise: plant.plant.credit_code.to_string(),
            data_dir: data_dir.to_owned(),
            window_secs: plant.plant.window_secs,
        },
        clock: ClockSection {
            scale: clock.scale,
            sim_epoch_ms: clock.sim_epoch_ms,
            real_epoch_ms: clock.real_epoch_ms,
        },
        http: HttpSection {
            listen: http_listen.to_owned(),
        },
        links,
        devices,
        key_processes: plant.key_processes.clone(),
    };
    let body = toml::to_string(&file).expect("agent config serializes");
    format!(
        "# Generated by shuzhuan-sim for plant `{}`.\n{body}",
        plant.plant.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_agent_config_names_links_meters_and_undigitized_devices() {
        let plant = crate::plant::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/plants/example.toml"),
        )
        .unwrap();
        let ports = BTreeMap::from([
            ("plc-line".to_owned(), "127.0.0.1:5020".to_owned()),
            ("cnc-ua".to_owned(), "opc.tcp://127.0.0.1:4840/".to_owned()),
        ]);
        let clock = SimClock {
            scale: 60.0,
            sim_epoch_ms: 1_764_547_200_000,
            real_epoch_ms: 5,
        };
        let text = agent_config(&plant, &ports, &clock, "/tmp/a", "127.0.0.1:0");
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["clock"]["real_epoch_ms"].as_integer(), Some(5));
        assert_eq!(v["links"][0]["address"].as_str(), Some("127.0.0.1:5020"));
        let devices = v["devices"].as_array().unwrap();
        let find = |id: &str| {
            devices
                .iter()
                .find(|d| d["id"].as_str() == Some(id))
                .unwrap()
        };
        assert!(
            find("grinder-1").get("link").is_none(),
            "no data for the grinder"
        );
        assert_eq!(find("imm-1")["meters"].as_array().unwrap().len(), 2);
        assert_eq!(find("cnc-1")["root"].as_str(), Some("Machines/cnc-1"));
        assert!(find("cnc-1").get("unit").is_none());
    }
}
