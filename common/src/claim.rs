//! Award claims and their judging: the claim file an enterprise (or its
//! evaluator) writes, the bureau's claim policy (`config/claims/thresholds.toml`)
//! and the pure judgement of each claimed figure against the figures a
//! verified evidence bundle yields.
//!
//! A claimed figure is *Supported* when the measured value reaches it within
//! the policy's tolerance, *NotSupported* when it does not (the measured value
//! is always shown), and *InsufficientData* when the evidence cannot say:
//! the bundle has problems, the reports cover too little of the window, the
//! inventory or the baseline is missing, or no factor exists for a carrier.
//! Whether a figure also meets the recognition's threshold is reported
//! beside the verdict, with the threshold's source.

use crate::credit_code::CreditCode;
use crate::evidence::figures::Figures;
use crate::evidence::BundleVerdict;
use crate::state::DeviceState;
use crate::tomlpos::{self, Located};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A window given as two TOML offset date-times.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    start: toml::value::Datetime,
    end: toml::value::Datetime,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaim {
    enterprise: String,
    recognition: String,
    #[serde(default)]
    note: String,
    window: RawWindow,
    baseline: Option<RawWindow>,
    factor_set: Option<String>,
    figures: BTreeMap<String, f64>,
}

/// The figures a claim can name, each with its unit and direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FigureKind {
    DevicesConnected,
    DigitizationRatePct,
    NetworkingRatePct,
    KeyProcessNcRatePct,
    UtilisationPct,
    EnergyIntensityKgcePerPart,
    CarbonIntensityKgco2PerPart,
    EnergyIntensityReductionPct,
}

impl FigureKind {
    pub const ALL: [FigureKind; 8] = [
        FigureKind::DevicesConnected,
        FigureKind::DigitizationRatePct,
        FigureKind::NetworkingRatePct,
        FigureKind::KeyProcessNcRatePct,
        FigureKind::UtilisationPct,
        FigureKind::EnergyIntensityKgcePerPart,
        FigureKind::CarbonIntensityKgco2PerPart,
        FigureKind::EnergyIntensityReductionPct,
    ];

    pub fn key(self) -> &'static str {
        match self {
            FigureKind::DevicesConnected => "devices_connected",
            FigureKind::DigitizationRatePct => "digitization_rate_pct",
            FigureKind::NetworkingRatePct => "networking_rate_pct",
            FigureKind::KeyProcessNcRatePct => "key_process_nc_rate_pct",
            FigureKind::UtilisationPct => "utilisation_pct",
            FigureKind::EnergyIntensityKgcePerPart => "energy_intensity_kgce_per_part",
            FigureKind::CarbonIntensityKgco2PerPart => "carbon_intensity_kgco2_per_part",
            FigureKind::EnergyIntensityReductionPct => "energy_intensity_reduction_pct",
        }
    }

    pub fn parse(key: &str) -> Option<FigureKind> {
        FigureKind::ALL.into_iter().find(|k| k.key() == key)
    }

    pub fn label(self) -> &'static str {
        match self {
            FigureKind::DevicesConnected => "production devices connected (measured)",
            FigureKind::DigitizationRatePct => "生产设备数字化率 equipment digitization rate",
            FigureKind::NetworkingRatePct => "设备联网率 equipment networking rate",
            FigureKind::KeyProcessNcRatePct => "关键工序数控化率 key-process NC rate",
            FigureKind::UtilisationPct => "utilisation (productive / known time)",
            FigureKind::EnergyIntensityKgcePerPart => "unit product energy consumption",
            FigureKind::CarbonIntensityKgco2PerPart => "unit product CO2 (purchased electricity)",
            FigureKind::EnergyIntensityReductionPct => "energy intensity reduction vs baseline",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            FigureKind::DevicesConnected => "devices",
            FigureKind::EnergyIntensityKgcePerPart => "kgce/part",
            FigureKind::CarbonIntensityKgco2PerPart => "kgCO2/part",
            _ => "%",
        }
    }

    /// Intensities are better when lower; everything else when higher.
    pub fn lower_is_better(self) -> bool {
        matches!(
            self,
            FigureKind::EnergyIntensityKgcePerPart | FigureKind::CarbonIntensityKgco2PerPart
        )
    }
}

/// A parsed, validated claim.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claim {
    pub enterprise: CreditCode,
    /// A key of `[recognitions]` in the policy.
    pub recognition: String,
    pub note: String,
    pub window_start: i64,
    pub window_end: i64,
    pub baseline: Option<(i64, i64)>,
    /// A key of `[factor_sets]` in the policy; the policy's default when absent.
    pub factor_set: Option<String>,
    pub figures: Vec<(FigureKind, f64)>,
}

/// Unix seconds of a TOML offset date-time (`2026-01-01T00:00:00+08:00`).
fn unix_seconds(dt: &toml::value::Datetime) -> Option<i64> {
    let date = dt.date?;
    let time = dt.time?;
    let offset_min = match dt.offset? {
        toml::value::Offset::Z => 0,
        toml::value::Offset::Custom { minutes } => i64::from(minutes),
    };
    let (y, m, d) = (
        i64::from(date.year),
        i64::from(date.month),
        i64::from(date.day),
    );
    // Howard Hinnant's days_from_civil (proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = i64::from(time.hour) * 3600 + i64::from(time.minute) * 60 + i64::from(time.second);
    Some(days * 86_400 + secs - offset_min * 60)
}

/// Unix seconds of an RFC 3339 date-time with a UTC offset
/// (`2026-01-01T00:00:00+08:00`), as claim windows are written; `None` for
/// anything else.
pub fn parse_datetime(s: &str) -> Option<i64> {
    unix_seconds(&s.parse::<toml::value::Datetime>().ok()?)
}

fn window(
    file: &str,
    text: &str,
    table: &str,
    w: &RawWindow,
    errs: &mut Vec<Located>,
) -> Option<(i64, i64)> {
    let mut get = |key: &str, dt: &toml::value::Datetime| {
        let v = unix_seconds(dt);
        if v.is_none() {
            errs.push(tomlpos::locate(
                file,
                text,
                tomlpos::find_key(text, table, key),
                format!("`{table}.{key}` needs a date, a time and a UTC offset, like 2026-01-01T00:00:00+08:00"),
            ));
        }
        v
    };
    let (s, e) = (get("start", &w.start), get("end", &w.end));
    let (s, e) = (s?, e?);
    if e <= s {
        errs.push(tomlpos::locate(
            file,
            text,
            tomlpos::find_key(text, table, "end"),
            format!("`{table}.end` is not after `{table}.start`"),
        ));
        return None;
    }
    Some((s, e))
}

impl Claim {
    /// Parses a claim file, reporting every problem with its line and column.
    pub fn parse(file: &str, text: &str) -> Result<Claim, Vec<Located>> {
        let raw: RawClaim = tomlpos::parse(file, text).map_err(|e| vec![e])?;
        let mut errs = Vec::new();
        let enterprise = match CreditCode::parse(&raw.enterprise) {
            Ok(c) => Some(c),
            Err(e) => {
                errs.push(tomlpos::locate(
                    file,
                    text,
                    tomlpos::find_key(text, "", "enterprise"),
                    e.to_string(),
                ));
                None
            }
        };
        let win = window(file, text, "window", &raw.window, &mut errs);
        let baseline = raw
            .baseline
            .as_ref()
            .and_then(|b| window(file, text, "baseline", b, &mut errs));
        let mut figures = Vec::new();
        for (k, v) in &raw.figures {
            match FigureKind::parse(k) {
                Some(kind) if v.is_finite() && *v >= 0.0 => figures.push((kind, *v)),
                Some(_) => errs.push(tomlpos::locate(
                    file,
                    text,
                    tomlpos::find_key(text, "figures", k),
                    format!("figure `{k}` must be a finite, non-negative number"),
                )),
                None => errs.push(tomlpos::locate(
                    file,
                    text,
                    tomlpos::find_key(text, "figures", k),
                    format!(
                        "unknown figure `{k}`, expected one of: {}",
                        FigureKind::ALL.map(FigureKind::key).join(", ")
                    ),
                )),
            }
        }
        if raw.figures.is_empty() {
            errs.push(tomlpos::locate(
                file,
                text,
                None,
                "`[figures]` names no claimed figure",
            ));
        }
        if figures
            .iter()
            .any(|(k, _)| *k == FigureKind::EnergyIntensityReductionPct)
            && raw.baseline.is_none()
        {
            errs.push(tomlpos::locate(
                file,
                text,
                tomlpos::find_key(text, "figures", "energy_intensity_reduction_pct"),
                "`energy_intensity_reduction_pct` needs a `[baseline]` window",
            ));
        }
        match (enterprise, win) {
            (Some(enterprise), Some((window_start, window_end))) if errs.is_empty() => Ok(Claim {
                enterprise,
                recognition: raw.recognition,
                note: raw.note,
                window_start,
                window_end,
                baseline,
                factor_set: raw.factor_set,
                figures,
            }),
            _ => Err(errs),
        }
    }

    /// The windows whose figures a judgement needs: the claim's window and
    /// its baseline, if any (pass them to the bundle verifier).
    pub fn windows(&self) -> Vec<(i64, i64)> {
        let mut w = vec![(self.window_start, self.window_end)];
        w.extend(self.baseline);
        w
    }

    /// The span the evidence must cover: the window and the baseline, if any.
    pub fn evidence_span(&self) -> (i64, i64) {
        match self.baseline {
            Some((s, e)) => (self.window_start.min(s), self.window_end.max(e)),
            None => (self.window_start, self.window_end),
        }
    }
}

/// Where a policy comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySource {
    pub title: String,
    pub vintage: String,
    pub status: String,
}

/// What the evidence must show before any figure is judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceRules {
    /// Minimum share of the window (per enrolled agent) covered by reports.
    pub min_time_coverage: f64,
    /// Minimum share of expected samples received.
    pub min_sample_coverage: f64,
    /// A device counts as networked (measured) at this sample coverage.
    pub networked_min_coverage: f64,
    /// A key process counts as NC (measured) when this share of its
    /// devices' productive seconds ran under NC/automatic control.
    pub nc_min_share: f64,
}

/// How close a measurement must come to the claimed figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerance {
    /// For `%` figures, in percentage points.
    pub rate_points: f64,
    /// For device counts.
    pub devices: f64,
    /// For intensities, relative (0.02 = 2 %).
    pub intensity_relative: f64,
}

/// Standard-coal coefficients and emission factors, with their source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactorSet {
    pub source: String,
    pub vintage: String,
    /// kgce per unit of each carrier, keyed by carrier id; `unit` names the unit.
    pub kgce: BTreeMap<String, CarrierFactor>,
    /// Location-based grid factor for purchased electricity, kgCO2/kWh.
    pub electricity_kgco2_per_kwh: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierFactor {
    pub unit: String,
    pub per_unit: f64,
}

/// A recognition's thresholds (all optional), with their source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recognition {
    pub name: String,
    pub source: String,
    #[serde(default)]
    pub min: BTreeMap<String, f64>,
    #[serde(default)]
    pub max: BTreeMap<String, f64>,
}

/// The bureau's claim policy (`config/claims/thresholds.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimPolicy {
    pub source: PolicySource,
    pub evidence: EvidenceRules,
    pub tolerance: Tolerance,
    pub default_factor_set: String,
    pub factor_sets: BTreeMap<String, FactorSet>,
    pub recognitions: BTreeMap<String, Recognition>,
}

impl ClaimPolicy {
    pub fn parse(file: &str, text: &str) -> Result<ClaimPolicy, Vec<Located>> {
        let p: ClaimPolicy = tomlpos::parse(file, text).map_err(|e| vec![e])?;
        let mut errs = Vec::new();
        if !p.factor_sets.contains_key(&p.default_factor_set) {
            errs.push(tomlpos::locate(
                file,
                text,
                tomlpos::find_key(text, "", "default_factor_set"),
                format!(
                    "default factor set `{}` is not defined under [factor_sets]",
                    p.default_factor_set
                ),
            ));
        }
        for (id, r) in &p.recognitions {
            for k in r.min.keys().chain(r.max.keys()) {
                if FigureKind::parse(k).is_none() {
                    errs.push(tomlpos::locate(
                        file,
                        text,
                        tomlpos::find_key(text, &format!("recognitions.{id}.min"), k).or_else(
                            || tomlpos::find_key(text, &format!("recognitions.{id}.max"), k),
                        ),
                        format!("recognition `{id}`: unknown figure `{k}`"),
                    ));
                }
            }
        }
        for (k, v) in [
            ("min_time_coverage", p.evidence.min_time_coverage),
            ("min_sample_coverage", p.evidence.min_sample_coverage),
            ("networked_min_coverage", p.evidence.networked_min_coverage),
            ("nc_min_share", p.evidence.nc_min_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                errs.push(tomlpos::locate(
                    file,
                    text,
                    tomlpos::find_key(text, "evidence", k),
                    format!("`evidence.{k}` must be a share between 0 and 1"),
                ));
            }
        }
        if errs.is_empty() {
            Ok(p)
        } else {
            Err(errs)
        }
    }
}

/// The verdict on one claimed figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Supported,
    NotSupported,
    InsufficientData,
}

/// A recognition threshold and whether the measured value meets it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdCheck {
    /// `"min"` or `"max"`.
    pub bound: &'static str,
    pub value: f64,
    /// `None` when nothing was measured.
    pub met: Option<bool>,
}

/// The judgement of one claimed figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FigureJudgement {
    pub figure: FigureKind,
    pub label: &'static str,
    pub unit: &'static str,
    pub claimed: f64,
    pub measured: Option<f64>,
    pub verdict: Verdict,
    pub threshold: Option<ThresholdCheck>,
    /// Why, in sentences: coverage, devices counted, problems, factors used.
    pub why: Vec<String>,
}

/// The judgement of a whole claim.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimJudgement {
    pub enterprise: CreditCode,
    pub recognition: String,
    pub recognition_name: String,
    pub recognition_source: String,
    pub window_start: i64,
    pub window_end: i64,
    pub evidence_ok: bool,
    pub evidence_problems: u64,
    pub reports: u64,
    pub time_coverage: f64,
    pub sample_coverage: Option<f64>,
    pub factor_set: String,
    pub factor_source: String,
    pub policy: PolicySource,
    pub figures: Vec<FigureJudgement>,
    /// The figures of the claim window, as recomputed.
    pub measured: Figures,
}

/// The measured value of one figure, or why there is none.
fn measure(
    kind: FigureKind,
    f: &Figures,
    base: Option<&Figures>,
    rules: &EvidenceRules,
    fs: &FactorSet,
) -> Result<(f64, Vec<String>), String> {
    let inv = || {
        f.inventory
            .as_ref()
            .ok_or("the reports carry no declared inventory".to_owned())
    };
    let production = |inv: &crate::inventory::Inventory| -> Vec<String> {
        inv.devices
            .iter()
            .filter(|d| d.production)
            .map(|d| d.id.clone())
            .collect()
    };
    let pct = |n: usize, d: usize, what: &str| -> Result<(f64, Vec<String>), String> {
        if d == 0 {
            return Err(format!("no {what} declared"));
        }
        Ok((
            100.0 * n as f64 / d as f64,
            vec![format!("{n} of {d} {what} counted")],
        ))
    };
    match kind {
        FigureKind::DevicesConnected => {
            let prod = production(inv()?);
            let n = prod
                .iter()
                .filter(|id| f.device(id).is_some_and(|d| d.samples_received > 0))
                .count();
            Ok((
                n as f64,
                vec![format!(
                    "{n} of {} declared production devices sent good data",
                    prod.len()
                )],
            ))
        }
        FigureKind::DigitizationRatePct => {
            let prod = production(inv()?);
            let n = prod
                .iter()
                .filter(|id| f.device(id).is_some_and(|d| d.samples_received > 0))
                .count();
            pct(n, prod.len(), "production devices with measured data")
        }
        FigureKind::NetworkingRatePct => {
            let prod = production(inv()?);
            let n = prod
                .iter()
                .filter(|id| {
                    f.device(id)
                        .and_then(|d| d.coverage())
                        .is_some_and(|c| c >= rules.networked_min_coverage)
                })
                .count();
            let (v, mut why) = pct(n, prod.len(), "production devices")?;
            why.push(format!(
                "a device counts as networked at ≥ {:.0} % of expected samples received",
                rules.networked_min_coverage * 100.0
            ));
            Ok((v, why))
        }
        FigureKind::KeyProcessNcRatePct => {
            let inv = inv()?;
            let mut nc = 0;
            for kp in &inv.key_processes {
                let (mut ncs, mut prod) = (0u64, 0u64);
                for d in inv
                    .devices
                    .iter()
                    .filter(|d| d.key_process.as_deref() == Some(kp.id.as_str()))
                {
                    if let Some(m) = f.device(&d.id) {
                        ncs += m.nc_seconds;
                        prod += m.seconds(DeviceState::Productive);
                    }
                }
                if prod > 0 && ncs as f64 >= rules.nc_min_share * prod as f64 {
                    nc += 1;
                }
            }
            let (v, mut why) = pct(nc, inv.key_processes.len(), "key processes")?;
            why.push(format!(
                "a key process counts as NC when ≥ {:.0} % of its devices' productive time ran under NC/automatic control",
                rules.nc_min_share * 100.0
            ));
            Ok((v, why))
        }
        FigureKind::UtilisationPct => {
            let prod = production(inv()?);
            let (mut p, mut known) = (0u64, 0u64);
            for id in &prod {
                if let Some(d) = f.device(id) {
                    p += d.seconds(DeviceState::Productive);
                    let total: u64 = d.state_seconds.values().sum();
                    known += total - d.seconds(DeviceState::Disconnected);
                }
            }
            if known == 0 {
                return Err("no known device time in the window".into());
            }
            Ok((100.0 * p as f64 / known as f64, vec![format!("productive {p} s of {known} s known time (disconnected time excluded) over {} production devices", prod.len())]))
        }
        FigureKind::EnergyIntensityKgcePerPart => intensity_kgce(f, fs),
        FigureKind::CarbonIntensityKgco2PerPart => {
            if f.parts == 0 {
                return Err("no parts were counted in the window".into());
            }
            let mut kwh = 0.0;
            for e in &f.energy {
                if e.carrier != "electricity" || e.unit != "kWh" {
                    return Err(format!(
                        "no emission factor for carrier `{}` ({}) in the factor set",
                        e.carrier, e.unit
                    ));
                }
                kwh += e.quantity - e.exported;
            }
            let co2 = kwh * fs.electricity_kgco2_per_kwh;
            Ok((
                co2 / f.parts as f64,
                vec![format!(
                    "{kwh:.1} kWh × {} kgCO2/kWh = {co2:.1} kgCO2 over {} parts",
                    fs.electricity_kgco2_per_kwh, f.parts
                )],
            ))
        }
        FigureKind::EnergyIntensityReductionPct => {
            let base = base.ok_or("the evidence does not cover the baseline window")?;
            let (now, _) = intensity_kgce(f, fs)?;
            let (then, _) = intensity_kgce(base, fs).map_err(|e| format!("baseline: {e}"))?;
            if then <= 0.0 {
                return Err("baseline intensity is zero".into());
            }
            Ok((
                100.0 * (then - now) / then,
                vec![format!(
                    "{then:.4} kgce/part in the baseline, {now:.4} kgce/part in the window"
                )],
            ))
        }
    }
}

fn intensity_kgce(f: &Figures, fs: &FactorSet) -> Result<(f64, Vec<String>), String> {
    if f.parts == 0 {
        return Err("no parts were counted in the window".into());
    }
    let mut kgce = 0.0;
    for e in &f.energy {
        let c = fs
            .kgce
            .get(&e.carrier)
            .filter(|c| c.unit == e.unit)
            .ok_or_else(|| {
                format!(
                    "no standard-coal coefficient for carrier `{}` in {}",
                    e.carrier, e.unit
                )
            })?;
        kgce += (e.quantity - e.exported) * c.per_unit;
    }
    Ok((
        kgce / f.parts as f64,
        vec![format!("{kgce:.1} kgce over {} parts", f.parts)],
    ))
}

/// Judges `claim` against a verified bundle under `policy`. The verifier
/// must have been asked for the figures of [`Claim::windows`]; a window it
/// did not compute is reported as insufficient data.
pub fn judge(claim: &Claim, verdict: &BundleVerdict, policy: &ClaimPolicy) -> ClaimJudgement {
    let rules = &policy.evidence;
    let fs_name = claim
        .factor_set
        .clone()
        .unwrap_or_else(|| policy.default_factor_set.clone());
    let fs = policy.factor_sets.get(&fs_name);
    let rec = policy.recognitions.get(&claim.recognition);
    let computed = verdict.figures_for(claim.window_start, claim.window_end);
    let f = computed.cloned().unwrap_or_else(|| Figures {
        window_start: claim.window_start,
        window_end: claim.window_end,
        ..Figures::default()
    });
    let covers = |s: i64, e: i64| verdict.window_start <= s && e <= verdict.window_end;
    let base = claim
        .baseline
        .filter(|(s, e)| covers(*s, *e))
        .and_then(|(s, e)| verdict.figures_for(s, e).cloned());

    // Reasons that make every figure insufficient.
    let mut blockers = Vec::new();
    if verdict.enterprise != claim.enterprise {
        blockers.push(format!(
            "the evidence is for enterprise {}, the claim for {}",
            verdict.enterprise, claim.enterprise
        ));
    }
    if computed.is_none() {
        blockers.push("the verifier did not compute the figures of the claim's window".to_owned());
    }
    if !covers(claim.window_start, claim.window_end) {
        blockers.push("the evidence does not cover the claim's window".to_owned());
    }
    if !verdict.problems.is_empty() {
        let mut kinds: Vec<String> = verdict
            .problems
            .iter()
            .map(|p| format!("{:?}", p.kind))
            .collect();
        kinds.dedup();
        blockers.push(format!(
            "the evidence failed {} check(s) ({}); first: {}",
            verdict.problems.len(),
            kinds.join(", "),
            verdict.problems[0].message
        ));
    }
    if f.time_coverage < rules.min_time_coverage {
        blockers.push(format!(
            "reports cover {:.1} % of the window (policy needs ≥ {:.0} %); {} uncovered stretch(es)",
            f.time_coverage * 100.0,
            rules.min_time_coverage * 100.0,
            f.uncovered_count
        ));
    }
    let sc = f.sample_coverage();
    if sc.is_none_or(|c| c < rules.min_sample_coverage) {
        blockers.push(format!(
            "{:.1} % of expected samples were received (policy needs ≥ {:.0} %)",
            sc.unwrap_or(0.0) * 100.0,
            rules.min_sample_coverage * 100.0
        ));
    }
    if fs.is_none() {
        blockers.push(format!("factor set `{fs_name}` is not in the policy"));
    }
    if rec.is_none() {
        blockers.push(format!(
            "recognition `{}` is not in the policy",
            claim.recognition
        ));
    }

    let mut figures = Vec::new();
    for &(kind, claimed) in &claim.figures {
        let measured = fs.map(|fs| measure(kind, &f, base.as_ref(), rules, fs));
        let (value, mut why) = match &measured {
            Some(Ok((v, why))) => (Some(*v), why.clone()),
            Some(Err(e)) => (None, vec![e.clone()]),
            None => (None, vec![]),
        };
        let threshold = rec.and_then(|r| {
            let (bound, t) = match (r.min.get(kind.key()), r.max.get(kind.key())) {
                (Some(t), _) => ("min", *t),
                (None, Some(t)) => ("max", *t),
                (None, None) => return None,
            };
            let met = value.map(|v| if bound == "min" { v >= t } else { v <= t });
            Some(ThresholdCheck {
                bound,
                value: t,
                met,
            })
        });
        let verdict = if !blockers.is_empty() {
            why.splice(0..0, blockers.iter().cloned());
            Verdict::InsufficientData
        } else if let Some(v) = value {
            let ok = if kind.lower_is_better() {
                v <= claimed * (1.0 + policy.tolerance.intensity_relative)
            } else if kind == FigureKind::DevicesConnected {
                v + policy.tolerance.devices >= claimed
            } else {
                v + policy.tolerance.rate_points >= claimed
            };
            if !ok {
                why.insert(
                    0,
                    format!(
                        "measured {v:.2} {} against {claimed} {} claimed",
                        kind.unit(),
                        kind.unit()
                    ),
                );
            }
            if ok {
                Verdict::Supported
            } else {
                Verdict::NotSupported
            }
        } else {
            Verdict::InsufficientData
        };
        if matches!(
            kind,
            FigureKind::EnergyIntensityKgcePerPart
                | FigureKind::CarbonIntensityKgco2PerPart
                | FigureKind::EnergyIntensityReductionPct
        ) {
            if let Some(fs) = fs {
                why.push(format!(
                    "factor set `{fs_name}`: {} ({})",
                    fs.source, fs.vintage
                ));
            }
        }
        figures.push(FigureJudgement {
            figure: kind,
            label: kind.label(),
            unit: kind.unit(),
            claimed,
            measured: value,
            verdict,
            threshold,
            why,
        });
    }

    ClaimJudgement {
        enterprise: claim.enterprise.clone(),
        recognition: claim.recognition.clone(),
        recognition_name: rec.map_or_else(|| claim.recognition.clone(), |r| r.name.clone()),
        recognition_source: rec.map_or_else(String::new, |r| r.source.clone()),
        window_start: claim.window_start,
        window_end: claim.window_end,
        evidence_ok: verdict.ok,
        evidence_problems: verdict.problems.len() as u64,
        reports: f.reports,
        time_coverage: f.time_coverage,
        sample_coverage: sc,
        factor_set: fs_name,
        factor_source: fs.map_or_else(String::new, |fs| format!("{} ({})", fs.source, fs.vintage)),
        policy: policy.source.clone(),
        figures,
        measured: f,
    }
}

#[cfg(test)]
mod tests;
