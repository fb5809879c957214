//! Running plants: timelines for the machines, meters over them, a Modbus
//! TCP server per Modbus link, a `CncSnapshot` watch channel per CNC machine
//! fed to the OPC UA server, `ports.json`, and the ground truth written per
//! window to `truth/<plant>.jsonl`.

use crate::clock::SimClock;
use crate::device::{SharedTimeline, Source};
use crate::machine::{Behaviour, MachineSignals, Timeline};
use crate::modbus::server::{serve_tcp, Link, ServedDevice};
use crate::opcua::CncSnapshot;
use crate::plant::{LinkKind, Plant};
use serde::Serialize;
use shuzhuan_common::profile::Profile;
use shuzhuan_common::state::{DeviceState, StateSeconds};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Why a plant could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "plant `{plant}` device `{device}`: profile `{profile}` is not in the profiles folder"
    )]
    UnknownProfile {
        plant: String,
        device: String,
        profile: String,
    },
    #[error("plant `{plant}` link `{link}`: cannot listen on `{addr}`: {source}")]
    Listen {
        plant: String,
        link: String,
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("plant `{plant}`: {source}")]
    Tags {
        plant: String,
        source: crate::plant::TagError,
    },
    #[error("plant `{plant}` link `{link}`: opc ua server: {message}")]
    OpcUa {
        plant: String,
        link: String,
        message: String,
    },
}

/// One line of `truth/<plant>.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruthLine {
    pub device: String,
    /// Unix seconds, inclusive.
    pub window_start: i64,
    /// Unix seconds, exclusive.
    pub window_end: i64,
    /// Machines: seconds per state, adding up to the window. Meters: empty.
    pub state_seconds: StateSeconds,
    /// Machines: energy used. Meters: energy registered (fed machines plus base load).
    pub energy_kwh: f64,
    pub parts: u64,
}

/// The machines of a plant and its meters, ready to serve.
#[derive(Debug)]
pub struct PlantModel {
    pub plant: Plant,
    pub machines: BTreeMap<String, SharedTimeline>,
}

impl PlantModel {
    /// Timelines for every machine (digitized or not), anchored at `start_s`.
    pub fn new(plant: Plant, start_s: i64) -> PlantModel {
        let machines = plant
            .devices
            .iter()
            .filter(|d| !d.is_meter())
            .map(|d| {
                let b = d
                    .behaviour
                    .clone()
                    .unwrap_or_else(|| Behaviour::for_kind(d.kind));
                let t = Timeline::new(plant.calendar.clone(), b, plant.plant.seed, &d.id, start_s);
                (d.id.clone(), Arc::new(Mutex::new(t)))
            })
            .collect();
        PlantModel { plant, machines }
    }

    /// The source of a device's values.
    pub fn source(&self, id: &str) -> Option<Source> {
        let d = self.plant.devices.iter().find(|d| d.id == id)?;
        if d.is_meter() {
            let feeds: Vec<_> = d
                .feeds
                .iter()
                .filter_map(|f| self.machines.get(f).cloned())
                .collect();
            let origin_s = self
                .machines
                .values()
                .next()
                .map_or(0, |m| m.lock().expect("timeline lock").origin());
            Some(Source::Meter {
                feeds,
                base_load_kw: d.base_load_kw,
                initial_kwh: d.initial_kwh,
                reset_kwh: 0.0,
                rollover_kwh: d.rollover_kwh,
                origin_s,
            })
        } else {
            Some(Source::Machine {
                timeline: self.machines.get(id)?.clone(),
                parts_offset: 0,
            })
        }
    }

    /// The ground truth of `[start, end)` for every device.
    pub fn truth(&self, start: i64, end: i64) -> Vec<TruthLine> {
        let mut out = Vec::new();
        let mut energy: BTreeMap<&str, f64> = BTreeMap::new();
        for (id, m) in &self.machines {
            let mut m = m.lock().expect("timeline lock");
            let w = m.window(start, end);
            m.prune_before(start - 2 * 86_400);
            energy.insert(id.as_str(), w.energy_kwh);
            out.push(TruthLine {
                device: id.clone(),
                window_start: start,
                window_end: end,
                state_seconds: w.state_seconds,
                energy_kwh: w.energy_kwh,
                parts: w.parts,
            });
        }
        for d in self.plant.devices.iter().filter(|d| d.is_meter()) {
            let fed: f64 = d.feeds.iter().filter_map(|f| energy.get(f.as_str())).sum();
            out.push(TruthLine {
                device: d.id.clone(),
                window_start: start,
                window_end: end,
                state_seconds: StateSeconds::default(),
                energy_kwh: fed + d.base_load_kw * (end - start) as f64 / 3600.0,
                parts: 0,
            });
        }
        out
    }
}

/// What an OPC UA client of a CNC machine sees in a given state.
pub fn cnc_snapshot(s: &MachineSignals, parts: u64) -> CncSnapshot {
    use DeviceState::*;
    let (operation_mode, channel_state, channel_mode, program_state, item) = match s.state {
        Productive => (1, 0, 0, "Running", 3),
        Standby => (1, 2, 0, "Ended", 2),
        Engineering => (0, 0, 2, "Ended", 2),
        UnscheduledDown => (1, 1, 0, "Interrupted", 1),
        ScheduledDown => (0, 2, 2, "Ended", 1),
        NonScheduled | Disconnected => (0, 2, 2, "Ended", 0),
    };
    CncSnapshot {
        operation_mode,
        channel_state,
        channel_mode,
        spindle_rotating: s.spindle,
        program_state,
        parts_produced: parts as u32,
        machinery_item_state: item,
        power_kw: s.power_kw,
    }
}

/// A running plant.
#[derive(Debug)]
pub struct RunningPlant {
    pub model: Arc<PlantModel>,
    pub clock: SimClock,
    /// Bound address per link id.
    pub ports: BTreeMap<String, String>,
    /// Modbus links, for faults and counter resets.
    pub links: BTreeMap<String, Arc<Link>>,
    /// CNC snapshot channels by machine id.
    pub cnc: BTreeMap<String, watch::Receiver<CncSnapshot>>,
    /// OPC UA servers by link id (the control port restarts them).
    pub opcua: BTreeMap<String, crate::control::SharedServer>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for RunningPlant {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts a plant: binds its links, starts the CNC publishers and, when
/// `out` is given, the ground-truth writer.
pub async fn start(
    plant: Plant,
    profiles: &BTreeMap<String, Profile>,
    clock: SimClock,
    out: Option<PathBuf>,
) -> Result<RunningPlant, RunError> {
    let pid = plant.plant.id.clone();
    let model = Arc::new(PlantModel::new(plant, clock.sim_epoch_ms.div_euclid(1000)));
    let mut running = RunningPlant {
        model: model.clone(),
        clock,
        ports: BTreeMap::new(),
        links: BTreeMap::new(),
        cnc: BTreeMap::new(),
        opcua: BTreeMap::new(),
        tasks: Vec::new(),
    };
    for link in &model.plant.links {
        let on_link: Vec<_> = model
            .plant
            .devices
            .iter()
            .filter(|d| d.link.as_ref() == Some(&link.id))
            .collect();
        match link.kind {
            LinkKind::ModbusTcp | LinkKind::ModbusRtu => {
                let mut devices = BTreeMap::new();
                for d in on_link {
                    let name = d.profile.clone().unwrap_or_default();
                    let profile =
                        profiles
                            .get(&name)
                            .cloned()
                            .ok_or_else(|| RunError::UnknownProfile {
                                plant: pid.clone(),
                                device: d.id.clone(),
                                profile: name.clone(),
                            })?;
                    let profile = d.served_profile(&profile).map_err(|e| RunError::Tags {
                        plant: pid.clone(),
                        source: e,
                    })?;
                    let source = model.source(&d.id).expect("device of this plant");
                    devices.insert(
                        d.unit,
                        ServedDevice {
                            id: d.id.clone(),
                            profile,
                            source: Mutex::new(source),
                        },
                    );
                }
                let l = Link::new(link.id.clone(), devices, clock);
                if link.kind == LinkKind::ModbusRtu {
                    let port = link.port.clone().unwrap_or_default();
                    crate::modbus::server::serve_rtu_serial(l.clone(), std::path::Path::new(&port))
                        .map_err(|e| RunError::Listen {
                            plant: pid.clone(),
                            link: link.id.clone(),
                            addr: port.clone(),
                            source: e,
                        })?;
                    tracing::info!(plant = %pid, link = %link.id, port = %port, "modbus rtu serving");
                    running.ports.insert(link.id.clone(), port);
                    running.links.insert(link.id.clone(), l);
                    continue;
                }
                let listen_err = |e| RunError::Listen {
                    plant: pid.clone(),
                    link: link.id.clone(),
                    addr: link.listen.clone(),
                    source: e,
                };
                let addr = link
                    .listen
                    .parse()
                    .map_err(|_| listen_err(std::io::Error::other("not an ip:port")))?;
                let (bound, task) = serve_tcp(l.clone(), addr).await.map_err(listen_err)?;
                tracing::info!(plant = %pid, link = %link.id, addr = %bound, "modbus tcp listening");
                running.ports.insert(link.id.clone(), bound.to_string());
                running.links.insert(link.id.clone(), l);
                running.tasks.push(task);
            }
            LinkKind::Opcua => {
                let mut machines = Vec::new();
                for d in on_link {
                    let timeline = model.machines[&d.id].clone();
                    let first = cnc_snapshot(
                        &timeline.lock().expect("timeline lock").at(clock.now_ms()),
                        0,
                    );
                    let (tx, rx) = watch::channel(first);
                    // Publish often enough that a 1 s (simulated) poll sees every change.
                    let period = clock
                        .wall_duration(Duration::from_millis(500))
                        .max(Duration::from_millis(20));
                    running.tasks.push(tokio::spawn(async move {
                        let mut tick = tokio::time::interval(period);
                        loop {
                            tick.tick().await;
                            let s = timeline.lock().expect("timeline lock").at(clock.now_ms());
                            let snap = cnc_snapshot(&s, s.parts);
                            tx.send_if_modified(|old| {
                                if *old != snap {
                                    *old = snap;
                                    true
                                } else {
                                    false
                                }
                            });
                        }
                    }));
                    running.cnc.insert(d.id.clone(), rx.clone());
                    machines.push((d.id.clone(), rx));
                }
                let (host, port) = link.listen.rsplit_once(':').unwrap_or(("127.0.0.1", "0"));
                let pki = out
                    .clone()
                    .unwrap_or_else(std::env::temp_dir)
                    .join("pki")
                    .join(&pid);
                let mut cfg = crate::opcua::OpcUaServerConfig::local(pki);
                cfg.host = host.to_owned();
                cfg.port = port.parse().unwrap_or(0);
                let server = crate::opcua::serve(cfg, machines, std::future::pending())
                    .await
                    .map_err(|e| RunError::OpcUa {
                        plant: pid.clone(),
                        link: link.id.clone(),
                        message: e.to_string(),
                    })?;
                running.ports.insert(link.id.clone(), server.endpoint_url());
                running
                    .opcua
                    .insert(link.id.clone(), Arc::new(tokio::sync::Mutex::new(server)));
            }
        }
    }
    if let Some(dir) = out {
        running
            .tasks
            .push(tokio::spawn(write_truth(model, clock, dir.join("truth"))));
    }
    Ok(running)
}

/// Appends each completed window's truth to `dir/<plant>.jsonl`.
async fn write_truth(model: Arc<PlantModel>, clock: SimClock, dir: PathBuf) {
    let window = i64::from(model.plant.plant.window_secs.max(1));
    let path = dir.join(format!("{}.jsonl", model.plant.plant.id));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::error!(path = %dir.display(), error = %e, "cannot create the truth folder");
        return;
    }
    let mut start = (clock.now_ms().div_euclid(1000) / window + 1) * window;
    loop {
        let end = start + window;
        let wait = clock.wall_at(end * 1000) - crate::clock::wall_ms();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
        let mut text = String::new();
        for line in model.truth(start, end) {
            text.push_str(&serde_json::to_string(&line).expect("truth serializes"));
            text.push('\n');
        }
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| {
                use std::io::Write;
                f.write_all(text.as_bytes())
            });
        if let Err(e) = written {
            tracing::error!(path = %path.display(), error = %e, "cannot write ground truth");
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Plant {
        crate::plant::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/plants/example.toml"),
        )
        .unwrap()
    }

    const T0: i64 = 1_764_547_200;

    #[test]
    fn truth_adds_up_and_is_deterministic() {
        let (a, b) = (
            PlantModel::new(example(), T0),
            PlantModel::new(example(), T0),
        );
        let mut meter_total = 0.0;
        let mut machines_total = 0.0;
        for w in 0..96 {
            let (s, e) = (T0 + w * 900, T0 + (w + 1) * 900);
            let lines = a.truth(s, e);
            assert_eq!(lines, b.truth(s, e), "same seed, same truth");
            for l in &lines {
                if a.machines.contains_key(&l.device) {
                    assert_eq!(l.state_seconds.total(), 900, "{} window {w}", l.device);
                    machines_total += l.energy_kwh;
                } else if l.device == "meter-main" {
                    meter_total += l.energy_kwh;
                }
            }
        }
        // The main meter feeds every machine plus 4 kW of base load.
        assert!(
            (meter_total - machines_total - 4.0 * 24.0).abs() < 1e-6,
            "{meter_total} vs {machines_total}"
        );
        let mut other = example();
        other.plant.seed = 43;
        assert_ne!(
            PlantModel::new(other, T0).truth(T0, T0 + 86_400),
            a.truth(T0, T0 + 86_400)
        );
    }

    #[test]
    fn cnc_snapshot_maps_states_to_machine_tool_codes() {
        let mut m = Timeline::new(
            Default::default(),
            Behaviour::for_kind(shuzhuan_common::inventory::DeviceKind::CncMachineTool),
            1,
            "c",
            T0,
        );
        for k in 0..500 {
            let s = m.at((T0 + k * 173) * 1000);
            let c = cnc_snapshot(&s, s.parts);
            assert_eq!(
                c.program_state == "Running",
                s.state == DeviceState::Productive
            );
            assert_eq!(
                c.machinery_item_state == 3,
                s.state == DeviceState::Productive
            );
            assert_eq!(
                c.channel_state == 1,
                s.state == DeviceState::UnscheduledDown
            );
        }
    }
}
