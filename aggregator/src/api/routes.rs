//! Route table and handlers of `/api/v1` and `/metrics`.

use super::auth::{caller, may_see_county, may_see_enterprise, require, CITY_READERS};
use super::{blocking, ApiError, AppState};
use crate::days::{day_string, parse_day};
use crate::ingest::{ingest, IngestError};
use crate::registry::{self, RowError};
use crate::store::{AssessmentScore, Role, Store, EXPORTABLE};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use shuzhuan_common::credit_code::CreditCode;
use std::collections::BTreeSet;

pub(super) fn router(state: AppState) -> Router {
    let max_body = state.limits.max_body_bytes;
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/api/v1/enroll", post(enroll))
        .route("/api/v1/reports", post(reports))
        .route("/api/v1/enrolment-tokens", post(create_enrol_token))
        .route("/api/v1/agents", get(agents))
        .route("/api/v1/agents/{agent_id}/revoke", post(revoke_agent))
        .route("/api/v1/gaps", get(gaps))
        .route("/api/v1/counties", get(counties))
        .route("/api/v1/chains", get(chains))
        .route("/api/v1/enterprises", get(enterprises))
        .route("/api/v1/enterprises/{code}", get(enterprise))
        .route("/api/v1/enterprises/{code}/days", get(enterprise_days))
        .route("/api/v1/recognitions", get(recognitions))
        .route("/api/v1/registry/enterprises", post(import_enterprises))
        .route("/api/v1/registry/recognitions", post(import_recognitions))
        .route("/api/v1/indicators", get(indicators))
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/assessment", get(assessment))
        .route("/api/v1/assessment/{county}/{item}", put(record_score))
        .route("/api/v1/exports/{file}", get(export))
        .route(
            "/api/v1/evidence/checkpoint",
            get(super::evidence::checkpoint),
        )
        .route(
            "/api/v1/evidence/inclusion",
            get(super::evidence::inclusion),
        )
        .route(
            "/api/v1/evidence/consistency",
            get(super::evidence::consistency),
        )
        // Bodies are read and limited by the handlers so an oversized body
        // gets the contract's JSON 413, not a bare one.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
        .fallback(|| async { ApiError::not_found("no such path") })
        .layer(axum::middleware::from_fn(move |req, next| {
            limit_body(req, next, max_body)
        }))
}

/// Reads at most `max` bytes of the body; a larger body is answered with 413.
async fn limit_body(
    req: axum::extract::Request,
    next: axum::middleware::Next,
    max: usize,
) -> Response {
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, max).await {
        Ok(bytes) => {
            next.run(axum::extract::Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(_) => ApiError::new(
            413,
            "body_too_large",
            format!("request body exceeds {max} bytes"),
        )
        .into_response(),
    }
}

fn now(state: &AppState) -> i64 {
    (state.clock)()
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::SPEC,
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    if let Ok(Ok(size)) = tokio::task::spawn_blocking(move || store.size_bytes()).await {
        state.metrics.store_bytes.set(size as i64);
    }
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

async fn enroll(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    let t = now(&state);
    let out = blocking(move || {
        crate::enroll::enroll(&*store, &body, t)
            .map_err(|e| ApiError::new(e.status(), e.code(), e.to_string()))
    })
    .await?;
    state.metrics.enrolments.inc();
    Ok(Json(json!({ "agent_id": out.0, "enterprise": out.1 })))
}

async fn reports(State(state): State<AppState>, body: Body) -> Result<Json<Value>, ApiError> {
    let t = now(&state);
    // Read at most the limit: a larger body is refused as soon as it passes
    // it, never held whole in memory.
    let max = state.limits.max_body_bytes;
    let body = match axum::body::to_bytes(body, max).await {
        Ok(b) => b,
        Err(e) => {
            let e = if is_length_limit(&e) {
                IngestError::TooLarge { max }
            } else {
                IngestError::Malformed(format!("the request body could not be read: {e}"))
            };
            state.metrics.rejects.with_label_values(&[e.code()]).inc();
            tracing::info!(code = e.code(), error = %e, "report batch refused");
            return Err(ApiError::new(e.status(), e.code(), e.to_string()));
        }
    };
    let timer = state.metrics.batch_seconds.start_timer();
    let st = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        ingest(
            &*st.store,
            &*st.hook,
            &st.limits,
            st.utc_offset_secs,
            &body,
            t,
        )
    })
    .await
    .map_err(|e| ApiError::new(500, "internal", format!("worker failed: {e}")))?;
    timer.observe_duration();
    match result {
        Ok(o) => {
            state.metrics.reports_accepted.inc_by(o.accepted);
            state.metrics.reports_duplicate.inc_by(o.duplicates);
            Ok(Json(
                json!({ "accepted": o.accepted, "duplicates": o.duplicates, "head_seq": o.head_seq }),
            ))
        }
        Err(e) => {
            state.metrics.rejects.with_label_values(&[e.code()]).inc();
            if matches!(
                e,
                IngestError::Store(_) | IngestError::Rejected(crate::store::IngestReject::Store(_))
            ) {
                tracing::error!(error = %e, "ingest failed in the store");
            } else {
                tracing::info!(code = e.code(), error = %e, "report batch refused");
            }
            let mut err = ApiError::new(e.status(), e.code(), e.to_string());
            err.expected_seq = e.expected_seq();
            Err(err)
        }
    }
}

/// Whether reading a body failed because it passed `to_bytes`' limit.
fn is_length_limit(e: &axum::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.to_string() == "length limit exceeded" {
            return true;
        }
        cur = err.source();
    }
    false
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    enterprise: String,
}

async fn create_enrol_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let tok = caller(&state, &headers).await?;
    require(&tok, &[Role::Admin])?;
    let req: TokenRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("malformed", format!("request body: {e}")))?;
    let code = CreditCode::parse(&req.enterprise)
        .map_err(|e| ApiError::bad_request("bad_credit_code", e.to_string()))?;
    let (store, t, ttl) = (state.store.clone(), now(&state), state.enrol_token_ttl_secs);
    let token = blocking(move || {
        crate::enroll::create_token(&*store, &code, t, ttl)
            .map_err(|e| ApiError::new(e.status(), e.code(), e.to_string()))
    })
    .await?;
    tracing::info!(by = %tok.name, enterprise = %req.enterprise, "enrolment token created");
    Ok(Json(
        json!({ "token": token, "enterprise": req.enterprise, "expires_at": t + ttl }),
    ))
}

async fn agents(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tok = caller(&state, &headers).await?;
    require(&tok, CITY_READERS)?;
    let store = state.store.clone();
    let agents = blocking(move || Ok(store.agents()?)).await?;
    Ok(Json(json!({ "agents": agents })))
}

async fn revoke_agent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(agent_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tok = caller(&state, &headers).await?;
    require(&tok, &[Role::Admin])?;
    let (store, t, id) = (state.store.clone(), now(&state), agent_id.clone());
    let found = blocking(move || Ok(store.revoke_agent(&id, t)?)).await?;
    if !found {
        return Err(ApiError::not_found(format!(
            "agent `{agent_id}` is not enrolled or already revoked"
        )));
    }
    tracing::info!(by = %tok.name, agent_id = %agent_id, "agent revoked");
    Ok(Json(json!({ "agent_id": agent_id, "revoked_at": t })))
}

async fn gaps(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let tok = caller(&state, &headers).await?;
    require(&tok, CITY_READERS)?;
    let store = state.store.clone();
    let gaps = blocking(move || Ok(store.gaps()?)).await?;
    Ok(Json(json!({ "gaps": gaps })))
}

async fn counties(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    caller(&state, &headers).await?;
    let store = state.store.clone();
    let v = blocking(move || Ok(store.counties()?)).await?;
    Ok(Json(json!({ "counties": v })))
}

async fn chains(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    caller(&state, &headers).await?;
    let store = state.store.clone();
    let v = blocking(move || Ok(store.chains()?)).await?;
    Ok(Json(json!({ "chains": v })))
}

async fn enterprises(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tok = caller(&state, &headers).await?;
    let store = state.store.clone();
    let mut v = blocking(move || Ok(store.enterprises()?)).await?;
    v.retain(|e| may_see_enterprise(&tok, e));
    Ok(Json(json!({ "enterprises": v })))
}

/// Loads an enterprise the caller may see, or answers 404 / 403.
async fn visible_enterprise(
    state: &AppState,
    tok: &crate::store::ApiToken,
    code: &str,
) -> Result<shuzhuan_common::registry::Enterprise, ApiError> {
    let (store, c) = (state.store.clone(), code.to_owned());
    let e = blocking(move || Ok(store.enterprise(&c)?))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("enterprise {code} is not in the registry")))?;
    if !may_see_enterprise(tok, &e) {
        return Err(ApiError::new(
            403,
            "forbidden",
            format!("this token may not read enterprise {code}"),
        ));
    }
    Ok(e)
}

async fn enterprise(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tok = caller(&state, &headers).await?;
    let e = visible_enterprise(&state, &tok, &code).await?;
    let store = state.store.clone();
    let code2 = code.clone();
    let (recs, agents) = blocking(move || {
        let recs: Vec<_> = store
            .recognitions()?
            .into_iter()
            .filter(|r| r.credit_code.as_str() == code2)
            .collect();
        let agents: Vec<_> = store
            .agents()?
            .into_iter()
            .filter(|a| a.enterprise == code2)
            .collect();
        Ok((recs, agents))
    })
    .await?;
    Ok(Json(
        json!({ "enterprise": e, "recognitions": recs, "agents": agents }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DayRange {
    from: String,
    to: String,
}

async fn enterprise_days(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
    Query(q): Query<DayRange>,
) -> Result<Json<Value>, ApiError> {
    let tok = caller(&state, &headers).await?;
    visible_enterprise(&state, &tok, &code).await?;
    let bad =
        |s: &str| ApiError::bad_request("bad_date", format!("`{s}` is not a date like 2026-11-28"));
    let from = parse_day(&q.from).ok_or_else(|| bad(&q.from))?;
    let to = parse_day(&q.to).ok_or_else(|| bad(&q.to))?;
    if to < from || to - from > 366 {
        return Err(ApiError::bad_request(
            "bad_range",
            "`to` must follow `from` by at most 366 days",
        ));
    }
    let store = state.store.clone();
    let c = code.clone();
    let (days, devices) = blocking(move || {
        Ok((
            store.enterprise_days(&c, from, to + 1)?,
            store.device_days(&c, from, to + 1)?,
        ))
    })
    .await?;
    let days: Vec<Value> = days
        .into_iter()
        .map(|d| json!({ "date": day_string(d.day), "devices": d.devices, "state_seconds": crate::rollup::state_map(&d.state_seconds), "nc_seconds": d.nc_seconds, "parts": d.parts, "samples_expected": d.samples_expected, "samples_received": d.samples_received }))
        .collect();
    let devices: Vec<Value> = devices
        .into_iter()
        .map(|(day, d)| json!({ "date": day_string(day), "device_id": d.device_id, "state_seconds": crate::rollup::state_map(&d.state_seconds), "nc_seconds": d.nc_seconds, "parts": d.parts, "samples_expected": d.samples_expected, "samples_received": d.samples_received }))
        .collect();
    Ok(Json(
        json!({ "enterprise": code, "time_zone_offset_secs": state.utc_offset_secs, "days": days, "device_days": devices }),
    ))
}

async fn recognitions(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tok = caller(&state, &headers).await?;
    let store = state.store.clone();
    let (recs, ents) = blocking(move || Ok((store.recognitions()?, store.enterprises()?))).await?;
    let visible: BTreeSet<String> = ents
        .iter()
        .filter(|e| may_see_enterprise(&tok, e))
        .map(|e| e.credit_code.to_string())
        .collect();
    let recs: Vec<_> = recs
        .into_iter()
        .filter(|r| visible.contains(r.credit_code.as_str()))
        .collect();
    Ok(Json(json!({ "recognitions": recs })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    #[serde(default)]
    skip_bad_rows: bool,
}

fn import_answer(stored: usize, bad: Vec<RowError>, skip: bool) -> Result<Json<Value>, ApiError> {
    if !bad.is_empty() && !skip {
        let list = bad
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        let mut err = ApiError::new(
            422,
            "bad_rows",
            format!("{} bad rows, nothing imported (add ?skip_bad_rows=true to import the good ones): {list}", bad.len()),
        );
        let mut details = serde_json::Map::new();
        details.insert("bad_rows".into(), json!(bad));
        err.details = Some(details);
        return Err(err);
    }
    Ok(Json(json!({ "imported": stored, "skipped": bad })))
}

async fn import_enterprises(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let tok = caller(&state, &headers).await?;
    require(&tok, &[Role::Admin])?;
    let store = state.store.clone();
    let (n, bad) = blocking(move || {
        let (ok, bad) = registry::parse_enterprises(&body, &store.counties()?, &store.chains()?)
            .map_err(|e| ApiError::bad_request("bad_file", e.to_string()))?;
        if bad.is_empty() || q.skip_bad_rows {
            store.import_registry(&ok, &[])?;
        }
        Ok((ok.len(), bad))
    })
    .await?;
    tracing::info!(by = %tok.name, rows = n, bad = bad.len(), "enterprise import");
    import_answer(n, bad, q.skip_bad_rows)
}

async fn import_recognitions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let tok = caller(&state, &headers).await?;
    require(&tok, &[Role::Admin])?;
    let store = state.store.clone();
    let (n, bad) = blocking(move || {
        let known = store
            .enterprises()?
            .into_iter()
            .map(|e| e.credit_code.to_string())
            .collect();
        let (ok, bad) = registry::parse_recognitions(&body, &known)
            .map_err(|e| ApiError::bad_request("bad_file", e.to_string()))?;
        if bad.is_empty() || q.skip_bad_rows {
            store.import_registry(&[], &ok)?;
        }
        Ok((ok.len(), bad))
    })
    .await?;
    import_answer(n, bad, q.skip_bad_rows)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IndicatorQuery {
    period: String,
    /// `city` (default), `county`, `chain` or `enterprise`.
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

async fn indicators(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<IndicatorQuery>,
) -> Result<Json<Value>, ApiError> {
    let tok = caller(&state, &headers).await?;
    let period = crate::store::Period::parse(&q.period).ok_or_else(|| {
        ApiError::bad_request(
            "bad_period",
            format!(
                "`{}` is not a period like 2026, 2026-Q4 or 2026-11",
                q.period
            ),
        )
    })?;
    let level = q.level.as_deref().unwrap_or("city").to_owned();
    match (level.as_str(), &q.id) {
        ("city", _) | ("chain", _) => require(&tok, CITY_READERS)?,
        ("county", Some(id)) => {
            if !may_see_county(&tok, id) {
                return Err(ApiError::new(
                    403,
                    "forbidden",
                    format!("this token may not read county `{id}`"),
                ));
            }
        }
        ("enterprise", Some(id)) => {
            visible_enterprise(&state, &tok, id).await?;
        }
        ("county" | "enterprise", None) => {
            return Err(ApiError::bad_request(
                "missing_id",
                format!("level `{level}` needs `id`"),
            ))
        }
        (other, _) => {
            return Err(ApiError::bad_request(
                "bad_level",
                format!("level `{other}` is not city, county, chain or enterprise"),
            ))
        }
    }
    let st = state.clone();
    let id = q.id.clone();
    let v = blocking(move || {
        crate::rollup::indicators_json(&*st.store, &st.reference, period, &level, id.as_deref())
            .map_err(ApiError::from)
    })
    .await?;
    v.map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no such {}", q.id.unwrap_or_default())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YearQuery {
    year: i32,
}

async fn targets(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<YearQuery>,
) -> Result<Json<Value>, ApiError> {
    let tok = caller(&state, &headers).await?;
    require(&tok, CITY_READERS)?;
    let st = state.clone();
    let v = blocking(move || {
        Ok(crate::rollup::targets_json(
            &*st.store,
            &st.reference,
            q.year,
        )?)
    })
    .await?;
    Ok(Json(v))
}

async fn assessment(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<YearQuery>,
) -> Result<Json<Value>, ApiError> {
    let tok = caller(&state, &headers).await?;
    let st = state.clone();
    let mut v = blocking(move || {
        Ok(crate::rollup::assessment_json(
            &*st.store,
            &st.reference,
            q.year,
        )?)
    })
    .await?;
    if tok.role == Role::County {
        // A county sees its own rows (the ranking's positions stay).
        if let Some(rows) = v.get_mut("counties").and_then(Value::as_array_mut) {
            rows.retain(|r| r.get("county").and_then(Value::as_str) == tok.scope.as_deref());
        }
    } else {
        require(&tok, CITY_READERS)?;
    }
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScoreBody {
    year: i32,
    score: f64,
    evidence: String,
}

async fn record_score(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((county, item)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let tok = caller(&state, &headers).await?;
    require(&tok, &[Role::Admin, Role::Bureau])?;
    let b: ScoreBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("malformed", format!("request body: {e}")))?;
    if b.evidence.trim().is_empty() {
        return Err(ApiError::bad_request(
            "missing_evidence",
            "a recorded score needs its evidence",
        ));
    }
    let st = state.clone();
    let score = AssessmentScore {
        county,
        year: b.year,
        item,
        score: b.score,
        evidence: b.evidence,
        recorded_by: tok.name.clone(),
        recorded_at: now(&state),
    };
    let s2 = score.clone();
    blocking(move || {
        crate::rollup::check_score(&*st.store, &st.reference, &s2)
            .map_err(|m| ApiError::new(422, "bad_score", m))?;
        Ok(st.store.record_score(&s2)?)
    })
    .await?;
    Ok(Json(serde_json::to_value(score).unwrap_or_default()))
}

async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let tok = caller(&state, &headers).await?;
    require(&tok, CITY_READERS)?;
    let Some((name, ext)) = file.rsplit_once('.') else {
        return Err(ApiError::not_found("export paths end in .csv or .xlsx"));
    };
    if !EXPORTABLE.contains(&name) || !matches!(ext, "csv" | "xlsx") {
        return Err(ApiError::not_found(format!(
            "`{file}` is not an export; tables: {} (each .csv or .xlsx)",
            EXPORTABLE.join(", ")
        )));
    }
    let (store, name_s, ext_s) = (state.store.clone(), name.to_owned(), ext.to_owned());
    let bytes = blocking(move || {
        let table = export_table(&*store, &name_s)?;
        let out = if ext_s == "csv" {
            registry::to_csv(&table)
        } else {
            registry::to_xlsx(&table, &name_s)
        };
        out.map_err(|e| ApiError::new(500, "export_failed", e.to_string()))
    })
    .await?;
    let ctype = if ext == "csv" {
        "text/csv; charset=utf-8"
    } else {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, ctype.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// Registry tables export in their import format; the rest as stored.
pub(crate) fn export_table(store: &dyn Store, name: &str) -> Result<crate::store::Table, ApiError> {
    Ok(match name {
        "enterprises" => registry::enterprises_table(&store.enterprises()?),
        "recognitions" => registry::recognitions_table(&store.recognitions()?),
        other => store
            .export_table(other)?
            .ok_or_else(|| ApiError::not_found(format!("`{other}` is not exportable")))?,
    })
}
