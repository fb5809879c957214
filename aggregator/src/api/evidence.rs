//! The evidence log over HTTP (`docs/specs/evidence.md`): a freshly signed
//! checkpoint with the log's public key, inclusion proofs of one accepted
//! report, and consistency proofs between two log sizes. Readers of the
//! whole city (admin, bureau, evaluator) only; 404 `evidence_disabled` when
//! the server runs without a log.

use super::auth::{caller, require, CITY_READERS};
use super::{blocking, ApiError, AppState};
use crate::evidence::EvidenceLog;
use crate::store::{SqliteStore, StoreError};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use rusqlite::OptionalExtension as _;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The log and the SQLite store it lives in.
#[derive(Debug)]
pub struct EvidenceService {
    pub store: Arc<SqliteStore>,
    pub log: Arc<EvidenceLog>,
}

async fn service(state: &AppState, headers: &HeaderMap) -> Result<Arc<EvidenceService>, ApiError> {
    let tok = caller(state, headers).await?;
    require(&tok, CITY_READERS)?;
    state.evidence.clone().ok_or_else(|| {
        ApiError::new(
            404,
            "evidence_disabled",
            "this server runs without an evidence log",
        )
    })
}

fn hexes(v: &[shuzhuan_common::report::Hash32]) -> Vec<String> {
    v.iter().map(|h| h.to_hex()).collect()
}

/// `GET /api/v1/evidence/checkpoint`: signs (and stores) a checkpoint of the log as it is now.
pub(super) async fn checkpoint(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let ev = service(&state, &headers).await?;
    let signed = blocking(move || {
        ev.log
            .checkpoint(&ev.store)
            .map(|(_, s)| (s, ev.log.public_key_b64()))
            .map_err(|e| ApiError::new(503, "evidence_unavailable", e.to_string()))
    })
    .await?;
    Ok(Json(
        json!({ "signed_checkpoint": signed.0, "log_public_key": signed.1 }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InclusionQuery {
    agent_id: String,
    seq: u64,
    /// Log size the proof is against; default: the current size.
    size: Option<u64>,
}

/// `GET /api/v1/evidence/inclusion?agent_id=&seq=[&size=]`.
pub(super) async fn inclusion(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<InclusionQuery>,
) -> Result<Json<Value>, ApiError> {
    let ev = service(&state, &headers).await?;
    blocking(move || {
        let (log, index) = ev.store.with_write_tx(|tx| {
            let index: Option<i64> = tx
                .query_row(
                    "SELECT leaf_index FROM evidence_leaves WHERE agent_id = ?1 AND seq = ?2",
                    rusqlite::params![q.agent_id, q.seq as i64],
                    |r| r.get(0),
                )
                .optional()
                .map_err(StoreError::from)?;
            Ok((EvidenceLog::load(tx)?, index))
        })?;
        let index = index.ok_or_else(|| {
            ApiError::not_found(format!(
                "report seq {} of agent `{}` is not in the log",
                q.seq, q.agent_id
            ))
        })? as u64;
        let size = q.size.unwrap_or(log.len());
        let proof = log.inclusion_proof(index, size).map_err(|e| {
            ApiError::bad_request(
                "bad_size",
                format!("no proof of leaf {index} at size {size}: {e}"),
            )
        })?;
        let root = log
            .root_at(size)
            .map_err(|e| ApiError::bad_request("bad_size", e.to_string()))?;
        Ok(Json(json!({
            "leaf_index": index,
            "size": size,
            "root_hash": root.to_hex(),
            "leaf_hash": log.leaf(index).map(|h| h.to_hex()),
            "inclusion_proof": hexes(&proof),
        })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsistencyQuery {
    old: u64,
    new: Option<u64>,
}

/// `GET /api/v1/evidence/consistency?old=&new=`.
pub(super) async fn consistency(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Json<Value>, ApiError> {
    let ev = service(&state, &headers).await?;
    blocking(move || {
        let log = ev.store.with_write_tx(|tx| EvidenceLog::load(tx))?;
        let new = q.new.unwrap_or(log.len());
        let bad = |e: shuzhuan_common::merkle::MerkleError| {
            ApiError::bad_request(
                "bad_size",
                format!("no consistency proof from {} to {new}: {e}", q.old),
            )
        };
        let proof = log.consistency_proof(q.old, new).map_err(bad)?;
        Ok(Json(json!({
            "old": q.old,
            "new": new,
            "old_root": log.root_at(q.old).map_err(bad)?.to_hex(),
            "new_root": log.root_at(new).map_err(bad)?.to_hex(),
            "consistency_proof": hexes(&proof),
        })))
    })
    .await
}
