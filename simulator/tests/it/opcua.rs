//! Simulator integration tests: opcua.
