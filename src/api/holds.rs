//! Holds: `GET /api/v1/holds`, `PATCH /api/v1/holds/{id}` (stall), and
//! `POST /api/v1/holds/{id}/retest`.
//!
//! A retest is one upload row, stored like any upload. What it does to the hold:
//!
//! | hold is | retest | hold becomes | event |
//! | --- | --- | --- | --- |
//! | held | fail | confirmed | `hold.confirmed` |
//! | held | pass, other method or instrument | released | `hold.released` |
//! | held | pass, same method and instrument | held (noted: it cannot release) | none |
//! | confirmed | pass, other method or instrument | review (a conflict: a person decides) | `hold.review` |
//! | released | fail | review | `hold.review` |
//! | any | invalid / unknown, or nothing new | unchanged (noted) | none |
//!
//! A failing retest would open a hold of its own when stored; since it belongs to this hold,
//! that second hold and its `sample.failed` events are removed in the same transaction (they
//! were never committed, so no one saw them) and the hold's own event goes out instead.
//! Hold events go to `format = "events"` upstreams, after the hold's earlier events.

use super::results::{prepare, store_rows, RowResult};
use super::rows::{self, FieldError};
use super::{ApiError, AppState};
use crate::auth::Role;
use crate::config::Format;
use crate::store::audit::audit;
use crate::store::identity::event_id;
use crate::store::insert::{hold_history, rfc3339, set_hold_status, HistoryEntry};
use crate::store::samples::correct_hold_stall;
use crate::store::{StoreSettings, Tx};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::Utc;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Clone, Serialize)]
pub struct SampleView {
    pub id: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HoldView {
    pub id: String,
    pub market: String,
    pub stall: Option<String>,
    pub sample: SampleView,
    pub reading: serde_json::Value,
    pub status: String,
    pub history: Vec<HistoryEntry>,
}

const HOLD_SELECT: &str = "SELECT h.id, h.market, h.stall, h.status,
        coalesce(s.sample_id, r.sample_id), coalesce(s.name, r.sample_name),
        coalesce(s.category, r.category), r.reading_json, r.uploader
     FROM holds h JOIN readings r ON r.id = h.reading LEFT JOIN samples s ON s.id = h.sample_ref";

fn hold_row(conn: &Connection, r: &rusqlite::Row<'_>) -> rusqlite::Result<HoldView> {
    let id: String = r.get(0)?;
    let json: String = r.get(7)?;
    let mut reading: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    if r.get::<_, Option<String>>(8)?.is_some() {
        if let Some(o) = reading.as_object_mut() {
            o.insert("protocol".into(), serde_json::Value::Null);
        }
    }
    Ok(HoldView {
        history: hold_history(conn, &id)?,
        id,
        market: r.get(1)?,
        stall: r.get(2)?,
        status: r.get(3)?,
        sample: SampleView {
            id: r.get(4)?,
            name: r.get(5)?,
            category: r.get(6)?,
        },
        reading,
    })
}

pub fn load_hold(conn: &Connection, id: &str) -> rusqlite::Result<Option<HoldView>> {
    let sql = format!("{HOLD_SELECT} WHERE h.id = ?1");
    conn.prepare_cached(&sql)?
        .query_row([id], |r| hold_row(conn, r))
        .optional()
}

#[derive(Debug, Deserialize)]
pub struct HoldsQuery {
    status: Option<String>,
}

/// `GET /api/v1/holds?status=`: newest first, at most 1000.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HoldsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = state.authorize(&headers, &Role::ALL).await?;
    if let Some(s) = &q.status {
        if !matches!(s.as_str(), "held" | "confirmed" | "released" | "review") {
            return Err(ApiError::bad_request(
                "status: expected held, confirmed, released or review",
            ));
        }
    }
    let scope = who
        .role
        .is_scoped()
        .then(|| serde_json::to_string(&who.markets).unwrap_or_default());
    let holds = state
        .read(move |conn| {
            let sql = format!(
                "{HOLD_SELECT} WHERE (?1 IS NULL OR h.status = ?1)
                 AND (?2 IS NULL OR h.market IN (SELECT value FROM json_each(?2)))
                 ORDER BY h.created_at DESC, h.id LIMIT 1000"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let v = stmt
                .query_map(params![q.status, scope], |r| hold_row(conn, r))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
        .await?;
    Ok(Json(serde_json::json!({ "holds": holds })))
}

/// The hold `id` if the token may act on it; 404 / 403 otherwise.
async fn scoped_hold(
    state: &AppState,
    who: &crate::auth::Principal,
    id: &str,
) -> Result<HoldView, ApiError> {
    let hid = id.to_string();
    let hold = state.read(move |conn| Ok(load_hold(conn, &hid)?)).await?;
    let hold = hold.ok_or_else(|| ApiError::not_found(format!("no hold {id:?}")))?;
    if !who.covers(&hold.market) {
        return Err(ApiError::forbidden(format!(
            "the hold is in market {:?}, outside this token's markets",
            hold.market
        )));
    }
    Ok(hold)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchHold {
    stall: Option<String>,
}

/// `PATCH /api/v1/holds/{id}` with `{"stall": "A12"}`: set or correct the stall (audited;
/// the hold's sample and its other readings follow, upstreams get the corrected events: see
/// [`crate::store::samples`]).
pub async fn patch_hold(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<HoldView>, ApiError> {
    let who = state
        .authorize(&headers, &[Role::Station, Role::Contractor, Role::Admin])
        .await?;
    let patch: PatchHold = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("expected {{\"stall\": \"…\"}}: {e}"),
        )
    })?;
    let stall = patch
        .stall
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.len() <= 128)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "stall: a non-empty code of at most 128 bytes is required",
            )
        })?;
    let hold = scoped_hold(&state, &who, &id).await?;
    let name = who.name.clone();
    let hid = hold.id.clone();
    let settings = Arc::new(state.store().settings().clone());
    state
        .store()
        .write_async(move |tx| {
            let done = correct_hold_stall(tx, &settings, &hid, &stall, &name)?;
            audit(
                tx,
                &name,
                "hold.stall",
                Some(&hid),
                &serde_json::json!({"from": done.from, "to": stall, "readings": done.readings}),
            )
        })
        .await?;
    let hid = hold.id.clone();
    let hold = state.read(move |conn| Ok(load_hold(conn, &hid)?)).await?;
    hold.map(Json)
        .ok_or_else(|| ApiError::not_found("the hold disappeared"))
}

#[derive(Debug, Serialize)]
pub struct RetestAnswer {
    #[serde(flatten)]
    pub hold: HoldView,
    /// What the retest did, in one sentence.
    pub outcome: String,
    pub retest: RowResult,
}

/// `POST /api/v1/holds/{id}/retest`: body one upload row.
pub async fn retest(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<RetestAnswer>, ApiError> {
    let who = state
        .authorize(&headers, &[Role::Station, Role::Contractor])
        .await?;
    let hold = scoped_hold(&state, &who, &id).await?;
    let raw = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the body is not UTF-8 JSON"))?
        .to_string();
    let mut cells = rows::json_cells(&raw).map_err(|errors| unprocessable(&errors))?;
    // The retest is of the held sample: its market, and its stall and sample unless given.
    match cells.get("market").cloned().flatten() {
        None => {
            cells.insert("market".into(), Some(hold.market.clone()));
        }
        Some(m) if m.trim() != hold.market => {
            return Err(unprocessable(&[FieldError::new(
                "market",
                format!("the hold is in market {:?}", hold.market),
            )]))
        }
        Some(_) => {}
    }
    for (field, value) in [
        ("stall", hold.stall.clone()),
        ("sample_id", hold.sample.id.clone()),
        ("sample_name", hold.sample.name.clone()),
    ] {
        if cells.get(field).cloned().flatten().is_none() {
            cells.insert(field.into(), value);
        }
    }
    let st = state.clone();
    let w = who.clone();
    let (mut good, answered) =
        tokio::task::spawn_blocking(move || prepare(&st, &w, vec![(Ok(cells), raw.into_bytes())]))
            .await
            .map_err(ApiError::internal)?;
    if let Some(bad) = answered.into_iter().next() {
        return Err(unprocessable(&bad.errors));
    }
    let Some(p) = good.pop() else {
        return Err(ApiError::bad_request("no retest row"));
    };
    let settings = Arc::new(state.store().settings().clone());
    let name = who.name.clone();
    let hid = hold.id.clone();
    let (outcome, result) = state
        .store()
        .write_async(move |tx| {
            let mut results = store_rows(tx, &settings, &name, vec![p])?;
            let result = results.pop().unwrap_or_else(|| RowResult::rejected(0, None, vec![]));
            let outcome = match result.status {
                "stored" => apply_retest(tx, &settings, &hid, &name, &result)?,
                "duplicate" => "this retest was recorded before; nothing changed".to_string(),
                _ => String::new(),
            };
            if result.status != "rejected" {
                audit(
                    tx,
                    &name,
                    "hold.retest",
                    Some(&hid),
                    &serde_json::json!({"row": result.id, "status": result.status, "verdict": result.verdict, "outcome": outcome}),
                )?;
            }
            Ok((outcome, result))
        })
        .await?;
    if result.status == "rejected" {
        return Err(unprocessable(&result.errors));
    }
    let hid = hold.id.clone();
    let hold = state
        .read(move |conn| Ok(load_hold(conn, &hid)?))
        .await?
        .ok_or_else(|| ApiError::not_found("the hold disappeared"))?;
    Ok(Json(RetestAnswer {
        hold,
        outcome,
        retest: result,
    }))
}

fn unprocessable(errors: &[FieldError]) -> ApiError {
    let text = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", text)
}

/// Apply a newly stored retest reading to the hold (see the module table).
fn apply_retest(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    hold: &str,
    by: &str,
    result: &RowResult,
) -> rusqlite::Result<String> {
    let Some(reading) = result.reading else {
        return Ok(String::new());
    };
    // A failing retest opened a hold of its own: it belongs to this one instead.
    if let Some(own) = &result.hold {
        crate::store::outbox::delete_hold_events(tx, own)?;
        tx.execute("DELETE FROM hold_history WHERE hold = ?1", [own])?;
        tx.execute("DELETE FROM holds WHERE id = ?1", [own])?;
    }
    let (status, orig_method, orig_instrument, market, stall, sample_ref): (
        String,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
        Option<i64>,
    ) = tx.query_row(
        "SELECT h.status, r.method, coalesce(r.instrument, r.uploader), h.market, h.stall,
                h.sample_ref
         FROM holds h JOIN readings r ON r.id = h.reading WHERE h.id = ?1",
        [hold],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        },
    )?;
    let (verdict, method, instrument, identity, json): (
        String,
        Option<String>,
        Option<String>,
        String,
        String,
    ) = tx.query_row(
        "SELECT verdict, method, coalesce(instrument, uploader), identity, reading_json
         FROM readings WHERE id = ?1",
        [reading],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    let independent = method != orig_method || instrument != orig_instrument;
    let (next, why): (Option<&str>, String) = match (status.as_str(), verdict.as_str()) {
        ("held", "fail") => (Some("confirmed"), "the retest failed too: the goods are destroyed".into()),
        ("held", "pass") if independent => (
            Some("released"),
            "a retest by another method or instrument passed: the goods are released".into(),
        ),
        ("held", "pass") => (
            None,
            "recorded, but a pass by the same instrument and method cannot release the hold: retest with another method or instrument".into(),
        ),
        ("confirmed", "pass") if independent => (
            Some("review"),
            "a retest by another method or instrument passed a confirmed hold: a person decides".into(),
        ),
        ("released", "fail") => (
            Some("review"),
            "a retest failed a released hold: a person decides".into(),
        ),
        (_, "pass") | (_, "fail") => (None, format!("recorded; the hold stays {status}")),
        (_, v) => (
            None,
            format!("recorded; a retest judged {v} decides nothing: the hold stays {status}"),
        ),
    };
    let at = rfc3339(Utc::now());
    let Some(next) = next else {
        tx.execute(
            "INSERT INTO hold_history (hold, at, status, by, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![hold, at, status, by, why],
        )?;
        return Ok(why);
    };
    let history = set_hold_status(tx, hold, next, by, &why, &at)?;
    let kind = format!("hold.{next}");
    let sample: (Option<String>, Option<String>, Option<String>) = match sample_ref {
        Some(s) => tx
            .query_row(
                "SELECT sample_id, name, category FROM samples WHERE id = ?1",
                [s],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?
            .unwrap_or_default(),
        None => (None, None, None),
    };
    let reading_value: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    let eid = event_id(&identity, &kind).to_string();
    let body = serde_json::to_vec(&serde_json::json!({
        "event_id": eid,
        "type": kind,
        "occurred_at": at,
        "market": market,
        "stall": stall,
        "sample": {"id": sample.0, "name": sample.1, "category": sample.2},
        "reading": reading_value,
        "hold": {"id": hold, "status": next, "history": history},
    }))
    .unwrap_or_default();
    let now_ms = Utc::now().timestamp_millis();
    let mut n = 0;
    for route in settings
        .routes
        .iter()
        .filter(|r| r.format == Format::Events)
    {
        n += crate::store::outbox::enqueue(
            tx,
            Some(reading),
            &eid,
            &route.upstream,
            &kind,
            Some(hold),
            &body,
            now_ms,
        )?;
    }
    tx.events_added(n);
    Ok(why)
}
