//! The control port: a loopback line protocol for injecting faults into a
//! running simulator from tests and scripts. One command per line, answered
//! by `ok` or `error: <why>`:
//!
//! ```text
//! fault <plant> <link> refuse on|off
//! fault <plant> <link> garbage on|off
//! fault <plant> <link> stall <wall-ms>            (0 ends the stall)
//! fault <plant> <link> exception <unit> <start> <end> <code>
//! fault <plant> <link> drop                       (close open connections once)
//! fault <plant> <link> clear
//! fault <plant> <opcua-link> restart [down-ms]    (close sessions, stay down, serve again)
//! fault <plant> <opcua-link> stop                 (sessions closed, port refuses)
//! fault <plant> <opcua-link> start                (serve again on the same port)
//! reset <plant> <device>                          (part or energy counter to zero)
//! ```
//!
//! The first group applies to Modbus links, the OPC UA group to OPC UA
//! links; `restart` answers `ok` once the server listens again, with the same
//! address space (same NodeIds) and the machines' current values.

use crate::modbus::server::{ExceptionRange, Faults, Link};
use crate::opcua::RunningServer;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Modbus links by plant id, then link id.
pub type Links = BTreeMap<String, BTreeMap<String, Arc<Link>>>;

/// An OPC UA server the control port may stop and start.
pub type SharedServer = Arc<tokio::sync::Mutex<RunningServer>>;

/// OPC UA servers by plant id, then link id.
pub type OpcUaServers = BTreeMap<String, BTreeMap<String, SharedServer>>;

/// Everything the control port acts on.
#[derive(Debug, Default)]
pub struct Targets {
    pub modbus: Links,
    pub opcua: OpcUaServers,
}

impl Targets {
    /// The links and servers of running plants.
    pub fn of<'a>(plants: impl IntoIterator<Item = &'a crate::run::RunningPlant>) -> Targets {
        let mut t = Targets::default();
        for p in plants {
            let id = p.model.plant.plant.id.clone();
            t.modbus.insert(id.clone(), p.links.clone());
            t.opcua.insert(id, p.opcua.clone());
        }
        t
    }
}

fn on_off(v: Option<&str>) -> Result<bool, String> {
    match v {
        Some("on") => Ok(true),
        Some("off") => Ok(false),
        other => Err(format!("expected on or off, got `{}`", other.unwrap_or(""))),
    }
}

fn num<T: std::str::FromStr>(v: Option<&str>, what: &str) -> Result<T, String> {
    v.and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("expected a number for {what}"))
}

/// Carries out one OPC UA fault on `server`.
async fn opcua_fault<'a>(
    server: &SharedServer,
    mut w: impl Iterator<Item = &'a str>,
) -> Result<(), String> {
    let mut s = server.lock().await;
    match w.next().ok_or("missing fault")? {
        "restart" => {
            let down_ms: u64 = match w.next() {
                Some(v) => num(Some(v), "down ms")?,
                None => 0,
            };
            s.stop().await;
            if down_ms > 0 {
                tokio::time::sleep(Duration::from_millis(down_ms)).await;
            }
            s.start().await.map_err(|e| e.to_string())
        }
        "stop" => {
            s.stop().await;
            Ok(())
        }
        "start" => s.start().await.map_err(|e| e.to_string()),
        other => Err(format!(
            "unknown opc ua fault `{other}` (restart, stop or start)"
        )),
    }
}

/// Carries out one command line.
pub async fn apply(targets: &Targets, line: &str) -> Result<(), String> {
    let mut w = line.split_whitespace();
    let cmd = w.next().ok_or("empty command")?;
    let plant = w.next().ok_or("missing plant id")?;
    let plant_links = targets
        .modbus
        .get(plant)
        .or_else(|| targets.opcua.contains_key(plant).then_some(&EMPTY))
        .ok_or_else(|| format!("no plant `{plant}`"))?;
    match cmd {
        "reset" => {
            let device = w.next().ok_or("missing device id")?;
            if plant_links.values().any(|l| l.reset_counter(device)) {
                Ok(())
            } else {
                Err(format!("no modbus device `{device}` in plant `{plant}`"))
            }
        }
        "fault" => {
            let id = w.next().ok_or("missing link id")?;
            if let Some(server) = targets.opcua.get(plant).and_then(|s| s.get(id)) {
                return opcua_fault(server, w).await;
            }
            let link = plant_links
                .get(id)
                .ok_or_else(|| format!("no link `{id}` in plant `{plant}`"))?;
            match w.next().ok_or("missing fault")? {
                "refuse" => {
                    let v = on_off(w.next())?;
                    link.set_faults(|f| f.refuse = v);
                }
                "garbage" => {
                    let v = on_off(w.next())?;
                    link.set_faults(|f| f.garbage = v);
                }
                "stall" => {
                    let ms: u64 = num(w.next(), "stall ms")?;
                    link.set_faults(|f| f.stall = (ms > 0).then(|| Duration::from_millis(ms)));
                }
                "exception" => {
                    let e = ExceptionRange {
                        unit: num(w.next(), "unit")?,
                        start: num(w.next(), "start")?,
                        end: num(w.next(), "end")?,
                        code: num(w.next(), "code")?,
                    };
                    link.set_faults(|f| f.exceptions.push(e));
                }
                "drop" => link.drop_connections(),
                "clear" => link.set_faults(|f| *f = Faults::default()),
                other => return Err(format!("unknown fault `{other}`")),
            }
            Ok(())
        }
        other => Err(format!("unknown command `{other}`")),
    }
}

static EMPTY: BTreeMap<String, Arc<Link>> = BTreeMap::new();

/// Serves the control protocol on `addr` (loopback; port 0 picks one).
pub async fn serve(
    links: Arc<Targets>,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let links = links.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply = match apply(&links, &line).await {
                        Ok(()) => "ok\n".to_owned(),
                        Err(e) => format!("error: {e}\n"),
                    };
                    tracing::info!(command = %line, reply = %reply.trim(), "control");
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimClock;

    #[tokio::test]
    async fn commands_change_the_links_faults() {
        let clock = SimClock {
            scale: 1.0,
            sim_epoch_ms: 0,
            real_epoch_ms: 0,
        };
        let link = Link::new("plc", BTreeMap::new(), clock);
        let links = Targets {
            modbus: BTreeMap::from([(
                "p1".to_owned(),
                BTreeMap::from([("plc".to_owned(), link.clone())]),
            )]),
            opcua: BTreeMap::new(),
        };
        apply(&links, "fault p1 plc refuse on").await.unwrap();
        apply(&links, "fault p1 plc stall 250").await.unwrap();
        apply(&links, "fault p1 plc exception 3 100 110 2")
            .await
            .unwrap();
        let f = link.faults();
        assert!(f.refuse);
        assert_eq!(f.stall, Some(Duration::from_millis(250)));
        assert_eq!(
            f.exceptions,
            vec![ExceptionRange {
                unit: 3,
                start: 100,
                end: 110,
                code: 2
            }]
        );
        apply(&links, "fault p1 plc clear").await.unwrap();
        assert_eq!(link.faults(), Faults::default());
        assert!(apply(&links, "fault p2 plc drop")
            .await
            .unwrap_err()
            .contains("no plant `p2`"));
        assert!(apply(&links, "fault p1 plc stall soon")
            .await
            .unwrap_err()
            .contains("number"));
        assert!(apply(&links, "reset p1 nothing").await.is_err());
        assert!(apply(&links, "fault p1 ua restart")
            .await
            .unwrap_err()
            .contains("no link `ua`"));
    }
}
