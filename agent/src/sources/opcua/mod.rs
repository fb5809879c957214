//! OPC UA acquisition through async-opcua: sessions, subscriptions, browse-path resolution, PKI.

mod config;

pub use config::{
    AcquisitionMode, CertificateIdentity, Deadband, Identity, OpcUaConfigError, OpcUaDeviceConfig,
    OpcUaLinkConfig, SecurityModeName, SecurityPolicyName, UserNameIdentity,
};
