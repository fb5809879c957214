//! Data sources: one task per link, emitting a [`crate::sample::SampleBatch`] per device per poll cycle.

pub mod modbus;
pub mod opcua;
