//! Settings of an OPC UA link (`[[links]] kind = "opcua"`) and of the
//! devices read through it, as they appear in agent.toml.

use serde::{Deserialize, Serialize};
use shuzhuan_common::profile::OpcUaTag;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Message security policy. The deprecated ones (Basic128Rsa15, Basic256)
/// are refused unless the link sets `allow_deprecated = true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SecurityPolicyName {
    #[default]
    None,
    Basic256Sha256,
    Aes128Sha256RsaOaep,
    Aes256Sha256RsaPss,
    /// Deprecated by OPC UA 1.04.
    Basic256,
    /// Deprecated by OPC UA 1.04.
    Basic128Rsa15,
}

impl SecurityPolicyName {
    pub fn is_deprecated(self) -> bool {
        matches!(
            self,
            SecurityPolicyName::Basic256 | SecurityPolicyName::Basic128Rsa15
        )
    }

    /// The name async-opcua and the OPC UA profile URIs use.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityPolicyName::None => "None",
            SecurityPolicyName::Basic256Sha256 => "Basic256Sha256",
            SecurityPolicyName::Aes128Sha256RsaOaep => "Aes128_Sha256_RsaOaep",
            SecurityPolicyName::Aes256Sha256RsaPss => "Aes256_Sha256_RsaPss",
            SecurityPolicyName::Basic256 => "Basic256",
            SecurityPolicyName::Basic128Rsa15 => "Basic128Rsa15",
        }
    }
}

/// Message security mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SecurityModeName {
    #[default]
    None,
    Sign,
    SignAndEncrypt,
}

/// Who the agent logs in as: `identity = "anonymous"`,
/// `identity = { username = "…", password = "…" }` or
/// `identity = { cert = "user.der", key = "user.pem" }`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Identity {
    #[default]
    #[serde(with = "anonymous")]
    Anonymous,
    UserName(UserNameIdentity),
    Certificate(CertificateIdentity),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserNameIdentity {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateIdentity {
    /// DER X.509 user certificate.
    pub cert: PathBuf,
    /// PEM private key of that certificate.
    pub key: PathBuf,
}

mod anonymous {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("anonymous")
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        let s = String::deserialize(d)?;
        if s == "anonymous" {
            Ok(())
        } else {
            Err(D::Error::custom(format!("unknown identity `{s}`: expected \"anonymous\", {{ username, password }} or {{ cert, key }}")))
        }
    }
}

/// How values are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AcquisitionMode {
    /// Monitored items in a subscription; falls back to polling when the
    /// server refuses the subscription.
    #[default]
    Subscribe,
    /// Batched Read requests every device poll interval.
    Poll,
}

/// Data change deadband for monitored items (numeric variables only; the
/// server refuses it on others and the item is then created without one).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "snake_case",
    tag = "type",
    content = "value"
)]
pub enum Deadband {
    /// Report a change when |new − last reported| exceeds the value.
    Absolute(f64),
    /// Percent of the variable's EURange.
    Percent(f64),
}

/// One `[[links]]` entry with `kind = "opcua"` (the `kind` key belongs to
/// the enclosing enum).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaLinkConfig {
    pub id: String,
    /// `opc.tcp://host:port/path`.
    pub endpoint: String,
    #[serde(default)]
    pub security_policy: SecurityPolicyName,
    #[serde(default)]
    pub security_mode: SecurityModeName,
    /// Permit Basic128Rsa15 and Basic256 (old controllers only offer those).
    #[serde(default)]
    pub allow_deprecated: bool,
    #[serde(default)]
    pub identity: Identity,
    /// The agent's certificate store: `own/cert.der` and
    /// `private/private.pem` (created at first start), `trusted/` (server
    /// certificates the operator accepted) and `rejected/` (unknown server
    /// certificates land here and are refused). Default: `<data_dir>/pki/opcua`.
    #[serde(default)]
    pub pki_dir: Option<PathBuf>,
    /// Check a trusted server certificate's host names, application URI and
    /// validity period. `false` still accepts only certificates moved to
    /// `trusted/` (compared byte for byte) but skips those checks, for
    /// controllers whose certificates name another host or order their
    /// alternative names differently.
    #[serde(default = "yes")]
    pub verify_server_certificate: bool,
    /// Timeout of one request, also of connecting.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Session timeout asked of the server.
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u64,
    #[serde(default)]
    pub mode: AcquisitionMode,
    /// Sampling interval of monitored items; default: the subscription's
    /// publishing interval.
    #[serde(default)]
    pub sampling_interval_ms: Option<f64>,
    #[serde(default = "default_publishing_interval_ms")]
    pub publishing_interval_ms: u64,
    /// Queue size of monitored items (1: only the latest value).
    #[serde(default = "one")]
    pub queue_size: u32,
    #[serde(default)]
    pub deadband: Option<Deadband>,
    /// First reconnect delay; doubles up to `backoff_max_ms`, with jitter.
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
}

/// Why a link configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpcUaConfigError {
    #[error("link `{link}`: security policy {policy} is deprecated; set allow_deprecated = true to use it")]
    Deprecated { link: String, policy: &'static str },
    #[error("link `{link}`: security policy {policy} needs security_mode Sign or SignAndEncrypt")]
    ModeNone { link: String, policy: &'static str },
    #[error("link `{link}`: security_mode {mode:?} needs a security_policy other than None")]
    PolicyNone {
        link: String,
        mode: SecurityModeName,
    },
    #[error("link `{link}`: endpoint `{endpoint}` is not an opc.tcp:// URL")]
    Endpoint { link: String, endpoint: String },
}

impl OpcUaLinkConfig {
    /// A link with defaults for everything but its id and endpoint.
    pub fn new(id: impl Into<String>, endpoint: impl Into<String>) -> Self {
        OpcUaLinkConfig {
            id: id.into(),
            endpoint: endpoint.into(),
            security_policy: SecurityPolicyName::None,
            security_mode: SecurityModeName::None,
            allow_deprecated: false,
            identity: Identity::Anonymous,
            pki_dir: None,
            verify_server_certificate: true,
            timeout_ms: default_timeout_ms(),
            session_timeout_ms: default_session_timeout_ms(),
            mode: AcquisitionMode::Subscribe,
            sampling_interval_ms: None,
            publishing_interval_ms: default_publishing_interval_ms(),
            queue_size: 1,
            deadband: None,
            backoff_initial_ms: default_backoff_initial_ms(),
            backoff_max_ms: default_backoff_max_ms(),
        }
    }

    /// Checks the combinations serde cannot.
    pub fn validate(&self) -> Result<(), OpcUaConfigError> {
        let link = self.id.clone();
        if !self.endpoint.starts_with("opc.tcp://") {
            return Err(OpcUaConfigError::Endpoint {
                link,
                endpoint: self.endpoint.clone(),
            });
        }
        let policy = self.security_policy.as_str();
        if self.security_policy.is_deprecated() && !self.allow_deprecated {
            return Err(OpcUaConfigError::Deprecated { link, policy });
        }
        match (self.security_policy, self.security_mode) {
            (SecurityPolicyName::None, SecurityModeName::None) => Ok(()),
            (SecurityPolicyName::None, mode) => Err(OpcUaConfigError::PolicyNone { link, mode }),
            (_, SecurityModeName::None) => Err(OpcUaConfigError::ModeNone { link, policy }),
            _ => Ok(()),
        }
    }

    /// The PKI directory, defaulting below the agent's data directory.
    pub fn pki_dir_in(&self, data_dir: &Path) -> PathBuf {
        self.pki_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("pki").join("opcua"))
    }
}

/// One device read through an OPC UA link: its id, the node its browse
/// paths start from, and its tags (profile tags merged with the device's own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaDeviceConfig {
    pub id: String,
    /// A NodeId (`ns=2;s=Lathe1`, `nsu=<uri>;s=Lathe1`, `i=85`) or a browse
    /// path from the Objects folder (`Machines/cnc-01`).
    pub root: String,
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Shared with every device of the config that has the same tags (the
    /// devices of one profile), as `crate::config::DeviceTags` holds them.
    #[serde(serialize_with = "tags_out", deserialize_with = "tags_in")]
    pub tags: Arc<[OpcUaTag]>,
}

fn tags_out<S: serde::Serializer>(tags: &Arc<[OpcUaTag]>, s: S) -> Result<S::Ok, S::Error> {
    tags[..].serialize(s)
}

fn tags_in<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Arc<[OpcUaTag]>, D::Error> {
    Vec::<OpcUaTag>::deserialize(d).map(Arc::from)
}

fn default_timeout_ms() -> u64 {
    5_000
}
fn default_session_timeout_ms() -> u64 {
    60_000
}
fn default_publishing_interval_ms() -> u64 {
    500
}
fn default_backoff_initial_ms() -> u64 {
    500
}
fn default_backoff_max_ms() -> u64 {
    30_000
}
fn default_poll_interval_ms() -> u64 {
    1_000
}
fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_link_takes_defaults() {
        let c: OpcUaLinkConfig =
            toml::from_str("id = \"cnc-ua\"\nendpoint = \"opc.tcp://127.0.0.1:4840/\"").unwrap();
        assert_eq!(
            c,
            OpcUaLinkConfig::new("cnc-ua", "opc.tcp://127.0.0.1:4840/")
        );
        assert!(c.validate().is_ok());
        assert_eq!(c.pki_dir_in(Path::new("/d")), PathBuf::from("/d/pki/opcua"));
    }

    #[test]
    fn identities_parse_in_all_three_forms() {
        let parse = |s: &str| -> OpcUaLinkConfig {
            toml::from_str(&format!(
                "id = \"l\"\nendpoint = \"opc.tcp://h:1/\"\nidentity = {s}"
            ))
            .unwrap()
        };
        assert_eq!(parse("\"anonymous\"").identity, Identity::Anonymous);
        assert_eq!(
            parse("{ username = \"op\", password = \"pw\" }").identity,
            Identity::UserName(UserNameIdentity {
                username: "op".into(),
                password: "pw".into()
            })
        );
        assert_eq!(
            parse("{ cert = \"u.der\", key = \"u.pem\" }").identity,
            Identity::Certificate(CertificateIdentity {
                cert: "u.der".into(),
                key: "u.pem".into()
            })
        );
        let bad = toml::from_str::<OpcUaLinkConfig>(
            "id = \"l\"\nendpoint = \"opc.tcp://h:1/\"\nidentity = \"root\"",
        );
        assert!(bad.is_err());
    }

    #[test]
    fn unknown_keys_and_bad_combinations_are_refused() {
        assert!(toml::from_str::<OpcUaLinkConfig>(
            "id = \"l\"\nendpoint = \"opc.tcp://h:1/\"\nsecurity = 1"
        )
        .is_err());
        let mut c = OpcUaLinkConfig::new("l", "opc.tcp://h:1/");
        c.security_policy = SecurityPolicyName::Basic128Rsa15;
        c.security_mode = SecurityModeName::Sign;
        assert!(matches!(
            c.validate(),
            Err(OpcUaConfigError::Deprecated { .. })
        ));
        c.allow_deprecated = true;
        assert!(c.validate().is_ok());
        c.security_mode = SecurityModeName::None;
        assert!(matches!(
            c.validate(),
            Err(OpcUaConfigError::ModeNone { .. })
        ));
        let mut c = OpcUaLinkConfig::new("l", "opc.tcp://h:1/");
        c.security_mode = SecurityModeName::SignAndEncrypt;
        assert!(matches!(
            c.validate(),
            Err(OpcUaConfigError::PolicyNone { .. })
        ));
        let c = OpcUaLinkConfig::new("l", "http://h:1/");
        assert!(matches!(
            c.validate(),
            Err(OpcUaConfigError::Endpoint { .. })
        ));
    }

    #[test]
    fn a_generated_config_reads_back_the_same() {
        let mut c = OpcUaLinkConfig::new("cnc-ua", "opc.tcp://127.0.0.1:4840/");
        c.security_policy = SecurityPolicyName::Basic256Sha256;
        c.security_mode = SecurityModeName::SignAndEncrypt;
        c.identity = Identity::UserName(UserNameIdentity {
            username: "op".into(),
            password: "pw".into(),
        });
        c.deadband = Some(Deadband::Percent(2.0));
        let text = toml::to_string(&c).unwrap();
        assert_eq!(
            toml::from_str::<OpcUaLinkConfig>(&text).unwrap(),
            c,
            "{text}"
        );
        let anonymous = OpcUaLinkConfig::new("a", "opc.tcp://h:1/");
        let text = toml::to_string(&anonymous).unwrap();
        assert!(text.contains("identity = \"anonymous\""), "{text}");
        assert_eq!(toml::from_str::<OpcUaLinkConfig>(&text).unwrap(), anonymous);
    }

    #[test]
    fn deadband_and_device_parse() {
        let c: OpcUaLinkConfig = toml::from_str(
            "id = \"l\"\nendpoint = \"opc.tcp://h:1/\"\nmode = \"poll\"\ndeadband = { type = \"absolute\", value = 0.5 }",
        )
        .unwrap();
        assert_eq!(c.deadband, Some(Deadband::Absolute(0.5)));
        assert_eq!(c.mode, AcquisitionMode::Poll);
        let d: OpcUaDeviceConfig = toml::from_str(
            "id = \"cnc-01\"\nroot = \"Machines/cnc-01\"\n[[tags]]\nname = \"parts\"\nrole = \"part_counter\"\nbrowse_path = \"Production/Statistics/PartsProducedInLifetime\"",
        )
        .unwrap();
        assert_eq!(d.poll_interval_ms, 1000);
        assert_eq!(d.tags.len(), 1);
    }
}
