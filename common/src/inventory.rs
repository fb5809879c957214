//! The equipment inventory: what an enterprise declares about each device and
//! its key processes. Measured facts live in window summaries; this is the
//! declared side that every measured figure is shown beside.

use serde::{Deserialize, Serialize};

/// Discrete manufacturing judges a key process by its equipment (CNC machine
/// tools, robots); process industry by its control system (PCS/DCS/PLC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndustryType {
    Discrete,
    Process,
}

/// What kind of equipment a device is, loosely following the list of
/// "digitized equipment" in MIIT's questionnaire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    CncMachineTool,
    IndustrialRobot,
    InjectionMoulding,
    Press,
    Furnace,
    ProductionLine,
    TestAssembly,
    Logistics,
    AdditiveManufacturing,
    ConventionalMachine,
    EnergyMeter,
    Utility,
    Other,
}

/// A key process (关键工序) that the enterprise declares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyProcess {
    pub id: String,
    pub name: String,
    /// Declared: is this process under numerical/automatic control?
    #[serde(default)]
    pub declared_nc: bool,
}

/// One device in an enterprise's inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    pub id: String,
    pub name: String,
    pub kind: DeviceKind,
    /// Production equipment (生产设备) counts in the rate denominators;
    /// meters and utilities do not.
    pub production: bool,
    /// Declared: has a digital interface that can be connected.
    #[serde(default)]
    pub declared_digital: bool,
    /// Declared: is connected to a network.
    #[serde(default)]
    pub declared_networked: bool,
    /// Declared: numerically or automatically controlled (CNC, robot, PLC/DCS).
    #[serde(default)]
    pub declared_nc: bool,
    /// The key process this device serves, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_process: Option<String>,
    /// Original value (原值) in CNY, for the value-weighted digitization ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_value_cny: Option<f64>,
}

/// An enterprise's declared inventory.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub devices: Vec<Device>,
    #[serde(default)]
    pub key_processes: Vec<KeyProcess>,
}
