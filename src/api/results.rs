//! `POST /api/v1/results` (upload rows → judged, stored readings) and `GET /api/v1/results`.

use super::rows::{self, Cells, FieldError, Row};
use super::schemas::{ErrorBody, ResultRowsDoc, ResultsPageDoc, RowStatusDoc, VerdictNameDoc};
use super::MAX_ROWS;
use crate::auth::{Principal, Role};
use crate::http::{ApiError, AppState};
use crate::pipeline::{Pipeline, Place, SentBy};
use crate::store::audit::audit;
use crate::store::insert::verdict_str;
use crate::store::results;
use crate::store::{Batch, NewReading, Outcome, RawFrame, StoreSettings, Tx};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What became of one uploaded row.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RowResult {
    pub index: usize,
    pub id: Option<String>,
    #[schema(value_type = RowStatusDoc)]
    pub status: &'static str,
    #[schema(value_type = Option<VerdictNameDoc>)]
    pub verdict: Option<&'static str>,
    pub reason: Option<String>,
    pub errors: Vec<FieldError>,
    /// The hold a failure opened (beyond the documented answer fields: for retests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
    #[serde(skip)]
    pub reading: Option<i64>,
    #[serde(skip)]
    pub identity: Option<String>,
}

impl RowResult {
    pub fn rejected(index: usize, id: Option<String>, errors: Vec<FieldError>) -> Self {
        RowResult {
            index,
            id,
            status: "rejected",
            verdict: None,
            reason: None,
            errors,
            hold: None,
            reading: None,
            identity: None,
        }
    }
}

/// A row ready for the writer: valid, in scope, judged, with its raw bytes.
pub struct Prepared {
    pub index: usize,
    /// The uploader's row id.
    pub id: String,
    pub content_hash: String,
    /// Judged by the pipeline, pointing at frame 0 of the row's own batch.
    pub reading: NewReading,
    pub raw: Vec<u8>,
    /// When the upload arrived: names the row's raw frame and its `uploads` entry.
    pub arrived: DateTime<Utc>,
}

/// Validate, scope-check and judge rows (out of the writer); the rejected ones are
/// answered already.
pub fn prepare(
    state: &AppState,
    who: &Principal,
    input: BodyRows,
) -> (Vec<Prepared>, Vec<RowResult>) {
    let mut good = Vec::with_capacity(input.len());
    let mut answered = Vec::new();
    let arrived = Utc::now();
    let pipeline = Pipeline::new(state.judge());
    for (index, (cells, raw)) in input.into_iter().enumerate() {
        let sent_id = cells
            .as_ref()
            .ok()
            .and_then(|c| c.get("id").cloned().flatten())
            .map(|s| s.trim().to_string());
        let parsed = cells.and_then(|c| rows::parse_row(c, state.judge(), state.aliases()));
        match parsed {
            Err(errors) => answered.push(RowResult::rejected(index, sent_id, errors)),
            Ok(row) if !who.covers(&row.market) => answered.push(RowResult::rejected(
                index,
                Some(row.id.clone()),
                vec![FieldError::new(
                    "market",
                    format!("market {:?} is outside this token's markets", row.market),
                )],
            )),
            Ok(row) => {
                let Row {
                    id,
                    market,
                    stall,
                    reading,
                    received_at,
                    content_hash,
                } = row;
                let reading = pipeline.judged(
                    reading,
                    Place {
                        market: &market,
                        stall: stall.as_deref(),
                        sender: SentBy::UploadRow {
                            uploader: &who.name,
                            row: &id,
                        },
                        received_at: received_at.unwrap_or(arrived),
                        frame: 0,
                    },
                );
                good.push(Prepared {
                    index,
                    id,
                    content_hash,
                    reading,
                    raw,
                    arrived,
                });
            }
        }
    }
    (good, answered)
}

/// Store prepared rows in the writer's transaction, one by one in order, recording which
/// uploader id became which reading. Returns one result per row.
pub fn store_rows(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    uploader: &str,
    rows: Vec<Prepared>,
) -> rusqlite::Result<Vec<RowResult>> {
    let mut out = Vec::with_capacity(rows.len());
    for p in rows {
        let now = p.arrived;
        let seen = results::seen_upload(tx, uploader, &p.id)?;
        if let Some(seen) = seen {
            if seen.content_hash != p.content_hash {
                out.push(RowResult::rejected(
                    p.index,
                    Some(p.id),
                    vec![FieldError::new("id", "reused with different content")],
                ));
            } else {
                out.push(duplicate(tx, p.index, p.id, seen.reading)?);
            }
            continue;
        }
        let batch = Batch {
            frames: vec![RawFrame {
                source: format!("upload:{uploader}"),
                offset: upload_offset(now, p.index),
                bytes: p.raw,
                error: None,
                received_at: now,
            }],
            readings: vec![p.reading],
        };
        let committed = Pipeline::insert(tx, settings, batch)?;
        let result = match committed.outcomes.into_iter().next() {
            Some(Outcome::Stored {
                id,
                identity,
                verdict,
                hold,
                ..
            }) => {
                let reason = results::reason(tx, id)?;
                RowResult {
                    index: p.index,
                    id: Some(p.id.clone()),
                    status: "stored",
                    verdict: Some(verdict_str(verdict)),
                    reason: Some(reason),
                    errors: Vec::new(),
                    hold,
                    reading: Some(id),
                    identity: Some(identity),
                }
            }
            Some(Outcome::Duplicate { id, .. }) => duplicate(tx, p.index, p.id.clone(), id)?,
            Some(Outcome::Rejected { reason }) => RowResult::rejected(
                p.index,
                Some(p.id.clone()),
                vec![FieldError::new("market", reason)],
            ),
            None => RowResult::rejected(
                p.index,
                Some(p.id.clone()),
                vec![FieldError::new("", "not stored")],
            ),
        };
        if let Some(reading) = result.reading {
            let received = crate::store::insert::rfc3339(now);
            results::record_upload(tx, uploader, &p.id, &p.content_hash, reading, &received)?;
        }
        out.push(result);
    }
    Ok(out)
}

/// Where an uploaded row's bytes sit in its uploader's stream of raw frames: receipt time in
/// milliseconds, then the row's place in its request (at most [`MAX_ROWS`]). Raw frames are
/// unique by (source, offset, hash): with a constant offset every upload inserted at the
/// random place of its hash (one index page written per row at each commit); in receipt
/// order they are added at the end. Dedup is unchanged: a row's bytes include its own id, and
/// an id seen before never gets here.
fn upload_offset(at: chrono::DateTime<Utc>, index: usize) -> u64 {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    ms.saturating_mul(MAX_ROWS as u64)
        .saturating_add(index as u64)
}

fn duplicate(tx: &Tx<'_>, index: usize, id: String, reading: i64) -> rusqlite::Result<RowResult> {
    let stored = results::judged(tx, reading)?;
    Ok(RowResult {
        index,
        id: Some(id),
        status: "duplicate",
        verdict: Some(verdict_str(stored.verdict)),
        reason: Some(stored.reason),
        errors: Vec::new(),
        hold: stored.hold,
        reading: Some(reading),
        identity: Some(stored.identity),
    })
}

/// The rows of a body: a JSON array, or CSV (`text/csv`, UTF-8 or GBK).
pub fn body_rows(headers: &HeaderMap, body: &[u8]) -> Result<BodyRows, ApiError> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut parts = ctype.split(';');
    let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let charset = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().to_string())
    });
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let rows = match mime.as_str() {
        "text/csv" => csv_body(body, charset.as_deref())?,
        "application/json" => json_body(body)?,
        "" if first == Some(b'[') => json_body(body)?,
        "" => csv_body(body, charset.as_deref())?,
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("Content-Type {other:?}: send application/json or text/csv"),
            ))
        }
    };
    if rows.len() > MAX_ROWS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_rows",
            format!("{} rows: at most {MAX_ROWS} per request", rows.len()),
        ));
    }
    Ok(rows)
}

/// Each row's cells (or why it has none) and its raw bytes.
pub type BodyRows = Vec<(Result<Cells, Vec<FieldError>>, Vec<u8>)>;

fn json_body(body: &[u8]) -> Result<BodyRows, ApiError> {
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a JSON array: {e}")))?;
    Ok(items
        .into_iter()
        .map(|raw| (rows::json_cells(raw.get()), raw.get().as_bytes().to_vec()))
        .collect())
}

fn csv_body(body: &[u8], charset: Option<&str>) -> Result<BodyRows, ApiError> {
    let text = rows::decode_text(body, charset).map_err(ApiError::bad_request)?;
    let parsed = rows::csv_rows(&text).map_err(ApiError::bad_request)?;
    Ok(parsed
        .into_iter()
        .map(|r| (Ok(r.cells), r.raw.into_bytes()))
        .collect())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UploadAnswer {
    pub results: Vec<RowResult>,
}

/// `POST /api/v1/results`.
#[utoipa::path(post, path = "/api/v1/results", operation_id = "upload_results",
    summary = "Upload result rows (JSON array of at most 10,000, or text/csv with a header row, UTF-8 or GBK); station, contractor, admin",
    request_body(content(
        (ResultRowsDoc = "application/json"),
        (String = "text/csv"),
    )),
    responses(
        (status = 200, description = "one result per row, in order", body = UploadAnswer),
        (status = 400, description = "bad request", body = ErrorBody),
        (status = 413, description = "too large", body = ErrorBody),
        (status = 415, description = "unsupported media type", body = ErrorBody)
    ))]
pub async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<UploadAnswer>, ApiError> {
    let who = state
        .authorize(&headers, &[Role::Station, Role::Contractor, Role::Admin])
        .await?;
    let input = body_rows(&headers, &body)?;
    let total = input.len();
    let st = state.clone();
    let w = who.clone();
    let (good, mut answered) = tokio::task::spawn_blocking(move || prepare(&st, &w, input))
        .await
        .map_err(ApiError::internal)?;
    let settings = Arc::new(state.store().settings().clone());
    let name = who.name.clone();
    let stored = state
        .store()
        .write_async(move |tx| {
            let out = store_rows(tx, &settings, &name, good)?;
            let count = |s: &str| out.iter().filter(|r| r.status == s).count();
            audit(
                tx,
                &name,
                "results.upload",
                None,
                &serde_json::json!({"rows": total, "stored": count("stored"), "duplicate": count("duplicate"), "rejected_by_store": count("rejected")}),
            )?;
            Ok(out)
        })
        .await?;
    answered.extend(stored);
    answered.sort_by_key(|r| r.index);
    Ok(Json(UploadAnswer { results: answered }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// market code
    market: Option<String>,
    /// local day YYYY-MM-DD
    date: Option<String>,
    /// pass|fail|invalid|unknown
    verdict: Option<String>,
    /// canonical id or alias
    analyte: Option<String>,
    /// 1..1000, default 100
    limit: Option<u32>,
    /// the `next` cursor of the previous page
    after: Option<String>,
}

/// `GET /api/v1/results`: newest first, `after=<next>` for the next page.
#[utoipa::path(get, path = "/api/v1/results", operation_id = "list_results",
    summary = "Readings, newest first (scoped)",
    params(ListQuery),
    responses(
        (status = 200, description = "a page of readings", body = ResultsPageDoc),
        (status = 400, description = "bad request", body = ErrorBody)
    ))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = state.authorize(&headers, &Role::ALL).await?;
    if let Some(m) = &q.market {
        if !who.covers(m) {
            return Err(ApiError::forbidden(format!(
                "market {m:?} is outside this token's markets"
            )));
        }
    }
    if let Some(d) = &q.date {
        if chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() {
            return Err(ApiError::bad_request("date: expected YYYY-MM-DD"));
        }
    }
    if let Some(v) = &q.verdict {
        if !matches!(v.as_str(), "pass" | "fail" | "invalid" | "unknown") {
            return Err(ApiError::bad_request(
                "verdict: expected pass, fail, invalid or unknown",
            ));
        }
    }
    let after: Option<i64> = match &q.after {
        None => None,
        Some(a) => Some(
            a.parse()
                .map_err(|_| ApiError::bad_request("after: not a cursor from `next`"))?,
        ),
    };
    let limit = i64::from(q.limit.unwrap_or(100).clamp(1, 1000));
    let filter = results::ResultsFilter {
        market: q.market,
        date: q.date,
        verdict: q.verdict,
        analyte: q
            .analyte
            .as_deref()
            .map(|a| state.aliases().lookup(a).unwrap_or(a).to_string()),
        before: after,
        scope: who.role.is_scoped().then(|| who.markets.clone()),
        // One more than a page: whether there is a next page.
        limit: limit + 1,
    };
    let rows = state
        .read(move |reader| Ok(results::list(reader, &filter)?))
        .await?;
    let more = rows.len() as i64 > limit;
    let mut next = None;
    let mut page = Vec::with_capacity(rows.len());
    for row in rows.into_iter().take(limit as usize) {
        let mut v: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&row.reading_json).unwrap_or_default();
        if row.uploader.is_some() {
            v.insert("protocol".into(), serde_json::Value::Null);
        }
        v.insert("id".into(), row.identity.into());
        v.insert("market".into(), row.market.into());
        v.insert("stall".into(), row.stall.into());
        v.insert("uploader".into(), row.uploader.into());
        v.insert("received_at".into(), row.received_at.into());
        page.push(serde_json::Value::Object(v));
        next = Some(row.id.to_string());
    }
    Ok(Json(serde_json::json!({
        "results": page,
        "next": if more { next } else { None },
    })))
}
