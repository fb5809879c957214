//! The dashboard: server-rendered HTML pages for the industry bureau,
//! counties and enterprises, Chinese first with an English switch
//! (`?lang=en`, remembered in a cookie), inline SVG charts, embedded CSS, no
//! request to anywhere but this server.
//!
//! People log in with their API token (`/login`, kept in an HttpOnly
//! cookie; `Authorization: Bearer` works too) and see what their role
//! allows, checked with the API's own rules (`api::auth`): a county user
//! its county, an enterprise user its enterprise.
//!
//! Routes: `/` city overview, `/counties`, `/counties/{id}`, `/chains`,
//! `/enterprises` (search), `/enterprises/{code}`, `/bulletin` (月通报) and
//! `/bulletin.xlsx`, `/claims` (evaluator view), `/login`, `/logout`.

pub mod bulletin;
pub mod html;
pub mod pages;
pub mod queries;
pub mod svg;
pub mod targets;

use crate::api::{auth, AppState};
use crate::store::{ApiToken, Period, Role};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use html::Lang;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The dashboard's state: the API's state plus reference data for pages.
#[derive(Clone)]
pub struct WebState {
    pub app: AppState,
    /// The plan's targets, or why they are not loaded.
    pub targets: Arc<Result<targets::PlanTargets, String>>,
    /// Energy and carbon factor sets (`config/claims/thresholds.toml`), or why not loaded.
    pub policy: Arc<Result<shuzhuan_common::claim::ClaimPolicy, String>>,
    /// Where the claim policy and examples are (`reference_dir`).
    pub reference_dir: Arc<std::path::PathBuf>,
}

impl std::fmt::Debug for WebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState").finish_non_exhaustive()
    }
}

/// The cookie holding the API token.
pub const TOKEN_COOKIE: &str = "sz_token";
/// The cookie holding the language choice.
pub const LANG_COOKIE: &str = "sz_lang";

/// The dashboard's routes, to merge into the API router. `reference_dir`
/// holds `plan/targets.toml` and `claims/thresholds.toml`.
pub fn router(app: AppState, reference_dir: &Path) -> Router {
    let policy = crate::evidence::load_policy(&reference_dir.join("claims/thresholds.toml"))
        .map_err(|e| e.to_string());
    let state = WebState {
        app,
        targets: Arc::new(targets::load(reference_dir)),
        policy: Arc::new(policy),
        reference_dir: Arc::new(reference_dir.to_path_buf()),
    };
    Router::new()
        .route("/", get(overview))
        .route("/login", get(login_form).post(login))
        .route("/logout", get(logout))
        .route("/counties", get(counties))
        .route("/counties/{id}", get(county))
        .route("/chains", get(chains))
        .route("/enterprises", get(enterprises))
        .route("/enterprises/{code}", get(enterprise))
        .route("/bulletin", get(bulletin_page))
        .route("/bulletin.xlsx", get(bulletin_xlsx))
        .route("/claims", get(claims))
        .with_state(state)
}

/// What every page handler gets: who is looking, in which language, at which period.
#[derive(Debug, Clone)]
pub struct View {
    pub lang: Lang,
    pub token: ApiToken,
    pub now: i64,
    pub query: HashMap<String, String>,
    /// Path and query of the request (for the language switch).
    pub here: String,
    /// Whether `lang=` was given (then the cookie is set).
    set_lang: bool,
}

impl View {
    /// The period asked for with `?period=`, else `default`.
    pub fn period_or(&self, default: Period) -> Period {
        self.query
            .get("period")
            .and_then(|p| Period::parse(p))
            .unwrap_or(default)
    }
    /// The current local day of the server clock.
    pub fn today(&self, utc_offset_secs: i64) -> i64 {
        crate::days::day_of(self.now, utc_offset_secs)
    }
    pub fn who(&self) -> String {
        let role = match self.token.role {
            Role::Admin => self.lang.t("管理员", "admin"),
            Role::Bureau => self.lang.t("工信局", "bureau"),
            Role::County => self.lang.t("县区", "county"),
            Role::Enterprise => self.lang.t("企业", "enterprise"),
            Role::Evaluator => self.lang.t("评估人员", "evaluator"),
        };
        match &self.token.scope {
            Some(s) => format!("{} ({role}: {s})", self.token.name),
            None => format!("{} ({role})", self.token.name),
        }
    }
    pub fn city_reader(&self) -> bool {
        auth::CITY_READERS.contains(&self.token.role)
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn lang_of(headers: &HeaderMap, query: &HashMap<String, String>) -> (Lang, bool) {
    match query.get("lang").map(String::as_str) {
        Some("en") => (Lang::En, true),
        Some("zh") => (Lang::Zh, true),
        _ => (
            if cookie(headers, LANG_COOKIE) == Some("en") {
                Lang::En
            } else {
                Lang::Zh
            },
            false,
        ),
    }
}

/// Resolves the caller from the cookie or the Authorization header, or
/// answers with the login page (401) the way a person needs it.
async fn view(
    state: &WebState,
    headers: &HeaderMap,
    uri: &Uri,
    query: HashMap<String, String>,
) -> Result<View, Response> {
    let (lang, set_lang) = lang_of(headers, &query);
    let mut h = HeaderMap::new();
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        h.insert(header::AUTHORIZATION, v.clone());
    } else if let Some(tok) = cookie(headers, TOKEN_COOKIE) {
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {tok}")) {
            h.insert(header::AUTHORIZATION, v);
        }
    }
    let token = match auth::caller(&state.app, &h).await {
        Ok(t) => t,
        Err(e) => {
            let body = html::message(
                lang,
                lang.t("需要登录", "Login needed"),
                &html::esc(&format!(
                    "{} ({})",
                    lang.t(
                        "请用您的访问令牌登录。",
                        "Please log in with your access token."
                    ),
                    e.message
                )),
            );
            return Err((StatusCode::UNAUTHORIZED, html_headers(), body).into_response());
        }
    };
    Ok(View {
        lang,
        token,
        now: (state.app.clock)(),
        query,
        here: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
        set_lang,
    })
}

fn html_headers() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; base-uri 'none'",
        ),
    ]
}

/// A rendered page, or an error page.
pub enum PageResult {
    Ok(String),
    Forbidden(String),
    NotFound(String),
}

fn respond(v: &View, r: Result<PageResult, crate::store::StoreError>) -> Response {
    let (status, body) = match r {
        Ok(PageResult::Ok(b)) => (StatusCode::OK, b),
        Ok(PageResult::Forbidden(what)) => (
            StatusCode::FORBIDDEN,
            html::message(
                v.lang,
                v.lang.t("无权查看", "Not allowed"),
                &html::esc(&what),
            ),
        ),
        Ok(PageResult::NotFound(what)) => (
            StatusCode::NOT_FOUND,
            html::message(v.lang, v.lang.t("未找到", "Not found"), &html::esc(&what)),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            html::message(
                v.lang,
                v.lang.t("数据暂不可用", "Data unavailable"),
                &html::esc(&e.to_string()),
            ),
        ),
    };
    let mut resp = (status, html_headers(), body).into_response();
    if v.set_lang {
        if let Ok(c) = HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
            v.lang.code()
        )) {
            resp.headers_mut().append(header::SET_COOKIE, c);
        }
    }
    resp
}

/// Runs a page builder on the blocking pool and answers.
async fn render(
    state: WebState,
    headers: HeaderMap,
    uri: Uri,
    query: HashMap<String, String>,
    f: impl FnOnce(&WebState, &View) -> Result<PageResult, crate::store::StoreError> + Send + 'static,
) -> Response {
    let v = match view(&state, &headers, &uri, query).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let v2 = v.clone();
    match tokio::task::spawn_blocking(move || f(&state, &v2)).await {
        Ok(r) => respond(&v, r),
        Err(e) => respond(
            &v,
            Err(crate::store::StoreError::Corrupt(format!(
                "page worker failed: {e}"
            ))),
        ),
    }
}

type Q = Query<HashMap<String, String>>;

async fn overview(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Q,
) -> Response {
    render(s, headers, uri, q, pages::overview).await
}

async fn counties(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Q,
) -> Response {
    render(s, headers, uri, q, pages::counties).await
}

async fn county(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    UrlPath(id): UrlPath<String>,
    Query(q): Q,
) -> Response {
    render(s, headers, uri, q, move |s, v| pages::county(s, v, &id)).await
}

async fn chains(State(s): State<WebState>, headers: HeaderMap, uri: Uri, Query(q): Q) -> Response {
    render(s, headers, uri, q, pages::chains).await
}

async fn enterprises(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Q,
) -> Response {
    render(s, headers, uri, q, pages::enterprises).await
}

async fn enterprise(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    UrlPath(code): UrlPath<String>,
    Query(q): Q,
) -> Response {
    render(s, headers, uri, q, move |s, v| {
        pages::enterprise(s, v, &code)
    })
    .await
}

async fn bulletin_page(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Q,
) -> Response {
    render(s, headers, uri, q, bulletin::page).await
}

async fn claims(State(s): State<WebState>, headers: HeaderMap, uri: Uri, Query(q): Q) -> Response {
    render(s, headers, uri, q, pages::claims).await
}

async fn bulletin_xlsx(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Q,
) -> Response {
    let v = match view(&s, &headers, &uri, q).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !v.city_reader() {
        return respond(
            &v,
            Ok(PageResult::Forbidden(
                "the monthly bulletin is for the bureau, evaluators and admins".into(),
            )),
        );
    }
    let v2 = v.clone();
    let out = tokio::task::spawn_blocking(move || bulletin::xlsx(&s, &v2)).await;
    match out {
        Ok(Ok((month, bytes))) => (
            StatusCode::OK,
            [
                (
                    header::CONTENT_TYPE,
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_owned(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"bulletin-{month}.xlsx\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Ok(Err(e)) => respond(&v, Err(e)),
        Err(e) => respond(
            &v,
            Err(crate::store::StoreError::Corrupt(format!(
                "export worker failed: {e}"
            ))),
        ),
    }
}

async fn login_form(headers: HeaderMap, Query(q): Q) -> Response {
    // `/login?token=…` (the link the demo prints) logs in directly.
    if let Some(t) = q.get("token") {
        return login(Bytes::from(format!("token={t}"))).await;
    }
    let (lang, _) = lang_of(&headers, &q);
    let body = format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"><link rel=\"icon\" href=\"data:,\"><title>{}</title><style>{}</style></head>\
         <body><main><h1>{}</h1><form class=\"search\" method=\"post\" action=\"/login\">\
         <label>{} <input name=\"token\" type=\"password\" autocomplete=\"off\" required></label> \
         <button type=\"submit\">{}</button></form><p class=\"src\">{}</p></main></body></html>",
        lang.html_lang(),
        lang.t("登录", "Log in"),
        html::CSS,
        lang.t("数转 · 登录", "Shuzhuan · log in"),
        lang.t("访问令牌", "Access token"),
        lang.t("登录", "Log in"),
        lang.t(
            "令牌由管理员用 shuzhuan-aggregator token create --role … 生成。",
            "Tokens are created by an admin with shuzhuan-aggregator token create --role …"
        ),
    );
    (StatusCode::OK, html_headers(), body).into_response()
}

/// Takes `token=` from a form body and keeps it in an HttpOnly cookie.
async fn login(body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    let token = text
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    // Secrets are base64url: anything else cannot be a token.
    if token.is_empty()
        || !token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return (
            StatusCode::BAD_REQUEST,
            html_headers(),
            html::message(Lang::Zh, "令牌格式不对 / malformed token", ""),
        )
            .into_response();
    }
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Ok(c) = HeaderValue::from_str(&format!(
        "{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    )) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

async fn logout() -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/login"),
            (
                header::SET_COOKIE,
                "sz_token=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
            ),
        ],
    )
        .into_response()
}
