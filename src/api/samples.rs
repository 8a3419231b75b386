//! `POST /api/v1/samples`: register samples (the sampling record) before or after testing.
//!
//! The body is a JSON array (at most [`MAX_ROWS`]) of sample records; the answer has one entry
//! per row, in order: `{"index","id","status","readings","errors"}` with `id` the sample id,
//! `status` one of `stored` (first registration), `duplicate` (same content as registered:
//! nothing changed), `updated` (a correction: given fields replace the registered ones, left
//! out fields keep theirs) or `rejected` (with `errors: [{field, message}]`), and `readings`
//! the number of readings already stored that the registration completed or corrected. What a
//! registration does to readings, holds and upstreams: [`crate::store::samples`].

use super::rows::{self, FieldError};
use super::schemas::{ErrorBody, SampleRecordsDoc, SampleStatusDoc};
use super::MAX_ROWS;
use crate::auth::{Principal, Role};
use crate::http::{ApiError, AppState};
use crate::store::audit::audit;
use crate::store::samples::{register, Registration, SampleRecord};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use chrono::DateTime;
use serde::Serialize;
use std::sync::Arc;

/// Longest accepted text in one field.
const MAX_FIELD: usize = 1024;

/// What became of one sample record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SampleResult {
    pub index: usize,
    pub id: Option<String>,
    #[schema(value_type = SampleStatusDoc)]
    pub status: &'static str,
    /// Readings already stored that the registration completed or corrected.
    pub readings: usize,
    pub errors: Vec<FieldError>,
}

impl SampleResult {
    fn rejected(index: usize, id: Option<String>, errors: Vec<FieldError>) -> Self {
        SampleResult {
            index,
            id,
            status: "rejected",
            readings: 0,
            errors,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SamplesAnswer {
    pub results: Vec<SampleResult>,
}

/// Validate one record's cells.
fn parse_record(state: &AppState, raw: &str) -> Result<SampleRecord, Vec<FieldError>> {
    let cells = rows::json_cells(raw)?;
    let mut errors = Vec::new();
    let get = |f: &str| -> Option<String> {
        cells
            .get(f)
            .cloned()
            .flatten()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    const FIELDS: [&str; 9] = [
        "sample_id",
        "market",
        "stall",
        "sample_name",
        "category",
        "vendor",
        "supplier",
        "certificate_no",
        "sampled_at",
    ];
    for f in FIELDS {
        if get(f).is_some_and(|v| v.len() > MAX_FIELD) {
            errors.push(FieldError::new(f, format!("longer than {MAX_FIELD} bytes")));
        }
    }
    let sample_id = get("sample_id");
    let market = get("market");
    if sample_id.is_none() {
        errors.push(FieldError::new(
            "sample_id",
            "required: readings find their sample by it",
        ));
    }
    if market.is_none() {
        errors.push(FieldError::new("market", "required"));
    }
    let category = get("category");
    if let Some(c) = &category {
        if state.judge().reference().category(c).is_none() {
            errors.push(FieldError::new(
                "category",
                format!("unknown category {c:?}: not a food category of the reference data"),
            ));
        }
    }
    let sampled_at = get("sampled_at");
    if let Some(t) = &sampled_at {
        if DateTime::parse_from_rfc3339(t).is_err() {
            errors.push(FieldError::new(
                "sampled_at",
                "expected RFC 3339 with an offset, e.g. 2025-03-04T09:30:00+08:00",
            ));
        }
    }
    match (sample_id, market) {
        (Some(sample_id), Some(market)) if errors.is_empty() => Ok(SampleRecord {
            sample_id,
            market,
            stall: get("stall"),
            sample_name: get("sample_name"),
            category,
            vendor: get("vendor"),
            supplier: get("supplier"),
            certificate_no: get("certificate_no"),
            sampled_at,
        }),
        _ => Err(errors),
    }
}

/// A valid record and its index in the body.
type Indexed = (usize, SampleRecord);

/// Valid, in-scope records (with their index) and the rows answered already.
fn prepare(
    state: &AppState,
    who: &Principal,
    body: &[u8],
) -> Result<(Vec<Indexed>, Vec<SampleResult>), ApiError> {
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a JSON array: {e}")))?;
    if items.len() > MAX_ROWS {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_rows",
            format!(
                "{} sample records: at most {MAX_ROWS} per request",
                items.len()
            ),
        ));
    }
    let mut good = Vec::with_capacity(items.len());
    let mut answered = Vec::new();
    for (index, raw) in items.into_iter().enumerate() {
        match parse_record(state, raw.get()) {
            Err(errors) => {
                let id = rows::json_cells(raw.get())
                    .ok()
                    .and_then(|c| c.get("sample_id").cloned().flatten());
                answered.push(SampleResult::rejected(index, id, errors));
            }
            Ok(rec) if !who.covers(&rec.market) => answered.push(SampleResult::rejected(
                index,
                Some(rec.sample_id.clone()),
                vec![FieldError::new(
                    "market",
                    format!("market {:?} is outside this token's markets", rec.market),
                )],
            )),
            Ok(rec) => good.push((index, rec)),
        }
    }
    Ok((good, answered))
}

/// `POST /api/v1/samples`.
#[utoipa::path(post, path = "/api/v1/samples", operation_id = "register_samples",
    summary = "Register samples (JSON array of at most 10,000 sample records); a correction of a registered sample updates it and the readings already stored; station, contractor (scoped), admin",
    request_body(content = SampleRecordsDoc, content_type = "application/json"),
    responses(
        (status = 200, description = "one result per record, in order", body = SamplesAnswer),
        (status = 400, description = "bad request", body = ErrorBody),
        (status = 413, description = "too large", body = ErrorBody)
    ))]
pub async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SamplesAnswer>, ApiError> {
    let who = state
        .authorize(&headers, &[Role::Station, Role::Contractor, Role::Admin])
        .await?;
    register_body(&state, &who, body.to_vec()).await.map(Json)
}

/// Register the sample records of `body` (a JSON array) for `who`: the API and the tester's
/// page. Answered per record, in order.
pub async fn register_body(
    state: &AppState,
    who: &Principal,
    body: Vec<u8>,
) -> Result<SamplesAnswer, ApiError> {
    let st = state.clone();
    let w = who.clone();
    let (good, mut answered) = tokio::task::spawn_blocking(move || prepare(&st, &w, &body))
        .await
        .map_err(ApiError::internal)??;
    let total = good.len() + answered.len();
    let settings = Arc::new(state.store().settings().clone());
    let name = who.name.clone();
    let stored = state
        .store()
        .write_async(move |tx| {
            let mut out = Vec::with_capacity(good.len());
            for (index, rec) in good {
                let (status, readings) = match register(tx, &settings, &rec, &name)? {
                    Registration::Stored { readings } => ("stored", readings),
                    Registration::Duplicate => ("duplicate", 0),
                    Registration::Updated { readings } => ("updated", readings),
                    Registration::UnknownMarket => {
                        out.push(SampleResult::rejected(
                            index,
                            Some(rec.sample_id.clone()),
                            vec![FieldError::new(
                                "market",
                                format!("unknown market {:?}", rec.market),
                            )],
                        ));
                        continue;
                    }
                };
                out.push(SampleResult {
                    index,
                    id: Some(rec.sample_id),
                    status,
                    readings,
                    errors: Vec::new(),
                });
            }
            let count = |s: &str| out.iter().filter(|r| r.status == s).count();
            audit(
                tx,
                &name,
                "samples.upload",
                None,
                &serde_json::json!({"rows": total, "stored": count("stored"), "updated": count("updated"), "duplicate": count("duplicate")}),
            )?;
            Ok(out)
        })
        .await?;
    answered.extend(stored);
    answered.sort_by_key(|r| r.index);
    Ok(SamplesAnswer { results: answered })
}
