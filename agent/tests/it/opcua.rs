//! Agent integration tests: opcua.
