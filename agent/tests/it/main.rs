//! Agent integration tests against real peers: one module per area.

mod modbus;
mod opcua;
mod pipeline;
mod spool_crash;
