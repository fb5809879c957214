//! The workspace's end-to-end test binary: one module per area, each
//! starting real processes (simulator, agent, aggregator, external peers) on
//! loopback and stopping them by PID.

mod aggregator;
mod dashboard;
mod deploy;
mod evidence;
mod fixtures;
mod influx;
mod pipeline;
mod sim;
mod tls;
