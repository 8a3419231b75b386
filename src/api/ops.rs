//! Instruments, health, metrics and the OpenAPI document.

use crate::auth::Role;
use crate::http::{ApiError, AppState};
use crate::store::outbox;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct InstrumentView {
    pub id: String,
    pub market: String,
    pub protocol: String,
    pub online: bool,
    pub last_seen: Option<String>,
    pub serial_number: Option<String>,
    pub firmware: Option<String>,
    pub readings: u64,
    pub duplicates: u64,
    pub decode_errors: u64,
    pub reconnects: u64,
    pub last_error: Option<String>,
}

/// `GET /api/v1/instruments`: configured and recorded instruments, with live link status.
pub async fn instruments(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = state.authorize(&headers, &Role::ALL).await?;
    let list: Vec<_> = instrument_views(&state)
        .await?
        .into_iter()
        .filter(|i| who.covers(&i.market))
        .collect();
    Ok(Json(serde_json::json!({ "instruments": list })))
}

/// Every instrument the store recorded or the config names, with its live link status,
/// ordered by id (the API and the dashboard show the same list).
pub async fn instrument_views(state: &AppState) -> Result<Vec<InstrumentView>, ApiError> {
    let recorded = state
        .read(|conn| Ok(recorded_instruments(conn.raw())?))
        .await?;
    let mut all: BTreeMap<String, InstrumentView> = BTreeMap::new();
    for i in recorded {
        all.insert(i.id.clone(), i);
    }
    for c in state.instruments() {
        let e = all.entry(c.id.clone()).or_default();
        e.id = c.id.clone();
        e.market = c.market.clone();
        e.protocol = c.protocol.clone();
    }
    for s in state.instrument_status() {
        // A live link whose instrument is neither configured nor recorded has no market:
        // it cannot be scoped, so it is not shown.
        let Some(e) = all.get_mut(&s.id) else {
            continue;
        };
        e.online = s.online;
        if let Some(t) = s.last_seen() {
            e.last_seen = Some(crate::store::insert::rfc3339(t));
        }
        e.serial_number = s.serial_number.clone().or(e.serial_number.take());
        e.firmware = s.firmware.clone().or(e.firmware.take());
        e.readings = s.readings;
        e.duplicates = s.duplicates;
        e.decode_errors = s.decode_errors;
        e.reconnects = s.reconnects;
        e.last_error = s.last_error.clone();
    }
    Ok(all.into_values().collect())
}

/// The instruments as `serve` last recorded them.
pub fn recorded_instruments(conn: &Connection) -> rusqlite::Result<Vec<InstrumentView>> {
    // `serve` writes each link's status here every few seconds (and at shutdown).
    conn.prepare_cached(
        "SELECT id, market, protocol, serial_number, firmware, last_seen, online,
                readings, duplicates, decode_errors, reconnects, last_error
         FROM instruments",
    )?
    .query_map([], |r| {
        let count = |i: usize| -> rusqlite::Result<u64> {
            Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0))
        };
        Ok(InstrumentView {
            id: r.get(0)?,
            market: r.get(1)?,
            protocol: r.get(2)?,
            serial_number: r.get(3)?,
            firmware: r.get(4)?,
            last_seen: r.get(5)?,
            online: r.get(6)?,
            readings: count(7)?,
            duplicates: count(8)?,
            decode_errors: count(9)?,
            reconnects: count(10)?,
            last_error: r.get(11)?,
        })
    })?
    .collect()
}

/// `GET /healthz`: 200 when a write transaction commits within 5 s, else 503.
pub async fn healthz(State(state): State<AppState>) -> Response {
    let probe = state
        .store()
        .write_async(|tx| tx.query_row("SELECT count(*) FROM markets", [], |r| r.get::<_, i64>(0)));
    match tokio::time::timeout(Duration::from_secs(5), probe).await {
        Ok(Ok(markets)) => {
            Json(serde_json::json!({"status": "ok", "markets": markets})).into_response()
        }
        Ok(Err(e)) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unhealthy", e.to_string())
            .into_response(),
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy",
            "the database did not commit a write within 5 s",
        )
        .into_response(),
    }
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let uplink = state.uplink();
    let (verdicts, out, live) = state
        .read(move |conn| {
            // Kept with the readings (migration 0012): a scrape reads four rows, not a year.
            let v = crate::store::coverage::reading_totals(conn)?;
            let live = match uplink {
                Some(u) => u.stats(conn)?,
                None => Vec::new(),
            };
            Ok((v, outbox::counts(conn)?, live))
        })
        .await?;
    let mut s = String::new();
    s.push_str(
        "# HELP foodgate_readings Readings stored, by verdict.\n# TYPE foodgate_readings gauge\n",
    );
    for (v, n) in verdicts {
        let _ = writeln!(s, "foodgate_readings{{verdict=\"{v}\"}} {n}");
    }
    s.push_str("# HELP foodgate_outbox_events Outbox events by upstream and status.\n# TYPE foodgate_outbox_events gauge\n");
    for c in &out {
        let u = label(&c.upstream);
        let _ = writeln!(
            s,
            "foodgate_outbox_events{{upstream=\"{u}\",status=\"pending\"}} {}",
            c.pending
        );
        let _ = writeln!(
            s,
            "foodgate_outbox_events{{upstream=\"{u}\",status=\"dead\"}} {}",
            c.dead
        );
        let _ = writeln!(
            s,
            "foodgate_outbox_events{{upstream=\"{u}\",status=\"delivered\"}} {}",
            c.delivered
        );
    }
    if !live.is_empty() {
        s.push_str("# HELP foodgate_upstream_up 1 while an upstream delivers, 0 from its first failed attempt until it delivers again.\n# TYPE foodgate_upstream_up gauge\n");
        for u in &live {
            let up = u.health.is_none_or(|h| !h.failing);
            let _ = writeln!(
                s,
                "foodgate_upstream_up{{upstream=\"{}\"}} {}",
                label(&u.upstream),
                u8::from(up)
            );
        }
        s.push_str("# HELP foodgate_upstream_failing_seconds How long an upstream has been failing (0 when up).\n# TYPE foodgate_upstream_failing_seconds gauge\n");
        let now = crate::uplink::now_ms();
        for u in &live {
            let since = u.health.and_then(|h| h.failing_since_ms);
            let _ = writeln!(
                s,
                "foodgate_upstream_failing_seconds{{upstream=\"{}\"}} {}",
                label(&u.upstream),
                since.map_or(0, |t| (now - t).max(0) / 1000)
            );
        }
        s.push_str("# HELP foodgate_outbox_oldest_pending_seconds Age of the oldest event waiting, per upstream.\n# TYPE foodgate_outbox_oldest_pending_seconds gauge\n");
        for u in &live {
            let _ = writeln!(
                s,
                "foodgate_outbox_oldest_pending_seconds{{upstream=\"{}\"}} {}",
                label(&u.upstream),
                u.oldest_pending_age_s.unwrap_or(0)
            );
        }
        s.push_str("# HELP foodgate_upstream_last_error The last answer of a failed attempt, per upstream.\n# TYPE foodgate_upstream_last_error gauge\n");
        for u in &live {
            if let Some(e) = &u.last_error {
                let e: String = e.chars().take(200).collect();
                let _ = writeln!(
                    s,
                    "foodgate_upstream_last_error{{upstream=\"{}\",error=\"{}\"}} 1",
                    label(&u.upstream),
                    label(&e)
                );
            }
        }
    }
    let status = state.instrument_status();
    let online = status.iter().filter(|i| i.online).count();
    s.push_str("# HELP foodgate_instruments Instruments with a live link, and how many are online.\n# TYPE foodgate_instruments gauge\n");
    let _ = writeln!(s, "foodgate_instruments{{state=\"online\"}} {online}");
    let _ = writeln!(
        s,
        "foodgate_instruments{{state=\"offline\"}} {}",
        status.len() - online
    );
    s.push_str("# HELP foodgate_http_requests_total HTTP requests by route and status.\n# TYPE foodgate_http_requests_total counter\n");
    for ((route, code), n) in state.request_counts() {
        let _ = writeln!(
            s,
            "foodgate_http_requests_total{{route=\"{}\",status=\"{code}\"}} {n}",
            label(&route)
        );
    }
    let mut r = Response::new(axum::body::Body::from(s));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}

/// `GET /api/v1/openapi.json`: the OpenAPI 3 document (hand-maintained beside the routes;
/// a test checks that every route of [`super::router`] is in it).
pub async fn openapi() -> Json<serde_json::Value> {
    Json(openapi_document())
}

pub fn openapi_document() -> serde_json::Value {
    use serde_json::json;
    let err = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let auth_errors = json!({
        "401": {"description": "no token, or an unknown, expired or revoked one", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "403": {"description": "outside the token's role or market scope", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "429": {"description": "the token's rate limit (rate_limited); Retry-After says when to retry", "headers": {"Retry-After": {"schema": {"type": "integer"}}}, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
    });
    let with = |mut v: serde_json::Value, extra: &serde_json::Value| {
        if let (Some(r), Some(e)) = (
            v.get_mut("responses").and_then(|r| r.as_object_mut()),
            extra.as_object(),
        ) {
            for (k, x) in e {
                r.insert(k.clone(), x.clone());
            }
        }
        v
    };
    let q = |name: &str, desc: &str| json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"}, "description": desc});
    let row_props: serde_json::Map<String, serde_json::Value> = super::rows::FIELDS
        .iter()
        .chain(super::rows::LATER_FIELDS)
        .map(|f| (f.to_string(), json!({"type": ["string", "number", "null"]})))
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": {"title": "foodgate", "version": env!("CARGO_PKG_VERSION")},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "message"], "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
                "ResultRow": {"type": "object", "required": ["id", "market", "analyte"], "properties": row_props},
                "RowResult": {"type": "object", "properties": {"index": {"type": "integer"}, "id": {"type": ["string", "null"]}, "status": {"enum": ["stored", "duplicate", "rejected"]}, "verdict": {"type": ["string", "null"]}, "reason": {"type": ["string", "null"]}, "errors": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}}}},
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/results": {
                "post": with(json!({"summary": "Upload result rows (JSON array of at most 10,000, or text/csv with a header row, UTF-8 or GBK); station, contractor, admin",
                    "requestBody": {"content": {"application/json": {"schema": {"type": "array", "maxItems": 10000, "items": {"$ref": "#/components/schemas/ResultRow"}}}, "text/csv": {"schema": {"type": "string"}}}},
                    "responses": {"200": {"description": "one result per row, in order", "content": {"application/json": {"schema": {"type": "object", "properties": {"results": {"type": "array", "items": {"$ref": "#/components/schemas/RowResult"}}}}}}}, "400": err, "413": err, "415": err}}), &auth_errors),
                "get": with(json!({"summary": "Readings, newest first (scoped)", "parameters": [q("market", "market code"), q("date", "local day YYYY-MM-DD"), q("verdict", "pass|fail|invalid|unknown"), q("analyte", "canonical id or alias"), q("limit", "1..1000, default 100"), q("after", "the `next` cursor of the previous page")],
                    "responses": {"200": {"description": "{results, next}"}, "400": err}}), &auth_errors),
            },
            "/api/v1/samples": {"post": with(json!({"summary": "Register samples (JSON array of at most 10,000 sample records); a correction of a registered sample updates it and the readings already stored; station, contractor (scoped), admin",
                "requestBody": {"content": {"application/json": {"schema": {"type": "array", "maxItems": 10000, "items": {"type": "object", "required": ["sample_id", "market"], "properties": {"sample_id": {"type": "string"}, "market": {"type": "string"}, "stall": {"type": ["string", "null"]}, "sample_name": {"type": ["string", "null"]}, "category": {"type": ["string", "null"]}, "vendor": {"type": ["string", "null"]}, "supplier": {"type": ["string", "null"]}, "certificate_no": {"type": ["string", "null"]}, "sampled_at": {"type": ["string", "null"], "format": "date-time"}}}}}}},
                "responses": {"200": {"description": "one result per record, in order: {results: [{index, id, status: stored|duplicate|updated|rejected, readings, errors}]}"}, "400": err, "413": err}}), &auth_errors)},
            "/api/v1/coverage": {"get": with(json!({"summary": "Daily coverage of every registered market; regulator, admin", "parameters": [q("date", "YYYY-MM-DD, default today"), q("format", "json|csv")],
                "responses": {"200": {"description": "{date, summary, markets}", "content": {"application/json": {}, "text/csv": {}}}, "400": err}}), &auth_errors)},
            "/api/v1/holds": {"get": with(json!({"summary": "Holds (scoped)", "parameters": [q("status", "held|confirmed|released|review")], "responses": {"200": {"description": "{holds}"}, "400": err}}), &auth_errors)},
            "/api/v1/holds/{id}": {"patch": with(json!({"summary": "Set or correct the stall of a hold (audited); station, contractor, admin", "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"stall": {"type": "string"}}}}}}, "responses": {"200": {"description": "the hold"}, "404": err, "422": err}}), &auth_errors)},
            "/api/v1/holds/{id}/retest": {"post": with(json!({"summary": "Retest a held sample: one result row; station, contractor", "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ResultRow"}}}}, "responses": {"200": {"description": "the hold with its new status and history, `outcome` and `retest`"}, "404": err, "422": err}}), &auth_errors)},
            "/api/v1/instruments": {"get": with(json!({"summary": "Instruments and their links (scoped)", "responses": {"200": {"description": "{instruments}"}}}), &auth_errors)},
            "/api/v1/outbox": {"get": with(json!({"summary": "Outbox events with attempts, next attempt and last answer (admin)", "parameters": [{"name": "status", "in": "query", "schema": {"type": "string", "enum": ["pending", "dead", "delivered"]}}, {"name": "limit", "in": "query", "schema": {"type": "integer"}}], "responses": {"200": {"description": "{events}"}, "400": err}}), &auth_errors)},
            "/api/v1/outbox/{id}/retry": {"post": with(json!({"summary": "Put a dead event back in the queue (admin, audited)", "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}], "responses": {"200": {"description": "the event"}, "404": err, "409": err}}), &auth_errors)},
            "/api/v1/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3"}}}},
            "/healthz": {"get": {"summary": "200 when the database is writable", "security": [], "responses": {"200": {"description": "ok"}, "503": err}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "text/plain; version=0.0.4"}}}},
            "/dashboard": {"get": {"summary": "HTML: the regulators' dashboard (regulator, admin; signed-in session cookie, not a bearer token)", "security": [], "parameters": [q("date", "YYYY-MM-DD, default today"), q("sort", "market|name|district|type|samples|tests|failures|met|last"), q("dir", "asc|desc")],
                "responses": {"200": {"description": "text/html"}, "303": {"description": "not signed in: to /login?next=…"}, "403": {"description": "text/html: not a regulator or admin"}}}},
            "/markets/{code}/board": {"get": {"summary": "HTML: a market's public board of today's results (no personal data)", "security": [], "parameters": [{"name": "code", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "text/html"}, "404": {"description": "text/html: no such market"}}}},
            "/login": {
                "get": {"summary": "HTML sign-in form; with `code` a one-time sign-in (10 minutes, single use)", "security": [], "parameters": [q("next", "a local path, default /dashboard"), q("code", "one-time sign-in code")],
                    "responses": {"200": {"description": "text/html form"}, "303": {"description": "signed in: session cookie, to `next`"}, "401": {"description": "text/html: the code is used, expired or unknown"}}},
                "post": {"summary": "Sign in with a token (form fields token, next, csrf)", "security": [], "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {"token": {"type": "string"}, "next": {"type": "string"}, "csrf": {"type": "string"}}}}}},
                    "responses": {"303": {"description": "signed in: session cookie, to `next`"}, "401": {"description": "text/html: the form again"}, "403": {"description": "text/html: CSRF check failed"}}},
            },
            "/logout": {"post": {"summary": "End the session (form field csrf)", "security": [], "responses": {"303": {"description": "to /login"}, "403": {"description": "text/html: CSRF check failed"}}}},
        }
    })
}
