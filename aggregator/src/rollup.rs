//! Roll-ups from the store's period rows to the indicator pages: per
//! enterprise, then per county, industry chain and city, measured beside
//! declared, each with its coverage.
//!
//! The store hands over sums (samples, seconds, energy per carrier); this
//! module groups them by enterprise and region and forms ratios. A ratio
//! with a zero denominator is `null` with `"insufficient data"`, never 0.
//!
//! Hand-over note: the shared indicator engine (`shuzhuan_common::indicators`)
//! had not landed when this was written. The measured-device rules here are
//! the ones INDICATORS.md §1 states (digitized = delivered data in the
//! period; networked = delivered at least `networked_min_coverage` of
//! expected samples; key process NC = one of its devices reported NC
//! operation); they move to the engine when it exists, and this module then
//! only feeds it.

use crate::store::{AssessmentScore, DeviceTotals, Period, Store, StoreError};
use serde::Serialize;
use serde_json::{json, Value};
use shuzhuan_common::indicators::energy::{
    electricity_co2, total_energy, CarrierQuantity, EnergyOptions,
};
use shuzhuan_common::indicators::Period as IndicatorPeriod;
use shuzhuan_common::inventory::Inventory;
use shuzhuan_common::registry::{Enterprise, RecognitionKind};
use shuzhuan_common::state::DeviceState;
use std::collections::{BTreeMap, HashMap};

/// Reference data the pages use, loaded at start.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// Share of expected samples a device must deliver to count as networked
    /// (measured). INDICATORS.md §1: default 90%.
    pub networked_min_coverage: f64,
    /// Assessment item ids bureau staff may score; empty accepts any id
    /// (config/plan/assessment.toml not loaded).
    pub assessment_items: Vec<String>,
    /// The whole reference set of `config/` (targets, assessment, factor
    /// sets), when it was loaded.
    pub set: Option<std::sync::Arc<shuzhuan_common::reference::ReferenceSet>>,
}

impl Default for Reference {
    fn default() -> Self {
        Reference {
            networked_min_coverage: 0.9,
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
        Ok(Reference {
            assessment_items: set.assessment.item_ids(),
            set: Some(std::sync::Arc::new(set)),
            ..Reference::default()
        })
    }
}

/// A ratio with its parts; `value` is `None` when the denominator is zero.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Ratio {
    pub numerator: f64,
    pub denominator: f64,
    pub value: Option<f64>,
}

impl Ratio {
    pub fn of(numerator: f64, denominator: f64) -> Ratio {
        Ratio {
            numerator,
            denominator,
            value: (denominator > 0.0).then(|| numerator / denominator),
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
    pub measured_digitization: Ratio,
    pub measured_networking: Ratio,
    pub measured_key_process_nc: Ratio,
    /// Declared in the inventory the agents sent (device flags).
    pub inventory_digitization: Ratio,
    pub inventory_networking: Ratio,
    pub inventory_key_process_nc: Ratio,
    /// Declared in the registry questionnaire.
    pub declared_digitization: Option<f64>,
    pub declared_networking: Option<f64>,
    pub declared_key_process_nc: Option<f64>,
    pub rd_design_tools: Option<bool>,
    /// Samples received / expected over all devices with data.
    pub coverage: Ratio,
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

/// Builds every enterprise's facts for `period`.
pub fn enterprise_facts(
    store: &dyn Store,
    reference: &Reference,
    period: Period,
) -> Result<Vec<EnterpriseFacts>, StoreError> {
    let key = period.key();
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
    let empty_inv = Inventory::default();
    Ok(store
        .enterprises()?
        .into_iter()
        .map(|e| {
            let code = e.credit_code.to_string();
            let inv = inventories.get(&code).unwrap_or(&empty_inv);
            let devs = devices.remove(&code).unwrap_or_default();
            facts(
                e,
                inv,
                &devs,
                energy.remove(&code).unwrap_or_default(),
                reference,
            )
        })
        .collect())
}

fn facts(
    e: Enterprise,
    inv: &Inventory,
    devs: &[DeviceTotals],
    energy: Vec<CarrierEnergy>,
    reference: &Reference,
) -> EnterpriseFacts {
    let by_id: HashMap<&str, &DeviceTotals> =
        devs.iter().map(|d| (d.device_id.as_str(), d)).collect();
    let production: Vec<_> = inv.devices.iter().filter(|d| d.production).collect();
    let n = production.len() as f64;
    let count = |f: &dyn Fn(&shuzhuan_common::inventory::Device) -> bool| {
        production.iter().filter(|d| f(d)).count() as f64
    };
    let delivered = |id: &str| by_id.get(id).is_some_and(|t| t.samples_received > 0);
    let networked = |id: &str| {
        by_id.get(id).is_some_and(|t| {
            t.samples_expected > 0
                && t.samples_received as f64
                    >= reference.networked_min_coverage * t.samples_expected as f64
        })
    };
    let nc = |id: &str| by_id.get(id).is_some_and(|t| t.nc_seconds > 0);
    let kp_total = inv.key_processes.len() as f64;
    let kp_measured = inv
        .key_processes
        .iter()
        .filter(|kp| {
            inv.devices
                .iter()
                .any(|d| d.key_process.as_deref() == Some(kp.id.as_str()) && nc(&d.id))
        })
        .count() as f64;
    let kp_declared = inv.key_processes.iter().filter(|kp| kp.declared_nc).count() as f64;
    let (mut exp, mut rec, mut prod, mut known, mut cal, mut parts) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    for d in devs {
        exp += d.samples_expected;
        rec += d.samples_received;
        prod += d.state_seconds[DeviceState::Productive.index()];
        let total: u64 = d.state_seconds.iter().sum();
        cal += total;
        known += total - d.state_seconds[DeviceState::Disconnected.index()];
        parts += d.parts;
    }
    // Without any expected sample in the period nothing was measured: the
    // measured rates are "insufficient data", not zero.
    let measured = |num: f64, den: f64| {
        if exp > 0 {
            Ratio::of(num, den)
        } else {
            Ratio {
                numerator: num,
                denominator: den,
                value: None,
            }
        }
    };
    EnterpriseFacts {
        credit_code: e.credit_code.to_string(),
        name: e.name,
        county: e.county,
        chain: e.chain,
        above_scale: e.above_scale,
        production_devices: production.len() as u64,
        measured_digitization: measured(count(&|d| delivered(&d.id)), n),
        measured_networking: measured(count(&|d| networked(&d.id)), n),
        measured_key_process_nc: measured(kp_measured, kp_total),
        inventory_digitization: Ratio::of(count(&|d| d.declared_digital), n),
        inventory_networking: Ratio::of(count(&|d| d.declared_networked), n),
        inventory_key_process_nc: Ratio::of(kp_declared, kp_total),
        declared_digitization: e.declared.digitization,
        declared_networking: e.declared.networking,
        declared_key_process_nc: e.declared.key_process_nc,
        rd_design_tools: e.rd_design_tools,
        coverage: Ratio::of(rec as f64, exp as f64),
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
    pub pooled: Option<f64>,
    pub enterprises_with_value: u64,
    pub status: &'static str,
}

fn group_rate(values: &[Ratio]) -> GroupRate {
    let with: Vec<f64> = values.iter().filter_map(|r| r.value).collect();
    let (num, den) = values
        .iter()
        .fold((0.0, 0.0), |(a, b), r| (a + r.numerator, b + r.denominator));
    GroupRate {
        mean: (!with.is_empty()).then(|| with.iter().sum::<f64>() / with.len() as f64),
        pooled: Ratio::of(num, den).value,
        enterprises_with_value: with.len() as u64,
        status: if with.is_empty() {
            "insufficient data"
        } else {
            "ok"
        },
    }
}

fn declared_rate(values: &[Option<f64>]) -> GroupRate {
    let with: Vec<f64> = values.iter().flatten().copied().collect();
    GroupRate {
        mean: (!with.is_empty()).then(|| with.iter().sum::<f64>() / with.len() as f64),
        pooled: None,
        enterprises_with_value: with.len() as u64,
        status: if with.is_empty() {
            "insufficient data"
        } else {
            "ok"
        },
    }
}

/// The headline indicators of a group of above-scale enterprises.
pub fn group_json(members: &[&EnterpriseFacts]) -> Value {
    let above: Vec<&EnterpriseFacts> = members.iter().copied().filter(|f| f.above_scale).collect();
    let measured = above
        .iter()
        .filter(|f| f.coverage.denominator > 0.0)
        .count();
    let rate = |f: fn(&EnterpriseFacts) -> Ratio| {
        group_rate(&above.iter().map(|e| f(e)).collect::<Vec<_>>())
    };
    let decl = |f: fn(&EnterpriseFacts) -> Option<f64>| {
        declared_rate(&above.iter().map(|e| f(e)).collect::<Vec<_>>())
    };
    let rd: Vec<Option<f64>> = above
        .iter()
        .map(|e| e.rd_design_tools.map(|b| if b { 1.0 } else { 0.0 }))
        .collect();
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
        "rd_design_tools": { "declared": declared_rate(&rd) },
        "coverage": rate(|e| e.coverage),
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
            out["indicators"] = group_json(&members);
            add_energy(&mut out["indicators"], reference, period);
            out["enterprises"] = serde_json::to_value(&members).unwrap_or_default();
        }
        ("chain", None) => {
            let mut groups = Vec::new();
            for ch in store.chains()? {
                let members: Vec<&EnterpriseFacts> =
                    facts.iter().filter(|f| f.chain == ch.id).collect();
                let mut g = group_json(&members);
                add_energy(&mut g, reference, period);
                groups.push(json!({ "id": ch.id, "name": ch.name, "indicators": g }));
            }
            out["chains"] = groups.into();
        }
        _ => {
            let all: Vec<&EnterpriseFacts> = facts.iter().collect();
            out["indicators"] = group_json(&all);
            add_energy(&mut out["indicators"], reference, period);
            let mut counties = Vec::new();
            for c in store.counties()? {
                let members: Vec<&EnterpriseFacts> =
                    facts.iter().filter(|f| f.county == c.id).collect();
                let mut g = group_json(&members);
                add_energy(&mut g, reference, period);
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
