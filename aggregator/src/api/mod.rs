//! The JSON API under `/api/v1` and `/metrics`.
//!
//! Agents authenticate by what they send (an enrolment token, then signed
//! reports); people and tools by `Authorization: Bearer <api token>`, whose
//! role is checked on every request (see [`auth`]). Every error body is
//! `{"error": "sentence", "code": "snake_case"}`. Store calls are blocking
//! and run on tokio's blocking pool.

pub mod auth;
pub mod evidence;
pub mod openapi;
mod routes;

use crate::config::IngestLimits;
use crate::metrics::Metrics;
use crate::store::{AcceptHook, Store, StoreError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;

/// Reads the server clock (Unix seconds); tests substitute a fixed one.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    })
}

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub hook: Arc<dyn AcceptHook>,
    pub limits: IngestLimits,
    pub utc_offset_secs: i64,
    pub enrol_token_ttl_secs: i64,
    pub metrics: Metrics,
    pub clock: Clock,
    /// Reference data the indicator pages need (targets, assessment items,
    /// factor sets), loaded at start.
    pub reference: Arc<crate::rollup::Reference>,
    /// The evidence log served under `/api/v1/evidence/`; `None` without one.
    pub evidence: Option<Arc<evidence::EvidenceService>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// For chain errors: the seq the aggregator expects next.
    pub expected_seq: Option<u64>,
    /// Extra fields merged into the body (e.g. `bad_rows` of an import).
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: message.into(),
            expected_seq: None,
            details: None,
        }
    }
    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(404, "not_found", what)
    }
    pub fn bad_request(code: &'static str, what: impl Into<String>) -> ApiError {
        ApiError::new(400, code, what)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "store failure");
        ApiError::new(503, "store_unavailable", format!("the store failed: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.message, "code": self.code });
        if let Some(s) = self.expected_seq {
            body["expected_seq"] = s.into();
        }
        for (k, v) in self.details.into_iter().flatten() {
            body[k] = v;
        }
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("5"));
        }
        resp
    }
}

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(500, "internal", format!("worker failed: {e}")))?
}

/// The whole JSON API and `/metrics`, state applied. The dashboard's
/// routes (`aggregator/src/web/`) merge into this with `Router::merge`.
pub fn router(state: AppState) -> axum::Router {
    routes::router(state)
}
