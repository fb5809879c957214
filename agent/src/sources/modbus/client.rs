//! The wire: a [`Connector`] dials a link (TCP, RTU on a serial port, RTU
//! over TCP) and returns a [`Transport`] that reads one table range of one
//! unit at a time, over tokio-modbus. Both are traits so the link task can
//! be tested against scripted peers with paused time.

use crate::config::{ModbusLinkConfig, ModbusTransport, Parity};
use shuzhuan_common::profile::Table;
use std::future::Future;
use std::io;
use std::pin::Pin;
use tokio_modbus::client::{Context, Reader as _};
use tokio_modbus::prelude::SlaveContext as _;
use tokio_modbus::Slave;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why one read failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The device answered with a Modbus exception (the code).
    Exception(u8),
    /// The connection is gone or the peer sent bytes that are not Modbus.
    Disconnected(String),
    /// A response to another request (transaction id, unit or function mismatch).
    Mismatch(String),
}

/// One connection of a link.
pub trait Transport: Send {
    /// Reads `count` registers (or bits, as 0/1) of `table` from `unit`.
    fn read(
        &mut self,
        unit: u8,
        table: Table,
        start: u16,
        count: u16,
    ) -> BoxFuture<'_, Result<Vec<u16>, ReadError>>;
}

/// Dials a link.
pub trait Connector: Send + Sync {
    fn connect(&self) -> BoxFuture<'_, io::Result<Box<dyn Transport>>>;
    /// Whether a timed-out request leaves the connection unusable (TCP:
    /// a late answer would be taken for the next one).
    fn reconnect_after_timeout(&self) -> bool;
}

/// The bounded reason of an exception code (for sample quality and metrics).
pub fn exception_reason(code: u8) -> &'static str {
    match code {
        1 => "illegal_function",
        2 => "illegal_address",
        3 => "illegal_value",
        4 => "device_failure",
        5 => "acknowledge",
        6 => "busy",
        0x0A => "gateway_path",
        0x0B => "gateway_no_response",
        _ => "exception",
    }
}

struct ModbusTransportImpl {
    ctx: Context,
}

impl Transport for ModbusTransportImpl {
    fn read(
        &mut self,
        unit: u8,
        table: Table,
        start: u16,
        count: u16,
    ) -> BoxFuture<'_, Result<Vec<u16>, ReadError>> {
        Box::pin(async move {
            self.ctx.set_slave(Slave(unit));
            let bits = |r: tokio_modbus::Result<Vec<bool>>| {
                r.map(|x| {
                    x.map(|v| {
                        v.into_iter()
                            .take(usize::from(count))
                            .map(u16::from)
                            .collect()
                    })
                })
            };
            let result: tokio_modbus::Result<Vec<u16>> = match table {
                Table::Holding => self.ctx.read_holding_registers(start, count).await,
                Table::Input => self.ctx.read_input_registers(start, count).await,
                Table::Coil => bits(self.ctx.read_coils(start, count).await),
                Table::Discrete => bits(self.ctx.read_discrete_inputs(start, count).await),
            };
            match result {
                Ok(Ok(words)) if words.len() == usize::from(count) => Ok(words),
                Ok(Ok(words)) => Err(ReadError::Mismatch(format!(
                    "asked for {count} values, got {}",
                    words.len()
                ))),
                Ok(Err(code)) => Err(ReadError::Exception(u8::from(code))),
                Err(tokio_modbus::Error::Protocol(e)) => Err(ReadError::Mismatch(e.to_string())),
                Err(tokio_modbus::Error::Transport(e)) => {
                    Err(ReadError::Disconnected(e.to_string()))
                }
            }
        })
    }
}

/// The connector of a configured link.
pub struct LinkConnector {
    transport: ModbusTransport,
}

impl LinkConnector {
    pub fn new(cfg: &ModbusLinkConfig) -> Self {
        LinkConnector {
            transport: cfg.transport.clone(),
        }
    }
}

impl Connector for LinkConnector {
    fn connect(&self) -> BoxFuture<'_, io::Result<Box<dyn Transport>>> {
        Box::pin(async move {
            let ctx = match &self.transport {
                ModbusTransport::Tcp { address } => {
                    let stream = tokio::net::TcpStream::connect(address.as_str()).await?;
                    let _ = stream.set_nodelay(true);
                    tokio_modbus::client::tcp::attach(stream)
                }
                ModbusTransport::RtuOverTcp { address, .. } => {
                    let stream = tokio::net::TcpStream::connect(address.as_str()).await?;
                    let _ = stream.set_nodelay(true);
                    tokio_modbus::client::rtu::attach(stream)
                }
                ModbusTransport::Rtu {
                    port,
                    baud,
                    parity,
                    stop_bits,
                    data_bits,
                } => {
                    let builder = tokio_serial::new(port.as_str(), *baud)
                        .parity(match parity {
                            Parity::None => tokio_serial::Parity::None,
                            Parity::Even => tokio_serial::Parity::Even,
                            Parity::Odd => tokio_serial::Parity::Odd,
                        })
                        .stop_bits(if *stop_bits == 2 {
                            tokio_serial::StopBits::Two
                        } else {
                            tokio_serial::StopBits::One
                        })
                        .data_bits(if *data_bits == 7 {
                            tokio_serial::DataBits::Seven
                        } else {
                            tokio_serial::DataBits::Eight
                        });
                    let stream =
                        tokio_serial::SerialStream::open(&builder).map_err(io::Error::from)?;
                    tokio_modbus::client::rtu::attach(stream)
                }
            };
            Ok(Box::new(ModbusTransportImpl { ctx }) as Box<dyn Transport>)
        })
    }

    fn reconnect_after_timeout(&self) -> bool {
        matches!(self.transport, ModbusTransport::Tcp { .. })
    }
}
