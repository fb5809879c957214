//! The Shuzhuan agent, which runs on a factory gateway: it reads PLCs, CNC
//! controllers and energy meters over Modbus and OPC UA, turns samples into
//! device states and energy, seals window summaries into signed, hash-chained
//! reports, spools them on disk and ships them to the city's aggregator.
//!
//! Data flow: `sources` → [`sample::SampleBatch`] channel → `model` (state,
//! energy, parts per device) → `window` summaries → `spool` → `ship`.

pub mod blocking;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod keys;
pub mod malloc;
pub mod model;
pub mod notify;
pub mod outputs;
pub mod rates;
pub mod reload;
pub mod run;
pub mod sample;
pub mod series;
pub mod ship;
pub mod shutdown;
pub mod sources;
pub mod spool;
