//! End-to-end tests: sim. The `shuzhuan-sim` binary generates a city, serves
//! it, writes ground truth that adds up, and does the same for the same seed;
//! a plant file with a bad `[[devices.tags]]` entry is refused at its line.

use shuzhuan_tests::{repo_root, Proc};
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) fn sim_binary() -> PathBuf {
    let p = repo_root().join("target/debug/shuzhuan-sim");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p shuzhuan-simulator`",
        p.display()
    );
    p
}

fn run_city(out: &Path, secs: &str) {
    let status = Command::new(sim_binary())
        .current_dir(repo_root())
        .args([
            "--plants",
            "3",
            "--seed",
            "5",
            "--time-scale",
            "900",
            "--run-for",
            secs,
            "--out",
        ])
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn generated_city_truth_adds_up_and_repeats_for_the_same_seed() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run_city(a.path(), "3.5");
    run_city(b.path(), "3.5");
    let mut plants: Vec<_> = std::fs::read_dir(a.path().join("plants"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    plants.sort();
    assert_eq!(plants.len(), 3);
    for name in &plants {
        let pa = std::fs::read_to_string(a.path().join("plants").join(name)).unwrap();
        let pb = std::fs::read_to_string(b.path().join("plants").join(name)).unwrap();
        assert_eq!(pa, pb, "same seed, same plant");
        let id = name.to_string_lossy().trim_end_matches(".toml").to_owned();
        assert!(a.path().join("agents").join(format!("{id}.toml")).exists());
        let truth =
            std::fs::read_to_string(a.path().join("truth").join(format!("{id}.jsonl"))).unwrap();
        let lines: Vec<serde_json::Value> = truth
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(!lines.is_empty(), "no truth for {id}");
        for l in &lines {
            let secs: u64 = l["state_seconds"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_u64().unwrap())
                .sum();
            let len =
                (l["window_end"].as_i64().unwrap() - l["window_start"].as_i64().unwrap()) as u64;
            let device = l["device"].as_str().unwrap();
            if !device.starts_with("meter") {
                assert_eq!(secs, len, "{id} {device}");
            }
            assert!(l["energy_kwh"].as_f64().unwrap() >= 0.0);
        }
        // The same windows in the second run carry the same truth.
        let other =
            std::fs::read_to_string(b.path().join("truth").join(format!("{id}.jsonl"))).unwrap();
        let common: Vec<&str> = truth
            .lines()
            .filter(|l| other.lines().any(|o| o == *l))
            .collect();
        assert!(
            !common.is_empty(),
            "no window in common between two runs of {id}"
        );
    }
}

#[test]
fn a_running_plant_answers_mbpoll_and_the_control_port() {
    use std::io::{BufRead, BufReader, Write};
    let out = tempfile::tempdir().unwrap();
    let _sim = Proc::spawn(
        Command::new(sim_binary())
            .current_dir(repo_root())
            .args([
                "--config",
                "config/plants/example.toml",
                "--run-for",
                "30",
                "--out",
            ])
            .arg(out.path()),
    );
    let ports = out.path().join("ports.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !ports.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let ports: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ports).unwrap()).unwrap();
    let plc = ports["example-1"]["links"]["plc-line"]
        .as_str()
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .1
        .to_owned();
    let read = || {
        let o = Command::new("mbpoll")
            .args([
                "-m",
                "tcp",
                "-p",
                &plc,
                "-1",
                "-0",
                "-o",
                "2",
                "-a",
                "10",
                "-t",
                "3:float",
                "-B",
                "-r",
                "72",
                "-c",
                "1",
                "127.0.0.1",
            ])
            .output()
            .expect("mbpoll is missing (apt-get install mbpoll)");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| l.starts_with("[72]"))
            .and_then(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
    };
    let before = read().expect("main meter import energy");
    assert!(
        before >= 152_340.0,
        "the example's meter starts at 152340 kWh: {before}"
    );
    let mut control = std::net::TcpStream::connect(ports["control"].as_str().unwrap()).unwrap();
    control.write_all(b"reset example-1 meter-main\n").unwrap();
    let mut reply = String::new();
    BufReader::new(control.try_clone().unwrap())
        .read_line(&mut reply)
        .unwrap();
    assert_eq!(reply.trim(), "ok");
    let after = read().expect("meter after reset");
    assert!(
        after < 100.0,
        "a replaced meter restarts near zero: {after}"
    );
}

#[test]
fn a_plant_file_with_a_bad_tag_override_is_refused_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(repo_root().join("config/plants/rewired.toml")).unwrap();
    let bad = good.replace("address = 20\n", "address = 20\nwordorder = \"CDAB\"\n");
    assert_ne!(good, bad);
    let line = bad
        .lines()
        .position(|l| l.starts_with("wordorder"))
        .unwrap()
        + 1;
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, bad).unwrap();
    let out = Command::new(sim_binary())
        .current_dir(repo_root())
        .arg("--config")
        .arg(&path)
        .args(["--run-for", "1", "--out"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("bad.toml:{line}:1: unknown field `wordorder`")),
        "{err}"
    );
}
