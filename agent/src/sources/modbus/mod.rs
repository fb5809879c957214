//! Modbus TCP, RTU and RTU-over-TCP acquisition: planner, decoding, polling with error isolation.
//!
//! `plan` (the exact request planner and its cost model), `client` (the
//! wire over tokio-modbus), `link` (the per-link task: schedule, reconnect,
//! split reads on exceptions, emit batches), `metrics` (Prometheus).

mod client;
mod link;
mod metrics;
pub mod plan;

pub use client::exception_reason;
pub use link::{backoff, decode_tag, run_link, RELEARN_EVERY};
