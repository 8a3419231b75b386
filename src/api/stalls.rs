//! `POST /api/v1/results/stalls`: stalls set at a station on readings it uploaded, for the
//! readings that have no sample id (a station forwards each such `PATCH /api/v1/holds/{id}`
//! here; one with a sample id goes through the sample's registration instead).
//!
//! The body is a JSON array (at most [`MAX_ROWS`]) of `{"id", "market", "stall"}`: `id` is the
//! row id the uploader sent the reading with. The answer has one entry per row, in order:
//! `{"index","id","status","errors"}` with `status` `updated` (the reading and its hold name
//! the stall now, noted in the hold's history), `duplicate` (they did already) or `rejected`.
//! Only the uploader of a row can correct it.

use super::rows::FieldError;
use super::schemas::{ErrorBody, StallCorrectionsDoc, StallStatusDoc};
use super::MAX_ROWS;
use crate::auth::Role;
use crate::http::{ApiError, AppState};
use crate::store::audit::audit;
use crate::store::stalls::{apply_forwarded_stall, ForwardedStall};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Longest accepted stall code, as `PATCH /api/v1/holds/{id}` takes it.
const MAX_STALL: usize = 128;
/// Longest accepted row id or market code.
const MAX_FIELD: usize = 1024;

/// One stall correction as sent.
#[derive(Debug, Deserialize)]
struct StallRow {
    id: Option<String>,
    market: Option<String>,
    stall: Option<String>,
}

/// What became of one stall correction.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StallResult {
    pub index: usize,
    pub id: Option<String>,
    #[schema(value_type = StallStatusDoc)]
    pub status: &'static str,
    pub errors: Vec<FieldError>,
}

impl StallResult {
    fn rejected(index: usize, id: Option<String>, errors: Vec<FieldError>) -> Self {
        StallResult {
            index,
            id,
            status: "rejected",
            errors,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StallsAnswer {
    pub results: Vec<StallResult>,
}

/// A valid correction: (index, row id, market, stall).
type Valid = (usize, String, String, String);

fn validate(index: usize, raw: &serde_json::value::RawValue) -> Result<Valid, StallResult> {
    let row: StallRow = serde_json::from_str(raw.get()).map_err(|e| {
        StallResult::rejected(
            index,
            None,
            vec![FieldError::new(
                "",
                format!("expected {{\"id\", \"market\", \"stall\"}} with text values: {e}"),
            )],
        )
    })?;
    let clean = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let (id, market, stall) = (clean(row.id), clean(row.market), clean(row.stall));
    let mut errors = Vec::new();
    for (field, v, max) in [
        ("id", &id, MAX_FIELD),
        ("market", &market, MAX_FIELD),
        ("stall", &stall, MAX_STALL),
    ] {
        match v {
            None => errors.push(FieldError::new(field, "required")),
            Some(v) if v.len() > max => {
                errors.push(FieldError::new(field, format!("longer than {max} bytes")))
            }
            Some(_) => {}
        }
    }
    match (id, market, stall) {
        (Some(id), Some(market), Some(stall)) if errors.is_empty() => {
            Ok((index, id, market, stall))
        }
        (id, _, _) => Err(StallResult::rejected(index, id, errors)),
    }
}

/// `POST /api/v1/results/stalls`.
#[utoipa::path(post, path = "/api/v1/results/stalls", operation_id = "correct_stalls",
    summary = "Set the stall of readings this uploader sent without a sample id (a station forwards its hold stall corrections here); station, contractor (scoped), admin",
    request_body(content = StallCorrectionsDoc, content_type = "application/json"),
    responses(
        (status = 200, description = "one result per row, in order", body = StallsAnswer),
        (status = 400, description = "bad request", body = ErrorBody),
        (status = 413, description = "too large", body = ErrorBody)
    ))]
pub async fn correct(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<StallsAnswer>, ApiError> {
    let who = state
        .authorize(&headers, &[Role::Station, Role::Contractor, Role::Admin])
        .await?;
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a JSON array: {e}")))?;
    if items.len() > MAX_ROWS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_rows",
            format!("{} rows: at most {MAX_ROWS} per request", items.len()),
        ));
    }
    let mut answered = Vec::new();
    let mut good = Vec::new();
    for (index, raw) in items.into_iter().enumerate() {
        match validate(index, raw) {
            Err(r) => answered.push(r),
            Ok((index, id, market, _)) if !who.covers(&market) => {
                answered.push(StallResult::rejected(
                    index,
                    Some(id),
                    vec![FieldError::new(
                        "market",
                        format!("market {market:?} is outside this token's markets"),
                    )],
                ))
            }
            Ok(v) => good.push(v),
        }
    }
    let total = answered.len() + good.len();
    let settings = Arc::new(state.store().settings().clone());
    let name = who.name.clone();
    let done = state
        .store()
        .write_async(move |tx| {
            let mut out = Vec::with_capacity(good.len());
            for (index, id, market, stall) in good {
                let status = match apply_forwarded_stall(tx, &settings, &name, &id, &market, &stall)?
                {
                    ForwardedStall::Updated => "updated",
                    ForwardedStall::Unchanged => "duplicate",
                    ForwardedStall::UnknownRow => {
                        out.push(StallResult::rejected(
                            index,
                            Some(id),
                            vec![FieldError::new(
                                "id",
                                "no row with this id was uploaded with this token",
                            )],
                        ));
                        continue;
                    }
                    ForwardedStall::OtherMarket => {
                        out.push(StallResult::rejected(
                            index,
                            Some(id),
                            vec![FieldError::new(
                                "market",
                                format!("the row was uploaded for another market than {market:?}"),
                            )],
                        ));
                        continue;
                    }
                };
                out.push(StallResult {
                    index,
                    id: Some(id),
                    status,
                    errors: Vec::new(),
                });
            }
            let count = |s: &str| out.iter().filter(|r| r.status == s).count();
            audit(
                tx,
                &name,
                "results.stalls",
                None,
                &serde_json::json!({"rows": total, "updated": count("updated"), "duplicate": count("duplicate")}),
            )?;
            Ok(out)
        })
        .await?;
    answered.extend(done);
    answered.sort_by_key(|r| r.index);
    Ok(Json(StallsAnswer { results: answered }))
}
