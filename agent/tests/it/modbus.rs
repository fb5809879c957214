//! Agent integration tests: modbus. The agent's Modbus link, configured
//! through agent.toml and the shipped profiles, against servers others wrote:
//! the plant simulator's Modbus server (every meter and PLC profile, both
//! word orders, injected exceptions, garbage, dropped connections, a restart,
//! RTU on a socat pty pair), and one known register map served by pymodbus
//! and by Node's modbus-serial, each over TCP and over RTU on a socat pty
//! pair (every data type in every byte order, an illegal address inside a
//! merged read, an absent unit, a kill and restart).

use prometheus::Registry;
use shuzhuan_agent::clock::Clock;
use shuzhuan_agent::config::{AgentConfig, DeviceTags};
use shuzhuan_agent::sample::{Quality, SampleBatch, Value};
use shuzhuan_agent::shutdown::Coordinator;
use shuzhuan_agent::sources::modbus::run_link;
use shuzhuan_common::inventory::DeviceKind;
use shuzhuan_common::profile::{Profile, TagRole};
use shuzhuan_simulator::clock::SimClock;
use shuzhuan_simulator::device::{SharedTimeline, Snapshot, Source};
use shuzhuan_simulator::machine::{Behaviour, Calendar, Timeline};
use shuzhuan_simulator::modbus::server::{serve_tcp, ExceptionRange, Link, ServedDevice};
use shuzhuan_tests::{free_port, node_modules, python, repo_root, wait_for_port, Proc};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

const T0_S: i64 = 1_764_547_200;
const NOW_MS: i64 = (T0_S + 10 * 3600) * 1000;

fn profiles() -> BTreeMap<String, Profile> {
    shuzhuan_simulator::profiles::load_dir(&repo_root().join("config/profiles")).unwrap()
}

fn machine(name: &str, kind: DeviceKind) -> SharedTimeline {
    Arc::new(Mutex::new(Timeline::new(
        Calendar::default(),
        Behaviour::for_kind(kind),
        11,
        name,
        T0_S,
    )))
}

fn meter(feeds: Vec<SharedTimeline>) -> Source {
    Source::Meter {
        feeds,
        base_load_kw: 3.0,
        initial_kwh: 1000.0,
        reset_kwh: 0.0,
        rollover_kwh: None,
        origin_s: T0_S,
    }
}

/// Every Modbus profile on its own unit (the PLC twice: high and low word
/// first), the simulated clock frozen so the truth does not move.
fn plant() -> (Arc<Link>, BTreeMap<u8, Snapshot>) {
    let p = profiles();
    let press = machine("press-1", DeviceKind::Press);
    let moulder = machine("imm-1", DeviceKind::InjectionMoulding);
    let mut cdab = p["generic-plc"].clone();
    for t in &mut cdab.modbus {
        t.order = shuzhuan_common::profile::WordOrder::CDAB;
    }
    let units: Vec<(u8, &str, Profile, Source)> = vec![
        (
            1,
            "sdm",
            p["eastron-sdm630"].clone(),
            meter(vec![press.clone(), moulder.clone()]),
        ),
        (
            2,
            "adl",
            p["acrel-adl400"].clone(),
            meter(vec![press.clone()]),
        ),
        (
            3,
            "dtsu",
            p["chint-dtsu666"].clone(),
            meter(vec![moulder.clone()]),
        ),
        (
            4,
            "pm",
            p["schneider-pm5xxx"].clone(),
            meter(vec![press.clone()]),
        ),
        (
            5,
            "press",
            p["generic-plc"].clone(),
            Source::Machine {
                timeline: press,
                parts_offset: 0,
            },
        ),
        (
            6,
            "imm",
            cdab,
            Source::Machine {
                timeline: moulder,
                parts_offset: 0,
            },
        ),
    ];
    let mut truth = BTreeMap::new();
    let mut devices = BTreeMap::new();
    for (unit, id, profile, source) in units {
        truth.insert(unit, source.at(NOW_MS));
        devices.insert(
            unit,
            ServedDevice {
                id: id.into(),
                profile,
                source: Mutex::new(source),
            },
        );
    }
    let clock = SimClock {
        scale: 0.0,
        sim_epoch_ms: NOW_MS,
        real_epoch_ms: 0,
    };
    (Link::new("plant-1", devices, clock), truth)
}

/// An agent.toml reading the plant at `port`, through the shipped profiles.
fn agent_config(port: u16) -> AgentConfig {
    agent_config_with(
        &format!("kind = \"modbus_tcp\"\naddress = \"127.0.0.1:{port}\""),
        "",
    )
}

/// The same devices on a link of any kind (`link` holds its kind and
/// address keys), plus `more` devices.
fn agent_config_with(link: &str, more: &str) -> AgentConfig {
    let dev = |id: &str, unit: u8, profile: &str, extra: &str| {
        format!(
            "[[devices]]\nid = \"{id}\"\nname = \"{id}\"\nkind = \"other\"\nproduction = true\nlink = \"plant\"\nunit = {unit}\nprofile = \"{profile}\"\npoll_interval_ms = 100\n{extra}\n"
        )
    };
    let text = format!(
        "[agent]\nid = \"gw\"\nenterprise = \"91411700MA00000019\"\ndata_dir = \"/tmp/gw\"\nprofiles_dir = \"{}\"\n\n[[links]]\nid = \"plant\"\n{link}\ntimeout_ms = 300\nbackoff_initial_ms = 100\nbackoff_max_ms = 800\n\n{}{}{}{}{}{}{more}",
        repo_root().join("config/profiles").display(),
        dev("sdm", 1, "eastron-sdm630", ""),
        dev("adl", 2, "acrel-adl400", ""),
        dev("dtsu", 3, "chint-dtsu666", ""),
        dev("pm", 4, "schneider-pm5xxx", ""),
        dev("press", 5, "generic-plc", ""),
        dev(
            "imm",
            6,
            "generic-plc",
            "[[devices.tags]]\nname = \"parts\"\norder = \"CDAB\"\n[[devices.tags]]\nname = \"power\"\norder = \"CDAB\"\n"
        ),
    );
    AgentConfig::from_text(repo_root().join("agent.test.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}"))
}

struct Running {
    rx: mpsc::Receiver<SampleBatch>,
    coord: Coordinator,
    registry: Registry,
    cfg: AgentConfig,
}

fn start(cfg: AgentConfig) -> Running {
    let (tx, rx) = mpsc::channel(256);
    let coord = Coordinator::new();
    let registry = Registry::new();
    let (link, devices) = cfg.modbus_links().into_iter().next().unwrap();
    let (link, devices) = (link.clone(), devices.into_iter().cloned().collect());
    let (r, h) = (registry.clone(), coord.handle());
    tokio::spawn(async move { run_link(link, devices, Clock::real(), tx, &r, h).await });
    Running {
        rx,
        coord,
        registry,
        cfg,
    }
}

impl Running {
    /// The next batch of each device (waits up to 10 s).
    async fn round(&mut self) -> BTreeMap<String, SampleBatch> {
        let n = self.cfg.devices.len();
        let mut out = BTreeMap::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while out.len() < n {
            let b = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .expect("a batch per device within 10 s")
                .expect("link task alive");
            out.insert(b.device.to_string(), b);
        }
        out
    }

    /// Waits until `pred` holds for a round (up to `secs`).
    async fn until(
        &mut self,
        secs: u64,
        what: &str,
        pred: impl Fn(&BTreeMap<String, SampleBatch>) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let r = self.round().await;
            if pred(&r) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what} within {secs} s: {r:#?}"
            );
        }
    }
}

fn quality(b: &SampleBatch, tag: &str) -> Quality {
    b.samples
        .iter()
        .find(|s| &*s.tag == tag)
        .unwrap()
        .quality
        .clone()
}

fn to_tag_unit(v: f64, unit: Option<&str>) -> f64 {
    match unit {
        Some("W") | Some("Wh") => v * 1000.0,
        Some("MW") | Some("MWh") => v / 1000.0,
        _ => v,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_meters_and_plcs_read_back_through_the_profiles() {
    let (link, truth) = plant();
    let (addr, server) = serve_tcp(link.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let cfg = agent_config(addr.port());
    let units: BTreeMap<String, u8> = cfg
        .devices
        .iter()
        .map(|d| (d.id().to_owned(), d.unit.unwrap()))
        .collect();
    let tags: BTreeMap<String, Vec<shuzhuan_common::profile::ModbusTag>> = cfg
        .devices
        .iter()
        .map(|d| match &d.tags {
            DeviceTags::Modbus(t) => (d.id().to_owned(), t.to_vec()),
            _ => unreachable!(),
        })
        .collect();
    let mut run = start(cfg);
    let round = run.round().await;
    let mut checked = 0;
    for (id, batch) in &round {
        assert!(batch.reachable, "{id}: {batch:?}");
        let snap = truth[&units[id]];
        for s in &batch.samples {
            assert_eq!(s.quality, Quality::Good, "{id}/{}: {s:?}", s.tag);
            let tag = tags[id].iter().find(|t| *t.name == *s.tag).unwrap();
            let want = match s.role {
                TagRole::ActivePower => to_tag_unit(snap.power_kw, tag.unit.as_deref()),
                TagRole::EnergyCounter => to_tag_unit(snap.import_kwh, tag.unit.as_deref()),
                TagRole::EnergyExport => to_tag_unit(snap.export_kwh, tag.unit.as_deref()),
                TagRole::PartCounter => snap.parts,
                TagRole::RunSignal => f64::from(u8::from(snap.run)),
                TagRole::AutoMode => f64::from(u8::from(snap.auto)),
                TagRole::Alarm => f64::from(u8::from(snap.alarm)),
                _ => continue,
            };
            let got = s.value.as_ref().and_then(Value::as_f64).unwrap();
            assert!(
                (got - want).abs() <= want.abs() * 1e-5 + tag.scale.abs() + 0.01,
                "{id}/{}: agent read {got}, simulator holds {want}",
                s.tag
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} values compared");

    // Exception 02 on the PLC's power registers: only `power` goes bad.
    link.set_faults(|f| {
        f.exceptions.push(ExceptionRange {
            unit: 5,
            start: 4,
            end: 5,
            code: 2,
        })
    });
    run.until(5, "power bad, neighbours good", |r| {
        let b = &r["press"];
        quality(b, "power") == Quality::Bad("illegal_address")
            && quality(b, "parts") == Quality::Good
            && quality(b, "run") == Quality::Good
            && r["sdm"].reachable
    })
    .await;
    link.set_faults(|f| f.exceptions.clear());

    // Garbage answers: tags go bad, the link survives and recovers.
    link.set_faults(|f| f.garbage = true);
    run.until(5, "garbage seen", |r| !r["adl"].reachable).await;
    link.set_faults(|f| f.garbage = false);
    run.until(5, "recovered from garbage", |r| {
        r.values().all(|b| b.reachable)
    })
    .await;

    // Dropped connections are re-dialled.
    link.drop_connections();
    run.until(5, "recovered from a drop", |r| {
        r.values().all(|b| b.reachable)
    })
    .await;

    // Server gone, then back on the same port: resumed within the backoff cap.
    server.abort();
    let _ = server.await;
    link.drop_connections();
    run.until(5, "link down", |r| r.values().all(|b| !b.reachable))
        .await;
    let (_addr, server) = serve_tcp(link.clone(), addr).await.unwrap();
    let back = tokio::time::Instant::now();
    run.until(5, "resumed after restart", |r| {
        r.values().all(|b| b.reachable)
    })
    .await;
    assert!(
        back.elapsed() < Duration::from_millis(800 + 2000),
        "{:?}",
        back.elapsed()
    );

    let text = prometheus::TextEncoder::new()
        .encode_to_string(&run.registry.gather())
        .unwrap();
    assert!(
        text.contains("shuzhuan_agent_link_up{link=\"plant\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("shuzhuan_agent_read_errors_total{device=\"press\",link=\"plant\"}"),
        "{text}"
    );
    assert!(
        text.contains("shuzhuan_agent_modbus_requests_total"),
        "{text}"
    );
    run.coord.shutdown().await;
    server.abort();
}

/// Starts tests/peers/py/modbus_server.py on a free port.
fn pymodbus(port: u16) -> Proc {
    let p = Proc::spawn(
        Command::new(python())
            .arg(repo_root().join("tests/peers/py/modbus_server.py"))
            .args(["--port", &port.to_string()]),
    );
    assert!(
        wait_for_port(port, 20),
        "pymodbus server did not listen on {port}"
    );
    p
}

/// Starts tests/peers/py/modbus_server.py serving Modbus RTU on `tty`.
fn pymodbus_rtu(tty: &Path) -> Proc {
    ready(
        Command::new(python())
            .arg(repo_root().join("tests/peers/py/modbus_server.py"))
            .arg("--serial")
            .arg(tty),
        "pymodbus RTU server",
    )
}

/// Starts tests/peers/js/modbus_server.js (modbus-serial) with `args`
/// (`--port N` or `--serial PATH`), waiting for its "ready" line.
fn modbus_serial(args: &[&std::ffi::OsStr]) -> Proc {
    ready(
        Command::new("node")
            .arg(repo_root().join("tests/peers/js/modbus_server.js"))
            .args(args)
            .env("NODE_PATH", node_modules()),
        "modbus-serial server",
    )
}

/// Spawns a peer that prints "ready" on stdout once it serves, and waits
/// for that line (up to 20 s); the rest of its stdout is drained.
fn ready(cmd: &mut Command, what: &str) -> Proc {
    use std::io::BufRead;
    let mut p = Proc::spawn(cmd.stdout(std::process::Stdio::piped()));
    let out = p.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            match line {
                Ok(l) if l.trim() == "ready" => {
                    let _ = tx.send(());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{what} did not print \"ready\" within 20 s"));
    p
}

/// A socat pty pair: (socat, end A, end B, the directory holding the links).
fn pty_pair() -> (Proc, PathBuf, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("A"), dir.path().join("B"));
    let socat = Proc::spawn(
        Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display())),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !(a.exists() && b.exists()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(a.exists() && b.exists(), "socat made no pty pair");
    (socat, a, b, dir)
}

/// The map both Modbus test servers hold (tests/peers/py/modbus_server.py
/// and tests/peers/js/modbus_server.js) as agent tags of device `dev` on
/// unit 1: every data type in every byte and word order, a bit in a
/// register, a string, a coil, a register inside the servers' hole at 90
/// (merged into one read with its neighbours) and one after it. Plus
/// device `ghost` on unit 77, which neither server answers for. The link
/// (`link` holds its kind and address keys) has a 1 s backoff cap. Returns
/// the config and the values the servers hold.
fn known_map(link: &str) -> (AgentConfig, Vec<(String, Value)>) {
    let mut tags = String::new();
    let mut expect: Vec<(String, Value)> = Vec::new();
    let orders = ["ABCD", "CDAB", "BADC", "DCBA"];
    let types: [(&str, u16, f64); 7] = [
        ("i16", 1, -1234.0),
        ("u16", 1, 54321.0),
        ("u32", 2, 3_000_000_123.0),
        ("i32", 2, -2_000_000_123.0),
        ("f32", 2, f64::from(123.456f32)),
        ("u64", 4, 9_000_000_000_000_000_123.0),
        ("f64", 4, -98765.4321),
    ];
    let mut addr = 0u16;
    for order in orders {
        for (ty, width, v) in types {
            let name = format!("{ty}_{order}");
            tags += &format!("[[devices.tags]]\nname = \"{name}\"\nrole = \"custom\"\ntable = \"holding\"\naddress = {addr}\ntype = \"{ty}\"\norder = \"{order}\"\n");
            expect.push((name, Value::Number(v)));
            addr += width;
        }
    }
    // After the typed values (addr 80): a bit, a string, a coil, then a hole at 90.
    tags += "[[devices.tags]]\nname = \"bit5\"\nrole = \"alarm\"\ntable = \"holding\"\naddress = 80\ntype = \"bit\"\nbit = 5\n";
    tags += "[[devices.tags]]\nname = \"text\"\nrole = \"custom\"\ntable = \"holding\"\naddress = 81\ntype = \"string\"\nlen = 4\n";
    tags += "[[devices.tags]]\nname = \"coil3\"\nrole = \"run_signal\"\ntable = \"coil\"\naddress = 3\ntype = \"bool\"\n";
    tags += "[[devices.tags]]\nname = \"in_hole\"\nrole = \"custom\"\ntable = \"holding\"\naddress = 90\ntype = \"u16\"\n";
    tags += "[[devices.tags]]\nname = \"after_hole\"\nrole = \"custom\"\ntable = \"holding\"\naddress = 92\ntype = \"u16\"\n";
    expect.push(("bit5".into(), Value::Bool(true)));
    expect.push(("text".into(), Value::Text("SHUZHUAN".into())));
    expect.push(("coil3".into(), Value::Bool(true)));
    expect.push(("after_hole".into(), Value::Number(4242.0)));
    let text = format!(
        "[agent]\nid = \"gw\"\nenterprise = \"91411700MA00000019\"\ndata_dir = \"/tmp/gw\"\n\n[[links]]\nid = \"peer\"\n{link}\ntimeout_ms = 300\nbackoff_initial_ms = 100\nbackoff_max_ms = {KNOWN_MAP_BACKOFF_MAX_MS}\n\n[[devices]]\nid = \"dev\"\nname = \"d\"\nkind = \"other\"\nproduction = true\nlink = \"peer\"\nunit = 1\npoll_interval_ms = 100\n{tags}\n[[devices]]\nid = \"ghost\"\nname = \"g\"\nkind = \"other\"\nproduction = true\nlink = \"peer\"\nunit = 77\npoll_interval_ms = 100\n[[devices.tags]]\nname = \"x\"\nrole = \"custom\"\ntable = \"holding\"\naddress = 0\ntype = \"u16\"\n"
    );
    let cfg = AgentConfig::from_text(repo_root().join("peer.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}"));
    (cfg, expect)
}

/// The backoff cap of `known_map`'s link.
const KNOWN_MAP_BACKOFF_MAX_MS: u64 = 1000;

/// Every value of `known_map` reads back exactly; only `in_hole` is bad.
fn check_known_map(r: &BTreeMap<String, SampleBatch>, expect: &[(String, Value)], peer: &str) {
    let b = &r["dev"];
    for (name, want) in expect {
        let s = b.samples.iter().find(|s| &*s.tag == name).unwrap();
        assert_eq!(s.quality, Quality::Good, "{peer} {name}: {s:?}");
        match (want, s.value.as_ref().unwrap()) {
            (Value::Number(w), Value::Number(g)) => {
                assert!(
                    (w - g).abs() <= w.abs() * 1e-12,
                    "{peer} {name}: read {g}, server holds {w}"
                )
            }
            (w, g) => assert_eq!(w, g, "{peer} {name}"),
        }
    }
    assert_eq!(
        quality(b, "in_hole"),
        Quality::Bad("illegal_address"),
        "{peer}"
    );
}

/// The known-map scenario against one server (`serve` starts it and
/// returns once it serves): every value reads back exactly, the hole fails
/// only its tag, the absent unit does not stall `dev` (a batch per device
/// every round), and the server killed and started again is resumed within
/// the backoff cap (plus two poll rounds of slack for a loaded machine).
async fn known_map_scenario(peer: &str, link: &str, serve: impl Fn() -> Proc) {
    let mut server = serve();
    let (cfg, expect) = known_map(link);
    let mut run = start(cfg);
    // The first round may still be dialling; after that every round is whole.
    run.until(10, &format!("{peer}: dev read"), |r| r["dev"].reachable)
        .await;
    for _ in 0..2 {
        let r = run.round().await;
        check_known_map(&r, &expect, peer);
        assert!(!r["ghost"].reachable, "{peer}: {:?}", r["ghost"]);
        assert_ne!(quality(&r["ghost"], "x"), Quality::Good, "{peer}");
    }

    // Kill and restart the server: resumed within the backoff cap.
    server.0.kill().unwrap();
    let _ = server.0.wait();
    run.until(5, &format!("{peer}: link down"), |r| !r["dev"].reachable)
        .await;
    server = serve();
    let back = tokio::time::Instant::now();
    run.until(10, &format!("{peer}: resumed"), |r| r["dev"].reachable)
        .await;
    assert!(
        back.elapsed() < Duration::from_millis(KNOWN_MAP_BACKOFF_MAX_MS + 2000),
        "{peer}: resumed after {:?}",
        back.elapsed()
    );
    let r = run.round().await;
    check_known_map(&r, &expect, peer);
    assert!(!r["ghost"].reachable, "{peer}");
    run.coord.shutdown().await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymodbus_every_type_and_order_an_illegal_address_and_a_restart() {
    let port = free_port();
    known_map_scenario(
        "pymodbus TCP",
        &format!("kind = \"modbus_tcp\"\naddress = \"127.0.0.1:{port}\""),
        || pymodbus(port),
    )
    .await;
}

/// pymodbus serving RTU on one end of a socat pty pair, the agent on the
/// other: the same assertions as over TCP; the absent unit is not answered
/// at all here, so it times out on the shared line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymodbus_over_rtu_on_a_pty_every_type_an_illegal_address_and_a_restart() {
    let (_socat, a, b, _dir) = pty_pair();
    known_map_scenario(
        "pymodbus RTU",
        &format!(
            "kind = \"modbus_rtu\"\nport = \"{}\"\nbaud = 9600",
            b.display()
        ),
        || pymodbus_rtu(&a),
    )
    .await;
}

/// The Node modbus-serial server over TCP: the same assertions; it ignores
/// requests for units other than its own, so the ghost times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_serial_tcp_every_type_an_illegal_address_and_a_restart() {
    let port = free_port();
    known_map_scenario(
        "modbus-serial TCP",
        &format!("kind = \"modbus_tcp\"\naddress = \"127.0.0.1:{port}\""),
        || {
            let p = modbus_serial(&["--port".as_ref(), port.to_string().as_ref()]);
            assert!(wait_for_port(port, 20), "modbus-serial did not listen");
            p
        },
    )
    .await;
}

/// The Node modbus-serial server over RTU on a socat pty pair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_serial_over_rtu_on_a_pty_every_type_an_illegal_address_and_a_restart() {
    let (_socat, a, b, _dir) = pty_pair();
    known_map_scenario(
        "modbus-serial RTU",
        &format!(
            "kind = \"modbus_rtu\"\nport = \"{}\"\nbaud = 9600",
            b.display()
        ),
        || modbus_serial(&["--serial".as_ref(), a.as_os_str()]),
    )
    .await;
}

/// Modbus RTU on a socat pty pair: the simulator serves one end, the agent
/// reads the other; a unit nobody answers for times out without stalling
/// the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_over_rtu_on_a_pty_with_an_absent_unit() {
    use shuzhuan_simulator::modbus::server::serve_rtu_serial;
    let (_socat, a, b, _dir) = pty_pair();
    let (link, truth) = plant();
    let _server = serve_rtu_serial(link, &a).unwrap();
    let cfg = agent_config_with(
        &format!("kind = \"modbus_rtu\"\nport = \"{}\"\nbaud = 9600", b.display()),
        "[[devices]]\nid = \"ghost\"\nname = \"g\"\nkind = \"other\"\nproduction = true\nlink = \"plant\"\nunit = 9\nprofile = \"generic-plc\"\npoll_interval_ms = 100\n",
    );
    let mut run = start(cfg);
    run.until(10, "every present unit read over RTU", |r| {
        r.iter().all(|(id, b)| b.reachable == (id != "ghost"))
    })
    .await;
    let r = run.round().await;
    assert_eq!(quality(&r["ghost"], "power"), Quality::Bad("timeout"));
    let power = r["sdm"]
        .samples
        .iter()
        .find(|s| s.role == TagRole::ActivePower)
        .and_then(|s| s.value.as_ref()?.as_f64())
        .unwrap();
    let want = truth[&1].power_kw * 1000.0;
    assert!(
        (power - want).abs() <= want.abs() * 1e-5 + 0.1,
        "{power} vs {want}"
    );
    run.coord.shutdown().await;
}
