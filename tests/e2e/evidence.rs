//! End-to-end tests: evidence.
