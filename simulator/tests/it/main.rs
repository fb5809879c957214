//! Simulator integration tests against independent clients: one module per area.

mod modbus;
mod opcua;
