//! A Modbus TCP server for one link (a PLC, or a gateway with meters behind
//! it by unit id), with faults on demand: refuse connections, drop them,
//! stall responses, answer an exception for a register range, send garbage.

use super::frame::{decode_tcp, encode_tcp, exception, parse_request};
use super::regmap::answer;
use crate::clock::SimClock;
use crate::device::Source;
use crate::rng::Rng;
use shuzhuan_common::profile::Profile;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// One device behind a link.
#[derive(Debug)]
pub struct ServedDevice {
    pub id: String,
    pub profile: Profile,
    pub source: Mutex<Source>,
}

/// An exception injected for a range of a unit's registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExceptionRange {
    pub unit: u8,
    pub start: u16,
    pub end: u16,
    pub code: u8,
}

/// Faults currently in force on a link.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Accept and immediately close every connection.
    pub refuse: bool,
    /// Delay every response by this long (wall time).
    pub stall: Option<Duration>,
    /// Answer with random bytes instead of a frame.
    pub garbage: bool,
    pub exceptions: Vec<ExceptionRange>,
}

/// The shared state of a link: its devices by unit id and its faults.
#[derive(Debug)]
pub struct Link {
    pub id: String,
    pub devices: BTreeMap<u8, ServedDevice>,
    pub clock: SimClock,
    faults: Mutex<Faults>,
    /// Bumped to make every open connection close.
    drop_all: watch::Sender<u64>,
}

impl Link {
    pub fn new(
        id: impl Into<String>,
        devices: BTreeMap<u8, ServedDevice>,
        clock: SimClock,
    ) -> Arc<Link> {
        Arc::new(Link {
            id: id.into(),
            devices,
            clock,
            faults: Mutex::new(Faults::default()),
            drop_all: watch::channel(0).0,
        })
    }

    /// Changes the faults in force.
    pub fn set_faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.faults.lock().expect("faults lock"));
    }

    pub fn faults(&self) -> Faults {
        self.faults.lock().expect("faults lock").clone()
    }

    /// Closes every open connection once.
    pub fn drop_connections(&self) {
        self.drop_all.send_modify(|g| *g += 1);
    }

    /// Resets the counter of the device with `id` at the current simulated time.
    pub fn reset_counter(&self, id: &str) -> bool {
        let now = self.clock.now_ms();
        self.devices
            .values()
            .filter(|d| d.id == id)
            .fold(false, |_, d| {
                d.source.lock().expect("source lock").reset_counter(now);
                true
            })
    }

    /// The response PDU for a request PDU to `unit`; `None` for no answer.
    pub fn respond(&self, unit: u8, pdu: &[u8]) -> Option<Vec<u8>> {
        let req = parse_request(pdu)?;
        let injected = self.faults().exceptions.into_iter().find(|e| {
            let end = u32::from(req.address) + u32::from(req.quantity);
            e.unit == unit && u32::from(e.start) < end && e.end >= req.address
        });
        if let Some(e) = injected {
            return Some(exception(req.function, e.code));
        }
        let Some(dev) = self.devices.get(&unit) else {
            // A gateway whose target does not answer.
            return Some(exception(req.function, 0x0B));
        };
        let values = dev
            .source
            .lock()
            .expect("source lock")
            .at(self.clock.now_ms());
        Some(answer(&dev.profile, req, &values))
    }
}

/// Binds `addr` (port 0 picks one) and serves `link` until the task is dropped.
pub async fn serve_tcp(
    link: Arc<Link>,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            if link.faults().refuse {
                tracing::debug!(link = %link.id, %peer, "refusing connection (fault)");
                drop(stream);
                continue;
            }
            tokio::spawn(connection(link.clone(), stream));
        }
    });
    Ok((local, task))
}

async fn connection(link: Arc<Link>, mut stream: TcpStream) {
    let mut dropped = link.drop_all.subscribe();
    let mut rng = Rng::new(crate::clock::wall_ms() as u64);
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = tokio::select! {
            r = stream.read(&mut chunk) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
            _ = dropped.changed() => return,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            let (frame, used) = match decode_tcp(&buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                // Not Modbus: a real device closes the connection.
                Err(_) => return,
            };
            buf.drain(..used);
            let faults = link.faults();
            if let Some(d) = faults.stall {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = dropped.changed() => return,
                }
            }
            let Some(pdu) = link.respond(frame.unit, &frame.pdu) else {
                continue;
            };
            let out = if faults.garbage {
                (0..rng.range(3.0, 40.0) as usize)
                    .map(|_| rng.next_u64() as u8)
                    .collect()
            } else {
                encode_tcp(frame.transaction, frame.unit, &pdu)
            };
            if stream.write_all(&out).await.is_err() {
                return;
            }
        }
    }
}

/// Serves `link` as Modbus RTU on a serial device or pty at `path` (for
/// example one end of `socat pty,raw,echo=0,link=A pty,raw,echo=0,link=B`).
/// The line's speed and framing are the port's (a pty ignores them); frames
/// are found by their function code and CRC. Units not on the link get no
/// answer, as on a real bus. Runs on its own thread until the port closes.
pub fn serve_rtu_serial(
    link: Arc<Link>,
    path: &std::path::Path,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    use std::io::{Read, Write};
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let mut writer = reader.try_clone()?;
    let shown = path.display().to_string();
    Ok(std::thread::spawn(move || {
        let mut rng = Rng::new(crate::clock::wall_ms() as u64);
        let mut buf: Vec<u8> = Vec::with_capacity(512);
        let mut chunk = [0u8; 256];
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) | Err(_) => {
                    tracing::info!(link = %link.id, port = %shown, "serial port closed");
                    return;
                }
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            loop {
                match super::frame::decode_rtu(&buf) {
                    Ok(None) => break,
                    // Resynchronise on noise: drop one byte and look again.
                    Err(_) => {
                        buf.remove(0);
                    }
                    Ok(Some((unit, pdu, used))) => {
                        buf.drain(..used);
                        if !link.devices.contains_key(&unit) {
                            continue;
                        }
                        let faults = link.faults();
                        if faults.refuse {
                            continue;
                        }
                        if let Some(d) = faults.stall {
                            std::thread::sleep(d);
                        }
                        let Some(resp) = link.respond(unit, &pdu) else {
                            continue;
                        };
                        let out = if faults.garbage {
                            (0..rng.range(3.0, 40.0) as usize)
                                .map(|_| rng.next_u64() as u8)
                                .collect()
                        } else {
                            super::frame::encode_rtu(unit, &resp)
                        };
                        if writer.write_all(&out).and_then(|_| writer.flush()).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }))
}
