//! Scoring reference data under `config/scoring/`: questionnaire bands,
//! measurement thresholds and the green-factory indicators.

use super::{first_problem, source_problems, Located, Problem, Source};
use crate::indicators::bands::BandScale;
use crate::indicators::green::{Direction, Gate, GreenError, LinearIndicator};
use crate::indicators::rates::MeasurementRules;
use crate::indicators::Basis;
use crate::tomlpos;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// `config/scoring/bands.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bands {
    pub source: Source,
    pub scale: Vec<BandScale>,
}

impl Bands {
    pub fn scale(&self, id: &str) -> Option<&BandScale> {
        self.scale.iter().find(|s| s.id == id)
    }
}

/// Parses and validates the bands: each scale's bands rise to 1.0 with
/// scores rising within the weight ([`BandScale::problems`]); ids unique.
pub fn load_bands(file: &str, text: &str) -> Result<Bands, Located> {
    let b: Bands = tomlpos::parse(file, text)?;
    let mut p = source_problems("source", &b.source);
    let mut ids = BTreeSet::new();
    for (i, s) in b.scale.iter().enumerate() {
        if !ids.insert(s.id.as_str()) {
            p.push(Problem::at(
                "scale",
                i,
                "id",
                format!("scale `{}` appears twice", s.id),
            ));
        }
        for (band, m) in s.problems() {
            let (key, what) = match band {
                Some(j) => ("band", format!("scale `{}` band {}: {m}", s.id, j + 1)),
                None => ("weight", format!("scale `{}`: {m}", s.id)),
            };
            p.push(Problem::at("scale", i, key, what));
        }
    }
    first_problem(file, text, p)?;
    Ok(b)
}

/// `config/scoring/measurement.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measurement {
    pub source: Source,
    pub rules: MeasurementRules,
}

/// Parses and validates the measurement thresholds (each in (0, 1]).
pub fn load_measurement(file: &str, text: &str) -> Result<Measurement, Located> {
    let m: Measurement = tomlpos::parse(file, text)?;
    let mut p = source_problems("source", &m.source);
    for (field, msg) in m.rules.problems() {
        p.push(Problem::table("rules", field, msg));
    }
    first_problem(file, text, p)?;
    Ok(m)
}

/// One of the green-factory dimensions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GreenDimension {
    pub id: String,
    pub zh: String,
    pub en: String,
}

/// A quantitative green-factory indicator; scorable once weight, benchmark
/// and leading value are set (per product and industry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GreenIndicator {
    pub id: String,
    pub zh: String,
    pub en: String,
    pub dimension: String,
    pub direction: Direction,
    pub unit: String,
    /// Measured by Shuzhuan or declared with evidence.
    pub basis: Basis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leading: Option<f64>,
}

impl GreenIndicator {
    /// The linear indicator, when weight, benchmark and leading are all set.
    pub fn linear(&self) -> Option<LinearIndicator> {
        Some(LinearIndicator {
            weight: self.weight?,
            benchmark: self.benchmark?,
            leading: self.leading?,
            direction: self.direction,
        })
    }
}

/// `config/scoring/green-factory.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GreenFactory {
    pub gates: Vec<Gate>,
    pub source: Source,
    pub dimension: Vec<GreenDimension>,
    pub indicator: Vec<GreenIndicator>,
}

impl GreenFactory {
    /// The indicators that can be scored, by id (for
    /// [`crate::indicators::green::assess`]).
    pub fn scorable(&self) -> BTreeMap<String, LinearIndicator> {
        self.indicator
            .iter()
            .filter_map(|i| i.linear().map(|l| (i.id.clone(), l)))
            .collect()
    }

    /// Indicators listed without weight and bounds: shown, not scored.
    pub fn unscored(&self) -> Vec<&GreenIndicator> {
        self.indicator
            .iter()
            .filter(|i| i.linear().is_none())
            .collect()
    }
}

/// Parses and validates the green-factory file: dimensions and indicator
/// ids unique, every indicator in a known dimension, weight, benchmark and
/// leading set together and consistent with the direction, gates unique.
pub fn load_green_factory(file: &str, text: &str) -> Result<GreenFactory, Located> {
    let g: GreenFactory = tomlpos::parse(file, text)?;
    let mut p = source_problems("source", &g.source);
    let mut gates = BTreeSet::new();
    for gate in &g.gates {
        if !gates.insert(*gate) {
            p.push(Problem::table(
                "",
                "gates",
                format!("gate `{gate:?}` appears twice"),
            ));
        }
    }
    let mut dims = BTreeSet::new();
    for (i, d) in g.dimension.iter().enumerate() {
        if !dims.insert(d.id.as_str()) {
            p.push(Problem::at(
                "dimension",
                i,
                "id",
                format!("dimension `{}` appears twice", d.id),
            ));
        }
    }
    let mut ids = BTreeSet::new();
    for (i, ind) in g.indicator.iter().enumerate() {
        if !ids.insert(ind.id.as_str()) {
            p.push(Problem::at(
                "indicator",
                i,
                "id",
                format!("indicator `{}` appears twice", ind.id),
            ));
        }
        if !dims.contains(ind.dimension.as_str()) {
            p.push(Problem::at(
                "indicator",
                i,
                "dimension",
                format!("dimension `{}` is not defined", ind.dimension),
            ));
        }
        let set = [ind.weight, ind.benchmark, ind.leading]
            .iter()
            .filter(|x| x.is_some())
            .count();
        if set != 0 && set != 3 {
            p.push(Problem::at(
                "indicator",
                i,
                "weight",
                format!(
                    "indicator `{}`: set weight, benchmark and leading together, or none",
                    ind.id
                ),
            ));
        }
        if let Some(Err(e)) = ind.linear().map(|l| l.check()) {
            let key = match e {
                GreenError::Weight(_) => "weight",
                _ => "leading",
            };
            p.push(Problem::at(
                "indicator",
                i,
                key,
                format!("indicator `{}`: {e}", ind.id),
            ));
        }
    }
    first_problem(file, text, p)?;
    Ok(g)
}
