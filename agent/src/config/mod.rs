//! Agent configuration (`agent.toml`): raw parse with positions, then validation into typed config.
//!
//! [`AgentConfig::load`] reads the file, the device profiles it names and
//! checks everything it can without touching the network; it returns every
//! problem at once as `file:line:column: message` ([`ConfigErrors`]), with a
//! hint where one helps. The result carries each device's resolved tags
//! (profile tags merged with the device's overrides), so sources never look
//! at profiles themselves.

mod influx;
mod load;
mod tags;

pub use influx::{InfluxBuffer, InfluxDbSection, Precision};

use crate::clock::Clock;
use crate::sources::opcua::{OpcUaDeviceConfig, OpcUaLinkConfig};
use serde::{Deserialize, Serialize};
use shuzhuan_common::credit_code::CreditCode;
use shuzhuan_common::inventory::{Device, Inventory, KeyProcess};
use shuzhuan_common::profile::{ForbiddenRange, ModbusTag, OpcUaTag, Profile};
use shuzhuan_common::tomlpos::Located;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Every problem found in a config, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<Located>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A validated `agent.toml`.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The file it was read from.
    pub path: PathBuf,
    pub agent: AgentSection,
    /// `None`: real time.
    pub clock: Option<ClockSection>,
    /// `None`: no shipping (reports stay in the spool).
    pub aggregator: Option<AggregatorSection>,
    pub http: HttpSection,
    pub spool: SpoolSection,
    /// Optional InfluxDB v2 sink (samples and window summaries).
    pub influxdb: Option<InfluxDbSection>,
    pub links: Vec<LinkConfig>,
    pub devices: Vec<DeviceConfig>,
    pub key_processes: Vec<KeyProcess>,
    /// The profiles devices use, by id.
    pub profiles: BTreeMap<String, Profile>,
}

/// `[agent]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSection {
    pub id: String,
    pub enterprise: CreditCode,
    /// Keys, spool, PKI; relative paths are taken from the config's folder.
    pub data_dir: PathBuf,
    /// Report window length in seconds (default 900).
    pub window_secs: u32,
    /// Where profiles were read from (`None` when no folder was found and
    /// no device needs one).
    pub profiles_dir: Option<PathBuf>,
    /// `industry = "discrete" | "process"` (default discrete): which rule the
    /// local key-process NC rate follows (INDICATORS.md §1).
    pub industry: shuzhuan_common::inventory::IndustryType,
}

/// `[clock]`: the simulator's scaled clock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockSection {
    pub scale: f64,
    pub sim_epoch_ms: i64,
    pub real_epoch_ms: i64,
}

/// `[aggregator]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorSection {
    /// `http://` or `https://` base URL.
    pub url: String,
    /// PEM CA bundle trusted for `https` (relative: from the config's folder).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// One-time enrolment token (needed only until the agent is enrolled).
    #[serde(default)]
    pub token: Option<String>,
    /// PEM client certificate (chain) for mutual TLS (with `client_key_file`).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSection {
    /// `/metrics` and the status page (default `127.0.0.1:9100`).
    pub listen: SocketAddr,
}

/// What the spool does when `max_spool_bytes` is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Delete the oldest unacknowledged reports to make room (the default:
    /// the newest data is the most useful after a long outage, and the
    /// aggregator sees the gap as a chain restart it can report).
    #[default]
    DropOldest,
    /// Keep the spool and stop sealing new reports until there is room
    /// (acquisition keeps running; windows are lost instead of old reports).
    StopPolling,
}

/// `[spool]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolSection {
    /// Upper bound of the spool on disk (default 256 MiB).
    #[serde(default = "default_spool_bytes")]
    pub max_spool_bytes: u64,
    #[serde(default)]
    pub when_full: WhenFull,
}

impl Default for SpoolSection {
    fn default() -> Self {
        SpoolSection {
            max_spool_bytes: default_spool_bytes(),
            when_full: WhenFull::DropOldest,
        }
    }
}

fn default_spool_bytes() -> u64 {
    256 * 1024 * 1024
}

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    #[default]
    None,
    Even,
    Odd,
}

/// How a Modbus link reaches its devices.
#[derive(Debug, Clone, PartialEq)]
pub enum ModbusTransport {
    /// Modbus TCP (MBAP) to `host:port`.
    Tcp { address: String },
    /// Modbus RTU on a serial port.
    Rtu {
        port: String,
        baud: u32,
        parity: Parity,
        stop_bits: u8,
        data_bits: u8,
    },
    /// RTU frames (with CRC) over a TCP socket, as serial device servers do;
    /// `baud` is the serial line behind the gateway (for the cost model).
    RtuOverTcp { address: String, baud: u32 },
}

/// A `[[links]]` entry of kind `modbus_tcp`, `modbus_rtu` or `modbus_rtu_over_tcp`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModbusLinkConfig {
    pub id: String,
    pub transport: ModbusTransport,
    /// Timeout of one request, also of connecting (default 1000).
    pub timeout_ms: u64,
    /// Pause between two requests on this link (default 0; some serial
    /// devices need a few ms of line silence).
    pub pause_ms: u64,
    /// First reconnect delay; doubles up to `backoff_max_ms`, with jitter.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// Lower request limit for every device on the link.
    pub max_registers_per_read: Option<u16>,
}

impl ModbusLinkConfig {
    /// The serial line speed that bounds this link, if any.
    pub fn baud(&self) -> Option<u32> {
        match &self.transport {
            ModbusTransport::Tcp { .. } => None,
            ModbusTransport::Rtu { baud, .. } | ModbusTransport::RtuOverTcp { baud, .. } => {
                Some(*baud)
            }
        }
    }

    /// The `kind` name in agent.toml.
    pub fn kind(&self) -> &'static str {
        match self.transport {
            ModbusTransport::Tcp { .. } => "modbus_tcp",
            ModbusTransport::Rtu { .. } => "modbus_rtu",
            ModbusTransport::RtuOverTcp { .. } => "modbus_rtu_over_tcp",
        }
    }
}

/// One `[[links]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkConfig {
    Modbus(ModbusLinkConfig),
    OpcUa(OpcUaLinkConfig),
}

impl LinkConfig {
    pub fn id(&self) -> &str {
        match self {
            LinkConfig::Modbus(m) => &m.id,
            LinkConfig::OpcUa(o) => &o.id,
        }
    }

    /// The `kind` name in agent.toml.
    pub fn kind(&self) -> &'static str {
        match self {
            LinkConfig::Modbus(m) => m.kind(),
            LinkConfig::OpcUa(_) => "opcua",
        }
    }
}

/// Power thresholds for deriving a machine's state from its power (kW).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerThresholds {
    /// At or below: off.
    pub off: f64,
    /// At or above: running; between: idle.
    pub running: f64,
}

/// A device's resolved tags. Devices with identical tags (the usual case:
/// many devices on one profile) share one list, so a plant of 200 meters of
/// one model holds their register map once, and copies of the config (links
/// started, a reload's comparison) copy pointers, not tags.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceTags {
    /// No link: in the inventory, no data.
    None,
    Modbus(Arc<[ModbusTag]>),
    OpcUa(Arc<[OpcUaTag]>),
}

impl DeviceTags {
    pub fn len(&self) -> usize {
        match self {
            DeviceTags::None => 0,
            DeviceTags::Modbus(t) => t.len(),
            DeviceTags::OpcUa(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One `[[devices]]` entry, validated, with its tags resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceConfig {
    /// The declared inventory facts (id, name, kind, production, declared_*,
    /// key process, original value).
    pub inventory: Device,
    /// `None`: not digitized (no data).
    pub link: Option<String>,
    /// Modbus unit id.
    pub unit: Option<u8>,
    /// OPC UA root node (NodeId or browse path from Objects).
    pub root: Option<String>,
    pub profile: Option<String>,
    pub poll_interval_ms: u64,
    /// Poll interval per tag group (`[devices.groups] slow = 60000`); tags
    /// without a group, or in a group not listed, use `poll_interval_ms`.
    pub groups: BTreeMap<String, u64>,
    /// Meters that feed this machine.
    pub meters: Vec<String>,
    pub power_thresholds_kw: Option<PowerThresholds>,
    /// Request limit: the lowest of the device's, the profile's and the link's.
    pub max_registers_per_read: Option<u16>,
    /// Never-read ranges: the profile's and the device's.
    pub forbidden: Vec<ForbiddenRange>,
    pub tags: DeviceTags,
}

impl DeviceConfig {
    pub fn id(&self) -> &str {
        &self.inventory.id
    }

    /// The poll interval of a tag's group.
    pub fn interval_of(&self, group: Option<&str>) -> u64 {
        group
            .and_then(|g| self.groups.get(g).copied())
            .unwrap_or(self.poll_interval_ms)
    }
}

impl AgentConfig {
    /// Reads and checks `path`; every problem is reported at once.
    pub fn load(path: impl AsRef<Path>) -> Result<AgentConfig, ConfigErrors> {
        load::load(path.as_ref())
    }

    /// Checks `text` as if read from `path` (profiles are looked up relative to `path`).
    pub fn from_text(path: impl AsRef<Path>, text: &str) -> Result<AgentConfig, ConfigErrors> {
        load::from_text(path.as_ref(), text)
    }

    /// The clock the config asks for.
    pub fn clock(&self) -> Clock {
        match self.clock {
            Some(c) => Clock::scaled(c.scale, c.sim_epoch_ms, c.real_epoch_ms),
            None => Clock::real(),
        }
    }

    /// The declared inventory (every device, with or without data).
    pub fn inventory(&self) -> Inventory {
        Inventory {
            devices: self.devices.iter().map(|d| d.inventory.clone()).collect(),
            key_processes: self.key_processes.clone(),
        }
    }

    pub fn device(&self, id: &str) -> Option<&DeviceConfig> {
        self.devices.iter().find(|d| d.id() == id)
    }

    pub fn link(&self, id: &str) -> Option<&LinkConfig> {
        self.links.iter().find(|l| l.id() == id)
    }

    /// Devices on link `id`, in file order.
    pub fn devices_on(&self, link: &str) -> Vec<&DeviceConfig> {
        self.devices
            .iter()
            .filter(|d| d.link.as_deref() == Some(link))
            .collect()
    }

    /// Every Modbus link with its devices.
    pub fn modbus_links(&self) -> Vec<(&ModbusLinkConfig, Vec<&DeviceConfig>)> {
        self.links
            .iter()
            .filter_map(|l| match l {
                LinkConfig::Modbus(m) => Some((m, self.devices_on(&m.id))),
                LinkConfig::OpcUa(_) => None,
            })
            .collect()
    }

    /// The inputs of `sources::opcua::run_link` for every OPC UA link: the
    /// link (with `pki_dir` filled in below `data_dir`) and its devices.
    pub fn opcua_links(&self) -> Vec<(OpcUaLinkConfig, Vec<OpcUaDeviceConfig>)> {
        self.links
            .iter()
            .filter_map(|l| match l {
                LinkConfig::OpcUa(o) => {
                    let mut link = o.clone();
                    link.pki_dir = Some(o.pki_dir_in(&self.agent.data_dir));
                    let devices = self
                        .devices_on(&o.id)
                        .into_iter()
                        .map(|d| OpcUaDeviceConfig {
                            id: d.id().to_owned(),
                            root: d.root.clone().unwrap_or_default(),
                            poll_interval_ms: d.poll_interval_ms,
                            tags: match &d.tags {
                                DeviceTags::OpcUa(t) => t.clone(),
                                _ => Arc::from([]),
                            },
                        })
                        .collect();
                    Some((link, devices))
                }
                LinkConfig::Modbus(_) => None,
            })
            .collect()
    }

    /// A one-paragraph summary for `check-config`.
    pub fn summary(&self) -> String {
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for l in &self.links {
            *kinds.entry(l.kind()).or_default() += 1;
        }
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let with_data = self.devices.iter().filter(|d| d.link.is_some()).count();
        let tags: usize = self.devices.iter().map(|d| d.tags.len()).sum();
        let profiles: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
        format!(
            "{}: agent `{}` of enterprise {}\n  links: {} ({})\n  devices: {} ({} with data, {} tags), key processes: {}\n  profiles used: {}\n  data_dir: {}, http: {}, aggregator: {}, window: {} s",
            self.path.display(),
            self.agent.id,
            self.agent.enterprise.as_str(),
            self.links.len(),
            if kinds.is_empty() { "none".to_owned() } else { kinds.join(", ") },
            self.devices.len(),
            with_data,
            tags,
            self.key_processes.len(),
            if profiles.is_empty() { "none".to_owned() } else { profiles.join(", ") },
            self.agent.data_dir.display(),
            self.http.listen,
            self.aggregator.as_ref().map_or("none (no shipping)", |a| a.url.as_str()),
            self.agent.window_secs,
        )
    }
}

#[cfg(test)]
mod tests;
