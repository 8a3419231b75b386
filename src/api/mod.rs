//! The HTTP API (SPEC.md, "HTTP API"): axum on the store.
//!
//! Reads run on pooled store readers in blocking tasks ([`AppState::read`]); writes go
//! through the store's writer, so an answer means "committed". Every error is JSON
//! `{"error", "message"}` ([`ApiError`]), including those axum itself produces (404, 405,
//! 413, 415).
//!
//! - [`rows`]: upload rows (JSON or CSV, UTF-8 or GBK) → judged readings.
//! - [`results`]: `POST /api/v1/results`, `GET /api/v1/results`.
//! - [`samples`]: `POST /api/v1/samples` (sample registration).
//! - [`coverage`]: `GET /api/v1/coverage`.
//! - [`holds`]: holds, retests, stall corrections.
//! - [`ops`]: instruments, health, metrics, OpenAPI document.
//! - [`outbox`]: events waiting or dead, and retrying a dead one (admin).

pub mod coverage;
pub mod holds;
pub mod ops;
pub mod outbox;
pub mod results;
pub mod rows;
pub mod samples;

use crate::http::{ApiError, AppState};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use std::future::Future;

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;
/// Rows in one upload, at most (SPEC).
pub const MAX_ROWS: usize = 10_000;

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
