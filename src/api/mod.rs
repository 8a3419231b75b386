//! The HTTP API (SPEC.md, "HTTP API"): axum on the store.
//!
//! Reads run on pooled read connections in blocking tasks; writes go through the store's
//! writer ([`Store::write_async`]), so an answer means "committed". Every error is JSON
//! `{"error", "message"}`, including those axum itself produces (404, 405, 413, 415).
//!
//! - [`rows`]: upload rows (JSON or CSV, UTF-8 or GBK) → judged readings.
//! - [`results`]: `POST /api/v1/results`, `GET /api/v1/results`.
//! - [`samples`]: `POST /api/v1/samples` (sample registration).
//! - [`coverage`]: `GET /api/v1/coverage`.
//! - [`holds`]: holds, retests, stall corrections.
//! - [`ops`]: instruments, health, metrics, OpenAPI document.
//! - [`outbox`]: events waiting or dead, and retrying a dead one (admin).
//! - [`ratelimit`]: the per-token request budget (429 beyond it).

pub mod coverage;
pub mod holds;
pub mod ops;
pub mod outbox;
pub mod ratelimit;
pub mod results;
pub mod rows;
pub mod samples;

use crate::auth::{self, AuthError, Principal, Role};
use crate::judge::Judge;
use crate::store::Store;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use chrono::{FixedOffset, Utc};
use foodgate_devices::status::StatusHandle;
use foodgate_parsers::AliasTable;
use rusqlite::Connection;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;
/// Rows in one upload, at most (SPEC).
pub const MAX_ROWS: usize = 10_000;
/// `last_used_at` of a token is written at most this often (not on every request).
const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// An instrument the configuration names (its market decides who sees it).
#[derive(Debug, Clone)]
pub struct ConfiguredInstrument {
    pub id: String,
    pub market: String,
    pub protocol: String,
}

/// Everything the handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    judge: Judge,
    aliases: AliasTable,
    utc_offset: FixedOffset,
    readers: Mutex<Vec<Connection>>,
    instruments: Vec<ConfiguredInstrument>,
    status: RwLock<Vec<StatusHandle>>,
    uplink: RwLock<Option<crate::uplink::UplinkHandle>>,
    last_used: Mutex<HashMap<String, Instant>>,
    requests: Mutex<HashMap<(String, u16), u64>>,
    buckets: ratelimit::Buckets,
}

impl AppState {
    pub fn new(store: Store, judge: Judge) -> AppState {
        let aliases = judge.reference().alias_table();
        let utc_offset = store.settings().utc_offset;
        AppState {
            inner: Arc::new(Inner {
                store,
                judge,
                aliases,
                utc_offset,
                readers: Mutex::new(Vec::new()),
                instruments: Vec::new(),
                status: RwLock::new(Vec::new()),
                uplink: RwLock::new(None),
                last_used: Mutex::new(HashMap::new()),
                requests: Mutex::new(HashMap::new()),
                buckets: ratelimit::Buckets::new(ratelimit::RateLimit::default()),
            }),
        }
    }

    /// The per-token rate limit (before the state is shared); the default is
    /// [`ratelimit::RateLimit::default`].
    pub fn with_rate_limit(self, limit: ratelimit::RateLimit) -> AppState {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.buckets = ratelimit::Buckets::new(limit);
                AppState {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => AppState { inner },
        }
    }

    /// The configured instruments (before the state is shared).
    pub fn with_instruments(self, instruments: Vec<ConfiguredInstrument>) -> AppState {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.instruments = instruments;
                AppState {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => AppState { inner },
        }
    }

    /// Live link status of the instruments (`serve` sets it when it starts the links).
    pub fn set_instrument_status(&self, handles: Vec<StatusHandle>) {
        if let Ok(mut s) = self.inner.status.write() {
            *s = handles;
        }
    }

    /// The running uplink (`serve` sets it), for its live figures in `/metrics`.
    pub fn set_uplink(&self, handle: crate::uplink::UplinkHandle) {
        if let Ok(mut u) = self.inner.uplink.write() {
            *u = Some(handle);
        }
    }

    pub(crate) fn uplink(&self) -> Option<crate::uplink::UplinkHandle> {
        self.inner.uplink.read().ok().and_then(|u| u.clone())
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn judge(&self) -> &Judge {
        &self.inner.judge
    }

    pub fn aliases(&self) -> &AliasTable {
        &self.inner.aliases
    }

    pub fn utc_offset(&self) -> FixedOffset {
        self.inner.utc_offset
    }

    /// Run `f` on a pooled read connection in a blocking task.
    pub async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, ApiError> + Send + 'static,
    {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = state.inner.readers.lock().ok().and_then(|mut p| p.pop());
            let conn = match pooled {
                Some(c) => c,
                None => state.inner.store.reader().map_err(ApiError::internal)?,
            };
            let out = f(&conn);
            if let Ok(mut p) = state.inner.readers.lock() {
                if p.len() < 8 {
                    p.push(conn);
                }
            }
            out
        })
        .await
        .map_err(ApiError::internal)?
    }

    /// Authenticate the request and check its role; 401 or 403 otherwise.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        roles: &[Role],
    ) -> Result<Principal, ApiError> {
        let header = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_string).unwrap_or_default());
        let principal = self
            .read(move |conn| {
                auth::authenticate(conn, header.as_deref(), Utc::now()).map_err(ApiError::from)
            })
            .await?;
        if let Err(wait) = self.inner.buckets.take(&principal.name, Instant::now()) {
            let limit = self.inner.buckets.limit();
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "token {:?} made more than {} requests per second (bursts of {}): retry in {secs} s",
                    principal.name, limit.per_second, limit.burst
                ),
            )
            .retry_after(secs));
        }
        if !roles.contains(&principal.role) {
            return Err(ApiError::forbidden(format!(
                "a {} token may not do this (allowed: {})",
                principal.role,
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        self.touch(&principal.name).await;
        Ok(principal)
    }

    async fn touch(&self, name: &str) {
        let due = match self.inner.last_used.lock() {
            Ok(mut m) => {
                let now = Instant::now();
                match m.get(name) {
                    Some(t) if now.duration_since(*t) < LAST_USED_EVERY => false,
                    _ => {
                        m.insert(name.to_string(), now);
                        true
                    }
                }
            }
            Err(_) => false,
        };
        if due {
            let name = name.to_string();
            let at = crate::store::insert::rfc3339(Utc::now());
            // Best effort: a failure to note the time of use must not fail the request.
            let _ = self
                .inner
                .store
                .write_async(move |tx| crate::store::tokens::touch(tx, &name, &at))
                .await;
        }
    }

    fn count_request(&self, route: String, status: u16) {
        if let Ok(mut m) = self.inner.requests.lock() {
            *m.entry((route, status)).or_insert(0) += 1;
        }
    }

    pub(crate) fn request_counts(&self) -> Vec<((String, u16), u64)> {
        let mut v: Vec<_> = match self.inner.requests.lock() {
            Ok(m) => m.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }

    pub(crate) fn instruments(&self) -> &[ConfiguredInstrument] {
        &self.inner.instruments
    }

    pub(crate) fn instrument_status(&self) -> Vec<foodgate_devices::status::InstrumentStatus> {
        match self.inner.status.read() {
            Ok(s) => s.iter().map(StatusHandle::snapshot).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// An error answer: status, short code, one-sentence message.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let code = match e {
            AuthError::Missing => "token_missing",
            AuthError::Malformed => "token_malformed",
            AuthError::Unknown => "token_unknown",
            AuthError::Expired(_) => "token_expired",
            AuthError::Revoked(_) => "token_revoked",
        };
        ApiError::new(StatusCode::UNAUTHORIZED, code, e.to_string())
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::internal(e)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(serde_json::json!({"error": self.code, "message": self.message})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

/// The API's routes, with JSON errors, request metrics and the body limit.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/results", post(results::upload).get(results::list))
        .route("/api/v1/samples", post(samples::upload))
        .route("/api/v1/coverage", get(coverage::coverage))
        .route("/api/v1/holds", get(holds::list))
        .route("/api/v1/holds/{id}", patch(holds::patch_hold))
        .route("/api/v1/holds/{id}/retest", post(holds::retest))
        .route("/api/v1/instruments", get(ops::instruments))
        .route("/api/v1/outbox", get(outbox::list))
        .route("/api/v1/outbox/{id}/retry", post(outbox::retry))
        .route("/api/v1/openapi.json", get(ops::openapi))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .merge(crate::web::routes())
        // After routing, so the matched route names the metric (not the raw path).
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(json_errors))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// axum's own rejections (405, 413, 415, bad query strings) are plain text: make them JSON.
/// The pages' own error pages (`text/html`, see [`crate::web`]) stay as they are.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let keep = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if status.as_u16() < 400 || keep {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut out = (
        status,
        Json(serde_json::json!({"error": code, "message": message})),
    )
        .into_response();
    for (k, v) in parts.headers.iter() {
        if k == header::ALLOW {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let resp = next.run(req).await;
    state.count_request(route, resp.status().as_u16());
    resp
}

/// Serve the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A `text/csv` response.
pub(crate) fn csv_response(body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    r
}
