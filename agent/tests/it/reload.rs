//! Config reload of the real agent process: the example plant runs in the
//! simulator (in this process), the `shuzhuan-agent` binary polls it, and
//! the test edits its agent.toml and sends real SIGHUPs. A device added by a
//! reload starts being polled (a removed one leaves after the open window);
//! a config that does not load, or that changes a key needing a restart, is
//! refused with the reason logged and the old config keeps polling. After
//! SIGTERM the spool holds one contiguous, hash-chained run of windows
//! across the reloads. Saving the file without a signal reloads it as well.

use shuzhuan_common::report::{follow, ChainHead, Hash32, SignedReport};
use shuzhuan_common::summary::QualityFlag;
use shuzhuan_tests::{free_port, repo_root, wait_for_port, Proc};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Simulated seconds per wall second: a 900 s window lasts 3 wall seconds.
const SCALE: f64 = 300.0;

async fn get(port: u16, path: &str) -> String {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// One sample line's value (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap_or(0.0))
}

fn samples(m: &str, device: &str) -> f64 {
    metric(
        m,
        &format!("shuzhuan_agent_samples_total{{device=\"{device}\"}}"),
    )
}

/// Polls `/metrics` until `ok` holds, up to `secs`; returns the last text.
async fn until(port: u16, secs: u64, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let m = get(port, "/metrics").await;
        if ok(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {secs} s\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill {sig} {pid}");
}

/// The config text without the `[[devices]]` entry `id`.
fn without(v: &toml::Value, id: &str) -> String {
    let mut v = v.clone();
    v["devices"]
        .as_array_mut()
        .unwrap()
        .retain(|d| d["id"].as_str() != Some(id));
    toml::to_string(&v).unwrap()
}

fn log_has(log: &Path, needles: &[&str]) -> bool {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().any(|l| needles.iter().all(|n| l.contains(n)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_a_device_and_a_bad_config_is_refused_while_the_old_one_runs() {
    let root = repo_root();
    let out = tempfile::tempdir().unwrap();
    let plant = shuzhuan_simulator::plant::load(&root.join("config/plants/example.toml")).unwrap();
    let profiles = shuzhuan_simulator::profiles::load_dir(&root.join("config/profiles")).unwrap();
    let clock =
        shuzhuan_simulator::clock::SimClock::starting_now(SCALE, plant.clock.sim_epoch_ms.unwrap());
    let running = shuzhuan_simulator::run::start(plant, &profiles, clock, Some(out.path().into()))
        .await
        .unwrap();
    let port = free_port();
    let data = out.path().join("agent-data");
    let text = shuzhuan_simulator::agentcfg::agent_config(
        &running.model.plant,
        &running.ports,
        &clock,
        &data.display().to_string(),
        &format!("127.0.0.1:{port}"),
    );
    let mut full: toml::Value = toml::from_str(&text).unwrap();
    full["agent"].as_table_mut().unwrap().insert(
        "profiles_dir".into(),
        root.join("config/profiles").display().to_string().into(),
    );
    full.as_table_mut().unwrap().remove("aggregator");
    let path = out.path().join("agent.toml");
    // Start without imm-1.
    std::fs::write(&path, without(&full, "imm-1")).unwrap();
    let log = out.path().join("agent.log");
    let mut agent = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_shuzhuan-agent"))
            .args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    assert!(
        wait_for_port(port, 30),
        "the agent did not listen on {port}"
    );
    let m = until(port, 30, "press-1 polled", |m| samples(m, "press-1") > 0.0).await;
    assert_eq!(samples(&m, "imm-1"), 0.0, "imm-1 is not configured yet");
    assert_eq!(metric(&m, "shuzhuan_agent_config_last_reload_success"), 1.0);

    // Add imm-1, remove grinder-1, SIGHUP.
    std::fs::write(&path, without(&full, "grinder-1")).unwrap();
    signal(agent.pid(), "-HUP");
    let m = until(port, 30, "imm-1 polled after SIGHUP", |m| {
        samples(m, "imm-1") > 0.0
    })
    .await;
    assert!(
        metric(
            &m,
            "shuzhuan_agent_config_reloads_total{result=\"applied\"}"
        ) >= 1.0
    );
    assert!(
        log_has(&log, &["config reloaded", "SIGHUP", "imm-1"]),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    // The OPC UA link did not change: it kept its poller.
    assert!(
        log_has(&log, &["config reloaded", "links_restarted=[\"plc-line\"]"]),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );

    // A config that does not load: refused, named, the old one keeps polling.
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        good.replacen("[[devices]]", "[[devices]]\nunknown_key = 1", 1),
    )
    .unwrap();
    signal(agent.pid(), "-HUP");
    let m = until(port, 30, "the bad config refused", |m| {
        metric(m, "shuzhuan_agent_config_reloads_total{result=\"refused\"}") >= 1.0
    })
    .await;
    assert_eq!(metric(&m, "shuzhuan_agent_config_last_reload_success"), 0.0);
    assert!(
        log_has(
            &log,
            &["config reload refused", "agent.toml:", "unknown_key"]
        ),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let before = samples(&m, "imm-1");
    until(port, 30, "imm-1 still polled under the old config", |m| {
        samples(m, "imm-1") > before
    })
    .await;

    // A key that needs a restart: refused too.
    let mut v: toml::Value = toml::from_str(&good).unwrap();
    v["agent"]
        .as_table_mut()
        .unwrap()
        .insert("window_secs".into(), 60.into());
    std::fs::write(&path, toml::to_string(&v).unwrap()).unwrap();
    signal(agent.pid(), "-HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log_has(&log, &["config reload refused", "[agent] window_secs"]) {
        assert!(
            Instant::now() < deadline,
            "the window change was not refused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Back to the good config: applied again (the file watcher or a SIGHUP).
    std::fs::write(&path, &good).unwrap();
    signal(agent.pid(), "-HUP");
    until(port, 30, "the good config back", |m| {
        metric(m, "shuzhuan_agent_config_last_reload_success") == 1.0
    })
    .await;
    // Saving the file without a signal reloads it too (the file watcher).
    let m = get(port, "/metrics").await;
    let applied = metric(
        &m,
        "shuzhuan_agent_config_reloads_total{result=\"applied\"}",
    );
    let renamed = good.replacen("Press 1", "Press 1 (rebuilt)", 1);
    assert_ne!(renamed, good, "press-1's name is in the config");
    std::fs::write(&path, renamed).unwrap();
    until(port, 30, "the saved file reloaded", |m| {
        metric(m, "shuzhuan_agent_config_reloads_total{result=\"applied\"}") > applied
    })
    .await;
    assert!(
        get(port, "/").await.contains("Press 1 (rebuilt)"),
        "the status page shows the new name"
    );
    assert!(log_has(
        &log,
        &["config reloaded", "file change", "press-1"]
    ));
    // Two more windows, then SIGTERM.
    let m = get(port, "/metrics").await;
    let sealed = metric(&m, "shuzhuan_agent_reports_sealed_total");
    until(port, 30, "two more windows", |m| {
        metric(m, "shuzhuan_agent_reports_sealed_total") >= sealed + 2.0
    })
    .await;
    signal(agent.pid(), "-TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = agent.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status}");
    drop(running);

    // The spool: one contiguous chain of windows across the reloads.
    let spool = shuzhuan_agent::spool::Spool::open(shuzhuan_agent::spool::SpoolOptions::new(
        data.join("spool"),
        1 << 30,
        shuzhuan_agent::spool::WhenFull::DropOldest,
    ))
    .unwrap();
    let key = shuzhuan_agent::keys::load(&data.join("agent.key")).unwrap();
    let vk = key.verifying_key();
    let mut head: Option<ChainHead> = None;
    let mut prev_end = None;
    let (mut seen_imm, mut gone_grinder) = (false, false);
    let recs = spool.pending(100_000).unwrap();
    assert!(recs.len() >= 3, "only {} reports", recs.len());
    for rec in &recs {
        let r: SignedReport = serde_json::from_slice(&rec.payload).unwrap();
        r.verify(&vk).expect("a valid signature");
        let (report, payload) = r.peek().unwrap();
        head = Some(follow(head, &report, Hash32::of(&payload)).expect("a valid chain"));
        if let Some(e) = prev_end {
            assert_eq!(report.window_start, e, "windows are contiguous");
        }
        prev_end = Some(report.window_end);
        let ids: Vec<&str> = report
            .summaries
            .iter()
            .map(|s| s.device_id.as_str())
            .collect();
        let imm = report.summaries.iter().find(|s| s.device_id == "imm-1");
        match (seen_imm, imm) {
            (false, Some(s)) => {
                // Its first window began before the reload: partial.
                assert!(s.flags.contains(&QualityFlag::PartialWindow), "{s:?}");
                assert!(
                    ids.contains(&"grinder-1"),
                    "grinder-1 leaves after this window"
                );
                seen_imm = true;
            }
            (true, None) => panic!("imm-1 missing after it was added: {ids:?}"),
            _ => {}
        }
        if seen_imm && !ids.contains(&"grinder-1") {
            gone_grinder = true;
        }
        if gone_grinder {
            assert!(!ids.contains(&"grinder-1"), "{ids:?}");
        }
    }
    assert!(seen_imm && gone_grinder);
    // The last report is the window open at SIGTERM (sent a few simulated
    // seconds after a window edge): sealed at the stop, partial, and it
    // expects only the polls due before the stop, so what the agent did
    // poll reads as full coverage, not as the window's unpolled remainder.
    let last: SignedReport = serde_json::from_slice(&recs.last().unwrap().payload).unwrap();
    let (last, _) = last.peek().unwrap();
    for id in ["press-1", "imm-1"] {
        let s = last.summaries.iter().find(|s| s.device_id == id).unwrap();
        assert!(s.flags.contains(&QualityFlag::PartialWindow), "{s:?}");
        assert!(s.samples_expected > 0, "{s:?}");
        assert!(
            s.samples_expected < (last.window_end - last.window_start) as u32,
            "expected counts the unpolled rest of the window: {s:?}"
        );
        let coverage = f64::from(s.samples_received) / f64::from(s.samples_expected);
        assert!(coverage >= 0.7, "{id}: coverage {coverage} at stop: {s:?}");
    }
}
