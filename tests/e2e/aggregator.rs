//! End-to-end tests: aggregator.
