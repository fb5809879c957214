//! A lean HTTP/1 client (hyper) for the aggregator's JSON API: one POST per
//! call on a fresh connection, with a timeout. `https://` is refused with a
//! clear error in this build (TLS termination in front of the aggregator, or
//! a local TLS proxy, is the documented workaround until rustls lands).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// Where the aggregator is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`.
    pub authority: String,
    /// Path prefix without trailing slash (usually empty).
    pub base_path: String,
}

impl Endpoint {
    /// Parses `http://host:port[/prefix]`.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let rest = if let Some(r) = url.strip_prefix("http://") {
            r
        } else if url.starts_with("https://") {
            return Err(format!(
                "aggregator url `{url}`: https is not supported by this build; use http to a local TLS proxy"
            ));
        } else {
            return Err(format!("aggregator url `{url}` must start with http://"));
        };
        let (auth, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if auth.is_empty() {
            return Err(format!("aggregator url `{url}` has no host"));
        }
        let authority = if auth.contains(':') {
            auth.to_owned()
        } else {
            format!("{auth}:80")
        };
        Ok(Endpoint {
            authority,
            base_path: path.to_owned(),
        })
    }
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
            .map_err(|e| format!("connect {}: {e}", ep.authority))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake {}: {e}", ep.authority))?;
        let conn_task = tokio::spawn(conn);
        let req = Request::post(format!("{}{}", ep.base_path, path))
            .header("host", &ep.authority)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| format!("request to {}: {e}", ep.authority))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading answer from {}: {e}", ep.authority))?
            .to_bytes();
        conn_task.abort();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer from {} within {timeout:?}",
            ep.authority
        )),
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
        assert!(Endpoint::parse("https://x").unwrap_err().contains("https"));
        assert!(Endpoint::parse("ftp://x").is_err());
    }
}
