//! Bearer-token authentication and role checks.
//!
//! Roles: `admin` (everything), `bureau` (read all, record assessment
//! scores), `evaluator` (read all, verification), `county` (read its own
//! county), `enterprise` (read its own data). The token's secret is never
//! logged; only its name appears in logs.

use super::{ApiError, AppState};
use crate::enroll::{new_secret, secret_hash};
use crate::store::{ApiToken, Role, Store, StoreError};
use axum::http::HeaderMap;
use shuzhuan_common::registry::Enterprise;

/// Roles that read every county and enterprise.
pub const CITY_READERS: &[Role] = &[Role::Admin, Role::Bureau, Role::Evaluator];

/// Finds the caller's token, or answers 401.
pub async fn caller(state: &AppState, headers: &HeaderMap) -> Result<ApiToken, ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(ApiError::new(
            401,
            "unauthenticated",
            "this path needs `Authorization: Bearer <token>`",
        ));
    };
    let secret = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                401,
                "unauthenticated",
                "authorization header is not `Bearer <token>`",
            )
        })?
        .to_owned();
    let store = state.store.clone();
    let tok = super::blocking(move || Ok(store.api_token(&secret_hash(&secret))?)).await?;
    tok.ok_or_else(|| ApiError::new(401, "unauthenticated", "API token is unknown or revoked"))
}

/// Answers 403 unless the caller has one of `roles`.
pub fn require(tok: &ApiToken, roles: &[Role]) -> Result<(), ApiError> {
    if roles.contains(&tok.role) {
        Ok(())
    } else {
        let allowed = roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Err(ApiError::new(
            403,
            "forbidden",
            format!(
                "role `{}` may not use this path (allowed: {allowed})",
                tok.role.as_str()
            ),
        ))
    }
}

/// Whether the caller may see this enterprise's data.
pub fn may_see_enterprise(tok: &ApiToken, e: &Enterprise) -> bool {
    match tok.role {
        Role::Admin | Role::Bureau | Role::Evaluator => true,
        Role::County => tok.scope.as_deref() == Some(e.county.as_str()),
        Role::Enterprise => tok.scope.as_deref() == Some(e.credit_code.as_str()),
    }
}

/// Whether the caller may see this county's pages.
pub fn may_see_county(tok: &ApiToken, county: &str) -> bool {
    match tok.role {
        Role::Admin | Role::Bureau | Role::Evaluator => true,
        Role::County => tok.scope.as_deref() == Some(county),
        Role::Enterprise => false,
    }
}

/// Creates an API token and returns its secret (shown once).
pub fn create_api_token(
    store: &dyn Store,
    name: &str,
    role: Role,
    scope: Option<String>,
    now: i64,
) -> Result<String, StoreError> {
    let secret = new_secret();
    store.create_api_token(
        &secret_hash(&secret),
        &ApiToken {
            name: name.to_owned(),
            role,
            scope,
        },
        now,
    )?;
    Ok(secret)
}
