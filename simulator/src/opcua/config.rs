//! Settings of the simulator's OPC UA server: where it listens, which
//! security it offers, where its certificate lives.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One endpoint security combination the server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointSecurity {
    /// No signing, no encryption.
    None,
    /// Basic256Sha256, messages signed.
    Basic256Sha256Sign,
    /// Basic256Sha256, messages signed and encrypted.
    Basic256Sha256SignAndEncrypt,
}

/// A login the server accepts besides anonymous: a username with either a
/// password or an X.509 user certificate (DER file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerUser {
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
}

/// How the CNC server is run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaServerConfig {
    /// Listen address; loopback unless a test network says otherwise.
    #[serde(default = "default_host")]
    pub host: String,
    /// TCP port; 0 picks a free one (see `RunningServer::port`).
    #[serde(default)]
    pub port: u16,
    /// Certificate store: `own/cert.der`, `private/private.pem` (created
    /// self-signed at first start), `trusted/`, `rejected/`.
    pub pki_dir: PathBuf,
    /// Endpoints offered (all on path `/`).
    #[serde(default = "default_security")]
    pub security: Vec<EndpointSecurity>,
    /// Accept any client certificate. A simulator stands in for a plant
    /// whose operator already trusted the gateway; set false to exercise
    /// the trust list (unknown client certificates then land in `rejected/`).
    #[serde(default = "yes")]
    pub trust_client_certs: bool,
    /// Username/password logins accepted in addition to anonymous.
    #[serde(default)]
    pub users: Vec<ServerUser>,
    /// Largest number of nodes one Read may ask for (0: the library's default),
    /// so clients' batching can be exercised.
    #[serde(default)]
    pub max_nodes_per_read: usize,
    /// Largest number of monitored items one CreateMonitoredItems may ask
    /// for (0: the library's default).
    #[serde(default)]
    pub max_monitored_items_per_call: usize,
    /// Serve namespace 0 without the standard types' instance declarations
    /// (see `opcua::lean`): about 7 MB less per server, for cities of many
    /// servers in one process.
    #[serde(default)]
    pub lean_namespace0: bool,
}

impl OpcUaServerConfig {
    /// Loopback, any free port, all security combinations, PKI in `pki_dir`.
    pub fn local(pki_dir: impl Into<PathBuf>) -> Self {
        OpcUaServerConfig {
            host: default_host(),
            port: 0,
            pki_dir: pki_dir.into(),
            security: default_security(),
            trust_client_certs: true,
            users: Vec::new(),
            max_nodes_per_read: 0,
            max_monitored_items_per_call: 0,
            lean_namespace0: lean_namespace0_default(),
        }
    }
}

static LEAN_NAMESPACE0: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes [`OpcUaServerConfig::local`] (and so every plant's server the
/// simulator starts afterwards) use the lean namespace 0; the
/// `shuzhuan-sim --opcua-lean-ns0` switch.
pub fn set_lean_namespace0_default(on: bool) {
    LEAN_NAMESPACE0.store(on, std::sync::atomic::Ordering::Relaxed);
}

fn lean_namespace0_default() -> bool {
    LEAN_NAMESPACE0.load(std::sync::atomic::Ordering::Relaxed)
}

fn default_host() -> String {
    "127.0.0.1".to_owned()
}

fn default_security() -> Vec<EndpointSecurity> {
    vec![
        EndpointSecurity::None,
        EndpointSecurity::Basic256Sha256Sign,
        EndpointSecurity::Basic256Sha256SignAndEncrypt,
    ]
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_offer_every_security_on_loopback() {
        let c: OpcUaServerConfig = toml::from_str("pki_dir = \"pki\"").unwrap();
        assert_eq!(c, OpcUaServerConfig::local("pki"));
        assert!(toml::from_str::<OpcUaServerConfig>("pki_dir = \"p\"\nbogus = 1").is_err());
        let c: OpcUaServerConfig =
            toml::from_str("pki_dir = \"p\"\nsecurity = [\"basic256_sha256_sign\"]").unwrap();
        assert_eq!(c.security, vec![EndpointSecurity::Basic256Sha256Sign]);
    }
}
