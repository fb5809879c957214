//! Aggregator integration tests: the HTTP API.
