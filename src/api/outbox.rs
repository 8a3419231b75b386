//! `GET /api/v1/outbox`, `POST /api/v1/outbox/{id}/retry` (admin): why events wait, and
//! putting a dead one back in the queue (after fixing a secret, say).

use super::schemas::{ErrorBody, OutboxEventDoc, OutboxPageDoc, OutboxStatusDoc};
use crate::auth::Role;
use crate::http::{ApiError, AppState};
use crate::store::audit::audit;
use crate::store::insert::rfc3339;
use crate::store::outbox::{self, OutboxRow};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::{TimeZone, Utc};
use serde::Deserialize;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    #[param(value_type = Option<OutboxStatusDoc>)]
    status: Option<String>,
    /// 1..10000, default 1000
    limit: Option<u32>,
}

const STATUSES: [&str; 3] = ["pending", "dead", "delivered"];

fn time(ms: i64) -> Option<String> {
    Utc.timestamp_millis_opt(ms).single().map(rfc3339)
}

fn view(r: &OutboxRow) -> serde_json::Value {
    serde_json::json!({
        "id": r.id,
        "event_id": r.event_id,
        "upstream": r.upstream,
        "type": r.kind,
        "status": r.status,
        "attempts": r.attempts,
        "created_at": time(r.created_ms),
        "next_attempt_at": if r.status == "pending" { time(r.next_attempt_ms) } else { None },
        "last_answer": r.last_answer,
    })
}

/// `GET /api/v1/outbox?status=pending|dead|delivered&limit=`: oldest first.
#[utoipa::path(get, path = "/api/v1/outbox", operation_id = "list_outbox",
    summary = "Outbox events with attempts, next attempt and last answer (admin)",
    params(OutboxQuery),
    responses(
        (status = 200, description = "the events", body = OutboxPageDoc),
        (status = 400, description = "bad request", body = ErrorBody)
    ))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<OutboxQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.authorize(&headers, &[Role::Admin]).await?;
    let status = match q.status {
        None => None,
        Some(s) if STATUSES.contains(&s.as_str()) => Some(s),
        Some(s) => {
            return Err(ApiError::bad_request(format!(
                "status: {s:?} is not one of pending, dead, delivered"
            )))
        }
    };
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000) as usize;
    let rows = state
        .read(move |conn| Ok(outbox::list(conn, status.as_deref(), limit)?))
        .await?;
    let events: Vec<_> = rows.iter().map(view).collect();
    Ok(Json(serde_json::json!({ "events": events })))
}

/// `POST /api/v1/outbox/{id}/retry`: a dead event goes back in the queue (audited).
#[utoipa::path(post, path = "/api/v1/outbox/{id}/retry", operation_id = "retry_outbox_event",
    summary = "Put a dead event back in the queue (admin, audited)",
    params(("id" = i64, Path, description = "outbox event id")),
    responses(
        (status = 200, description = "the event", body = OutboxEventDoc),
        (status = 404, description = "not found", body = ErrorBody),
        (status = 409, description = "conflict", body = ErrorBody)
    ))]
pub async fn retry(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = state.authorize(&headers, &[Role::Admin]).await?;
    let now = crate::uplink::now_ms();
    let name = who.name.clone();
    // The status check and the requeue are one transaction: nothing changes between them.
    let found = state
        .store()
        .write_async(move |tx| {
            let status = outbox::retry_if_dead(tx, id, now)?;
            if status.as_deref() == Some("dead") {
                audit(
                    tx,
                    &name,
                    "outbox.retry",
                    Some(&id.to_string()),
                    &serde_json::Value::Null,
                )?;
            }
            Ok(status)
        })
        .await?;
    match found.as_deref() {
        None => Err(ApiError::not_found(format!("no outbox event with id {id}"))),
        Some("dead") => {
            let row = state.read(move |conn| Ok(outbox::get(conn, id)?)).await?;
            Ok(Json(row.as_ref().map_or(serde_json::Value::Null, view)))
        }
        Some(other) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_dead",
            format!("event {id} is {other}: only dead events are retried"),
        )),
    }
}
