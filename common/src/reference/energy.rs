//! Standard-coal coefficients (`config/energy/coefficients.toml`) and grid
//! emission factors (`config/energy/emission-factors.toml`), in the shapes
//! the energy engine ([`crate::indicators::energy`]) takes.

use super::{first_problem, source_problems, Located, Problem, Source};
use crate::indicators::energy::{
    Carrier, CoefficientSet, EmissionFactor, FactorKind, ELECTRICITY, EQUAL_VALUE,
};
use crate::tomlpos;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Units a carrier may be metered in.
pub const CARRIER_UNITS: [&str; 5] = ["kWh", "MJ", "kg", "m3", "t"];
/// Units an emission factor may be given in.
pub const FACTOR_UNITS: [&str; 1] = ["kgCO2/kWh"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CoefficientsFile {
    mj_per_kgce: f64,
    source: Source,
    carrier: Vec<Carrier>,
}

/// `config/energy/coefficients.toml`: the coefficient set and its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coefficients {
    pub source: Source,
    pub set: CoefficientSet,
}

/// Parses and validates the coefficient table: units known, coefficients
/// positive, ids unique, electricity present in kWh with its equal-value
/// variant, 1 kgce within 0.01 MJ of 29.3076 MJ.
pub fn load_coefficients(file: &str, text: &str) -> Result<Coefficients, Located> {
    let f: CoefficientsFile = tomlpos::parse(file, text)?;
    let mut p = source_problems("source", &f.source);
    let near = (f.mj_per_kgce - 29.3076).abs() < 0.01;
    if !near {
        p.push(Problem::table(
            "",
            "mj_per_kgce",
            format!(
                "mj_per_kgce {} is not 29.3076 (1 kgce = 7000 kcal)",
                f.mj_per_kgce
            ),
        ));
    }
    let mut ids = BTreeSet::new();
    for (i, c) in f.carrier.iter().enumerate() {
        if !ids.insert(c.id.as_str()) {
            p.push(Problem::at(
                "carrier",
                i,
                "id",
                format!("carrier `{}` appears twice", c.id),
            ));
        }
        if !CARRIER_UNITS.contains(&c.unit.as_str()) {
            p.push(Problem::at(
                "carrier",
                i,
                "unit",
                format!(
                    "unit `{}` is not one of {}",
                    c.unit,
                    CARRIER_UNITS.join(", ")
                ),
            ));
        }
        if !(c.coefficient.is_finite() && c.coefficient > 0.0) {
            p.push(Problem::at(
                "carrier",
                i,
                "coefficient",
                format!("coefficient {} must be positive", c.coefficient),
            ));
        }
        let mut vids = BTreeSet::new();
        for v in &c.variants {
            if !vids.insert(v.id.as_str()) {
                p.push(Problem::at(
                    "carrier",
                    i,
                    "variants",
                    format!("variant `{}` of `{}` appears twice", v.id, c.id),
                ));
            }
            if !(v.coefficient.is_finite() && v.coefficient > 0.0) {
                p.push(Problem::at(
                    "carrier",
                    i,
                    "variants",
                    format!(
                        "variant `{}` coefficient {} must be positive",
                        v.id, v.coefficient
                    ),
                ));
            }
        }
    }
    match f.carrier.iter().position(|c| c.id == ELECTRICITY) {
        None => p.push(Problem::table(
            "",
            "mj_per_kgce",
            "the table needs the `electricity` carrier".into(),
        )),
        Some(i) => {
            let c = &f.carrier[i];
            if c.unit != "kWh" {
                p.push(Problem::at(
                    "carrier",
                    i,
                    "unit",
                    "electricity is metered in kWh".into(),
                ));
            }
            if !c.variants.iter().any(|v| v.id == EQUAL_VALUE) {
                p.push(Problem::at(
                    "carrier",
                    i,
                    "variants",
                    format!("electricity needs its `{EQUAL_VALUE}` variant (等价值)"),
                ));
            }
        }
    }
    first_problem(file, text, p)?;
    Ok(Coefficients {
        source: f.source,
        set: CoefficientSet {
            mj_per_kgce: f.mj_per_kgce,
            carriers: f.carrier,
        },
    })
}

/// `config/energy/emission-factors.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmissionFactors {
    /// Id of the factor used when an assessment names none.
    pub default: String,
    pub source: Source,
    pub factor: Vec<EmissionFactor>,
}

impl EmissionFactors {
    pub fn get(&self, id: &str) -> Option<&EmissionFactor> {
        self.factor.iter().find(|f| f.id == id)
    }

    /// The default factor (validated to exist).
    pub fn default_factor(&self) -> &EmissionFactor {
        self.get(&self.default)
            .expect("load_emission_factors checks the default exists")
    }

    /// The location-based factor of `vintage` for `region`.
    pub fn location_based(&self, vintage: u16, region: &str) -> Option<&EmissionFactor> {
        self.factor.iter().find(|f| {
            f.kind == FactorKind::LocationBased && f.vintage == vintage && f.region == region
        })
    }

    /// The newest location-based factor for `region` whose vintage is at or
    /// before `year` (factors are published a year or two late).
    pub fn latest_for(&self, year: u16, region: &str) -> Option<&EmissionFactor> {
        self.factor
            .iter()
            .filter(|f| {
                f.kind == FactorKind::LocationBased && f.region == region && f.vintage <= year
            })
            .max_by_key(|f| f.vintage)
    }
}

/// Parses and validates the emission factors: ids unique, unit known, value
/// in (0, 2] kgCO2/kWh, vintage a year, published a date not before the
/// vintage, no two location-based factors for one vintage and region, the
/// default present.
pub fn load_emission_factors(file: &str, text: &str) -> Result<EmissionFactors, Located> {
    let f: EmissionFactors = tomlpos::parse(file, text)?;
    let mut p = source_problems("source", &f.source);
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for (i, x) in f.factor.iter().enumerate() {
        if !ids.insert(x.id.as_str()) {
            p.push(Problem::at(
                "factor",
                i,
                "id",
                format!("factor `{}` appears twice", x.id),
            ));
        }
        if !FACTOR_UNITS.contains(&x.unit.as_str()) {
            p.push(Problem::at(
                "factor",
                i,
                "unit",
                format!(
                    "unit `{}` is not one of {}",
                    x.unit,
                    FACTOR_UNITS.join(", ")
                ),
            ));
        }
        if !(x.value.is_finite() && x.value > 0.0 && x.value <= 2.0) {
            p.push(Problem::at(
                "factor",
                i,
                "value",
                format!("value {} is not a plausible kgCO2/kWh (0, 2]", x.value),
            ));
        }
        if !(1990..=2100).contains(&x.vintage) {
            p.push(Problem::at(
                "factor",
                i,
                "vintage",
                format!("vintage {} is not a year", x.vintage),
            ));
        }
        match super::date_year(&x.published) {
            None => p.push(Problem::at(
                "factor",
                i,
                "published",
                format!(
                    "published `{}` is not a date (YYYY, YYYY-MM or YYYY-MM-DD)",
                    x.published
                ),
            )),
            Some(y) if y < x.vintage => p.push(Problem::at(
                "factor",
                i,
                "published",
                format!(
                    "published {} is before the year {} it describes",
                    x.published, x.vintage
                ),
            )),
            Some(_) => {}
        }
        if x.issuer.trim().is_empty() || x.document.trim().is_empty() {
            p.push(Problem::at(
                "factor",
                i,
                "issuer",
                format!("factor `{}` needs its issuer and document", x.id),
            ));
        }
        if x.kind == FactorKind::LocationBased && !cells.insert((x.vintage, x.region.as_str())) {
            p.push(Problem::at(
                "factor",
                i,
                "region",
                format!(
                    "a second location-based factor for {} {}",
                    x.region, x.vintage
                ),
            ));
        }
    }
    if !ids.contains(f.default.as_str()) {
        p.push(Problem::table(
            "",
            "default",
            format!("default factor `{}` is not in the file", f.default),
        ));
    }
    first_problem(file, text, p)?;
    Ok(f)
}
