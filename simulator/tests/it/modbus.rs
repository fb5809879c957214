//! Simulator integration tests: modbus.
