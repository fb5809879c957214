//! The city registry's vocabulary: enterprises, counties and zones, industry
//! chains, and the recognitions (智能车间, 绿色工厂 …) the plan counts.

use crate::credit_code::CreditCode;
use crate::inventory::IndustryType;
use serde::{Deserialize, Serialize};

/// A district, county or zone of the city (the units the plan assesses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct County {
    /// Stable identifier used in URLs and files, e.g. `xiping`.
    pub id: String,
    /// Chinese name, e.g. 西平县.
    pub name: String,
    /// English name for the switchable interface.
    pub name_en: String,
    pub kind: CountyKind,
    /// Administrative division code (GB/T 2260) where one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub division_code: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountyKind {
    District,
    County,
    Zone,
}

/// A key industry chain (重点产业链); registry data, never code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndustryChain {
    pub id: String,
    pub name: String,
    pub name_en: String,
    /// The cluster (集群) the chain belongs to, if assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub industry_type: IndustryType,
}

/// Declared rates from the enterprise's questionnaire, as fractions in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredRates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digitization: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networking: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_process_nc: Option<f64>,
}

/// An enterprise in the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enterprise {
    pub credit_code: CreditCode,
    pub name: String,
    /// County or zone id.
    pub county: String,
    /// Industry chain id.
    pub chain: String,
    /// Above designated size (规模以上): only these count in the plan's rates.
    pub above_scale: bool,
    pub industry_type: IndustryType,
    /// Declared use of digital R&D design tools (CAD/CAE/PDM …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rd_design_tools: Option<bool>,
    #[serde(default)]
    pub declared: DeclaredRates,
}

/// The kinds of recognition the plan's target table counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecognitionKind {
    DigitalLeader,
    SmeBenchmark,
    DemonstrationZone,
    ServiceManufacturing,
    SmartWorkshop,
    SmartFactory,
    GreenFactory,
    GreenSupplyChain,
    FirstVersionSoftware,
    FirstSetEquipment,
    EmpowermentCentre,
    IntranetBenchmark,
    IntegrationCertified,
    IntegrationDiagnosed,
    Dcmm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecognitionLevel {
    National,
    Provincial,
    City,
}

/// A recognition granted to an enterprise (or, for zones, to a county).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recognition {
    pub credit_code: CreditCode,
    pub kind: RecognitionKind,
    pub level: RecognitionLevel,
    pub year: u16,
    /// Where the evidence is filed (document number, URL, archive id).
    #[serde(default)]
    pub evidence: String,
}
