//! A lean HTTP/1 client (hyper) for the aggregator's JSON API: one POST per
//! call on a fresh connection, with a timeout. `https://` runs the same
//! HTTP/1 over a rustls stream that trusts only `[aggregator] ca_file`
//! (see [`super::tls`]).

use super::tls::{self, TlsClient, TlsFiles};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// Where the aggregator is.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The URL as configured (named in errors).
    pub url: String,
    /// `host:port`.
    pub authority: String,
    /// Path prefix without trailing slash (usually empty).
    pub base_path: String,
    /// Set for `https://` URLs.
    pub tls: Option<TlsClient>,
}

/// Splits `scheme://host[:port][/prefix]` into (https?, host, authority,
/// prefix); `what` names the setting in errors (`aggregator url`).
pub(crate) fn split_url(url: &str, what: &str) -> Result<(bool, String, String, String), String> {
    let (https, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        return Err(format!(
            "aggregator url `{url}` must start with http:// or https://"
        ));
    };
    let (auth, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if auth.is_empty() {
        return Err(format!("{what} `{url}` has no host"));
    }
    // `[v6]:port`, `[v6]`, `host:port`, `host`.
    let (host, has_port) = if let Some(b) = auth.strip_prefix('[') {
        let Some(close) = b.find(']') else {
            return Err(format!("{what} `{url}`: unclosed `[` in the host"));
        };
        (&b[..close], b[close + 1..].starts_with(':'))
    } else {
        match auth.rsplit_once(':') {
            Some((h, _)) => (h, true),
            None => (auth, false),
        }
    };
    if host.is_empty() {
        return Err(format!("{what} `{url}` has no host"));
    }
    let authority = if has_port {
        auth.to_owned()
    } else {
        format!("{auth}:{}", if https { 443 } else { 80 })
    };
    Ok((https, host.to_owned(), authority, path.to_owned()))
}

impl Endpoint {
    /// Parses `http://host:port[/prefix]`. An `https://` URL needs a CA: use
    /// [`Endpoint::with_tls`] (or [`Endpoint::from_config`]).
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        Endpoint::with_tls(url, &TlsFiles::default())
    }

    /// Parses `http://` or `https://host[:port][/prefix]`; for `https` the
    /// TLS client is built from `files` (the CA bundle is required).
    pub fn with_tls(url: &str, files: &TlsFiles) -> Result<Endpoint, String> {
        let (https, host, authority, base_path) = split_url(url, "aggregator url")?;
        let tls = if https {
            Some(tls::client(&host, files).map_err(|e| format!("aggregator url `{url}`: {e}"))?)
        } else {
            None
        };
        Ok(Endpoint {
            url: url.to_owned(),
            authority,
            base_path,
            tls,
        })
    }

    /// The endpoint of an `[aggregator]` section (URL, CA and client certificate).
    pub fn from_config(agg: &crate::config::AggregatorSection) -> Result<Endpoint, String> {
        Endpoint::with_tls(
            &agg.url,
            &TlsFiles {
                ca_file: agg.ca_file.clone(),
                client_cert_file: agg.client_cert_file.clone(),
                client_key_file: agg.client_key_file.clone(),
            },
        )
    }
}

/// Sends one request over an established stream (plain or TLS).
async fn exchange<S>(
    ep: &Endpoint,
    stream: S,
    path: &str,
    body: Vec<u8>,
) -> Result<(u16, String), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("{}: HTTP handshake: {e}", ep.url))?;
    let conn_task = tokio::spawn(conn);
    let req = Request::post(format!("{}{}", ep.base_path, path))
        .header("host", &ep.authority)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("request to {}: {e}", ep.url))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading answer from {}: {e}", ep.url))?
        .to_bytes();
    conn_task.abort();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// POSTs `body` as JSON to `path`; returns status and body, or a network error text.
pub async fn post_json(
    ep: &Endpoint,
    path: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let fut = async {
        let stream = tokio::net::TcpStream::connect(&ep.authority)
            .await
            .map_err(|e| format!("connect {} ({}): {e}", ep.url, ep.authority))?;
        match &ep.tls {
            None => exchange(ep, stream, path, body).await,
            Some(tls) => {
                let stream = tls
                    .connector
                    .connect(tls.server_name.clone(), stream)
                    .await
                    .map_err(|e| {
                        format!("TLS handshake with {}: {}", ep.url, tls::explain(&e, tls))
                    })?;
                exchange(ep, stream, path, body).await
            }
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer from {} within {timeout:?}", ep.url)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = Endpoint::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(e.authority, "127.0.0.1:8080");
        assert_eq!(e.base_path, "");
        let e = Endpoint::parse("http://agg.example/city").unwrap();
        assert_eq!(e.authority, "agg.example:80");
        assert_eq!(e.base_path, "/city");
        assert!(e.tls.is_none());
        let e = Endpoint::parse("http://[::1]:9000/p/").unwrap();
        assert_eq!(e.authority, "[::1]:9000");
        assert_eq!(e.base_path, "/p");
        let err = Endpoint::parse("https://x").unwrap_err();
        assert!(
            err.contains("https://x") && err.contains("[aggregator] ca_file"),
            "{err}"
        );
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("http://").is_err());
        assert!(Endpoint::parse("http://[::1/").is_err());
        assert_eq!(
            split_url("https://agg.example/x", "aggregator url")
                .unwrap()
                .2,
            "agg.example:443"
        );
        assert_eq!(
            split_url("https://[::1]", "aggregator url").unwrap().1,
            "::1"
        );
    }
}
