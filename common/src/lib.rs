//! Shuzhuan's shared vocabulary: the registry, the equipment inventory, device
//! states and window summaries, the signed report wire format, the indicator
//! engine and the schemas of the reference data under `config/`.
//!
//! Invariant: this crate does no IO, reads no clock and depends on no async
//! runtime. Everything here is a pure function of its inputs, so the agent,
//! the aggregator and an offline verifier compute exactly the same thing.

pub mod claim;
pub mod credit_code;
pub mod evidence;
pub mod indicators;
pub mod inventory;
pub mod merkle;
pub mod profile;
pub mod reference;
pub mod registry;
pub mod report;
pub mod state;
pub mod summary;
pub mod tomlpos;
