//! Schemas and loaders of the reference data under `config/` (targets,
//! assessment items, counties, energy coefficients, emission factors,
//! questionnaire bands, measurement thresholds, green-factory indicators),
//! each with its source and vintage.
//!
//! Every loader is pure: it takes the file's name (for messages) and its
//! text, parses it with unknown fields refused, validates it, and returns
//! either the typed data or a [`Located`] error `file:line:column: what is
//! wrong`. The caller reads the files; [`ReferenceSet::load`] loads all of
//! them through a reader the caller supplies.

pub mod city;
pub mod energy;
pub mod plan;
pub mod scoring;

pub use crate::tomlpos::Located;
pub use city::{load_city, City, CityUnits};
pub use energy::{load_coefficients, load_emission_factors, Coefficients, EmissionFactors};
pub use plan::{
    load_assessment, load_national, load_targets, Assessment, AssessmentCategory, AssessmentItem,
    Comparison, EvidenceBasis, NationalReference, NationalValue, PlanTargets, TargetRow,
    TargetUnit,
};
pub use scoring::{
    load_bands, load_green_factory, load_measurement, Bands, GreenDimension, GreenFactory,
    GreenIndicator, Measurement,
};

use serde::{Deserialize, Serialize};
use std::ops::Range;

/// How well a reference figure is established (INDICATORS.md's markers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Checked against the published source named.
    Src,
    /// From a secondary transcription of a published source.
    Sec,
    /// Common practice, not yet checked against the standard's text.
    Unverified,
}

/// Where a table of reference data comes from: every file (and every table
/// with a source of its own) carries one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Title of the document, standard or announcement.
    pub document: String,
    /// Who issued it.
    pub issuer: String,
    /// Document number (文号), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// When it was published: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    pub published: String,
    /// The year or date the figures describe, same formats.
    pub vintage: String,
    pub confidence: Confidence,
    /// Where the source text is kept in this repository, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default)]
    pub notes: String,
}

impl Source {
    /// The year of the vintage.
    pub fn vintage_year(&self) -> Option<u16> {
        date_year(&self.vintage)
    }

    /// Problems with the source, as (key, message).
    pub(crate) fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.document.trim().is_empty() {
            out.push(("document", "the source needs a document".to_owned()));
        }
        if self.issuer.trim().is_empty() {
            out.push(("issuer", "the source needs an issuer".to_owned()));
        }
        for (key, v) in [("published", &self.published), ("vintage", &self.vintage)] {
            if date_year(v).is_none() {
                out.push((
                    key,
                    format!("{key} `{v}` is not a date (YYYY, YYYY-MM or YYYY-MM-DD)"),
                ));
            }
        }
        out
    }
}

/// The year of `YYYY`, `YYYY-MM` or `YYYY-MM-DD` (1990 to 2100), checking
/// month and day ranges.
pub fn date_year(s: &str) -> Option<u16> {
    let parts: Vec<&str> = s.split('-').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let num = |p: &str, len: usize| -> Option<u16> {
        (p.len() == len && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let year = num(parts[0], 4).filter(|y| (1990..=2100).contains(y))?;
    if let Some(m) = parts.get(1) {
        num(m, 2).filter(|m| (1..=12).contains(m))?;
    }
    if let Some(d) = parts.get(2) {
        num(d, 2).filter(|d| (1..=31).contains(d))?;
    }
    Some(year)
}

/// A validation problem before it is located: where (array of tables and
/// entry index, or a top-level table) and what.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    /// Name of the table or array of tables (`""` for the top level).
    pub table: &'static str,
    /// Entry index for arrays of tables, `None` for a plain table.
    pub index: Option<usize>,
    pub key: &'static str,
    pub message: String,
}

impl Problem {
    pub fn at(table: &'static str, index: usize, key: &'static str, message: String) -> Problem {
        Problem {
            table,
            index: Some(index),
            key,
            message,
        }
    }
    pub fn table(table: &'static str, key: &'static str, message: String) -> Problem {
        Problem {
            table,
            index: None,
            key,
            message,
        }
    }
    /// Locates the problem in `text`: the key's line in the entry, else the
    /// entry's header, else no position.
    pub fn locate(self, file: &str, text: &str) -> Located {
        let span = match self.index {
            Some(i) => entry_key_span(text, self.table, i, self.key),
            None => crate::tomlpos::find_key(text, self.table, self.key)
                .or_else(|| header_span(text, self.table)),
        };
        crate::tomlpos::locate(file, text, span, self.message)
    }
}

/// Turns the first problem into an error.
pub(crate) fn first_problem(file: &str, text: &str, problems: Vec<Problem>) -> Result<(), Located> {
    match problems.into_iter().next() {
        Some(p) => Err(p.locate(file, text)),
        None => Ok(()),
    }
}

/// Source problems of the table `table`.
pub(crate) fn source_problems(table: &'static str, source: &Source) -> Vec<Problem> {
    source
        .problems()
        .into_iter()
        .map(|(key, m)| Problem::table(table, key, m))
        .collect()
}

fn header_name(line: &str) -> Option<(&str, bool)> {
    let t = line.trim();
    if let Some(rest) = t.strip_prefix("[[") {
        let end = rest.find("]]")?;
        return Some((rest[..end].trim(), true));
    }
    if let Some(rest) = t.strip_prefix('[') {
        let end = rest.find(']')?;
        return Some((rest[..end].trim(), false));
    }
    None
}

/// Span of the header `[table]`.
fn header_span(text: &str, table: &str) -> Option<Range<usize>> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if let Some((name, false)) = header_name(line) {
            if name == table {
                let indent = line.len() - line.trim_start().len();
                return Some(offset + indent..offset + line.trim_end().len());
            }
        }
        offset += line.len();
    }
    None
}

/// Span of `key` in the `index`-th `[[array]]` entry (or the entry's header
/// when the key is not written there).
pub(crate) fn entry_key_span(
    text: &str,
    array: &str,
    index: usize,
    key: &str,
) -> Option<Range<usize>> {
    let mut offset = 0;
    let mut seen = 0usize;
    let mut header: Option<Range<usize>> = None;
    for line in text.split_inclusive('\n') {
        let indent = line.len() - line.trim_start().len();
        if let Some((name, _)) = header_name(line) {
            if header.is_some() {
                break; // the entry ended without the key
            }
            if name == array {
                if seen == index {
                    header = Some(offset + indent..offset + line.trim_end().len());
                }
                seen += 1;
            }
        } else if header.is_some() {
            if let Some(rest) = line.trim_start().strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    return Some(offset + indent..offset + indent + key.len());
                }
            }
        }
        offset += line.len();
    }
    header
}

/// Every reference file under `config/`, by path relative to it.
pub const FILES: [&str; 9] = [
    "plan/targets.toml",
    "plan/national.toml",
    "plan/assessment.toml",
    "city/units.toml",
    "energy/coefficients.toml",
    "energy/emission-factors.toml",
    "scoring/bands.toml",
    "scoring/measurement.toml",
    "scoring/green-factory.toml",
];

/// All reference data, loaded and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceSet {
    pub targets: PlanTargets,
    pub national: NationalReference,
    pub assessment: Assessment,
    pub city: CityUnits,
    pub coefficients: Coefficients,
    pub emission_factors: EmissionFactors,
    pub bands: Bands,
    pub measurement: Measurement,
    pub green_factory: GreenFactory,
}

impl ReferenceSet {
    /// Loads every file of [`FILES`] through `read`, which maps a path
    /// relative to `config/` to (the name to show in messages, the text).
    /// Returns every file's first problem, not only the first file's.
    pub fn load(
        mut read: impl FnMut(&str) -> Result<(String, String), Located>,
    ) -> Result<ReferenceSet, Vec<Located>> {
        let mut errors = Vec::new();
        let mut texts = Vec::new();
        for f in FILES {
            match read(f) {
                Ok(t) => texts.push(Some(t)),
                Err(e) => {
                    errors.push(e);
                    texts.push(None);
                }
            }
        }
        fn one<T>(
            t: &Option<(String, String)>,
            errors: &mut Vec<Located>,
            f: fn(&str, &str) -> Result<T, Located>,
        ) -> Option<T> {
            let (name, text) = t.as_ref()?;
            f(name, text).map_err(|e| errors.push(e)).ok()
        }
        let targets = one(&texts[0], &mut errors, load_targets);
        let national = one(&texts[1], &mut errors, load_national);
        let assessment = one(&texts[2], &mut errors, load_assessment);
        let city = one(&texts[3], &mut errors, load_city);
        let coefficients = one(&texts[4], &mut errors, load_coefficients);
        let emission_factors = one(&texts[5], &mut errors, load_emission_factors);
        let bands = one(&texts[6], &mut errors, load_bands);
        let measurement = one(&texts[7], &mut errors, load_measurement);
        let green_factory = one(&texts[8], &mut errors, load_green_factory);
        if let (Some(t), Some(n)) = (&targets, &national) {
            for v in &n.value {
                if !t.headline.iter().any(|h| h.id == v.id) {
                    errors.push(Located {
                        file: texts[1].as_ref().map(|x| x.0.clone()).unwrap_or_default(),
                        line: 0,
                        column: 0,
                        message: format!("`{}` is not a headline rate of the targets", v.id),
                    });
                }
            }
        }
        match (
            targets,
            national,
            assessment,
            city,
            coefficients,
            emission_factors,
            bands,
            measurement,
            green_factory,
        ) {
            (
                Some(targets),
                Some(national),
                Some(assessment),
                Some(city),
                Some(coefficients),
                Some(emission_factors),
                Some(bands),
                Some(measurement),
                Some(green_factory),
            ) if errors.is_empty() => Ok(ReferenceSet {
                targets,
                national,
                assessment,
                city,
                coefficients,
                emission_factors,
                bands,
                measurement,
                green_factory,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests;
