//! Aggregator integration tests: one module per area.

mod api;
mod cli;
mod harness;
mod rollup;
