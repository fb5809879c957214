//! Aggregator integration tests: one module per area.

mod api;
