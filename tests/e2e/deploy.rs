//! End-to-end tests: deploy.
