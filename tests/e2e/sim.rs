//! End-to-end tests: sim.
