//! The plan's targets (`config/plan/targets.toml`) and the county
//! assessment's items (`config/plan/assessment.toml`).

use super::{first_problem, source_problems, Located, Problem, Source};
use crate::indicators::targets::Progress;
use crate::registry::RecognitionKind;
use crate::tomlpos;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What a target counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetUnit {
    /// A cumulative number (of enterprises, zones, products …): a whole number.
    Count,
    /// A fraction in [0, 1] (85% is 0.85).
    Share,
}

/// How a value is compared with its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Met when the value is at or above the target (达到…以上, 力争…).
    #[default]
    AtLeast,
}

fn years<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u16, f64>, D::Error> {
    let raw = BTreeMap::<String, f64>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| match k.parse::<u16>() {
            Ok(y) if (2000..=2100).contains(&y) => Ok((y, v)),
            _ => Err(serde::de::Error::custom(format!(
                "target key `{k}` is not a year (2000 to 2100)"
            ))),
        })
        .collect()
}

/// One row: a headline rate, a row of the target table or another goal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRow {
    /// The row's number in the plan's table (`1` … `15`, `14a`, `14b`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no: Option<String>,
    pub id: String,
    pub zh: String,
    pub en: String,
    pub unit: TargetUnit,
    /// The plan's measure word (个, 家), for counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_zh: Option<String>,
    #[serde(default)]
    pub comparison: Comparison,
    /// The recognition kind whose cumulative count is the row's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recognition: Option<RecognitionKind>,
    /// Whom the figure covers (规模以上制造企业 …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The plan's section the row comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    /// Year → target (cumulative for counts).
    #[serde(deserialize_with = "years")]
    pub targets: BTreeMap<u16, f64>,
    /// The plan's words the row was read from.
    pub quote: String,
}

impl TargetRow {
    pub fn target(&self, year: u16) -> Option<f64> {
        self.targets.get(&year).copied()
    }

    /// The target of the latest year before `year`, if the row has one.
    pub fn previous(&self, year: u16) -> Option<f64> {
        self.targets.range(..year).next_back().map(|(_, v)| *v)
    }

    /// Where `value` stands in `year` with `elapsed` (in [0, 1]) of the year
    /// gone: the milestone ramps from the previous year's target. `None`
    /// when the row sets no target for `year`.
    pub fn progress(&self, year: u16, value: f64, elapsed: f64) -> Option<Progress> {
        let target = self.target(year)?;
        Some(Progress::against(
            year,
            value,
            target,
            self.previous(year),
            elapsed,
        ))
    }
}

/// `config/plan/targets.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanTargets {
    pub source: Source,
    /// The headline rates of section 一(二) (2025 only).
    #[serde(default)]
    pub headline: Vec<TargetRow>,
    /// The target table, every row (row 14 split into 14a and 14b).
    #[serde(default)]
    pub target: Vec<TargetRow>,
    /// Other 2025 goals the text names.
    #[serde(default)]
    pub goal: Vec<TargetRow>,
}

impl PlanTargets {
    /// Every row: headline, table, goals, in file order.
    pub fn rows(&self) -> impl Iterator<Item = &TargetRow> {
        self.headline.iter().chain(&self.target).chain(&self.goal)
    }

    pub fn row(&self, id: &str) -> Option<&TargetRow> {
        self.rows().find(|r| r.id == id)
    }

    /// The row counting `kind`, if any.
    pub fn for_recognition(&self, kind: RecognitionKind) -> Option<&TargetRow> {
        self.rows().find(|r| r.recognition == Some(kind))
    }

    /// Rows whose `quote` is not in `plan_text` (whitespace ignored on both
    /// sides): the check that figures were read from the plan.
    pub fn unquoted<'a>(&'a self, plan_text: &str) -> Vec<&'a TargetRow> {
        let plan = squeeze(plan_text);
        self.rows()
            .filter(|r| !plan.contains(&squeeze(&r.quote)))
            .collect()
    }
}

/// `s` without any whitespace.
pub fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn row_problems(table: &'static str, rows: &[TargetRow], out: &mut Vec<Problem>) {
    for (i, r) in rows.iter().enumerate() {
        for (key, v) in [
            ("id", &r.id),
            ("zh", &r.zh),
            ("en", &r.en),
            ("quote", &r.quote),
        ] {
            if v.trim().is_empty() {
                out.push(Problem::at(table, i, key, format!("`{key}` is empty")));
            }
        }
        if r.targets.is_empty() {
            out.push(Problem::at(
                table,
                i,
                "targets",
                format!("row `{}` sets no target", r.id),
            ));
        }
        let mut prev: Option<(u16, f64)> = None;
        for (&y, &v) in &r.targets {
            let bad = match r.unit {
                _ if !v.is_finite() => Some("is not a finite number".to_owned()),
                TargetUnit::Share if !(0.0..=1.0).contains(&v) => {
                    Some("is a share and must be a fraction in [0, 1] (85% is 0.85)".to_owned())
                }
                TargetUnit::Count if v < 0.0 || v.fract() != 0.0 => {
                    Some("is a count and must be a whole number ≥ 0".to_owned())
                }
                _ => None,
            };
            if let Some(why) = bad {
                out.push(Problem::at(
                    table,
                    i,
                    "targets",
                    format!("row `{}`: the {y} target {v} {why}", r.id),
                ));
            }
            if let Some((py, pv)) = prev {
                if v < pv {
                    out.push(Problem::at(
                        table,
                        i,
                        "targets",
                        format!(
                            "row `{}`: targets are cumulative, but {y} ({v}) is below {py} ({pv})",
                            r.id
                        ),
                    ));
                }
            }
            prev = Some((y, v));
        }
        if r.unit == TargetUnit::Count && r.unit_zh.is_none() {
            out.push(Problem::at(
                table,
                i,
                "unit_zh",
                format!("count row `{}` needs the plan's measure word", r.id),
            ));
        }
    }
}

/// Parses and validates `config/plan/targets.toml`.
pub fn load_targets(file: &str, text: &str) -> Result<PlanTargets, Located> {
    let t: PlanTargets = tomlpos::parse(file, text)?;
    let mut p = source_problems("source", &t.source);
    row_problems("headline", &t.headline, &mut p);
    row_problems("target", &t.target, &mut p);
    row_problems("goal", &t.goal, &mut p);
    for (i, r) in t.headline.iter().enumerate() {
        if r.unit != TargetUnit::Share {
            p.push(Problem::at(
                "headline",
                i,
                "unit",
                format!("headline rate `{}` must be a share", r.id),
            ));
        }
    }
    let mut nos = BTreeSet::new();
    for (i, r) in t.target.iter().enumerate() {
        match &r.no {
            None => p.push(Problem::at(
                "target",
                i,
                "id",
                format!("table row `{}` needs its number `no`", r.id),
            )),
            Some(n) if !nos.insert(n.clone()) => p.push(Problem::at(
                "target",
                i,
                "no",
                format!("row number `{n}` appears twice"),
            )),
            Some(_) => {}
        }
    }
    let mut ids = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for (table, rows) in [
        ("headline", &t.headline),
        ("target", &t.target),
        ("goal", &t.goal),
    ] {
        for (i, r) in rows.iter().enumerate() {
            if !ids.insert(r.id.as_str()) {
                p.push(Problem::at(
                    table,
                    i,
                    "id",
                    format!("row id `{}` appears twice", r.id),
                ));
            }
            if let Some(k) = r.recognition {
                if !kinds.insert(k) {
                    p.push(Problem::at(
                        table,
                        i,
                        "recognition",
                        format!("recognition `{k:?}` is counted by two rows"),
                    ));
                }
            }
        }
    }
    first_problem(file, text, p)?;
    Ok(t)
}

/// One of the assessment's five categories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessmentCategory {
    pub id: String,
    pub zh: String,
    pub en: String,
}

/// Where an item's evidence comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceBasis {
    /// Shuzhuan's measured data speaks to it directly.
    Measured,
    /// The bureau records it with evidence.
    Recorded,
}

/// One of the sixteen items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessmentItem {
    /// 1 … 16, as numbered in the annex.
    pub no: u8,
    pub id: String,
    pub category: String,
    pub basis: EvidenceBasis,
    /// The annex's words.
    pub zh: String,
    pub en: String,
}

/// `config/plan/assessment.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assessment {
    pub source: Source,
    pub category: Vec<AssessmentCategory>,
    pub item: Vec<AssessmentItem>,
}

impl Assessment {
    /// Item ids in annex order (what bureau staff may score).
    pub fn item_ids(&self) -> Vec<String> {
        self.item.iter().map(|i| i.id.clone()).collect()
    }

    pub fn item(&self, id: &str) -> Option<&AssessmentItem> {
        self.item.iter().find(|i| i.id == id)
    }

    /// Items of a category, in order.
    pub fn items_of<'a>(&'a self, category: &'a str) -> impl Iterator<Item = &'a AssessmentItem> {
        self.item.iter().filter(move |i| i.category == category)
    }
}

/// Parses and validates `config/plan/assessment.toml`: items numbered 1 to
/// n in order, ids unique, each in a known category, categories contiguous
/// and none empty.
pub fn load_assessment(file: &str, text: &str) -> Result<Assessment, Located> {
    let a: Assessment = tomlpos::parse(file, text)?;
    let mut p = source_problems("source", &a.source);
    let mut cats = BTreeSet::new();
    for (i, c) in a.category.iter().enumerate() {
        if !cats.insert(c.id.as_str()) {
            p.push(Problem::at(
                "category",
                i,
                "id",
                format!("category `{}` appears twice", c.id),
            ));
        }
    }
    let mut ids = BTreeSet::new();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut current: Option<&str> = None;
    for (i, it) in a.item.iter().enumerate() {
        if usize::from(it.no) != i + 1 {
            p.push(Problem::at(
                "item",
                i,
                "no",
                format!("item {} is numbered {}", i + 1, it.no),
            ));
        }
        if !ids.insert(it.id.as_str()) {
            p.push(Problem::at(
                "item",
                i,
                "id",
                format!("item id `{}` appears twice", it.id),
            ));
        }
        if it.zh.trim().is_empty() || it.en.trim().is_empty() {
            p.push(Problem::at(
                "item",
                i,
                "zh",
                format!("item `{}` needs zh and en", it.id),
            ));
        }
        if !cats.contains(it.category.as_str()) {
            p.push(Problem::at(
                "item",
                i,
                "category",
                format!("category `{}` is not defined", it.category),
            ));
        } else if current != Some(it.category.as_str()) {
            if done.contains(it.category.as_str()) {
                p.push(Problem::at(
                    "item",
                    i,
                    "category",
                    format!(
                        "items of category `{}` must be consecutive, as in the annex",
                        it.category
                    ),
                ));
            }
            if let Some(c) = current {
                done.insert(c);
            }
            current = Some(it.category.as_str());
        }
    }
    for (i, c) in a.category.iter().enumerate() {
        if !a.item.iter().any(|it| it.category == c.id) {
            p.push(Problem::at(
                "category",
                i,
                "id",
                format!("category `{}` has no item", c.id),
            ));
        }
    }
    first_problem(file, text, p)?;
    Ok(a)
}

/// A national reference value for a headline rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NationalValue {
    /// The headline row of `targets.toml` it compares with.
    pub id: String,
    pub zh: String,
    pub en: String,
    pub scope: String,
    /// A fraction in [0, 1].
    pub value: f64,
}

/// `config/plan/national.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NationalReference {
    pub source: Source,
    pub value: Vec<NationalValue>,
}

impl NationalReference {
    pub fn get(&self, id: &str) -> Option<&NationalValue> {
        self.value.iter().find(|v| v.id == id)
    }
}

/// Parses and validates `config/plan/national.toml`: ids unique, values
/// fractions in [0, 1].
pub fn load_national(file: &str, text: &str) -> Result<NationalReference, Located> {
    let n: NationalReference = tomlpos::parse(file, text)?;
    let mut p = source_problems("source", &n.source);
    let mut ids = BTreeSet::new();
    for (i, v) in n.value.iter().enumerate() {
        if !ids.insert(v.id.as_str()) {
            p.push(Problem::at(
                "value",
                i,
                "id",
                format!("`{}` appears twice", v.id),
            ));
        }
        if !(0.0..=1.0).contains(&v.value) {
            p.push(Problem::at(
                "value",
                i,
                "value",
                format!(
                    "value {} must be a fraction in [0, 1] (55.3% is 0.553)",
                    v.value
                ),
            ));
        }
    }
    first_problem(file, text, p)?;
    Ok(n)
}
