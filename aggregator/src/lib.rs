//! The city service: enrolment, ingest, registry, roll-ups, dashboard, verification.
//!
//! Layers, bottom up: `store` (SQLite behind the `Store` trait), `registry`
//! (CSV/XLSX import and export of enterprises and recognitions), `enroll`
//! (one-time tokens, agent keys), `ingest` (signature, chain, window checks
//! in front of one store transaction per batch), `rollup` (periods and the
//! indicators computed by `shuzhuan_common::indicators`), `api` (axum routes,
//! roles), `metrics` (Prometheus), `config` (aggregator.toml), `cli`.

pub mod api;
pub mod config;
pub mod days;
pub mod demo;
pub mod enroll;
pub mod evidence;
pub mod influx;
pub mod ingest;
pub mod metrics;
pub mod registry;
pub mod rollup;
pub mod server;
pub mod store;
pub mod web;
pub mod xlsx;
