//! Aggregator integration tests: the binary's subcommands (config errors
//! with positions, tokens, registry import refusing files with bad rows).

use crate::harness::*;
use shuzhuan_aggregator::config::Config;
use shuzhuan_aggregator::store::{SqliteStore, Store};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shuzhuan-aggregator"))
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("aggregator.toml");
    std::fs::write(&cfg, "[store]\npath = \"agg.sqlite\"\n").unwrap();
    let store = SqliteStore::open(&dir.path().join("agg.sqlite")).unwrap();
    store.upsert_counties(&counties()).unwrap();
    store.upsert_chains(&chains()).unwrap();
    store
        .import_registry(&[enterprise(1, "xiping")], &[])
        .unwrap();
    (dir, cfg)
}

#[test]
fn config_typo_is_reported_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("aggregator.toml");
    std::fs::write(
        &cfg,
        "[store]\npath = \"a.sqlite\"\n\n[ingest]\nmax_batchh = 3\n",
    )
    .unwrap();
    let out = bin()
        .arg("check-config")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("aggregator.toml:5:1: unknown field `max_batchh`"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn token_create_prints_a_usable_enrolment_token() {
    let (_dir, cfg) = setup();
    let out = bin()
        .args([
            "token",
            "create",
            "--enterprise",
            code(1).as_str(),
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.len(), 43, "{token}");
    // An enterprise that is not registered gets no token.
    let out = bin()
        .args([
            "token",
            "create",
            "--enterprise",
            code(77).as_str(),
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in the registry"));
}

#[test]
fn registry_import_with_bad_rows_imports_nothing_unless_told() {
    let (dir, cfg) = setup();
    let csv = dir.path().join("ents.csv");
    std::fs::write(
        &csv,
        format!(
            "{}\n{},好厂,suiping,equipment,true,,,,,\nBAD,坏码,xiping,equipment,true,,,,,\n",
            shuzhuan_aggregator::registry::ENTERPRISE_COLUMNS.join(","),
            code(5)
        ),
    )
    .unwrap();
    let run = |skip: bool| {
        let mut c = bin();
        c.args(["registry", "import", "--config"])
            .arg(&cfg)
            .arg("--enterprises")
            .arg(&csv);
        if skip {
            c.arg("--skip-bad-rows");
        }
        c.output().unwrap()
    };
    let out = run(false);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3: credit code `BAD` has 3 characters"),
        "{err}"
    );
    let count = || {
        SqliteStore::open(&dir.path().join("agg.sqlite"))
            .unwrap()
            .enterprises()
            .unwrap()
            .len()
    };
    assert_eq!(count(), 1);
    let out = run(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(), 2);
    // Export round trip as XLSX.
    let x = dir.path().join("e.xlsx");
    let out = bin()
        .args(["registry", "export", "--table", "enterprises", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&x)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(&std::fs::read(&x).unwrap()[..2], b"PK");
}

#[test]
fn example_files_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples");
    Config::load(&root.join("aggregator.toml")).unwrap();
    let mut cos = counties();
    let mut yicheng = cos[0].clone();
    yicheng.id = "yicheng".into();
    cos.push(yicheng);
    let mut chs = chains();
    for id in ["food", "electronics"] {
        let mut c = chs[0].clone();
        c.id = id.into();
        chs.push(c);
    }
    let data = std::fs::read(root.join("registry-enterprises.csv")).unwrap();
    let (ents, bad) = shuzhuan_aggregator::registry::parse_enterprises(&data, &cos, &chs).unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    let known = ents.iter().map(|e| e.credit_code.to_string()).collect();
    let data = std::fs::read(root.join("registry-recognitions.csv")).unwrap();
    let (recs, bad) = shuzhuan_aggregator::registry::parse_recognitions(&data, &known).unwrap();
    assert!(bad.is_empty() && recs.len() == 2, "{bad:?}");
}
