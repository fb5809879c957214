//! Simulator integration tests: an independent client (mbpoll) reads the
//! simulated meters and PLCs over Modbus TCP, in both word orders, and sees
//! the values the simulator's own model holds; faults reach the wire.

use shuzhuan_common::inventory::DeviceKind;
use shuzhuan_common::profile::{Profile, WordOrder};
use shuzhuan_simulator::clock::SimClock;
use shuzhuan_simulator::device::{SharedTimeline, Snapshot, Source};
use shuzhuan_simulator::machine::{Behaviour, Calendar, Timeline};
use shuzhuan_simulator::modbus::server::{serve_tcp, ExceptionRange, Link, ServedDevice};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// Monday 2025-12-01 18:00 in China: a working shift.
const T0_S: i64 = 1_764_547_200;
const NOW_MS: i64 = (T0_S + 10 * 3600) * 1000;

fn profiles() -> BTreeMap<String, Profile> {
    shuzhuan_simulator::profiles::load_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/profiles"),
    )
    .unwrap()
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

/// A link with every Modbus profile on its own unit, the clock frozen at NOW_MS.
fn link() -> (Arc<Link>, BTreeMap<u8, Snapshot>) {
    let p = profiles();
    let press = machine("press-1", DeviceKind::Press);
    let moulder = machine("imm-1", DeviceKind::InjectionMoulding);
    let mut cdab = p["generic-plc"].clone();
    for t in &mut cdab.modbus {
        t.order = WordOrder::CDAB;
    }
    let units: Vec<(u8, &str, Profile, Source)> = vec![
        (
            1,
            "meter-sdm",
            p["eastron-sdm630"].clone(),
            meter(vec![press.clone(), moulder.clone()]),
        ),
        (
            2,
            "meter-adl",
            p["acrel-adl400"].clone(),
            meter(vec![press.clone()]),
        ),
        (
            3,
            "meter-dtsu",
            p["chint-dtsu666"].clone(),
            meter(vec![moulder.clone()]),
        ),
        (
            4,
            "meter-pm",
            p["schneider-pm5xxx"].clone(),
            meter(vec![press.clone()]),
        ),
        (
            5,
            "press-1",
            p["generic-plc"].clone(),
            Source::Machine {
                timeline: press,
                parts_offset: 0,
            },
        ),
        (
            6,
            "imm-1",
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

/// Runs mbpoll once; returns the values it printed (`[ref]: value` lines).
fn mbpoll(port: u16, args: &[&str]) -> Result<Vec<f64>, String> {
    let out = Command::new("mbpoll")
        .args(["-m", "tcp", "-p", &port.to_string(), "-1", "-0", "-o", "2"])
        .args(args)
        .arg("127.0.0.1")
        .output()
        .map_err(|e| format!("mbpoll is missing (apt-get install mbpoll): {e}"))?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('['))
        .filter_map(|l| l.split(':').nth(1)?.split_whitespace().next()?.parse().ok())
        .collect();
    if values.is_empty() {
        Err(text)
    } else {
        Ok(values)
    }
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= want.abs() * 1e-5 + 0.1,
        "{what}: mbpoll read {got}, simulator holds {want}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbpoll_reads_every_profile_in_both_word_orders() {
    let (link, truth) = link();
    let (addr, server) = serve_tcp(link, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = addr.port();
    let checks = tokio::task::spawn_blocking(move || {
        let read =
            |args: &[&str]| mbpoll(port, args).unwrap_or_else(|e| panic!("mbpoll {args:?}: {e}"));
        // SDM630: input registers, float32 high word first (-B).
        let v = read(&["-a", "1", "-t", "3:float", "-B", "-r", "52", "-c", "1"]);
        close(v[0], truth[&1].power_kw * 1000.0, "sdm630 power W");
        let v = read(&["-a", "1", "-t", "3:float", "-B", "-r", "72", "-c", "1"]);
        close(v[0], truth[&1].import_kwh, "sdm630 import kWh");
        // ADL400: holding, power kW float, energy u32 × 0.1 kWh.
        let v = read(&["-a", "2", "-t", "4:float", "-B", "-r", "2074", "-c", "1"]);
        close(v[0], truth[&2].power_kw, "adl400 power kW");
        let v = read(&["-a", "2", "-t", "4:int", "-B", "-r", "2124", "-c", "1"]);
        close(v[0] * 0.1, truth[&2].import_kwh, "adl400 import kWh");
        // DTSU666: power in 0.1 W, energy float kWh.
        let v = read(&["-a", "3", "-t", "4:float", "-B", "-r", "8210", "-c", "1"]);
        close(v[0] * 0.1, truth[&3].power_kw * 1000.0, "dtsu666 power");
        let v = read(&["-a", "3", "-t", "4:float", "-B", "-r", "16414", "-c", "1"]);
        close(v[0], truth[&3].import_kwh, "dtsu666 import kWh");
        // PM5xxx: register 3060 is address 3059.
        let v = read(&["-a", "4", "-t", "4:float", "-B", "-r", "3059", "-c", "1"]);
        close(v[0], truth[&4].power_kw, "pm5xxx power kW");
        let v = read(&["-a", "4", "-t", "4:float", "-B", "-r", "2699", "-c", "1"]);
        close(v[0], truth[&4].import_kwh, "pm5xxx delivered kWh");
        // Generic PLC, high word first, then the same map low word first (no -B).
        for (unit, big) in [(5u8, true), (6u8, false)] {
            let u = unit.to_string();
            let mut args = vec!["-a", u.as_str(), "-t", "4:float", "-r", "4", "-c", "1"];
            if big {
                args.push("-B");
            }
            close(read(&args)[0], truth[&unit].power_kw, "plc power kW");
            args[3] = "4:int";
            args[5] = "2";
            close(read(&args)[0], truth[&unit].parts, "plc parts");
            let status = read(&["-a", &u, "-t", "4", "-r", "0", "-c", "1"])[0] as u16;
            let t = truth[&unit];
            assert_eq!(status & 1 == 1, t.run, "run bit");
            assert_eq!(status & 2 == 2, t.auto, "auto bit");
            assert_eq!(status & 4 == 4, t.alarm, "alarm bit");
        }
    })
    .await;
    server.abort();
    checks.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_reach_the_client() {
    let (link, _) = link();
    let (addr, server) = serve_tcp(link.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = addr.port();
    link.set_faults(|f| {
        f.exceptions.push(ExceptionRange {
            unit: 5,
            start: 0,
            end: 10,
            code: 2,
        })
    });
    let l2 = link.clone();
    let result = tokio::task::spawn_blocking(move || {
        let err = mbpoll(port, &["-a", "5", "-t", "4", "-r", "0", "-c", "1"]).unwrap_err();
        assert!(err.to_lowercase().contains("illegal data address"), "{err}");
        l2.set_faults(|f| {
            f.exceptions.clear();
            f.garbage = true;
        });
        assert!(
            mbpoll(port, &["-a", "5", "-t", "4", "-r", "0", "-c", "1"]).is_err(),
            "garbage was accepted"
        );
        l2.set_faults(|f| f.garbage = false);
        // Resetting the press's part counter reads zero afterwards.
        assert!(l2.reset_counter("press-1"));
        let v = mbpoll(
            port,
            &["-a", "5", "-t", "4:int", "-B", "-r", "2", "-c", "1"],
        )
        .unwrap();
        assert_eq!(v[0], 0.0);
    })
    .await;
    server.abort();
    result.unwrap();
}

/// Stalled responses arrive late, dropped connections close, refused ones never answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_drop_and_refuse() {
    use shuzhuan_simulator::modbus::frame::{decode_tcp, encode_tcp};
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (link, _) = link();
    let (addr, server) = serve_tcp(link.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let request = encode_tcp(9, 5, &[3, 0, 0, 0, 6]);
    async fn ask(s: &mut tokio::net::TcpStream, req: &[u8]) -> std::io::Result<Vec<u8>> {
        s.write_all(req).await?;
        let mut buf = vec![0u8; 64];
        let n = s.read(&mut buf).await?;
        buf.truncate(n);
        Ok(buf)
    }
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (frame, _) = decode_tcp(&ask(&mut s, &request).await.unwrap())
        .unwrap()
        .unwrap();
    assert_eq!((frame.transaction, frame.pdu[0], frame.pdu[1]), (9, 3, 12));

    link.set_faults(|f| f.stall = Some(Duration::from_millis(300)));
    let t = Instant::now();
    let reply = ask(&mut s, &request).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(300) && !reply.is_empty(),
        "{:?}",
        t.elapsed()
    );
    link.set_faults(|f| f.stall = None);

    link.drop_connections();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let closed = ask(&mut s, &request)
        .await
        .map(|r| r.is_empty())
        .unwrap_or(true);
    assert!(closed, "connection survived a drop");

    link.set_faults(|f| f.refuse = true);
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let closed = ask(&mut s, &request)
        .await
        .map(|r| r.is_empty())
        .unwrap_or(true);
    assert!(closed, "refused connection answered");
    server.abort();
}

/// Modbus RTU on a pty pair made by socat: mbpoll in RTU mode reads the meter.
#[test]
fn mbpoll_reads_over_rtu_on_a_pty() {
    use shuzhuan_simulator::modbus::server::serve_rtu_serial;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("A"), dir.path().join("B"));
    let mut socat = Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={}", a.display()))
        .arg(format!("pty,raw,echo=0,link={}", b.display()))
        .spawn()
        .expect("socat is missing (apt-get install socat)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !(a.exists() && b.exists()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (link, truth) = link();
    let _server = serve_rtu_serial(link, &a).unwrap();
    let out = Command::new("mbpoll")
        .args([
            "-m", "rtu", "-b", "9600", "-P", "none", "-1", "-0", "-o", "2", "-a", "1", "-t",
            "3:float", "-B", "-r", "52", "-c", "1",
        ])
        .arg(&b)
        .output()
        .unwrap();
    let _ = socat.kill();
    let _ = socat.wait();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let v: f64 = text
        .lines()
        .find(|l| l.starts_with("[52]"))
        .and_then(|l| l.split(':').nth(1)?.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no value from mbpoll: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    close(v, truth[&1].power_kw * 1000.0, "sdm630 power over rtu");
}

/// A plant file's `[[devices.tags]]` move and re-order registers on the
/// wire (read back by mbpoll), and the generated agent config carries them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plant_tag_overrides_reach_the_wire_and_the_agent_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let profiles = profiles();
    let plant = shuzhuan_simulator::plant::load_checked(
        &root.join("config/plants/rewired.toml"),
        &profiles,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Frozen at a working moment, so the truth read here is what mbpoll sees.
    let clock = SimClock {
        scale: 0.0,
        sim_epoch_ms: NOW_MS,
        real_epoch_ms: 0,
    };
    let running = shuzhuan_simulator::run::start(plant, &profiles, clock, None)
        .await
        .unwrap();
    let press = running.model.source("press-1").unwrap().at(NOW_MS);
    let meter = running.model.source("meter-1").unwrap().at(NOW_MS);
    assert!(
        press.parts > 0.0 && meter.power_kw > 1.5,
        "{press:?} {meter:?}"
    );
    let port: u16 = running.ports["plc"]
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap();
    let agent = shuzhuan_simulator::agentcfg::agent_config(
        &running.model.plant,
        &running.ports,
        &clock,
        "/tmp/a",
        "127.0.0.1:0",
    );
    tokio::task::spawn_blocking(move || {
        let read =
            |args: &[&str]| mbpoll(port, args).unwrap_or_else(|e| panic!("mbpoll {args:?}: {e}"));
        // Part counter moved to 20, low word first (mbpoll without -B).
        let v = read(&["-a", "1", "-t", "4:int", "-r", "20", "-c", "1"]);
        close(v[0], press.parts, "parts at 20 CDAB");
        // Its old place is now a gap in the map: zeros.
        let v = read(&["-a", "1", "-t", "4:int", "-B", "-r", "2", "-c", "1"]);
        assert_eq!(v[0], 0.0, "nothing left at the profile's address");
        // The added energy tag, and power untouched (high word first).
        let v = read(&["-a", "1", "-t", "4:float", "-B", "-r", "30", "-c", "1"]);
        close(v[0], press.import_kwh, "added energy tag");
        let v = read(&["-a", "1", "-t", "4:float", "-B", "-r", "4", "-c", "1"]);
        close(v[0], press.power_kw, "power as in the profile");
        // The meter's floats, words swapped.
        let v = read(&["-a", "10", "-t", "3:float", "-r", "52", "-c", "1"]);
        close(v[0], meter.power_kw * 1000.0, "sdm630 power W, CDAB");
        let v = read(&["-a", "10", "-t", "3:float", "-r", "72", "-c", "1"]);
        close(v[0], meter.import_kwh, "sdm630 import kWh, CDAB");
    })
    .await
    .unwrap();
    let v: toml::Value = toml::from_str(&agent).unwrap();
    let press_cfg = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"].as_str() == Some("press-1"))
        .unwrap();
    let tags = press_cfg["tags"].as_array().unwrap();
    assert_eq!(tags[0]["name"].as_str(), Some("parts"));
    assert_eq!(tags[0]["address"].as_integer(), Some(20));
    assert_eq!(tags[0]["order"].as_str(), Some("CDAB"));
    assert!(tags[0].get("type").is_none(), "only the keys given");
    assert_eq!(tags[1]["type"].as_str(), Some("f32"));
}
