//! Connecting one session: the async-opcua client with the link's security
//! and identity, a driver task for its event loop that reports when the
//! connection is lost (the link, not the library, decides when and how to
//! reconnect), and capped exponential backoff with jitter between attempts.

use super::config::{Identity, OpcUaLinkConfig, SecurityModeName};
use super::pki;
use opcua::client::{Client, ClientBuilder, IdentityToken, Password, Session};
use opcua::crypto::CertificateStore;
use opcua::types::{MessageSecurityMode, StatusCode, UserTokenPolicy};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// A connected session and the task driving it.
pub(crate) struct Connected {
    pub session: Arc<Session>,
    driver: JoinHandle<StatusCode>,
}

impl Connected {
    /// Resolves when the connection is lost, with the reason.
    pub(crate) async fn lost(&mut self) -> StatusCode {
        (&mut self.driver)
            .await
            .unwrap_or(StatusCode::BadUnexpectedError)
    }

    /// Closes the session on the server (bounded wait) and stops the driver.
    pub(crate) async fn close(self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.session.disconnect()).await;
        self.driver.abort();
    }
}

/// Held while a client is built: links share the agent's certificate store,
/// and without it every link of a first start generates its own RSA key and
/// all but one fail to write it ("already exists"), running without a
/// certificate. Serialized, the first link creates the key and the others
/// load it.
static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Send and receive chunk size (and buffer) of a session, in bytes: the
/// smallest the protocol allows (OPC UA Part 6, 7.1.2.3). A session keeps
/// a send buffer and a chunk store of this size for its lifetime.
const CHUNK_BYTES: usize = 8192;

/// Chunks a message may have: as large a message as the library's default
/// limits allow (5 chunks of 64 KiB), in chunks of [`CHUNK_BYTES`].
const MAX_CHUNKS: usize = opcua::types::constants::MAX_MESSAGE_SIZE.div_ceil(CHUNK_BYTES);

/// The client for one link; its certificate store is `pki_dir`.
pub(crate) fn build_client(cfg: &OpcUaLinkConfig, pki_dir: &Path) -> Result<Client, String> {
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    pki::prepare(pki_dir).map_err(|e| format!("pki directory {}: {e}", pki_dir.display()))?;
    ClientBuilder::new()
        .application_name("Shuzhuan agent")
        .application_uri(pki::APPLICATION_URI)
        .product_uri(pki::APPLICATION_URI)
        .create_sample_keypair(true)
        .pki_dir(pki_dir)
        .trust_server_certs(false)
        .verify_server_certs(cfg.verify_server_certificate)
        // Reconnection is the link's job (it re-resolves and re-subscribes).
        .session_retry_limit(0)
        .recreate_subscriptions(false)
        .request_timeout(Duration::from_millis(cfg.timeout_ms))
        .session_timeout(cfg.session_timeout_ms.min(u64::from(u32::MAX)) as u32)
        .keep_alive_interval(Duration::from_millis(cfg.timeout_ms.clamp(1_000, 10_000)))
        .max_failed_keep_alive_count(2)
        // Chunk buffers of 8 KiB each way instead of 64 KiB: a session keeps
        // one of each for its lifetime, and the agent's messages (reads and
        // publish responses of a few hundred items) fit in a few chunks;
        // larger ones (endpoint lists with certificates) in more chunks, up
        // to the same message size as before.
        .max_incoming_chunk_size(CHUNK_BYTES)
        .max_chunk_size(CHUNK_BYTES)
        .max_chunk_count(MAX_CHUNKS)
        .session_name(format!("shuzhuan-agent {}", cfg.id))
        .client()
        .map_err(|e| e.join("; "))
}

fn identity(cfg: &OpcUaLinkConfig) -> Result<IdentityToken, String> {
    Ok(match &cfg.identity {
        Identity::Anonymous => IdentityToken::Anonymous,
        Identity::UserName(u) => {
            IdentityToken::UserName(u.username.clone(), Password::new(u.password.clone()))
        }
        Identity::Certificate(c) => {
            let cert = CertificateStore::read_cert(&c.cert)
                .map_err(|e| format!("user certificate {}: {e}", c.cert.display()))?;
            let key = CertificateStore::read_pkey(&c.key)
                .map_err(|e| format!("user key {}: {e}", c.key.display()))?;
            IdentityToken::X509(Box::new(cert), Box::new(key))
        }
    })
}

/// Why connecting failed: a bounded reason for metrics and a sentence for logs.
#[derive(Debug)]
pub(crate) struct ConnectError {
    pub reason: &'static str,
    pub detail: String,
}

/// Opens a session (endpoint discovery, secure channel, CreateSession,
/// ActivateSession) within the link's timeout.
pub(crate) async fn connect(
    client: &mut Client,
    cfg: &OpcUaLinkConfig,
) -> Result<Connected, ConnectError> {
    let token = identity(cfg).map_err(|detail| ConnectError {
        reason: "identity",
        detail,
    })?;
    let mode = match cfg.security_mode {
        SecurityModeName::None => MessageSecurityMode::None,
        SecurityModeName::Sign => MessageSecurityMode::Sign,
        SecurityModeName::SignAndEncrypt => MessageSecurityMode::SignAndEncrypt,
    };
    let timeout = Duration::from_millis(cfg.timeout_ms.max(100));
    let endpoint = (
        cfg.endpoint.as_str(),
        cfg.security_policy.as_str(),
        mode,
        UserTokenPolicy::anonymous(),
    );
    let (session, event_loop) = match tokio::time::timeout(
        timeout,
        client.connect_to_matching_endpoint(endpoint, token),
    )
    .await
    {
        Err(_) => {
            return Err(ConnectError {
                reason: "BadTimeout",
                detail: "endpoint discovery timed out".into(),
            })
        }
        Ok(Err(e)) => {
            return Err(ConnectError {
                reason: e.status().sub_code().name(),
                detail: e.to_string(),
            })
        }
        Ok(Ok(s)) => s,
    };

    // The event loop ends when the connection is lost instead of
    // reconnecting by itself: the link re-resolves and re-subscribes.
    session.disable_reconnects();
    let mut driver = event_loop.spawn();
    tokio::select! {
        connected = session.wait_for_connection() => {
            if connected {
                Ok(Connected { session, driver })
            } else {
                driver.abort();
                Err(ConnectError { reason: "BadConnectionClosed", detail: "session not established".into() })
            }
        }
        end = &mut driver => {
            let code = end.unwrap_or(StatusCode::BadUnexpectedError);
            Err(ConnectError { reason: code.sub_code().name(), detail: format!("session not established: {code}") })
        }
        _ = tokio::time::sleep(timeout) => {
            driver.abort();
            Err(ConnectError { reason: "BadTimeout", detail: "session not established in time".into() })
        }
    }
}

/// Delay before reconnect attempt `attempt` (0-based): `initial × 2^attempt`
/// capped at `max`, then scaled into [½, 1] by `jitter` ∈ [0, 1] so many
/// gateways do not reconnect in step after a server restart.
pub(crate) fn backoff(attempt: u32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    let base = initial.saturating_mul(1u32 << attempt.min(20)).min(max);
    base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// A jitter value in [0, 1) without a random-number dependency: std's
/// per-process random hasher keys, mixed with the attempt and the time.
pub(crate) fn jitter(attempt: u32) -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    h.write_i64(crate::clock::wall_ms());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_within_jitter_bounds() {
        let (i, m) = (Duration::from_millis(500), Duration::from_secs(30));
        assert_eq!(backoff(0, i, m, 1.0), Duration::from_millis(500));
        assert_eq!(backoff(0, i, m, 0.0), Duration::from_millis(250));
        assert_eq!(backoff(3, i, m, 1.0), Duration::from_millis(4_000));
        assert_eq!(backoff(10, i, m, 1.0), m);
        assert_eq!(backoff(u32::MAX, i, m, 0.0), m / 2);
        for a in 0..50 {
            let j = jitter(a);
            assert!((0.0..1.0).contains(&j));
        }
    }
}
