//! Enrolment: one-time tokens created by an admin for an enterprise, and
//! `POST /api/v1/enroll`, where an agent presents a token and registers its
//! Ed25519 public key. Enrolling again with a fresh token under the same
//! agent id rotates the key (the chain continues, the old key stops working).
//!
//! Secrets (enrolment and API tokens) are random 32 bytes shown once as
//! base64url; the store keeps only their SHA-256, so a copy of the database
//! does not let anyone enrol or call the API.

use crate::store::{EnrolError, Store, StoreError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use shuzhuan_common::credit_code::CreditCode;
use shuzhuan_common::report::{verifying_key_from_b64, verifying_key_to_b64};

/// A fresh random secret (43 characters of base64url).
pub fn new_secret() -> String {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).expect("the operating system's random source works");
    URL_SAFE_NO_PAD.encode(buf)
}

/// What the store keeps of a secret.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.trim().as_bytes()))
}

/// Creates a one-time enrolment token for `enterprise`, valid `ttl_secs`.
pub fn create_token(
    store: &dyn Store,
    enterprise: &CreditCode,
    now: i64,
    ttl_secs: i64,
) -> Result<String, EnrolRequestError> {
    if store.enterprise(enterprise.as_str())?.is_none() {
        return Err(EnrolRequestError::UnknownEnterprise(enterprise.to_string()));
    }
    let token = new_secret();
    store.create_enrol_token(&secret_hash(&token), enterprise, now, now + ttl_secs)?;
    Ok(token)
}

/// The enrolment request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    pub token: String,
    pub agent_id: String,
    pub enterprise: String,
    pub public_key: String,
}

/// Why an enrolment request failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrolRequestError {
    #[error("request body is not an enrolment request: {0}")]
    Malformed(String),
    #[error("`{0}` is not a valid agent id (1 to 64 of A-Z a-z 0-9 . _ -)")]
    BadAgentId(String),
    #[error("public_key is not a base64 Ed25519 public key")]
    BadKey,
    #[error("{0}")]
    BadEnterprise(String),
    #[error("enterprise {0} is not in the registry")]
    UnknownEnterprise(String),
    #[error(transparent)]
    Enrol(#[from] EnrolError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EnrolRequestError {
    pub fn status(&self) -> u16 {
        match self {
            EnrolRequestError::Malformed(_)
            | EnrolRequestError::BadAgentId(_)
            | EnrolRequestError::BadKey
            | EnrolRequestError::BadEnterprise(_) => 400,
            EnrolRequestError::UnknownEnterprise(_) => 404,
            EnrolRequestError::Enrol(EnrolError::BadToken)
            | EnrolRequestError::Enrol(EnrolError::WrongEnterprise { .. }) => 401,
            EnrolRequestError::Enrol(EnrolError::AgentTaken { .. })
            | EnrolRequestError::Enrol(EnrolError::Revoked(_)) => 409,
            EnrolRequestError::Enrol(EnrolError::Store(_)) | EnrolRequestError::Store(_) => 503,
        }
    }
    pub fn code(&self) -> &'static str {
        match self {
            EnrolRequestError::Malformed(_) => "malformed",
            EnrolRequestError::BadAgentId(_) => "bad_agent_id",
            EnrolRequestError::BadKey => "bad_public_key",
            EnrolRequestError::BadEnterprise(_) => "bad_credit_code",
            EnrolRequestError::UnknownEnterprise(_) => "unknown_enterprise",
            EnrolRequestError::Enrol(EnrolError::BadToken) => "bad_token",
            EnrolRequestError::Enrol(EnrolError::WrongEnterprise { .. }) => "wrong_enterprise",
            EnrolRequestError::Enrol(EnrolError::AgentTaken { .. }) => "agent_taken",
            EnrolRequestError::Enrol(EnrolError::Revoked(_)) => "revoked_agent",
            EnrolRequestError::Enrol(EnrolError::Store(_)) | EnrolRequestError::Store(_) => {
                "store_unavailable"
            }
        }
    }
}

fn valid_agent_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Handles an enrolment request body. Returns (agent_id, enterprise).
pub fn enroll(
    store: &dyn Store,
    body: &[u8],
    now: i64,
) -> Result<(String, String), EnrolRequestError> {
    let req: EnrolRequest =
        serde_json::from_slice(body).map_err(|e| EnrolRequestError::Malformed(e.to_string()))?;
    if !valid_agent_id(&req.agent_id) {
        return Err(EnrolRequestError::BadAgentId(req.agent_id));
    }
    let enterprise = CreditCode::parse(&req.enterprise)
        .map_err(|e| EnrolRequestError::BadEnterprise(e.to_string()))?;
    let key = verifying_key_from_b64(&req.public_key).ok_or(EnrolRequestError::BadKey)?;
    store.enroll(
        &secret_hash(&req.token),
        &req.agent_id,
        &enterprise,
        &verifying_key_to_b64(&key),
        now,
    )?;
    tracing::info!(agent_id = %req.agent_id, enterprise = %enterprise, "agent enrolled");
    Ok((req.agent_id, enterprise.to_string()))
}
