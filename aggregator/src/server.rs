//! `shuzhuan-aggregator serve`: open the store, start the roll-up loop
//! (refresh dirty periods, prune fine rows past retention, publish city
//! metrics) and serve HTTP until SIGINT/SIGTERM.
//!
//! With `[server] tls_cert_file` and `tls_key_file` it serves HTTPS itself
//! (rustls, ring provider; handshakes run off the accept loop, see
//! [`TlsListener`]), optionally requiring client certificates signed by
//! `tls_client_ca_file`. Without them it serves plain HTTP (keep `listen` on
//! loopback behind a TLS-terminating proxy then).

use crate::api::evidence::EvidenceService;
use crate::api::{self, AppState, Clock};
use crate::config::{Config, ServerTls};
use crate::evidence::{load_or_create_log_key, EvidenceLog};
use crate::metrics::Metrics;
use crate::rollup::{self, Reference};
use crate::store::{AcceptHook, Period, SqliteStore, Store};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// Builds the application state over an opened store.
pub fn state(
    config: &Config,
    store: Arc<dyn Store>,
    hook: Arc<dyn AcceptHook>,
    clock: Clock,
) -> AppState {
    AppState {
        store,
        hook,
        limits: config.ingest.clone(),
        utc_offset_secs: config.utc_offset_secs,
        enrol_token_ttl_secs: config.enrol_token_ttl_secs,
        metrics: Metrics::new(),
        clock,
        reference: Arc::new(load_reference(config)),
        evidence: None,
    }
}

/// The reference data of `config.reference_dir`; without it (missing or
/// invalid files, each logged) the pages show counts without targets.
pub fn load_reference(config: &Config) -> Reference {
    match Reference::load(&config.reference_dir) {
        Ok(r) => r,
        Err(problems) => {
            for p in &problems {
                tracing::warn!(problem = %p, "reference data not loaded");
            }
            Reference::default()
        }
    }
}

/// Opens the evidence log of `config` over `store` (creating its key file
/// when missing) and logs every stored report not in it yet.
pub fn open_evidence(
    config: &Config,
    store: &Arc<SqliteStore>,
) -> Result<Arc<EvidenceService>, crate::evidence::EvidenceError> {
    let key = load_or_create_log_key(&config.log_key_file)?;
    let log = EvidenceLog::open(store, config.log_origin.clone(), key)?;
    let added = log.backfill(store)?;
    if added > 0 {
        tracing::info!(leaves = added, "evidence log backfilled");
    }
    Ok(Arc::new(EvidenceService {
        store: store.clone(),
        log: Arc::new(log),
    }))
}

/// One pass of background work; returns the (enterprise, period) pairs redone.
pub fn rollup_tick(state: &AppState, retention_days: i64) -> Result<u64, crate::store::StoreError> {
    let n = state.store.refresh_periods()?;
    let now = (state.clock)();
    state.store.prune_fine(now - retention_days * 86_400)?;
    let day = crate::days::day_of(now, state.utc_offset_secs);
    let [month, quarter, year] = Period::containing(day);
    // The current month and quarter are built here too, so the dashboard's
    // first request after a refresh finds them in the cache.
    for p in [month, quarter] {
        rollup::enterprise_facts(&*state.store, &state.reference, p)?;
    }
    let facts = rollup::enterprise_facts(&*state.store, &state.reference, year)?;
    let all: Vec<_> = facts.iter().collect();
    let page = rollup::group_json(&all);
    for ind in ["digitization", "networking", "key_process_nc"] {
        for (basis, key) in [
            ("measured", "measured"),
            ("declared", "declared_questionnaire"),
        ] {
            for agg in ["mean", "pooled"] {
                if let Some(v) = page[ind][key][agg].as_f64() {
                    state
                        .metrics
                        .city_rate
                        .with_label_values(&[ind, basis, agg])
                        .set(v);
                }
            }
        }
    }
    if let Some(v) = page["rd_design_tools"]["declared"]["mean"].as_f64() {
        state
            .metrics
            .city_rate
            .with_label_values(&["rd_design_tools", "declared", "mean"])
            .set(v);
    }
    for basis in [
        "enterprises_with_measured_data",
        "enterprises_declared_only",
    ] {
        if let Some(v) = page[basis].as_f64() {
            state
                .metrics
                .city_enterprises
                .with_label_values(&[basis])
                .set(v);
        }
    }
    state
        .metrics
        .store_bytes
        .set(state.store.size_bytes()? as i64);
    Ok(n)
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("evidence log: {0}")]
    Evidence(#[from] crate::evidence::EvidenceError),
    #[error("listen address {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("http server: {0}")]
    Http(#[from] std::io::Error),
    /// A TLS file could not be read or used (the message names the key and file).
    #[error("{0}")]
    Tls(String),
    /// `[influxdb]` could not be set up (the message names the key and file).
    #[error("{0}")]
    Influx(String),
}

/// Reads every certificate of a PEM file (at least one), naming `key` and the file on error.
fn pem_certs(
    path: &std::path::Path,
    key: &str,
) -> Result<Vec<CertificateDer<'static>>, ServeError> {
    let bad = |e: String| ServeError::Tls(format!("[server] {key} `{}`: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".into(),
        ));
    }
    Ok(certs)
}

/// Builds the TLS acceptor of `[server] tls_*`: a bad path, unparsable PEM,
/// a key that does not match the certificate or an unusable client CA is
/// an error naming the key and the file.
pub fn tls_acceptor(tls: &ServerTls) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = pem_certs(&tls.cert_file, "tls_cert_file")?;
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| {
        let why = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PEM private key (-----BEGIN PRIVATE KEY-----) in the file".to_owned()
            }
            e => e.to_string(),
        };
        ServeError::Tls(format!(
            "[server] tls_key_file `{}`: {why}",
            tls.key_file.display()
        ))
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(format!("TLS setup: {e}")))?;
    let builder = match &tls.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in pem_certs(ca, "tls_client_ca_file")? {
                roots.add(c).map_err(|e| {
                    ServeError::Tls(format!(
                        "[server] tls_client_ca_file `{}`: a certificate is not a usable CA: {e}",
                        ca.display()
                    ))
                })?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| {
                        ServeError::Tls(format!(
                            "[server] tls_client_ca_file `{}`: {e}",
                            ca.display()
                        ))
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        ServeError::Tls(format!(
            "[server] tls_cert_file `{}` with tls_key_file `{}`: {e}",
            tls.cert_file.display(),
            tls.key_file.display()
        ))
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A TLS listener for `axum::serve`: a task accepts TCP connections and
/// runs each handshake in its own task (so a slow or failing client never
/// holds up others); finished handshakes are handed to the server. Failed
/// handshakes are logged with the peer address and reason.
#[derive(Debug)]
pub struct TlsListener {
    local: std::net::SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, std::net::SocketAddr)>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Wraps a bound TCP listener.
    pub fn new(tcp: TcpListener, acceptor: tokio_rustls::TlsAcceptor) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let accept_task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, then go on.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            local,
            ready,
            accept_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task holds a sender until it is aborted on drop.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Serves until a shutdown signal.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    // TLS files first: a bad one stops the start before anything is opened.
    let acceptor = config.tls.as_ref().map(tls_acceptor).transpose()?;
    let influx = (config.influxdb.as_ref())
        .map(|i| crate::influx::InfluxSink::new(i).map(Arc::new))
        .transpose()
        .map_err(ServeError::Influx)?;
    let sqlite = Arc::new(SqliteStore::open(&config.store_path)?);
    let ev = open_evidence(&config, &sqlite)?;
    tracing::info!(key = %config.log_key_file.display(), public_key = %ev.log.public_key_b64(), "evidence log open");
    let hook: Arc<dyn AcceptHook> = ev.log.clone();
    let mut st = state(&config, sqlite, hook, api::system_clock());
    st.evidence = Some(ev);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    tracing::info!(listen = %config.listen, store = %config.store_path.display(), tls = acceptor.is_some(), "aggregator serving");
    let bg = st.clone();
    let every = std::time::Duration::from_secs(config.rollup_interval_secs);
    let retention = config.fine_retention_days;
    let ticker = tokio::spawn(async move {
        let mut iv = tokio::time::interval(every);
        loop {
            iv.tick().await;
            let s = bg.clone();
            match tokio::task::spawn_blocking(move || rollup_tick(&s, retention)).await {
                Ok(Ok(n)) => {
                    tracing::debug!(pairs = n, "roll-up refreshed");
                    if let Some(sink) = &influx {
                        sink.after_tick(bg.clone()); // its own task: never holds up the tick
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "roll-up failed; will retry"),
                Err(e) => tracing::warn!(error = %e, "roll-up task failed"),
            }
        }
    });
    let app = api::router(st.clone()).merge(crate::web::router(st, &config.reference_dir));
    match acceptor {
        Some(acceptor) => {
            axum::serve(TlsListener::new(listener, acceptor)?, app)
                .with_graceful_shutdown(shutdown_signal())
                .await?
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await?
        }
    }
    ticker.abort();
    tracing::info!("aggregator stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// A self-signed certificate and key made by the `openssl` CLI
    /// (tests/peers/install.sh installs it).
    fn self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
        let st = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
            .args([
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("the openssl CLI (tests/peers/install.sh)");
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        (cert, key)
    }

    fn err(tls: &ServerTls) -> String {
        tls_acceptor(tls).err().expect("refused").to_string()
    }

    #[test]
    fn bad_tls_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path());
        let ok = ServerTls {
            cert_file: cert.clone(),
            key_file: key.clone(),
            client_ca_file: None,
        };
        assert!(tls_acceptor(&ok).is_ok());
        assert!(tls_acceptor(&ServerTls {
            client_ca_file: Some(cert.clone()),
            ..ok.clone()
        })
        .is_ok());

        let missing = dir.path().join("missing.pem");
        let e = err(&ServerTls {
            cert_file: missing.clone(),
            ..ok.clone()
        });
        assert!(
            e.contains("[server] tls_cert_file") && e.contains("missing.pem"),
            "{e}"
        );

        let text = dir.path().join("text.pem");
        std::fs::write(&text, "hello\n").unwrap();
        let e = err(&ServerTls {
            cert_file: text.clone(),
            ..ok.clone()
        });
        assert!(
            e.contains("text.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
        let e = err(&ServerTls {
            key_file: text.clone(),
            ..ok.clone()
        });
        assert!(
            e.contains("[server] tls_key_file") && e.contains("no PEM private key"),
            "{e}"
        );
        let e = err(&ServerTls {
            key_file: missing.clone(),
            ..ok.clone()
        });
        assert!(
            e.contains("[server] tls_key_file") && e.contains("missing.pem"),
            "{e}"
        );
        let e = err(&ServerTls {
            client_ca_file: Some(text.clone()),
            ..ok.clone()
        });
        assert!(
            e.contains("[server] tls_client_ca_file") && e.contains("text.pem"),
            "{e}"
        );

        // A key that is not the certificate's.
        let other = tempfile::tempdir().unwrap();
        let (_, other_key) = self_signed(other.path());
        let e = err(&ServerTls {
            key_file: other_key,
            ..ok.clone()
        });
        assert!(
            e.contains("tls_cert_file") && e.contains("tls_key_file"),
            "{e}"
        );
    }
}
