//! Energy and carbon (INDICATORS.md §3): metered quantities × coefficients
//! → kilograms of standard coal equivalent (kgce) net of exported energy;
//! CO2 of purchased electricity with a grid emission factor chosen by
//! vintage and region; intensities per unit of product and per 10,000 CNY
//! of output value. Coefficients and factors come from `config/energy/`.

use super::{order_free_sum, Amount, Insufficient, Period};
use crate::reference::Confidence;
use crate::summary::EnergyDelta;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The carrier id of electricity in the coefficient table.
pub const ELECTRICITY: &str = "electricity";
/// The variant id of electricity's equal-value (等价值) coefficient.
pub const EQUAL_VALUE: &str = "equal_value";

/// An alternative coefficient for a carrier (electricity's equal value,
/// oilfield natural gas …), chosen per assessment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub id: String,
    /// kgce per unit of the carrier.
    pub coefficient: f64,
    pub confidence: Confidence,
    #[serde(default)]
    pub notes: String,
}

/// One energy carrier and its conversion coefficient to standard coal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Carrier {
    /// As named in window summaries (`electricity`, `natural_gas` …).
    pub id: String,
    pub zh: String,
    pub en: String,
    /// Unit of the quantity (`kWh`, `MJ`, `kg`, `m3`, `t`).
    pub unit: String,
    /// kgce per unit: the default (for electricity, the equivalent value 当量值).
    pub coefficient: f64,
    pub confidence: Confidence,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
    #[serde(default)]
    pub notes: String,
}

/// A table of coefficients, as loaded from `config/energy/coefficients.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoefficientSet {
    /// Megajoules per kgce (29.3076: 1 kgce = 7000 kcal).
    pub mj_per_kgce: f64,
    #[serde(rename = "carrier")]
    pub carriers: Vec<Carrier>,
}

impl CoefficientSet {
    pub fn carrier(&self, id: &str) -> Option<&Carrier> {
        self.carriers.iter().find(|c| c.id == id)
    }
}

/// Which electricity coefficient an assessment uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElectricityBasis {
    /// 当量值: the energy content of electricity (the default).
    #[default]
    EquivalentValue,
    /// 等价值: the coal burnt to generate it (that year's thermal-power rate).
    EqualValue,
}

/// Choices made per assessment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyOptions {
    #[serde(default)]
    pub electricity: ElectricityBasis,
    /// Carrier id → variant id, for carriers other than electricity
    /// (e.g. `natural_gas` → `oilfield`).
    #[serde(default)]
    pub variants: BTreeMap<String, String>,
}

/// A metered quantity of one carrier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarrierQuantity {
    pub carrier: String,
    pub unit: String,
    pub quantity: f64,
    /// Exported (fed back) in the same unit.
    pub exported: f64,
}

impl From<&EnergyDelta> for CarrierQuantity {
    fn from(e: &EnergyDelta) -> Self {
        CarrierQuantity {
            carrier: e.carrier.clone(),
            unit: e.unit.clone(),
            quantity: e.quantity,
            exported: e.exported,
        }
    }
}

/// Why energy could not be converted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnergyError {
    #[error("energy carrier `{0}` is not in the coefficient table")]
    UnknownCarrier(String),
    #[error(
        "energy carrier `{carrier}`: quantity is in `{got}`, the coefficient table uses `{want}`"
    )]
    UnitMismatch {
        carrier: String,
        got: String,
        want: String,
    },
    #[error("energy carrier `{carrier}` has no coefficient variant `{variant}`")]
    UnknownVariant { carrier: String, variant: String },
    #[error("energy carrier `{carrier}`: quantity {value} is negative or not finite")]
    BadQuantity { carrier: String, value: f64 },
    #[error("emission factor `{factor}` is in `{unit}`, electricity is metered in `{want}`")]
    FactorUnit {
        factor: String,
        unit: String,
        want: String,
    },
}

/// One carrier's contribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyLine {
    pub carrier: String,
    /// Consumed and exported, in the carrier's unit.
    pub quantity: f64,
    pub exported: f64,
    pub unit: String,
    /// kgce per unit.
    pub coefficient: f64,
    /// The variant used, `None` for the table's default.
    pub variant: Option<String>,
    /// (quantity − exported) × coefficient.
    pub kgce: f64,
}

/// Comprehensive energy consumption over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyTotal {
    /// Σ (quantity × coefficient) − Σ (exported × coefficient), in kgce.
    pub net: Amount,
    pub gross: Amount,
    pub exported: Amount,
    pub electricity: ElectricityBasis,
    /// Per carrier, in carrier-id order.
    pub lines: Vec<EnergyLine>,
}

impl EnergyTotal {
    /// The net total in megajoules.
    pub fn in_mj(&self, set: &CoefficientSet) -> Amount {
        Amount::new(self.net.value * set.mj_per_kgce, "MJ", self.net.period)
    }
}

fn coefficient(
    opts: &EnergyOptions,
    carrier: &Carrier,
) -> Result<(f64, Option<String>), EnergyError> {
    let wanted = if carrier.id == ELECTRICITY {
        (opts.electricity == ElectricityBasis::EqualValue).then(|| EQUAL_VALUE.to_owned())
    } else {
        opts.variants.get(&carrier.id).cloned()
    };
    match wanted {
        None => Ok((carrier.coefficient, None)),
        Some(v) => carrier
            .variants
            .iter()
            .find(|x| x.id == v)
            .map(|x| (x.coefficient, Some(v.clone())))
            .ok_or(EnergyError::UnknownVariant {
                carrier: carrier.id.clone(),
                variant: v,
            }),
    }
}

/// Adds up `uses` per carrier (several meters of one carrier are summed)
/// and converts them to kgce.
pub fn total_energy(
    uses: &[CarrierQuantity],
    set: &CoefficientSet,
    opts: &EnergyOptions,
    period: Period,
) -> Result<EnergyTotal, EnergyError> {
    let mut per: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for u in uses {
        let carrier = set
            .carrier(&u.carrier)
            .ok_or_else(|| EnergyError::UnknownCarrier(u.carrier.clone()))?;
        if u.unit != carrier.unit {
            return Err(EnergyError::UnitMismatch {
                carrier: u.carrier.clone(),
                got: u.unit.clone(),
                want: carrier.unit.clone(),
            });
        }
        for v in [u.quantity, u.exported] {
            if !v.is_finite() || v < 0.0 {
                return Err(EnergyError::BadQuantity {
                    carrier: u.carrier.clone(),
                    value: v,
                });
            }
        }
        let e = per.entry(carrier.id.as_str()).or_default();
        e.0.push(u.quantity);
        e.1.push(u.exported);
    }
    let mut lines = Vec::new();
    for (id, (q, x)) in per {
        let carrier = set.carrier(id).expect("looked up above");
        let (coefficient, variant) = coefficient(opts, carrier)?;
        let (quantity, exported) = (order_free_sum(q), order_free_sum(x));
        lines.push(EnergyLine {
            carrier: id.to_owned(),
            quantity,
            exported,
            unit: carrier.unit.clone(),
            coefficient,
            variant,
            kgce: (quantity - exported) * coefficient,
        });
    }
    let gross = order_free_sum(lines.iter().map(|l| l.quantity * l.coefficient).collect());
    let exported = order_free_sum(lines.iter().map(|l| l.exported * l.coefficient).collect());
    Ok(EnergyTotal {
        net: Amount::new(gross - exported, "kgce", period),
        gross: Amount::new(gross, "kgce", period),
        exported: Amount::new(exported, "kgce", period),
        electricity: opts.electricity,
        lines,
    })
}

/// Whether a factor is the location-based grid average of a year, or the
/// fixed factor the enterprise GHG reporting rules prescribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorKind {
    LocationBased,
    ReportingRule,
}

/// A grid CO2 emission factor for purchased electricity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmissionFactor {
    pub id: String,
    pub kind: FactorKind,
    /// The year the factor describes.
    pub vintage: u16,
    /// `national` or a province id (`henan`).
    pub region: String,
    pub value: f64,
    /// `kgCO2/kWh`.
    pub unit: String,
    pub issuer: String,
    pub document: String,
    /// When the issuer published it (`YYYY-MM` or `YYYY-MM-DD`).
    pub published: String,
    pub confidence: Confidence,
    #[serde(default)]
    pub notes: String,
}

/// CO2 of net purchased electricity with one factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElectricityCo2 {
    /// kgCO2.
    pub co2: Amount,
    /// Net purchased electricity (consumed − exported), in the factor's unit.
    pub electricity: Amount,
    pub factor_id: String,
    pub factor: f64,
    pub vintage: u16,
    pub region: String,
    /// Carriers in the input whose CO2 is not counted here (fuel combustion
    /// needs fuel emission factors, which `config/energy/` does not hold yet).
    pub not_covered: Vec<String>,
}

/// CO2 of net purchased electricity (location-based scope 2).
pub fn electricity_co2(
    uses: &[CarrierQuantity],
    factor: &EmissionFactor,
    period: Period,
) -> Result<ElectricityCo2, EnergyError> {
    let per_unit = factor.unit.strip_prefix("kgCO2/").unwrap_or("");
    let (mut q, mut x, mut other) = (Vec::new(), Vec::new(), Vec::new());
    for u in uses {
        if u.carrier != ELECTRICITY {
            if !other.contains(&u.carrier) {
                other.push(u.carrier.clone());
            }
            continue;
        }
        if u.unit != per_unit {
            return Err(EnergyError::FactorUnit {
                factor: factor.id.clone(),
                unit: factor.unit.clone(),
                want: u.unit.clone(),
            });
        }
        for v in [u.quantity, u.exported] {
            if !v.is_finite() || v < 0.0 {
                return Err(EnergyError::BadQuantity {
                    carrier: u.carrier.clone(),
                    value: v,
                });
            }
        }
        q.push(u.quantity);
        x.push(u.exported);
    }
    other.sort();
    let net = order_free_sum(q) - order_free_sum(x);
    Ok(ElectricityCo2 {
        co2: Amount::new(net * factor.value, "kgCO2", period),
        electricity: Amount::new(net, per_unit, period),
        factor_id: factor.id.clone(),
        factor: factor.value,
        vintage: factor.vintage,
        region: factor.region.clone(),
        not_covered: other,
    })
}

/// `amount` per unit of product (`output` in `output_unit`, e.g. 120 `t`):
/// unit product energy consumption or unit product CO2.
pub fn per_unit_of_product(
    amount: &Amount,
    output: f64,
    output_unit: &str,
) -> Result<Amount, Insufficient> {
    if !output.is_finite() || output < 0.0 {
        return Err(Insufficient::InvalidInput);
    }
    if output == 0.0 {
        return Err(Insufficient::ZeroDenominator);
    }
    Ok(Amount::new(
        amount.value / output,
        format!("{}/{output_unit}", amount.unit),
        amount.period,
    ))
}

/// `amount` per 10,000 CNY of output value (万元产值).
pub fn per_10k_cny(amount: &Amount, output_value_cny: f64) -> Result<Amount, Insufficient> {
    per_unit_of_product(amount, output_value_cny / 10_000.0, "10^4 CNY")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn set() -> CoefficientSet {
        let c = |id: &str, unit: &str, k: f64, variants: Vec<Variant>| Carrier {
            id: id.into(),
            zh: id.into(),
            en: id.into(),
            unit: unit.into(),
            coefficient: k,
            confidence: Confidence::Sec,
            variants,
            notes: String::new(),
        };
        let v = |id: &str, k: f64| Variant {
            id: id.into(),
            coefficient: k,
            confidence: Confidence::Unverified,
            notes: String::new(),
        };
        CoefficientSet {
            mj_per_kgce: 29.3076,
            carriers: vec![
                c(ELECTRICITY, "kWh", 0.1229, vec![v(EQUAL_VALUE, 0.30)]),
                c("natural_gas", "m3", 1.2143, vec![v("oilfield", 1.33)]),
            ],
        }
    }

    fn factor(id: &str, vintage: u16, region: &str, value: f64) -> EmissionFactor {
        EmissionFactor {
            id: id.into(),
            kind: FactorKind::LocationBased,
            vintage,
            region: region.into(),
            value,
            unit: "kgCO2/kWh".into(),
            issuer: "MEE/NBS".into(),
            document: String::new(),
            published: "2024".into(),
            confidence: Confidence::Src,
            notes: String::new(),
        }
    }

    fn q(carrier: &str, unit: &str, quantity: f64, exported: f64) -> CarrierQuantity {
        CarrierQuantity {
            carrier: carrier.into(),
            unit: unit.into(),
            quantity,
            exported,
        }
    }

    const NOV: Period = Period {
        start: 1_761_926_400,
        end: 1_764_518_400,
    }; // 2025-11 (30 days)

    /// A month: 120,000 kWh on two meters and 8,000 m³ of natural gas.
    fn month() -> Vec<CarrierQuantity> {
        vec![
            q(ELECTRICITY, "kWh", 70_000.0, 0.0),
            q("natural_gas", "m3", 8_000.0, 0.0),
            q(ELECTRICITY, "kWh", 50_000.0, 0.0),
        ]
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn a_month_of_electricity_and_gas_to_kgce() {
        let t = total_energy(&month(), &set(), &EnergyOptions::default(), NOV).unwrap();
        // electricity 120,000 kWh × 0.1229 = 14,748 kgce
        // gas 8,000 m³ × 1.2143 = 9,714.4 kgce; total 24,462.4 kgce
        assert!(close(t.lines[0].kgce, 14_748.0), "{:?}", t.lines);
        assert!(close(t.lines[1].kgce, 9_714.4));
        assert!(close(t.net.value, 24_462.4));
        assert_eq!((t.net.unit.as_str(), t.net.period), ("kgce", NOV));
        // 24,462.4 kgce × 29.3076 MJ/kgce = 716,934.… MJ
        assert!(close(t.in_mj(&set()).value, 24_462.4 * 29.3076));
    }

    #[test]
    fn equal_value_and_variants_are_chosen_per_assessment() {
        let opts = EnergyOptions {
            electricity: ElectricityBasis::EqualValue,
            variants: [("natural_gas".to_owned(), "oilfield".to_owned())].into(),
        };
        let t = total_energy(&month(), &set(), &opts, NOV).unwrap();
        // 120,000 × 0.30 = 36,000; 8,000 × 1.33 = 10,640; total 46,640
        assert!(close(t.net.value, 46_640.0), "{}", t.net.value);
        assert_eq!(t.lines[0].variant.as_deref(), Some(EQUAL_VALUE));
        let bad = EnergyOptions {
            variants: [("natural_gas".to_owned(), "shale".to_owned())].into(),
            ..Default::default()
        };
        assert!(matches!(
            total_energy(&month(), &set(), &bad, NOV),
            Err(EnergyError::UnknownVariant { .. })
        ));
    }

    #[test]
    fn exported_energy_is_subtracted() {
        let uses = [q(ELECTRICITY, "kWh", 10_000.0, 2_000.0)];
        let t = total_energy(&uses, &set(), &EnergyOptions::default(), NOV).unwrap();
        // (10,000 − 2,000) × 0.1229 = 983.2
        assert!(close(t.net.value, 983.2));
        assert!(close(t.gross.value, 1_229.0));
        assert!(close(t.exported.value, 245.8));
    }

    #[test]
    fn unknown_carriers_and_units_are_refused() {
        let o = EnergyOptions::default();
        let e = total_energy(&[q("steam", "kg", 1.0, 0.0)], &set(), &o, NOV).unwrap_err();
        assert_eq!(
            e.to_string(),
            "energy carrier `steam` is not in the coefficient table"
        );
        let e = total_energy(&[q(ELECTRICITY, "MWh", 1.0, 0.0)], &set(), &o, NOV).unwrap_err();
        assert!(matches!(e, EnergyError::UnitMismatch { .. }), "{e}");
        let e = total_energy(&[q(ELECTRICITY, "kWh", -1.0, 0.0)], &set(), &o, NOV).unwrap_err();
        assert!(matches!(e, EnergyError::BadQuantity { .. }), "{e}");
    }

    #[test]
    fn co2_with_two_factor_vintages() {
        let y2022 = factor("mee-2022-national", 2022, "national", 0.5366);
        let y2023 = factor("mee-2023-henan", 2023, "henan", 0.5897);
        let a = electricity_co2(&month(), &y2022, NOV).unwrap();
        // 120,000 kWh × 0.5366 kgCO2/kWh = 64,392 kgCO2
        assert!(close(a.co2.value, 64_392.0), "{}", a.co2.value);
        let b = electricity_co2(&month(), &y2023, NOV).unwrap();
        // 120,000 kWh × 0.5897 kgCO2/kWh = 70,764 kgCO2
        assert!(close(b.co2.value, 70_764.0));
        assert_eq!((b.vintage, b.region.as_str()), (2023, "henan"));
        // natural gas is named as not covered, not silently dropped
        assert_eq!(b.not_covered, vec!["natural_gas".to_owned()]);
        assert_eq!(b.co2.unit, "kgCO2");
    }

    #[test]
    fn co2_factor_unit_must_match_the_meter() {
        let mut f = factor("x", 2023, "national", 0.5);
        f.unit = "kgCO2/MWh".into();
        assert!(matches!(
            electricity_co2(&month(), &f, NOV),
            Err(EnergyError::FactorUnit { .. })
        ));
    }

    #[test]
    fn intensities_carry_their_units() {
        let t = total_energy(&month(), &set(), &EnergyOptions::default(), NOV).unwrap();
        // 24,462.4 kgce / 400 t = 61.156 kgce/t
        let p = per_unit_of_product(&t.net, 400.0, "t").unwrap();
        assert!(close(p.value, 61.156));
        assert_eq!(p.unit, "kgce/t");
        // 24,462.4 kgce / (8,000,000 CNY / 10,000) = 30.578 kgce/10^4 CNY
        let v = per_10k_cny(&t.net, 8_000_000.0).unwrap();
        assert!(close(v.value, 30.578));
        assert_eq!(v.unit, "kgce/10^4 CNY");
        assert_eq!(
            per_unit_of_product(&t.net, 0.0, "t"),
            Err(Insufficient::ZeroDenominator)
        );
    }
}
