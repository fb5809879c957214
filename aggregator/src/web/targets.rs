//! The plan's targets as the dashboard shows them, read from
//! `config/plan/targets.toml` (reference data with source and vintage).
//!
//! The file's schema belongs to the reference-data module
//! (`common::reference`); until that loader is there this reader takes any
//! top-level array of tables whose entries carry yearly values (keys `2023`,
//! `y2023` or `target_2023`, directly or under `targets`/`values`), a name
//! (`zh`/`name`, `en`/`name_en`), an `id`, an optional `unit` and an
//! optional recognition `kind`. A missing or unreadable file is shown as
//! "targets not loaded", never replaced by numbers in code.

use serde_json::Value as Json;
use std::path::Path;

/// One row of the target table.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetRow {
    pub id: String,
    pub zh: String,
    pub en: String,
    /// True when the figure is a share (shown as a percentage).
    pub percent: bool,
    /// (year, target) in year order; shares as fractions.
    pub years: Vec<(i32, f64)>,
    /// The recognition kind counted for the current value (snake_case), if any.
    pub kind: Option<String>,
    /// The array the row came from: `headline`, `target` (the plan's table), `goal` …
    pub group: String,
    /// The row number in the plan's table (`no`), if given.
    pub no: Option<String>,
}

impl TargetRow {
    pub fn target(&self, year: i32) -> Option<f64> {
        self.years.iter().find(|(y, _)| *y == year).map(|(_, v)| *v)
    }
}

/// The loaded targets with their provenance.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanTargets {
    pub rows: Vec<TargetRow>,
    pub source: String,
}

impl PlanTargets {
    /// The row whose id contains `needle` (e.g. `digitization`).
    pub fn find(&self, needle: &str) -> Option<&TargetRow> {
        self.rows.iter().find(|r| r.id.contains(needle))
    }
    /// The headline rate whose id contains `needle`.
    pub fn headline(&self, needle: &str) -> Option<&TargetRow> {
        self.rows
            .iter()
            .find(|r| r.group == "headline" && r.id.contains(needle))
            .or_else(|| self.find(needle))
    }
    /// The rows of the plan's target table (group `target`), or every row
    /// that is not a headline rate when the file has no such group.
    pub fn table(&self) -> Vec<&TargetRow> {
        let t: Vec<&TargetRow> = self.rows.iter().filter(|r| r.group == "target").collect();
        if t.is_empty() {
            self.rows.iter().filter(|r| r.group != "headline").collect()
        } else {
            t
        }
    }
}

fn str_of(t: &toml::Table, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| t.get(*k).and_then(|v| v.as_str()).map(str::to_owned))
}

fn num(v: &toml::Value) -> Option<f64> {
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
}

fn years_of(t: &toml::Table) -> Vec<(i32, f64)> {
    let mut out = Vec::new();
    for y in 2020..=2030 {
        let keys = [format!("{y}"), format!("y{y}"), format!("target_{y}")];
        let found = keys
            .iter()
            .find_map(|k| t.get(k).and_then(num))
            .or_else(|| {
                ["targets", "values", "by_year"].iter().find_map(|sub| {
                    t.get(*sub)
                        .and_then(|s| s.as_table())
                        .and_then(|s| keys.iter().find_map(|k| s.get(k).and_then(num)))
                })
            });
        if let Some(v) = found {
            out.push((y, v));
        }
    }
    out
}

fn row_of(group: &str, t: &toml::Table) -> Option<TargetRow> {
    let mut years = years_of(t);
    if years.is_empty() {
        return None;
    }
    let unit = str_of(t, &["unit", "kind_of_value", "type"]).unwrap_or_default();
    let percent = matches!(
        unit.as_str(),
        "%" | "percent" | "share" | "rate" | "fraction"
    );
    if percent && years.iter().any(|(_, v)| *v > 1.0) {
        for y in &mut years {
            y.1 /= 100.0;
        }
    }
    let id = str_of(t, &["id", "key"]).unwrap_or_default();
    Some(TargetRow {
        zh: str_of(t, &["zh", "name_zh", "name", "indicator"]).unwrap_or_else(|| id.clone()),
        en: str_of(t, &["en", "name_en"]).unwrap_or_else(|| id.clone()),
        id,
        percent,
        years,
        kind: str_of(t, &["recognition", "kind", "counts"]),
        group: group.to_owned(),
        no: str_of(t, &["no", "number"]),
    })
}

/// Reads `dir/plan/targets.toml`.
pub fn load(reference_dir: &Path) -> Result<PlanTargets, String> {
    let path = reference_dir.join("plan/targets.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: toml::Table = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows = Vec::new();
    let mut source = String::new();
    for (key, v) in &doc {
        match v {
            toml::Value::Array(items) => {
                rows.extend(
                    items
                        .iter()
                        .filter_map(|i| i.as_table())
                        .filter_map(|t| row_of(key, t)),
                );
            }
            toml::Value::Table(t) if key == "source" || key == "meta" => {
                source = [
                    str_of(t, &["title", "document", "name"]),
                    str_of(t, &["number"]),
                    str_of(t, &["vintage", "date"]),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            }
            toml::Value::Table(t) => {
                // `[headline.digitization]`-style tables of rows.
                for (id, sub) in t {
                    if let Some(st) = sub.as_table() {
                        if let Some(mut r) = row_of(key, st) {
                            if r.id.is_empty() {
                                r.id = id.clone();
                            }
                            rows.push(r);
                        }
                    }
                }
            }
            toml::Value::String(s) if key == "source" => source = s.clone(),
            _ => {}
        }
    }
    if rows.is_empty() {
        return Err(format!("{}: no target rows found", path.display()));
    }
    if source.is_empty() {
        source = path.display().to_string();
    }
    Ok(PlanTargets { rows, source })
}

/// Cumulative recognition counts of `kind` from the API's targets JSON.
pub fn count_of(targets_json: &Json, kind: &str) -> u64 {
    targets_json["counts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["kind"].as_str() == Some(kind))
        .filter_map(|c| c["cumulative"].as_u64())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_repository_targets() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        if let Ok(t) = load(&dir) {
            assert_eq!(t.headline("digitization").unwrap().target(2025), Some(0.54));
            assert_eq!(
                t.headline("rd_design_tool").unwrap().target(2025),
                Some(0.85)
            );
            assert_eq!(t.find("smart_workshop").unwrap().target(2024), Some(37.0));
            assert_eq!(t.table().len(), 16);
        }
    }

    #[test]
    fn reads_rows_of_several_shapes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("plan")).unwrap();
        std::fs::write(
            dir.path().join("plan/targets.toml"),
            r#"
source = "驻政〔2023〕23号"
[[target]]
id = "smart_workshop"
zh = "智能车间"
en = "smart workshops"
recognition = "smart_workshop"
2023 = 34
2024 = 37
2025 = 40
[[target]]
id = "scene_coverage"
zh = "智能场景覆盖率"
unit = "%"
targets = { y2023 = 30, y2024 = 60, y2025 = 100 }
[headline.digitization]
zh = "生产设备数字化率"
unit = "share"
2025 = 0.54
"#,
        )
        .unwrap();
        let t = load(dir.path()).unwrap();
        assert_eq!(t.rows.len(), 3);
        assert_eq!(t.find("smart_workshop").unwrap().target(2024), Some(37.0));
        assert_eq!(t.find("scene").unwrap().target(2024), Some(0.6));
        assert_eq!(t.headline("digitization").unwrap().target(2025), Some(0.54));
        assert_eq!(t.table().len(), 2);
        assert!(load(&dir.path().join("nowhere")).is_err());
    }
}
