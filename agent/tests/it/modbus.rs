//! Agent integration tests: modbus.
