//! The city's assessed units and industry chains (`config/city/units.toml`).

use super::{first_problem, source_problems, Located, Problem, Source};
use crate::registry::{County, CountyKind, IndustryChain};
use crate::tomlpos;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The city itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct City {
    pub id: String,
    pub name: String,
    pub name_en: String,
    /// GB/T 2260 code of the prefecture-level city (`411700`).
    pub division_code: String,
}

/// `config/city/units.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CityUnits {
    pub city: City,
    /// Source of the districts, counties and zones.
    pub counties_source: Source,
    /// Source of the industry chains.
    pub chains_source: Source,
    pub counties: Vec<County>,
    pub chains: Vec<IndustryChain>,
}

impl CityUnits {
    pub fn county(&self, id: &str) -> Option<&County> {
        self.counties.iter().find(|c| c.id == id)
    }
    pub fn chain(&self, id: &str) -> Option<&IndustryChain> {
        self.chains.iter().find(|c| c.id == id)
    }
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn is_code(s: &str) -> bool {
    s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses and validates `config/city/units.toml`: ids unique and URL-safe,
/// division codes six digits under the city's code, districts and counties
/// with a code, names present.
pub fn load_city(file: &str, text: &str) -> Result<CityUnits, Located> {
    let u: CityUnits = tomlpos::parse(file, text)?;
    let mut p = source_problems("counties_source", &u.counties_source);
    p.extend(source_problems("chains_source", &u.chains_source));
    if !is_code(&u.city.division_code) || !u.city.division_code.ends_with("00") {
        p.push(Problem::table(
            "city",
            "division_code",
            format!(
                "`{}` is not a city-level division code (six digits ending in 00)",
                u.city.division_code
            ),
        ));
    }
    let prefix = u.city.division_code.get(..4).unwrap_or("");
    let (mut ids, mut codes) = (BTreeSet::new(), BTreeSet::new());
    for (i, c) in u.counties.iter().enumerate() {
        if !is_id(&c.id) {
            p.push(Problem::at(
                "counties",
                i,
                "id",
                format!("id `{}` must be lowercase letters, digits, - or _", c.id),
            ));
        }
        if !ids.insert(c.id.as_str()) {
            p.push(Problem::at(
                "counties",
                i,
                "id",
                format!("county id `{}` appears twice", c.id),
            ));
        }
        if c.name.trim().is_empty() || c.name_en.trim().is_empty() {
            p.push(Problem::at(
                "counties",
                i,
                "name",
                format!("`{}` needs name and name_en", c.id),
            ));
        }
        match (&c.division_code, c.kind) {
            (None, CountyKind::District | CountyKind::County) => p.push(Problem::at(
                "counties",
                i,
                "kind",
                format!("{:?} `{}` needs its division_code", c.kind, c.id),
            )),
            (Some(code), _) if !is_code(code) || !code.starts_with(prefix) => p.push(Problem::at(
                "counties",
                i,
                "division_code",
                format!(
                    "`{code}` is not a six-digit division code under {}",
                    u.city.division_code
                ),
            )),
            (Some(code), _) if !codes.insert(code.as_str()) => p.push(Problem::at(
                "counties",
                i,
                "division_code",
                format!("division code `{code}` appears twice"),
            )),
            _ => {}
        }
    }
    let mut chain_ids = BTreeSet::new();
    for (i, c) in u.chains.iter().enumerate() {
        if !is_id(&c.id) {
            p.push(Problem::at(
                "chains",
                i,
                "id",
                format!("id `{}` must be lowercase letters, digits, - or _", c.id),
            ));
        }
        if !chain_ids.insert(c.id.as_str()) {
            p.push(Problem::at(
                "chains",
                i,
                "id",
                format!("chain id `{}` appears twice", c.id),
            ));
        }
        if c.name.trim().is_empty() || c.name_en.trim().is_empty() {
            p.push(Problem::at(
                "chains",
                i,
                "name",
                format!("`{}` needs name and name_en", c.id),
            ));
        }
    }
    if u.counties.is_empty() {
        p.push(Problem::table(
            "city",
            "id",
            "the city needs at least one county".into(),
        ));
    }
    if u.chains.is_empty() {
        p.push(Problem::table(
            "city",
            "id",
            "the city needs at least one industry chain".into(),
        ));
    }
    first_problem(file, text, p)?;
    Ok(u)
}
