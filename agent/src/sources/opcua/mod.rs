//! OPC UA acquisition through async-opcua: sessions, subscriptions, browse-path resolution, PKI.
//!
//! `config` (agent.toml entries), `session` (connect, backoff), `resolve`
//! (browse paths to NodeIds), `link` (the per-link task: subscribe or poll,
//! emit batches), `values` (DataValue to sample), `pki` (certificate store),
//! `metrics` (Prometheus).

mod config;
mod link;
mod metrics;
pub mod pki;
mod resolve;
mod session;
mod values;

pub use config::{
    AcquisitionMode, CertificateIdentity, Deadband, Identity, OpcUaConfigError, OpcUaDeviceConfig,
    OpcUaLinkConfig, SecurityModeName, SecurityPolicyName, UserNameIdentity,
};
pub use link::run_link;
pub use resolve::PathError;
