//! Aggregator integration tests: one module per area.

mod api;
mod cli;
mod crash;
mod harness;
mod rollup;
