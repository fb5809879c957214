//! Agent integration tests against real peers: one module per area.

mod modbus;
mod notify;
mod opcua;
mod pipeline;
mod reload;
mod spool_crash;
