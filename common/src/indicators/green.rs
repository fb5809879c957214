//! Green-factory scoring (GB/T 36132-2025, INDICATORS.md §4): linear scores
//! between a benchmark and a leading value, the gates that are not scored,
//! and the section's other ratios (floor-area ratio, building coverage,
//! output per land area, water reuse, solid-waste utilisation, renewable
//! share).

use super::{Amount, Insufficient, Period, Rate};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Whether a larger value is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    HigherBetter,
    LowerBetter,
}

/// A quantitative indicator: weight `w`, benchmark `B` (基准值) and leading
/// value `L` (引领值). For product energy consumption, L is level 1 and B
/// level 2 of the product's energy-consumption limit standard.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearIndicator {
    pub weight: f64,
    pub benchmark: f64,
    pub leading: f64,
    pub direction: Direction,
}

/// Why an indicator cannot score.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum GreenError {
    #[error("weight {0} must be positive")]
    Weight(f64),
    #[error("leading value {leading} must be {side} the benchmark {benchmark} for a {direction:?} indicator")]
    Bounds {
        benchmark: f64,
        leading: f64,
        direction: Direction,
        side: &'static str,
    },
    #[error("value {0} is not a finite number")]
    Value(f64),
}

/// Points earned out of the weight.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub points: f64,
    pub weight: f64,
}

impl LinearIndicator {
    /// Checks that the indicator can score anything.
    pub fn check(&self) -> Result<(), GreenError> {
        if !(self.weight.is_finite() && self.weight > 0.0) {
            return Err(GreenError::Weight(self.weight));
        }
        let ok = match self.direction {
            Direction::HigherBetter => self.leading > self.benchmark,
            Direction::LowerBetter => self.leading < self.benchmark,
        };
        if !ok || !self.leading.is_finite() || !self.benchmark.is_finite() {
            return Err(GreenError::Bounds {
                benchmark: self.benchmark,
                leading: self.leading,
                direction: self.direction,
                side: match self.direction {
                    Direction::HigherBetter => "above",
                    Direction::LowerBetter => "below",
                },
            });
        }
        Ok(())
    }

    /// Higher is better: `w × (x − B) / (L − B)`; lower is better:
    /// `w × (B − x) / (B − L)`; clamped to [0, w].
    pub fn score(&self, x: f64) -> Result<Score, GreenError> {
        self.check()?;
        if !x.is_finite() {
            return Err(GreenError::Value(x));
        }
        let (b, l, w) = (self.benchmark, self.leading, self.weight);
        let raw = match self.direction {
            Direction::HigherBetter => w * (x - b) / (l - b),
            Direction::LowerBetter => w * (b - x) / (b - l),
        };
        Ok(Score {
            points: raw.clamp(0.0, w),
            weight: w,
        })
    }
}

/// Preconditions that are not scored: failing one fails the assessment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// 排污许可: holds a pollutant discharge permit.
    DischargePermit,
    /// No major safety, environmental or quality incident in the last 3 years.
    NoMajorIncident3Years,
    QualityManagementSystem,
    EnvironmentalManagementSystem,
    OccupationalHealthSafetySystem,
    EnergyManagementSystem,
}

impl Gate {
    pub const ALL: [Gate; 6] = [
        Gate::DischargePermit,
        Gate::NoMajorIncident3Years,
        Gate::QualityManagementSystem,
        Gate::EnvironmentalManagementSystem,
        Gate::OccupationalHealthSafetySystem,
        Gate::EnergyManagementSystem,
    ];

    pub fn label_zh(self) -> &'static str {
        match self {
            Gate::DischargePermit => "依法取得排污许可",
            Gate::NoMajorIncident3Years => "近三年无重大安全、环境、质量事故",
            Gate::QualityManagementSystem => "质量管理体系",
            Gate::EnvironmentalManagementSystem => "环境管理体系",
            Gate::OccupationalHealthSafetySystem => "职业健康安全管理体系",
            Gate::EnergyManagementSystem => "能源管理体系",
        }
    }
}

/// The gates' outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateResult {
    pub passed: bool,
    pub failed: Vec<Gate>,
    /// Gates nobody answered: the assessment cannot pass until they are.
    pub unanswered: Vec<Gate>,
}

/// Checks every gate against the answers given.
pub fn check_gates(answers: &BTreeMap<Gate, bool>) -> GateResult {
    let mut failed = Vec::new();
    let mut unanswered = Vec::new();
    for g in Gate::ALL {
        match answers.get(&g) {
            Some(true) => {}
            Some(false) => failed.push(g),
            None => unanswered.push(g),
        }
    }
    GateResult {
        passed: failed.is_empty() && unanswered.is_empty(),
        failed,
        unanswered,
    }
}

/// Scores of several indicators, gated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GreenAssessment {
    pub gates: GateResult,
    /// Indicator id → score.
    pub scores: BTreeMap<String, Score>,
    /// Σ points over Σ weights of the scored indicators.
    pub total: Score,
}

/// Scores `values` (indicator id → measured or declared value) with
/// `indicators` (id → definition). Indicators without a value score 0.
pub fn assess(
    indicators: &BTreeMap<String, LinearIndicator>,
    values: &BTreeMap<String, f64>,
    gates: &BTreeMap<Gate, bool>,
) -> Result<GreenAssessment, (String, GreenError)> {
    let mut scores = BTreeMap::new();
    let (mut points, mut weight) = (0.0, 0.0);
    for (id, ind) in indicators {
        let s = match values.get(id) {
            Some(&x) => ind.score(x).map_err(|e| (id.clone(), e))?,
            None => {
                ind.check().map_err(|e| (id.clone(), e))?;
                Score {
                    points: 0.0,
                    weight: ind.weight,
                }
            }
        };
        points += s.points;
        weight += s.weight;
        scores.insert(id.clone(), s);
    }
    Ok(GreenAssessment {
        gates: check_gates(gates),
        scores,
        total: Score { points, weight },
    })
}

fn area_ratio(num: f64, site_area_m2: f64) -> Result<f64, Insufficient> {
    if !num.is_finite() || !site_area_m2.is_finite() || num < 0.0 || site_area_m2 < 0.0 {
        return Err(Insufficient::InvalidInput);
    }
    if site_area_m2 == 0.0 {
        return Err(Insufficient::ZeroDenominator);
    }
    Ok(num / site_area_m2)
}

/// 容积率 floor-area ratio = total building floor area / site area (both m²);
/// dimensionless and may exceed 1.
pub fn floor_area_ratio(building_floor_m2: f64, site_m2: f64) -> Result<f64, Insufficient> {
    area_ratio(building_floor_m2, site_m2)
}

/// 建筑密度 building coverage = (building + structure + yard footprint) / site area.
pub fn building_coverage(
    buildings_m2: f64,
    structures_m2: f64,
    yards_m2: f64,
    site_m2: f64,
) -> Rate {
    Rate::ratio(buildings_m2 + structures_m2 + yards_m2, site_m2)
}

/// 单位用地面积产值 output per land area, in 10,000 CNY per hectare
/// (万元/公顷), from output value in CNY and site area in m².
pub fn output_per_land_area(
    output_value_cny: f64,
    site_m2: f64,
    period: Period,
) -> Result<Amount, Insufficient> {
    let per_m2 = area_ratio(output_value_cny, site_m2)?;
    // CNY per m² × 10,000 m²/ha ÷ 10,000 CNY per 万元 = 万元/ha
    Ok(Amount::new(per_m2, "10^4 CNY/ha", period))
}

/// 水重复利用率 water reuse rate = Vr / (Vr + Vi): reused water over reused
/// plus fresh intake.
pub fn water_reuse_rate(reused: f64, intake: f64) -> Rate {
    if reused < 0.0 || intake < 0.0 {
        return Rate::insufficient(Insufficient::InvalidInput);
    }
    Rate::ratio(reused, reused + intake)
}

/// 一般工业固体废物综合利用率 = utilised / (generated + utilised from storage).
pub fn solid_waste_utilisation(utilised: f64, generated: f64, from_storage: f64) -> Rate {
    if generated < 0.0 || from_storage < 0.0 {
        return Rate::insufficient(Insufficient::InvalidInput);
    }
    Rate::ratio(utilised, generated + from_storage)
}

/// Renewable energy share = renewable electricity / total electricity used
/// (both kWh, from PV or other renewable meters when configured).
pub fn renewable_share(renewable_kwh: f64, total_kwh: f64) -> Rate {
    Rate::ratio(renewable_kwh, total_kwh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn higher_is_better_scores_linearly_and_clamps() {
        // water reuse: B 0.80, L 0.95, w 4
        let i = LinearIndicator {
            weight: 4.0,
            benchmark: 0.80,
            leading: 0.95,
            direction: Direction::HigherBetter,
        };
        // 4 × (0.90 − 0.80) / (0.95 − 0.80) = 4 × 0.10 / 0.15 = 2.667
        assert!((i.score(0.90).unwrap().points - 8.0 / 3.0).abs() < 1e-9);
        assert_eq!(i.score(0.70).unwrap().points, 0.0); // below B
        assert_eq!(i.score(0.99).unwrap().points, 4.0); // beyond L
    }

    #[test]
    fn lower_is_better_scores_linearly_and_clamps() {
        // unit product energy: level 2 (B) 120 kgce/t, level 1 (L) 100 kgce/t, w 6
        let i = LinearIndicator {
            weight: 6.0,
            benchmark: 120.0,
            leading: 100.0,
            direction: Direction::LowerBetter,
        };
        // 6 × (120 − 105) / (120 − 100) = 6 × 15 / 20 = 4.5
        assert_eq!(i.score(105.0).unwrap().points, 4.5);
        assert_eq!(i.score(130.0).unwrap().points, 0.0);
        assert_eq!(i.score(90.0).unwrap().points, 6.0);
    }

    #[test]
    fn inconsistent_indicators_are_refused() {
        let i = LinearIndicator {
            weight: 6.0,
            benchmark: 100.0,
            leading: 120.0,
            direction: Direction::LowerBetter,
        };
        assert!(matches!(i.score(1.0), Err(GreenError::Bounds { .. })));
        let i = LinearIndicator { weight: 0.0, ..i };
        assert_eq!(i.score(1.0), Err(GreenError::Weight(0.0)));
    }

    #[test]
    fn gates_fail_on_no_and_on_silence() {
        let mut a: BTreeMap<Gate, bool> = Gate::ALL.iter().map(|&g| (g, true)).collect();
        assert!(check_gates(&a).passed);
        a.insert(Gate::DischargePermit, false);
        a.remove(&Gate::EnergyManagementSystem);
        let r = check_gates(&a);
        assert!(!r.passed);
        assert_eq!(r.failed, vec![Gate::DischargePermit]);
        assert_eq!(r.unanswered, vec![Gate::EnergyManagementSystem]);
    }

    #[test]
    fn assessment_adds_scores_and_zero_for_missing_values() {
        let ind = |w, b, l, d| LinearIndicator {
            weight: w,
            benchmark: b,
            leading: l,
            direction: d,
        };
        let indicators: BTreeMap<String, LinearIndicator> = [
            (
                "energy".to_owned(),
                ind(6.0, 120.0, 100.0, Direction::LowerBetter),
            ),
            (
                "reuse".to_owned(),
                ind(4.0, 0.8, 0.95, Direction::HigherBetter),
            ),
        ]
        .into();
        let values = [("energy".to_owned(), 110.0)].into();
        let a = assess(&indicators, &values, &BTreeMap::new()).unwrap();
        // energy 6 × 10 / 20 = 3; reuse missing → 0; total 3 of 10
        assert_eq!(
            a.total,
            Score {
                points: 3.0,
                weight: 10.0
            }
        );
        assert!(!a.gates.passed);
    }

    #[test]
    fn land_water_waste_ratios() {
        // 36,000 m² of floors on a 30,000 m² site: 1.2
        assert_eq!(floor_area_ratio(36_000.0, 30_000.0), Ok(1.2));
        // (12,000 + 3,000 + 3,000) / 30,000 = 0.6
        assert_eq!(
            building_coverage(12_000.0, 3_000.0, 3_000.0, 30_000.0).value(),
            Some(0.6)
        );
        // 90,000,000 CNY on 30,000 m² = 3,000 CNY/m² = 3,000 万元/ha
        let p = Period::new(0, 1);
        assert_eq!(
            output_per_land_area(90_000_000.0, 30_000.0, p)
                .unwrap()
                .value,
            3_000.0
        );
        // Vr 900, Vi 100 → 0.9
        assert_eq!(water_reuse_rate(900.0, 100.0).value(), Some(0.9));
        // 450 utilised of 400 generated + 100 from storage → 0.9
        assert_eq!(
            solid_waste_utilisation(450.0, 400.0, 100.0).value(),
            Some(0.9)
        );
        assert_eq!(
            floor_area_ratio(1.0, 0.0),
            Err(Insufficient::ZeroDenominator)
        );
        assert_eq!(
            renewable_share(0.0, 0.0),
            Rate::insufficient(Insufficient::ZeroDenominator)
        );
    }

    proptest! {
        #[test]
        fn scores_stay_within_the_weight(
            w in 0.1f64..20.0, b in -1e3f64..1e3, span in 0.01f64..1e3, x in -1e4f64..1e4, higher in any::<bool>(),
        ) {
            let (direction, leading) = if higher {
                (Direction::HigherBetter, b + span)
            } else {
                (Direction::LowerBetter, b - span)
            };
            let s = LinearIndicator { weight: w, benchmark: b, leading, direction }.score(x).unwrap();
            prop_assert!(s.points >= 0.0 && s.points <= w);
        }

        #[test]
        fn section_four_rates_are_in_the_unit_interval(a in 0f64..1e6, b in 0f64..1e6, c in 0f64..1e6) {
            for r in [water_reuse_rate(a, b), solid_waste_utilisation(a, b, c), building_coverage(a, b, c, a + b + c)] {
                if let Some(v) = r.value() {
                    prop_assert!((0.0..=1.0).contains(&v));
                }
            }
        }
    }
}
