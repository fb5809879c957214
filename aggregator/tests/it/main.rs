//! Aggregator integration tests: one module per area.

mod api;
mod cli;
mod crash;
mod evidence_api;
mod harness;
mod influx;
mod rollup;
mod targets;
