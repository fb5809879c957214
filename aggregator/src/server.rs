//! `shuzhuan-aggregator serve`: open the store, start the roll-up loop
//! (refresh dirty periods, prune fine rows past retention, publish city
//! metrics) and serve HTTP until SIGINT/SIGTERM.
//!
//! TLS is not terminated here in this build: run behind a reverse proxy
//! (nginx, Caddy) that terminates TLS, and keep `listen` on loopback.

use crate::api::evidence::EvidenceService;
use crate::api::{self, AppState, Clock};
use crate::config::Config;
use crate::evidence::{load_or_create_log_key, EvidenceLog};
use crate::metrics::Metrics;
use crate::rollup::{self, Reference};
use crate::store::{AcceptHook, Period, SqliteStore, Store};
use std::sync::Arc;

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
    let year = Period::containing(day)[2];
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
}

/// Serves until a shutdown signal.
pub async fn serve(config: Config) -> Result<(), ServeError> {
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
    tracing::info!(listen = %config.listen, store = %config.store_path.display(), "aggregator serving");
    let bg = st.clone();
    let every = std::time::Duration::from_secs(config.rollup_interval_secs);
    let retention = config.fine_retention_days;
    let ticker = tokio::spawn(async move {
        let mut iv = tokio::time::interval(every);
        loop {
            iv.tick().await;
            let s = bg.clone();
            match tokio::task::spawn_blocking(move || rollup_tick(&s, retention)).await {
                Ok(Ok(n)) => tracing::debug!(pairs = n, "roll-up refreshed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "roll-up failed; will retry"),
                Err(e) => tracing::warn!(error = %e, "roll-up task failed"),
            }
        }
    });
    let app = api::router(st.clone()).merge(crate::web::router(st, &config.reference_dir));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
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
