//! TLS to the aggregator (rustls with the ring provider): the agent trusts
//! exactly the CA certificates of `[aggregator] ca_file` (a city runs a
//! private CA; the system's roots are not used), checks the server name
//! from the URL, and may present a client certificate (mutual TLS) from
//! `client_cert_file` and `client_key_file`.

use rustls::client::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{CertificateError, RootCertStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What an `https` endpoint needs to open connections.
#[derive(Clone)]
pub struct TlsClient {
    /// The connector (shared configuration, one session per connection).
    pub connector: tokio_rustls::TlsConnector,
    /// The name checked against the server's certificate.
    pub server_name: ServerName<'static>,
    /// Where the trusted CAs came from (named in handshake errors).
    pub ca_file: PathBuf,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

/// The ring crypto provider (the only one built in).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file; an unreadable file, a PEM error
/// or a file without any `CERTIFICATE` block is an error naming the file.
pub fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| format!("{what} `{shown}`: {e}"))?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} `{shown}`: not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} `{shown}`: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file"
        ));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn load_key(path: &Path, what: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "{what} `{}`: no PEM private key (-----BEGIN PRIVATE KEY-----) in the file",
            path.display()
        ),
        e => format!("{what} `{}`: {e}", path.display()),
    })
}

/// The root store of a PEM CA bundle.
pub fn load_roots(ca_file: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca_file, "[aggregator] ca_file")? {
        roots.add(cert).map_err(|e| {
            format!(
                "[aggregator] ca_file `{}`: a certificate is not a usable CA: {e}",
                ca_file.display()
            )
        })?;
    }
    Ok(roots)
}

/// The files a TLS client is built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

/// Builds the client for `host` (a DNS name or an IP address, without
/// brackets) from `files`; every failure names the key and the file.
pub fn client(host: &str, files: &TlsFiles) -> Result<TlsClient, String> {
    let Some(ca_file) = &files.ca_file else {
        return Err(
            "https needs [aggregator] ca_file: the PEM file of the CA that signed the aggregator's certificate"
                .into(),
        );
    };
    let roots = load_roots(ca_file)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots);
    let config = match (&files.client_cert_file, &files.client_key_file) {
        (Some(cert), Some(key)) => {
            let chain = load_certs(cert, "[aggregator] client_cert_file")?;
            let key = load_key(key, "[aggregator] client_key_file")?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!(
                    "[aggregator] client_cert_file `{}` and client_key_file: {e}",
                    cert.display()
                )
            })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(
            "[aggregator] client_cert_file and client_key_file go together: set both or neither"
                .into(),
        ),
    };
    let server_name = ServerName::try_from(host.to_owned())
        .map_err(|_| format!("`{host}` is not a valid TLS server name"))?;
    Ok(TlsClient {
        connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        server_name,
        ca_file: ca_file.clone(),
    })
}

/// Explains a failed handshake: the certificate problem in words (with the
/// CA file when the issuer is unknown), else the error as it came.
pub fn explain(e: &std::io::Error, tls: &TlsClient) -> String {
    let Some(err) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return e.to_string();
    };
    match err {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "the server's certificate is not signed by a CA in [aggregator] ca_file `{}` (unknown issuer)",
            tls.ca_file.display()
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => format!("the server's certificate has expired ({err})"),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the server's certificate does not name {:?} ({err})",
            tls.server_name.to_str()
        ),
        rustls::Error::AlertReceived(alert) => format!(
            "the server refused the handshake ({alert:?}; does it require a client certificate?)"
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_without_ca_file_names_the_key() {
        let e = client("agg.example", &TlsFiles::default()).unwrap_err();
        assert!(e.contains("[aggregator] ca_file"), "{e}");
    }

    #[test]
    fn bad_ca_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let files = |p: &Path| TlsFiles {
            ca_file: Some(p.to_path_buf()),
            ..TlsFiles::default()
        };
        let e = client("agg.example", &files(&missing)).unwrap_err();
        assert!(
            e.contains("[aggregator] ca_file") && e.contains("missing.pem"),
            "{e}"
        );

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "just text\n").unwrap();
        let e = client("agg.example", &files(&empty)).unwrap_err();
        assert!(
            e.contains("empty.pem") && e.contains("no PEM certificate"),
            "{e}"
        );

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = client("agg.example", &files(&garbage)).unwrap_err();
        assert!(e.contains("garbage.pem"), "{e}");

        let not_der = dir.path().join("notder.pem");
        std::fs::write(
            &not_der,
            "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = client("agg.example", &files(&not_der)).unwrap_err();
        assert!(
            e.contains("notder.pem") && e.contains("not a usable CA"),
            "{e}"
        );
    }

    #[test]
    fn a_client_cert_needs_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_key(&dir.path().join("k.pem"), "[aggregator] client_key_file").unwrap_err();
        assert!(e.contains("client_key_file") && e.contains("k.pem"), "{e}");
        let cert_only = dir.path().join("c.pem");
        std::fs::write(&cert_only, "no key here\n").unwrap();
        let e = load_key(&cert_only, "[aggregator] client_key_file").unwrap_err();
        assert!(e.contains("no PEM private key"), "{e}");
    }

    fn config(dir: &Path, aggregator: &str) -> Result<crate::config::AgentConfig, String> {
        let text = format!(
            "[agent]\nid = \"gw-1\"\nenterprise = \"91411700MA00000019\"\ndata_dir = \"data\"\n\n[aggregator]\n{aggregator}\n"
        );
        crate::config::AgentConfig::from_text(dir.join("agent.toml"), &text)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_config_loader_checks_the_tls_keys() {
        let dir = tempfile::tempdir().unwrap();
        let e = config(dir.path(), "url = \"https://agg.example\"").unwrap_err();
        assert!(
            e.contains("ca_file is missing") && e.contains("agent.toml:"),
            "{e}"
        );
        let e = config(
            dir.path(),
            "url = \"https://agg.example\"\nca_file = \"nope.pem\"",
        )
        .unwrap_err();
        assert!(
            e.contains("[aggregator] ca_file") && e.contains("nope.pem"),
            "{e}"
        );
        let e = config(
            dir.path(),
            "url = \"http://agg.example\"\nclient_cert_file = \"c.pem\"",
        )
        .unwrap_err();
        assert!(e.contains("go together"), "{e}");
        let c = config(dir.path(), "url = \"http://agg.example\"").unwrap();
        let agg = c.aggregator.unwrap();
        assert_eq!(agg.ca_file, None);
        assert!(super::super::http::Endpoint::from_config(&agg).is_ok());
    }
}
