//! Every file under `config/` loads: the reference data through
//! `ReferenceSet::load` (read from disk here, as a service would), device
//! profiles and claim files through their `common` schemas, and every other
//! TOML file at least as TOML (its owner's crate checks its schema).

use shuzhuan_common::claim::{Claim, ClaimPolicy};
use shuzhuan_common::profile::Profile;
use shuzhuan_common::reference::{Located, ReferenceSet, FILES};
use shuzhuan_common::tomlpos;
use std::path::{Path, PathBuf};

fn config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config")
}

fn read(dir: &Path, rel: &str) -> Result<(String, String), Located> {
    let path = dir.join(rel);
    let shown = format!("config/{rel}");
    std::fs::read_to_string(&path)
        .map(|t| (shown.clone(), t))
        .map_err(|e| Located {
            file: shown,
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        })
}

fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            toml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

#[test]
fn reference_data_loads_from_disk() {
    let dir = config();
    let r = ReferenceSet::load(|rel| read(&dir, rel)).unwrap_or_else(|e| {
        panic!(
            "{}",
            e.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert_eq!(r.assessment.item.len(), 16);
    for f in FILES {
        assert!(dir.join(f).is_file(), "{f}");
    }
}

#[test]
fn a_missing_reference_file_is_named() {
    let dir = config();
    let errs = ReferenceSet::load(|rel| {
        if rel == "energy/coefficients.toml" {
            read(&dir, "energy/nowhere.toml")
        } else {
            read(&dir, rel)
        }
    })
    .unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0]
            .to_string()
            .starts_with("config/energy/nowhere.toml: cannot read"),
        "{}",
        errs[0]
    );
}

#[test]
fn every_toml_file_under_config_loads() {
    let dir = config();
    let mut files = Vec::new();
    toml_files(&dir, &mut files);
    files.sort();
    assert!(files.len() > FILES.len());
    let mut problems = Vec::new();
    for p in &files {
        let rel = p
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let shown = format!("config/{rel}");
        let text = std::fs::read_to_string(p).unwrap();
        let result: Result<(), String> = if FILES.contains(&rel.as_str()) {
            Ok(()) // checked with full validation above
        } else if rel.starts_with("profiles/") {
            tomlpos::parse::<Profile>(&shown, &text)
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else if rel == "claims/thresholds.toml" {
            ClaimPolicy::parse(&shown, &text)
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))
        } else if rel.starts_with("claims/") {
            Claim::parse(&shown, &text)
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))
        } else {
            tomlpos::parse::<toml::Table>(&shown, &text)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        if let Err(e) = result {
            problems.push(e);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
