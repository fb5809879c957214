//! The HTTP side of the InfluxDB sink: one `POST /api/v2/write` per batch on
//! a fresh HTTP/1.1 connection (hyper), with a timeout, the body gzipped
//! unless `gzip = false`. `http://` only, as the config loader enforces.

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
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("[influxdb] url `{url}` must start with http://"))?;
        let (auth, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if auth.is_empty() {
            return Err(format!("[influxdb] url `{url}` has no host"));
        }
        let authority = if auth.contains(':') {
            auth.to_owned()
        } else {
            format!("{auth}:80")
        };
        Ok(HttpWrite {
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
