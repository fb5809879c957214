//! The HTTP side of the InfluxDB sink: one `POST /api/v2/write` per batch on
//! a fresh HTTP/1.1 connection (hyper), with a timeout, the body gzipped
//! unless `gzip = false`. `https://` runs the same HTTP/1.1 over rustls,
//! trusting only `[influxdb] ca_file` (as the aggregator link does).

use crate::ship::tls::{self, TlsClient, TlsFiles};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::time::Duration;

/// Something that takes a body of lines and answers a status and body, or
/// a network error text. The writer is generic over it so tests can script
/// answers under paused time.
pub trait WriteTransport: Send + Sync + 'static {
    fn write(&self, body: String) -> impl Future<Output = Result<(u16, String), String>> + Send;
}

/// The real transport.
#[derive(Debug, Clone)]
pub struct HttpWrite {
    /// Set for `https://` URLs: trusts only `[influxdb] ca_file`.
    pub tls: Option<TlsClient>,
    /// `host:port`.
    pub authority: String,
    /// Path and query: `/prefix/api/v2/write?org=…&bucket=…&precision=…`.
    pub path_and_query: String,
    /// `Token …` or nothing.
    pub authorization: Option<String>,
    pub timeout: Duration,
    /// Send the body gzipped (`Content-Encoding: gzip`).
    pub gzip: bool,
}

/// The gzip of `body`.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    enc.write_all(body).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// Percent-encodes a query component (RFC 3986 unreserved characters stay).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl HttpWrite {
    /// From `http://host[:port][/prefix]`, org, bucket, precision and token.
    pub fn new(
        url: &str,
        org: &str,
        bucket: &str,
        precision: &str,
        token: Option<&str>,
        timeout: Duration,
    ) -> Result<HttpWrite, String> {
        HttpWrite::with_tls(
            url,
            org,
            bucket,
            precision,
            token,
            timeout,
            &TlsFiles::default(),
        )
    }

    /// [`HttpWrite::new`] for `http://` or `https://`; `https` needs
    /// `files.ca_file` (and may present a client certificate).
    pub fn with_tls(
        url: &str,
        org: &str,
        bucket: &str,
        precision: &str,
        token: Option<&str>,
        timeout: Duration,
        files: &TlsFiles,
    ) -> Result<HttpWrite, String> {
        let (https, host, authority, prefix) = crate::ship::http::split_url(url, "[influxdb] url")?;
        let tls = if https {
            Some(tls_client(&host, files).map_err(|e| format!("[influxdb] url `{url}`: {e}"))?)
        } else {
            None
        };
        Ok(HttpWrite {
            tls,
            authority,
            path_and_query: format!(
                "{prefix}/api/v2/write?org={}&bucket={}&precision={precision}",
                encode_component(org),
                encode_component(bucket)
            ),
            authorization: token.map(|t| format!("Token {t}")),
            timeout,
            gzip: true,
        })
    }
}

impl WriteTransport for HttpWrite {
    async fn write(&self, body: String) -> Result<(u16, String), String> {
        let fut = async {
            let stream = tokio::net::TcpStream::connect(&self.authority)
                .await
                .map_err(|e| format!("connect {}: {e}", self.authority))?;
            match &self.tls {
                None => self.exchange(stream, body).await,
                Some(tls) => {
                    let stream = tls
                        .connector
                        .connect(tls.server_name.clone(), stream)
                        .await
                        .map_err(|e| {
                            format!(
                                "TLS handshake with {}: {}",
                                self.authority,
                                explain(&e, tls)
                            )
                        })?;
                    self.exchange(stream, body).await
                }
            }
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no answer from {} within {:?}",
                self.authority, self.timeout
            )),
        }
    }
}

impl HttpWrite {
    /// One write over an open stream (plain or TLS).
    async fn exchange<S>(&self, stream: S, body: String) -> Result<(u16, String), String>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        {
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake {}: {e}", self.authority))?;
            let conn_task = tokio::spawn(conn);
            let mut req = Request::post(&self.path_and_query)
                .header("host", &self.authority)
                .header("content-type", "text/plain; charset=utf-8");
            if let Some(a) = &self.authorization {
                req = req.header("authorization", a);
            }
            let body = if self.gzip {
                req = req.header("content-encoding", "gzip");
                gzip(body.as_bytes())
            } else {
                body.into_bytes()
            };
            let req = req
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| e.to_string())?;
            let resp = send
                .send_request(req)
                .await
                .map_err(|e| format!("request to {}: {e}", self.authority))?;
            let status = resp.status().as_u16();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("reading answer from {}: {e}", self.authority))?
                .to_bytes();
            conn_task.abort();
            Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
        }
    }
}

/// The TLS client of `[influxdb]`: the agent's rustls setup (ring
/// provider, PEM loading as for the aggregator), trusting exactly the CAs of
/// `ca_file`, with an optional client certificate.
pub fn tls_client(host: &str, files: &TlsFiles) -> Result<TlsClient, String> {
    let Some(ca_file) = &files.ca_file else {
        return Err(
            "https needs [influxdb] ca_file: the PEM file of the CA that signed the server's certificate"
                .into(),
        );
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in tls::load_certs(ca_file, "[influxdb] ca_file")? {
        roots.add(cert).map_err(|e| {
            format!(
                "[influxdb] ca_file `{}`: a certificate is not a usable CA: {e}",
                ca_file.display()
            )
        })?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots);
    let config =
        match (&files.client_cert_file, &files.client_key_file) {
            (Some(cert), Some(key)) => {
                let chain = tls::load_certs(cert, "[influxdb] client_cert_file")?;
                let key = tls::load_key(key, "[influxdb] client_key_file")?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    format!(
                        "[influxdb] client_cert_file `{}` and client_key_file: {e}",
                        cert.display()
                    )
                })?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(
                "[influxdb] client_cert_file and client_key_file go together: set both or neither"
                    .into(),
            ),
        };
    let server_name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|_| format!("`{host}` is not a valid TLS server name"))?;
    Ok(TlsClient {
        connector: tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)),
        server_name,
        ca_file: ca_file.clone(),
    })
}

/// A failed handshake in words (the aggregator's explanations, naming
/// `[influxdb] ca_file`).
fn explain(e: &std::io::Error, tls: &TlsClient) -> String {
    tls::explain(e, tls).replace("[aggregator] ca_file", "[influxdb] ca_file")
}
