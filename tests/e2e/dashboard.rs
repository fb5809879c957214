//! End-to-end tests: dashboard.
