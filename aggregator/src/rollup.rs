//! Roll-ups from the store's period rows to the indicator pages: per
//! enterprise, then per county, industry chain and city, measured beside
//! declared, each with its coverage.
//!
//! The store hands over sums (samples, seconds, energy per carrier); every
//! rate is formed by the common indicator engine (`shuzhuan_common::indicators`):
//! [`rates::measured_rates`] and [`rates::declared_rates`] per enterprise
//! under the city's thresholds (`config/scoring/measurement.toml`), and
//! [`roll_up`] for the mean and pooled figures of a group. This module only
//! feeds the engine and shapes the JSON. A ratio that cannot be formed is
//! `null` with the reason, never 0.
//!
//! The assessment window of a period (docs/specs/indicators.md): from the
//! later of the period's start and the enterprise's first report in it, to
//! the earlier of the period's end and the city's latest report in it. So a
//! year-to-date figure is judged on the part of the year the enterprise has
//! been connected for, and an enterprise that went quiet falls below the
//! engine's `min_report_coverage` as the rest of the city keeps reporting.

use crate::store::{AssessmentScore, DeviceTotals, Period, Store, StoreError};
use serde::Serialize;
use serde_json::{json, Value};
use shuzhuan_common::indicators::energy::{
    electricity_co2, total_energy, CarrierQuantity, EnergyOptions,
};
use shuzhuan_common::indicators::rates::{self, DeviceData, MeasuredData, MeasurementRules};
use shuzhuan_common::indicators::rollup::{roll_up, EnterpriseRate, RollUpBasis};
use shuzhuan_common::indicators::{Insufficient, Period as IndicatorPeriod, Rate};
use shuzhuan_common::inventory::Inventory;
use shuzhuan_common::registry::{Enterprise, RecognitionKind};
use shuzhuan_common::state::DeviceState;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The city's measurement thresholds as shipped in `config/`, used when the
/// reference folder is not loaded (one source of truth, not literals).
const BUILT_IN_MEASUREMENT: &str = include_str!("../../config/scoring/measurement.toml");

/// Reference data the pages use, loaded at start.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// Share of expected samples a device must deliver to count as networked
    /// (measured); the same as `rules.networked_min_coverage`.
    pub networked_min_coverage: f64,
    /// The thresholds the engine turns agent data into measured facts with
    /// (`config/scoring/measurement.toml`).
    pub rules: MeasurementRules,
    /// Where `rules` came from, shown beside every measured figure.
    pub rules_source: String,
    /// The city's offset from UTC: periods are local days.
    pub utc_offset_secs: i64,
    /// Assessment item ids bureau staff may score; empty accepts any id
    /// (config/plan/assessment.toml not loaded).
    pub assessment_items: Vec<String>,
    /// The whole reference set of `config/` (targets, assessment, factor
    /// sets), when it was loaded.
    pub set: Option<std::sync::Arc<shuzhuan_common::reference::ReferenceSet>>,
}

impl Default for Reference {
    fn default() -> Self {
        let m = shuzhuan_common::reference::load_measurement(
            "config/scoring/measurement.toml",
            BUILT_IN_MEASUREMENT,
        )
        .expect("the shipped config/scoring/measurement.toml is valid (tested in common)");
        Reference {
            networked_min_coverage: m.rules.networked_min_coverage,
            rules: m.rules,
            rules_source: format!(
                "built-in copy of config/scoring/measurement.toml (vintage {})",
                m.source.vintage
            ),
            utc_offset_secs: 8 * 3600,
            assessment_items: Vec::new(),
            set: None,
        }
    }
}

impl Reference {
    /// Loads `dir` (the folder holding `plan/`, `energy/`, `city/`,
    /// `scoring/`) through `common::reference`; every problem is returned.
    pub fn load(
        dir: &std::path::Path,
    ) -> Result<Reference, Vec<shuzhuan_common::tomlpos::Located>> {
        let set = shuzhuan_common::reference::ReferenceSet::load(|f| {
            let path = dir.join(f);
            let name = path.display().to_string();
            std::fs::read_to_string(&path)
                .map(|t| (name.clone(), t))
                .map_err(|e| shuzhuan_common::tomlpos::Located {
                    file: name,
                    line: 0,
                    column: 0,
                    message: format!("cannot read: {e}"),
                })
        })?;
        let rules = set.measurement.rules;
        Ok(Reference {
            networked_min_coverage: rules.networked_min_coverage,
            rules,
            rules_source: format!(
                "{} (vintage {})",
                dir.join("scoring/measurement.toml").display(),
                set.measurement.source.vintage
            ),
            assessment_items: set.assessment.item_ids(),
            set: Some(std::sync::Arc::new(set)),
            ..Reference::default()
        })
    }
}

/// A ratio with its parts; `value` is `None` when it cannot be formed, with
/// the reason in `insufficient`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Ratio {
    pub numerator: f64,
    pub denominator: f64,
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insufficient: Option<Insufficient>,
}

impl Ratio {
    /// `numerator / denominator` through [`Rate::ratio`].
    pub fn of(numerator: f64, denominator: f64) -> Ratio {
        let mut r = Ratio::from_rate(Rate::ratio(numerator, denominator));
        r.numerator = numerator;
        r.denominator = denominator;
        r
    }

    /// The engine's rate as JSON-friendly parts.
    pub fn from_rate(rate: Rate) -> Ratio {
        match rate {
            Rate::Value { num, den, value } => Ratio {
                numerator: num,
                denominator: den,
                value: Some(value),
                insufficient: None,
            },
            Rate::InsufficientData { reason } => Ratio {
                insufficient: Some(reason),
                ..Ratio::default()
            },
        }
    }

    /// Back to the engine's rate (for roll-ups).
    pub fn rate(&self) -> Rate {
        match self.value {
            Some(value) => Rate::Value {
                num: self.numerator,
                den: self.denominator,
                value,
            },
            None => Rate::insufficient(self.insufficient.unwrap_or(Insufficient::NoData)),
        }
    }
}

/// One enterprise's measured facts for a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnterpriseFacts {
    pub credit_code: String,
    pub name: String,
    pub county: String,
    pub chain: String,
    pub above_scale: bool,
    /// Production devices in the declared inventory (the rate denominators).
    pub production_devices: u64,
    /// Measured by the engine (`rates::measured_rates`) under the city's rules.
    pub measured_digitization: Ratio,
    pub measured_networking: Ratio,
    pub measured_key_process_nc: Ratio,
    /// Declared in the inventory the agents sent (device flags, `rates::declared_rates`).
    pub inventory_digitization: Ratio,
    pub inventory_networking: Ratio,
    pub inventory_key_process_nc: Ratio,
    /// Declared in the registry questionnaire.
    pub declared_digitization: Option<f64>,
    pub declared_networking: Option<f64>,
    pub declared_key_process_nc: Option<f64>,
    pub rd_design_tools: Option<bool>,
    /// Samples received / expected over the production devices with data.
    pub coverage: Ratio,
    /// Seconds covered by reports / seconds of the assessment window: below
    /// the rules' `min_report_coverage` the measured rates are insufficient.
    pub report_coverage: Ratio,
    /// The assessment window (Unix seconds) the measured rates are judged over.
    pub assessment_window: IndicatorPeriod,
    /// Productive seconds / known seconds (planned busy time: all states but disconnected).
    pub utilisation_of_known_time: Ratio,
    /// Productive seconds / calendar seconds covered by windows.
    pub utilisation_of_calendar_time: Ratio,
    pub parts: u64,
    /// Energy per carrier and unit, as metered.
    pub energy: Vec<CarrierEnergy>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CarrierEnergy {
    pub carrier: String,
    pub unit: String,
    pub quantity: f64,
    pub exported: f64,
}

/// The local period's bounds in Unix seconds.
fn period_bounds(period: Period, utc_offset_secs: i64) -> (i64, i64) {
    let (d0, d1) = period.day_range();
    (d0 * 86_400 - utc_offset_secs, d1 * 86_400 - utc_offset_secs)
}

/// Every enterprise's facts for `period`, as of the store's last roll-up:
/// built once per [`Store::rollup_generation`] and kept in the store's
/// [`Store::derived`] cache, so the pages of a period share one build
/// until the next refresh or registry import. The key names everything
/// the build reads besides the store: the period, the local offset and the
/// measurement rules.
pub fn enterprise_facts(
    store: &dyn Store,
    reference: &Reference,
    period: Period,
) -> Result<Arc<Vec<EnterpriseFacts>>, StoreError> {
    // The generation is read before the rows, so a refresh committing in
    // between can only make this build newer than its key, never older.
    let generation = store.rollup_generation()?;
    let key = format!(
        "enterprise_facts {} {} {:?}",
        period.key(),
        reference.utc_offset_secs,
        reference.rules
    );
    if let Some(facts) = store
        .derived()
        .get::<Vec<EnterpriseFacts>>(&key, generation)
    {
        return Ok(facts);
    }
    let facts = Arc::new(build_enterprise_facts(store, reference, period)?);
    store.derived().put(key, generation, facts.clone());
    Ok(facts)
}

/// Builds every enterprise's facts for `period` from the store's rows.
pub fn build_enterprise_facts(
    store: &dyn Store,
    reference: &Reference,
    period: Period,
) -> Result<Vec<EnterpriseFacts>, StoreError> {
    let key = period.key();
    let (p0, p1) = period_bounds(period, reference.utc_offset_secs);
    let inventories: HashMap<String, Inventory> = store.inventories()?.into_iter().collect();
    let mut devices: HashMap<String, Vec<DeviceTotals>> = HashMap::new();
    for d in store.device_periods(&key)? {
        devices.entry(d.enterprise.clone()).or_default().push(d);
    }
    let mut energy: HashMap<String, Vec<CarrierEnergy>> = HashMap::new();
    for e in store.period_energy(&key)? {
        energy.entry(e.enterprise).or_default().push(CarrierEnergy {
            carrier: e.carrier,
            unit: e.unit,
            quantity: e.quantity,
            exported: e.exported,
        });
    }
    let spans: HashMap<String, (i64, i64)> = store
        .report_spans(p0, p1)?
        .into_iter()
        .map(|(code, first, last)| (code, (first, last)))
        .collect();
    // The city's data horizon in this period: the end of its latest report.
    let horizon = spans.values().map(|s| s.1).max().unwrap_or(p1).min(p1);
    let empty_inv = Inventory::default();
    Ok(store
        .enterprises()?
        .into_iter()
        .map(|e| {
            let code = e.credit_code.to_string();
            let inv = inventories.get(&code).unwrap_or(&empty_inv);
            let devs = devices.remove(&code).unwrap_or_default();
            let window = assessment_window(spans.get(&code).copied(), horizon, (p0, p1), &devs);
            facts(
                e,
                inv,
                &devs,
                energy.remove(&code).unwrap_or_default(),
                window,
                reference,
            )
        })
        .collect())
}

/// The window an enterprise's measured rates are judged over (see the
/// module note). Without evidence rows for it (a store filled another way)
/// coverage is judged by days: the days its devices reported.
fn assessment_window(
    span: Option<(i64, i64)>,
    horizon: i64,
    (p0, p1): (i64, i64),
    devs: &[DeviceTotals],
) -> IndicatorPeriod {
    match span {
        Some((first, _)) => IndicatorPeriod::new(first.max(p0), horizon.max(first).min(p1)),
        None => {
            let days = devs.iter().map(|d| d.days).max().unwrap_or(0) as i64;
            IndicatorPeriod::new(p0, (p0 + days * 86_400).min(p1))
        }
    }
}

/// What the store's period rows say, in the engine's terms: per device
/// totals, and the seconds covered by reports (every report carries a
/// summary per configured device, so the device with the most calendar
/// seconds has been in every report; agents of one enterprise are taken to
/// cover the same time).
fn measured_data(window: IndicatorPeriod, devs: &[DeviceTotals]) -> MeasuredData {
    let reported = devs
        .iter()
        .map(|d| d.state_seconds.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .min(window.seconds());
    MeasuredData {
        window,
        reported_seconds: reported,
        devices: devs
            .iter()
            .map(|d| {
                (
                    d.device_id.clone(),
                    DeviceData {
                        samples_expected: d.samples_expected,
                        samples_received: d.samples_received.min(d.samples_expected),
                        productive_seconds: d.state_seconds[DeviceState::Productive.index()],
                        nc_seconds: d
                            .nc_seconds
                            .min(d.state_seconds[DeviceState::Productive.index()]),
                    },
                )
            })
            .collect(),
    }
}

fn facts(
    e: Enterprise,
    inv: &Inventory,
    devs: &[DeviceTotals],
    energy: Vec<CarrierEnergy>,
    window: IndicatorPeriod,
    reference: &Reference,
) -> EnterpriseFacts {
    let rules = &reference.rules;
    let data = measured_data(window, devs);
    let measured = rates::measured_rates(inv, e.industry_type, &data, rules);
    let declared = rates::declared_rates(inv, e.industry_type, rules.key_process_quorum);
    let (mut prod, mut known, mut cal, mut parts) = (0u64, 0u64, 0u64, 0u64);
    for d in devs {
        prod += d.state_seconds[DeviceState::Productive.index()];
        let total: u64 = d.state_seconds.iter().sum();
        cal += total;
        known += total - d.state_seconds[DeviceState::Disconnected.index()];
        parts += d.parts;
    }
    EnterpriseFacts {
        credit_code: e.credit_code.to_string(),
        name: e.name,
        county: e.county,
        chain: e.chain,
        above_scale: e.above_scale,
        production_devices: measured.coverage.production_devices,
        measured_digitization: Ratio::from_rate(measured.rates.digitization),
        measured_networking: Ratio::from_rate(measured.rates.networking),
        measured_key_process_nc: Ratio::from_rate(measured.rates.key_process_nc),
        inventory_digitization: Ratio::from_rate(declared.digitization),
        inventory_networking: Ratio::from_rate(declared.networking),
        inventory_key_process_nc: Ratio::from_rate(declared.key_process_nc),
        declared_digitization: e.declared.digitization,
        declared_networking: e.declared.networking,
        declared_key_process_nc: e.declared.key_process_nc,
        rd_design_tools: e.rd_design_tools,
        coverage: Ratio::from_rate(measured.coverage.samples),
        report_coverage: Ratio::from_rate(measured.coverage.reports),
        assessment_window: window,
        utilisation_of_known_time: Ratio::of(prod as f64, known as f64),
        utilisation_of_calendar_time: Ratio::of(prod as f64, cal as f64),
        parts,
        energy,
    }
}

/// A rate over a group of enterprises: the mean of enterprise values (the
/// official headline) and the pooled ratio, with how many enterprises fed each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupRate {
    pub mean: Option<f64>,
    /// `None` for questionnaire answers (a share without its counts).
    pub pooled: Option<f64>,
    pub enterprises_with_value: u64,
    pub status: &'static str,
}

impl GroupRate {
    fn of(r: &shuzhuan_common::indicators::rollup::RollUp, with_value: u64) -> GroupRate {
        GroupRate {
            mean: r.mean.value(),
            pooled: r.pooled.value(),
            enterprises_with_value: with_value,
            status: if with_value == 0 {
                "insufficient data"
            } else {
                "ok"
            },
        }
    }
}

/// The engine's roll-up of enterprise rates (mean and pooled).
fn group_rate(values: &[Rate]) -> GroupRate {
    let items: Vec<EnterpriseRate> = values
        .iter()
        .map(|r| EnterpriseRate {
            measured: Some(*r),
            declared: None,
        })
        .collect();
    let r = roll_up(&items, RollUpBasis::Measured);
    GroupRate::of(&r, r.measured)
}

/// Questionnaire shares: the engine's mean; no pooled figure (no counts).
fn declared_rate(values: &[Option<f64>]) -> GroupRate {
    let items: Vec<EnterpriseRate> = values
        .iter()
        .map(|v| EnterpriseRate {
            measured: None,
            declared: v.map(|v| Rate::ratio(v, 1.0)),
        })
        .collect();
    let r = roll_up(&items, RollUpBasis::Declared);
    GroupRate {
        pooled: None,
        ..GroupRate::of(&r, r.declared_only)
    }
}

/// The headline indicators of a group of above-scale enterprises.
pub fn group_json(members: &[&EnterpriseFacts]) -> Value {
    let above: Vec<&EnterpriseFacts> = members.iter().copied().filter(|f| f.above_scale).collect();
    let rate = |f: fn(&EnterpriseFacts) -> Ratio| {
        group_rate(&above.iter().map(|e| f(e).rate()).collect::<Vec<_>>())
    };
    let decl = |f: fn(&EnterpriseFacts) -> Option<f64>| {
        declared_rate(&above.iter().map(|e| f(e)).collect::<Vec<_>>())
    };
    let answers: Vec<Option<bool>> = above.iter().map(|e| e.rd_design_tools).collect();
    let rd = rates::rd_design_tool_penetration(&answers);
    let rd_group = GroupRate {
        mean: rd.value(),
        pooled: None,
        enterprises_with_value: answers.iter().flatten().count() as u64,
        status: if rd.value().is_some() {
            "ok"
        } else {
            "insufficient data"
        },
    };
    // Enterprises behind the measured headline: those whose agents covered
    // enough of the window for the engine to form their rates.
    let measured = above
        .iter()
        .filter(|f| f.measured_digitization.value.is_some())
        .count();
    let reporting = above
        .iter()
        .filter(|f| f.coverage.denominator > 0.0)
        .count();
    let mut energy: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for f in &above {
        for e in &f.energy {
            let slot = energy
                .entry((e.carrier.clone(), e.unit.clone()))
                .or_default();
            slot.0 += e.quantity;
            slot.1 += e.exported;
        }
    }
    json!({
        "enterprises_above_scale": above.len(),
        "enterprises_with_measured_data": measured,
        "enterprises_declared_only": above.len() - measured,
        "enterprises_reporting": reporting,
        "enterprises_low_report_coverage": above.iter().filter(|f| f.coverage.denominator > 0.0 && f.measured_digitization.value.is_none()).count(),
        "digitization": {
            "measured": rate(|e| e.measured_digitization),
            "declared_inventory": rate(|e| e.inventory_digitization),
            "declared_questionnaire": decl(|e| e.declared_digitization),
        },
        "networking": {
            "measured": rate(|e| e.measured_networking),
            "declared_inventory": rate(|e| e.inventory_networking),
            "declared_questionnaire": decl(|e| e.declared_networking),
        },
        "key_process_nc": {
            "measured": rate(|e| e.measured_key_process_nc),
            "declared_inventory": rate(|e| e.inventory_key_process_nc),
            "declared_questionnaire": decl(|e| e.declared_key_process_nc),
        },
        "rd_design_tools": { "declared": rd_group },
        "coverage": rate(|e| e.coverage),
        "report_coverage": rate(|e| e.report_coverage),
        "utilisation": {
            "productive_over_known_time": rate(|e| e.utilisation_of_known_time),
            "productive_over_calendar_time": rate(|e| e.utilisation_of_calendar_time),
        },
        "energy": energy.into_iter().map(|((carrier, unit), (q, x))| json!({
            "carrier": carrier, "unit": unit, "quantity": q, "exported": x,
        })).collect::<Vec<_>>(),
    })
}

/// Adds `energy_converted` beside the `energy` list of an indicator object
/// (a group from [`group_json`] or an enterprise's facts): net energy in
/// kgce by `config/energy/coefficients.toml` (electricity at equivalent
/// value) and electricity CO2 by the emission-factor set's default factor,
/// each with its source named. Without reference data, a note says so.
pub fn add_energy(v: &mut Value, reference: &Reference, period: Period) {
    let Some(set) = &reference.set else {
        v["energy_converted"] = json!({
            "note": "kgce and CO2 need config/energy/ (reference data not loaded)",
        });
        return;
    };
    let uses: Vec<CarrierQuantity> = v["energy"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    Some(CarrierQuantity {
                        carrier: e["carrier"].as_str()?.to_owned(),
                        unit: e["unit"].as_str()?.to_owned(),
                        quantity: e["quantity"].as_f64()?,
                        exported: e["exported"].as_f64().unwrap_or(0.0),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let (d0, d1) = period.day_range();
    let span = IndicatorPeriod::new(d0 * 86_400, d1 * 86_400);
    let coeff = &set.coefficients;
    let total = total_energy(&uses, &coeff.set, &EnergyOptions::default(), span);
    let factor = set.emission_factors.default_factor();
    let co2 = electricity_co2(&uses, factor, span);
    v["energy_converted"] = json!({
        "kgce": total.as_ref().ok().map(|t| t.net.value),
        "kgce_gross": total.as_ref().ok().map(|t| t.gross.value),
        "kgce_error": total.as_ref().err().map(|e| e.to_string()),
        "electricity_basis": "equivalent_value",
        "coefficient_set": { "document": coeff.source.document, "vintage": coeff.source.vintage },
        "co2_kg": co2.as_ref().ok().map(|c| c.co2.value),
        "co2_error": co2.as_ref().err().map(|e| e.to_string()),
        "co2_not_covered": co2.as_ref().ok().map(|c| c.not_covered.clone()),
        "emission_factor": { "id": factor.id, "value": factor.value, "unit": factor.unit, "vintage": factor.vintage, "region": factor.region, "document": factor.document },
    });
}

/// The indicators of a group ([`group_json`]) with `energy_converted`
/// added ([`add_energy`]): what the pages and the InfluxDB sink show for a
/// county, a chain or the city.
pub fn group_indicators(
    members: &[&EnterpriseFacts],
    reference: &Reference,
    period: Period,
) -> Value {
    let mut g = group_json(members);
    add_energy(&mut g, reference, period);
    g
}

/// The indicator page of a level (`city`, `county`, `chain`, `enterprise`)
/// for a period; `None` when the id names nothing.
pub fn indicators_json(
    store: &dyn Store,
    reference: &Reference,
    period: Period,
    level: &str,
    id: Option<&str>,
) -> Result<Option<Value>, StoreError> {
    let facts = enterprise_facts(store, reference, period)?;
    let header = json!({
        "period": period.key(),
        "level": level,
        "networked_min_coverage": reference.networked_min_coverage,
        "measurement_rules": reference.rules,
        "measurement_rules_source": reference.rules_source,
        "assessment_window": "from the enterprise's first report in the period to the city's latest (docs/specs/indicators.md)",
        "aggregation": "mean of above-scale enterprise values (headline) and pooled ratio",
    });
    let mut out = header;
    match (level, id) {
        ("enterprise", Some(code)) => match facts.iter().find(|f| f.credit_code == code) {
            Some(f) => {
                out["enterprise"] = serde_json::to_value(f).unwrap_or_default();
                add_energy(&mut out["enterprise"], reference, period);
            }
            None => return Ok(None),
        },
        ("county", Some(c)) | ("chain", Some(c)) => {
            let members: Vec<&EnterpriseFacts> = facts
                .iter()
                .filter(|f| {
                    if level == "county" {
                        f.county == c
                    } else {
                        f.chain == c
                    }
                })
                .collect();
            let known = if level == "county" {
                store.counties()?.iter().any(|x| x.id == c)
            } else {
                store.chains()?.iter().any(|x| x.id == c)
            };
            if !known {
                return Ok(None);
            }
            out["id"] = c.into();
            out["indicators"] = group_indicators(&members, reference, period);
            out["enterprises"] = serde_json::to_value(&members).unwrap_or_default();
        }
        ("chain", None) => {
            let mut groups = Vec::new();
            for ch in store.chains()? {
                let members: Vec<&EnterpriseFacts> =
                    facts.iter().filter(|f| f.chain == ch.id).collect();
                let g = group_indicators(&members, reference, period);
                groups.push(json!({ "id": ch.id, "name": ch.name, "indicators": g }));
            }
            out["chains"] = groups.into();
        }
        _ => {
            let all: Vec<&EnterpriseFacts> = facts.iter().collect();
            out["indicators"] = group_indicators(&all, reference, period);
            let mut counties = Vec::new();
            for c in store.counties()? {
                let members: Vec<&EnterpriseFacts> =
                    facts.iter().filter(|f| f.county == c.id).collect();
                let g = group_indicators(&members, reference, period);
                counties.push(json!({ "id": c.id, "name": c.name, "indicators": g }));
            }
            out["counties"] = counties.into();
        }
    }
    Ok(Some(out))
}

/// Share of `year` gone at the system clock: 0 before it, 1 after it.
fn elapsed_of(year: i32) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let start = crate::days::days_from_civil(year, 1, 1) * 86_400;
    let end = crate::days::days_from_civil(year + 1, 1, 1) * 86_400;
    ((now - start) as f64 / (end - start) as f64).clamp(0.0, 1.0)
}

/// Recognition counts per kind, cumulative up to and including `year`, and
/// (with the reference set loaded) every row of the plan's table with its
/// target for `year`, the current value, gap and on-track status. Counts
/// come from recognitions; the headline rates from the measured city
/// figures (mean over above-scale enterprises; R&D tools as declared).
pub fn targets_json(
    store: &dyn Store,
    reference: &Reference,
    year: i32,
) -> Result<Value, StoreError> {
    let mut counts: BTreeMap<RecognitionKind, u64> = BTreeMap::new();
    for r in store.recognitions()? {
        if i32::from(r.year) <= year {
            *counts.entry(r.kind).or_default() += 1;
        }
    }
    let mut out = json!({
        "year": year,
        "counts": counts.iter().map(|(k, n)| json!({ "kind": k, "cumulative": n })).collect::<Vec<_>>(),
    });
    let Some(set) = &reference.set else {
        out["targets_note"] =
            "targets need config/plan/targets.toml (reference data not loaded)".into();
        return Ok(out);
    };
    let facts = enterprise_facts(store, reference, Period::Year(year))?;
    let all: Vec<&EnterpriseFacts> = facts.iter().collect();
    let city = group_json(&all);
    let elapsed = elapsed_of(year);
    let y = u16::try_from(year).unwrap_or(0);
    let mut rows = Vec::new();
    for row in set.targets.rows() {
        let (value, basis) = if let Some(kind) = row.recognition {
            (
                Some(counts.get(&kind).copied().unwrap_or(0) as f64),
                "recognitions",
            )
        } else {
            match row.id.as_str() {
                "equipment_digitization" => (
                    city["digitization"]["measured"]["mean"].as_f64(),
                    "measured",
                ),
                "key_process_nc" => (
                    city["key_process_nc"]["measured"]["mean"].as_f64(),
                    "measured",
                ),
                "rd_design_tool_penetration" => (
                    city["rd_design_tools"]["declared"]["mean"].as_f64(),
                    "declared",
                ),
                _ => (None, "not_measured"),
            }
        };
        let progress = value.and_then(|v| row.progress(y, v, elapsed));
        rows.push(json!({
            "id": row.id, "no": row.no, "zh": row.zh, "en": row.en, "unit": row.unit,
            "comparison": row.comparison, "target": row.target(y), "value": value,
            "basis": basis, "progress": progress,
            "status": match (&progress, value) {
                (Some(p), _) if p.met => "met",
                (Some(p), _) if p.on_track => "on_track",
                (Some(_), _) => "behind",
                (None, None) => "no_data",
                (None, Some(_)) => "no_target_this_year",
            },
        }));
    }
    out["elapsed_share_of_year"] = elapsed.into();
    out["rows"] = rows.into();
    out["source"] =
        json!({ "document": set.targets.source.document, "vintage": set.targets.source.vintage });
    Ok(out)
}

/// Recorded assessment scores per county with totals and a ranking.
pub fn assessment_json(
    store: &dyn Store,
    _reference: &Reference,
    year: i32,
) -> Result<Value, StoreError> {
    let mut per: BTreeMap<String, Vec<AssessmentScore>> = BTreeMap::new();
    for c in store.counties()? {
        per.entry(c.id).or_default();
    }
    for s in store.scores(year)? {
        per.entry(s.county.clone()).or_default().push(s);
    }
    let mut rows: Vec<(String, f64, Vec<AssessmentScore>)> = per
        .into_iter()
        .map(|(c, items)| {
            let total = items.iter().map(|s| s.score).sum();
            (c, total, items)
        })
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(json!({
        "year": year,
        "counties": rows.into_iter().enumerate().map(|(i, (c, total, items))| json!({
            "county": c, "rank": i + 1, "total": total, "items": items,
        })).collect::<Vec<_>>(),
    }))
}

/// Checks a score before it is recorded; the message is for the bureau's staff.
pub fn check_score(
    store: &dyn Store,
    reference: &Reference,
    s: &AssessmentScore,
) -> Result<(), String> {
    let counties = store.counties().map_err(|e| e.to_string())?;
    if !counties.iter().any(|c| c.id == s.county) {
        return Err(format!(
            "county `{}` is not one of the city's counties and zones",
            s.county
        ));
    }
    if !reference.assessment_items.is_empty() && !reference.assessment_items.contains(&s.item) {
        return Err(format!("`{}` is not an assessment item", s.item));
    }
    if !s.score.is_finite() || s.score < 0.0 {
        return Err(format!("score {} must be a non-negative number", s.score));
    }
    if !(2000..=2100).contains(&s.year) {
        return Err(format!("year {} is out of range", s.year));
    }
    Ok(())
}

/// State seconds as a map from state name, for JSON.
pub fn state_map(secs: &[u64; 7]) -> Value {
    let mut m = serde_json::Map::new();
    for s in DeviceState::ALL {
        m.insert(s.as_str().to_owned(), secs[s.index()].into());
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shuzhuan_common::credit_code::CreditCode;
    use shuzhuan_common::inventory::{Device, DeviceKind, IndustryType, KeyProcess};
    use shuzhuan_common::registry::DeclaredRates;

    const DAY: i64 = 86_400;

    /// `dev`: (id, productive s, nc s, received of 100 expected), all over `secs` calendar seconds.
    fn totals(secs: u64, devs: &[(&str, u64, u64, u64)]) -> Vec<DeviceTotals> {
        devs.iter()
            .map(|&(id, p, nc, rec)| {
                let mut state_seconds = [0u64; 7];
                state_seconds[DeviceState::Productive.index()] = p;
                state_seconds[DeviceState::Standby.index()] = secs - p;
                DeviceTotals {
                    enterprise: "e".into(),
                    device_id: id.into(),
                    days: secs.div_ceil(86_400),
                    state_seconds,
                    nc_seconds: nc,
                    parts: 0,
                    samples_expected: 100,
                    samples_received: rec,
                }
            })
            .collect()
    }

    fn inventory() -> Inventory {
        let dev = |id: &str, kp: Option<&str>| Device {
            id: id.into(),
            name: id.into(),
            kind: DeviceKind::CncMachineTool,
            production: true,
            declared_digital: true,
            declared_networked: true,
            declared_nc: true,
            key_process: kp.map(str::to_owned),
            original_value_cny: None,
        };
        Inventory {
            devices: vec![dev("a", Some("k")), dev("b", Some("k")), dev("c", None)],
            key_processes: vec![KeyProcess {
                id: "k".into(),
                name: "k".into(),
                declared_nc: true,
            }],
        }
    }

    fn enterprise() -> Enterprise {
        Enterprise {
            credit_code: CreditCode::from_body("91411721000000001").unwrap(),
            name: "e".into(),
            county: "xiping".into(),
            chain: "equipment".into(),
            above_scale: true,
            industry_type: IndustryType::Discrete,
            rd_design_tools: None,
            declared: DeclaredRates::default(),
        }
    }

    fn facts_over(window: IndicatorPeriod, devs: &[DeviceTotals]) -> EnterpriseFacts {
        facts(
            enterprise(),
            &inventory(),
            devs,
            Vec::new(),
            window,
            &Reference::default(),
        )
    }

    #[test]
    fn rules_come_from_the_shipped_config_file() {
        let r = Reference::default();
        let text = include_str!("../../config/scoring/measurement.toml");
        assert!(text.contains(&format!("nc_min_share = {}", r.rules.nc_min_share)));
        assert_eq!(r.networked_min_coverage, r.rules.networked_min_coverage);
        assert!(
            r.rules_source.contains("measurement.toml"),
            "{}",
            r.rules_source
        );
    }

    #[test]
    fn the_window_runs_from_the_first_report_to_the_city_horizon() {
        let year = (0, 365 * DAY);
        // Connected on day 300, the city has reported up to day 310.
        let w = assessment_window(Some((300 * DAY, 305 * DAY)), 310 * DAY, year, &[]);
        assert_eq!(w, IndicatorPeriod::new(300 * DAY, 310 * DAY));
        // A report that started before the period is clipped to it.
        let w = assessment_window(Some((-100, 10 * DAY)), 10 * DAY, (0, 365 * DAY), &[]);
        assert_eq!(w.start, 0);
        // No evidence rows: judged by the days the devices reported.
        let w = assessment_window(
            None,
            310 * DAY,
            year,
            &totals(2 * 86_400, &[("a", 0, 0, 0)]),
        );
        assert_eq!(w, IndicatorPeriod::new(0, 2 * DAY));
    }

    #[test]
    fn year_to_date_is_judged_on_the_connected_part_of_the_year() {
        // Ten days of full reports in a year that is 310 days old: measured.
        let devs = totals(
            10 * 86_400,
            &[("a", 1000, 600, 100), ("b", 1000, 400, 95), ("c", 0, 0, 50)],
        );
        let f = facts_over(IndicatorPeriod::new(300 * DAY, 310 * DAY), &devs);
        assert_eq!(f.report_coverage.value, Some(1.0));
        // digitized: a, b, c (any data) → 3/3; networked (≥ 90%): a, b → 2/3
        assert_eq!(f.measured_digitization.value, Some(1.0));
        assert_eq!(
            (
                f.measured_networking.numerator,
                f.measured_networking.denominator
            ),
            (2.0, 3.0)
        );
        // NC at ≥ 50% of productive time: a (60%) yes, b (40%) no; quorum
        // `all` → the key process served by a and b is not NC. (The old
        // roll-up counted any NC second and any device: 1/1.)
        assert_eq!(f.measured_key_process_nc.value, Some(0.0));
        // The same ten days against the whole year would be 2.7%: insufficient.
        let whole = facts_over(IndicatorPeriod::new(0, 365 * DAY), &devs);
        assert_eq!(whole.measured_digitization.value, None);
        assert!(matches!(
            whole.measured_digitization.insufficient,
            Some(Insufficient::LowCoverage { .. })
        ));
    }

    #[test]
    fn a_quiet_enterprise_drops_to_declared_only() {
        // Reported 10 days, then silent while the city went on for 15 more.
        let devs = totals(10 * 86_400, &[("a", 1000, 1000, 100)]);
        let f = facts_over(IndicatorPeriod::new(0, 25 * DAY), &devs);
        assert_eq!(f.report_coverage.value, Some(0.4));
        assert_eq!(f.measured_networking.value, None);
        let g = group_json(&[&f]);
        assert_eq!(g["enterprises_with_measured_data"], 0, "{g}");
        assert_eq!(g["enterprises_declared_only"], 1);
        assert_eq!(g["enterprises_low_report_coverage"], 1);
        assert_eq!(g["networking"]["measured"]["status"], "insufficient data");
        // The inventory's declared figures still show.
        assert_eq!(g["networking"]["declared_inventory"]["mean"], 1.0);
    }

    #[test]
    fn groups_take_mean_and_pooled_from_the_engine() {
        let one = facts_over(
            IndicatorPeriod::new(0, DAY),
            &totals(
                86_400,
                &[("a", 10, 10, 100), ("b", 10, 10, 100), ("c", 10, 10, 100)],
            ),
        );
        let two = facts_over(
            IndicatorPeriod::new(0, DAY),
            &totals(86_400, &[("a", 10, 10, 100)]),
        );
        let g = group_json(&[&one, &two]);
        // digitization 3/3 and 1/3: mean 2/3, pooled 4/6
        let mean = g["digitization"]["measured"]["mean"].as_f64().unwrap();
        let pooled = g["digitization"]["measured"]["pooled"].as_f64().unwrap();
        assert!((mean - 2.0 / 3.0).abs() < 1e-12 && (pooled - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(g["digitization"]["measured"]["enterprises_with_value"], 2);
    }
}
