//! `POST /api/v1/results/holds`: a station's holds as they are now, at its hub (the station
//! queues one `hold.state` after each retest, action or deadline; see
//! [`crate::store::hold_mirror`]).
//!
//! The body is a JSON array (at most [`MAX_ROWS`]) of hold states: `id` (the row id the
//! station uploaded the failed reading with), `market`, `status`, `destroyed_kg`,
//! `destroyed_at`, `resample` (the passing re-sample's row id), `overdue_at` and `history`
//! (the entries after the one that opened the hold). The answer has one entry per row, in
//! order: `{"index","id","status","errors"}` with `status` `updated` (the hub's hold of that
//! row took the state and the entries it lacked), `duplicate` (it had them) or `rejected`.
//! Only the uploader of a row can send its hold's state.

use super::rows::FieldError;
use super::schemas::{at_most_max_rows, with_item, ErrorBody, HistoryEntryDoc, HoldStatusDoc};
use super::MAX_ROWS;
use crate::auth::Role;
use crate::http::{ApiError, AppState};
use crate::store::audit::audit;
use crate::store::hold_mirror::{apply_hold_state, HoldState, StateApplied};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Serialize;
use std::sync::Arc;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// Longest accepted row id or market code.
const MAX_FIELD: usize = 1024;
/// History entries one state may carry.
const MAX_ENTRIES: usize = 500;
/// Longest text of one history entry (`by`, `reason`, `action`), and of its fields as JSON.
const MAX_ENTRY_TEXT: usize = 4096;
/// The most kilograms a destruction may name (as the action takes it).
const MAX_KG: f64 = 100_000.0;

/// What became of one hold state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HoldStateResult {
    pub index: usize,
    pub id: Option<String>,
    #[schema(value_type = HoldStateStatusDoc)]
    pub status: &'static str,
    pub errors: Vec<FieldError>,
}

impl HoldStateResult {
    fn rejected(index: usize, id: Option<String>, errors: Vec<FieldError>) -> Self {
        HoldStateResult {
            index,
            id,
            status: "rejected",
            errors,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct HoldStatesAnswer {
    pub results: Vec<HoldStateResult>,
}

/// What became of one hold state.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = HoldStateStatus)]
pub enum HoldStateStatusDoc {
    /// The hold took the state and the history entries it lacked.
    Updated,
    /// It had them already.
    Duplicate,
    Rejected,
}

/// One hold state of `POST /api/v1/results/holds`.
#[derive(Serialize, ToSchema)]
#[schema(as = HoldStateRow)]
pub struct HoldStateDoc {
    /// The row id the failed reading was uploaded with (a station's: the reading's identity).
    pub id: String,
    pub market: String,
    pub status: HoldStatusDoc,
    pub destroyed_kg: Option<f64>,
    #[schema(format = DateTime)]
    pub destroyed_at: Option<String>,
    /// The passing re-sample's row id.
    pub resample: Option<String>,
    #[schema(format = DateTime)]
    pub overdue_at: Option<String>,
    /// The station's history after the entry that opened the hold.
    pub history: Vec<HistoryEntryDoc>,
}

/// `POST /api/v1/results/holds`: a JSON array of hold states.
pub struct HoldStatesDoc;

impl PartialSchema for HoldStatesDoc {
    fn schema() -> RefOr<Schema> {
        at_most_max_rows::<HoldStateDoc>()
    }
}

impl ToSchema for HoldStatesDoc {
    fn name() -> std::borrow::Cow<'static, str> {
        "HoldStates".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        with_item::<HoldStateDoc>(schemas);
    }
}

fn is_time(t: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(t).is_ok()
}

/// Parse and check one state; what is wrong, field by field.
fn validate(index: usize, raw: &serde_json::value::RawValue) -> Result<HoldState, HoldStateResult> {
    let state: HoldState = serde_json::from_str(raw.get()).map_err(|e| {
        let id = serde_json::from_str::<serde_json::Value>(raw.get())
            .ok()
            .and_then(|v| v.get("id")?.as_str().map(str::to_string));
        HoldStateResult::rejected(
            index,
            id,
            vec![FieldError::new("", format!("not a hold state: {e}"))],
        )
    })?;
    let mut errors = Vec::new();
    for (field, v) in [("id", &state.id), ("market", &state.market)] {
        if v.trim().is_empty() {
            errors.push(FieldError::new(field, "required"));
        } else if v.len() > MAX_FIELD {
            errors.push(FieldError::new(
                field,
                format!("longer than {MAX_FIELD} bytes"),
            ));
        }
    }
    if let Some(kg) = state.destroyed_kg {
        if !(kg > 0.0 && kg <= MAX_KG) {
            errors.push(FieldError::new(
                "destroyed_kg",
                format!("expected more than 0 and at most {MAX_KG}"),
            ));
        }
    }
    for (field, v) in [
        ("destroyed_at", &state.destroyed_at),
        ("overdue_at", &state.overdue_at),
    ] {
        if v.as_deref().is_some_and(|t| !is_time(t)) {
            errors.push(FieldError::new(field, "expected an RFC 3339 time"));
        }
    }
    if state.resample.as_ref().is_some_and(|r| r.len() > MAX_FIELD) {
        errors.push(FieldError::new(
            "resample",
            format!("longer than {MAX_FIELD} bytes"),
        ));
    }
    if state.history.len() > MAX_ENTRIES {
        errors.push(FieldError::new(
            "history",
            format!("{} entries: at most {MAX_ENTRIES}", state.history.len()),
        ));
    }
    for (i, e) in state.history.iter().enumerate() {
        let fields = e.fields.as_ref().map_or(0, |f| f.to_string().len());
        let longest = [
            e.by.len(),
            e.reason.len(),
            e.action.as_ref().map_or(0, String::len),
            fields,
        ];
        if !is_time(&e.at) {
            errors.push(FieldError::new(
                &format!("history[{i}].at"),
                "expected an RFC 3339 time",
            ));
        }
        if longest.iter().any(|&n| n > MAX_ENTRY_TEXT) {
            errors.push(FieldError::new(
                &format!("history[{i}]"),
                format!("a text longer than {MAX_ENTRY_TEXT} bytes"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(state)
    } else {
        Err(HoldStateResult::rejected(index, Some(state.id), errors))
    }
}

/// `POST /api/v1/results/holds`.
#[utoipa::path(post, path = "/api/v1/results/holds", operation_id = "mirror_holds",
    summary = "Bring the holds of readings this uploader sent to the state it has (a station forwards its holds here after each retest, action and deadline); station, contractor (scoped), admin",
    request_body(content = HoldStatesDoc, content_type = "application/json"),
    responses(
        (status = 200, description = "one result per row, in order", body = HoldStatesAnswer),
        (status = 400, description = "bad request", body = ErrorBody),
        (status = 413, description = "too large", body = ErrorBody)
    ))]
pub async fn mirror(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<HoldStatesAnswer>, ApiError> {
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
            Ok(s) if !who.covers(&s.market) => answered.push(HoldStateResult::rejected(
                index,
                Some(s.id),
                vec![FieldError::new(
                    "market",
                    format!("market {:?} is outside this token's markets", s.market),
                )],
            )),
            Ok(s) => good.push((index, s)),
        }
    }
    let total = answered.len() + good.len();
    let settings = Arc::new(state.store().settings().clone());
    let name = who.name.clone();
    let done = state
        .store()
        .write_async(move |tx| {
            let mut out = Vec::with_capacity(good.len());
            for (index, s) in good {
                let wrong = |field: &str, message: String| {
                    HoldStateResult::rejected(
                        index,
                        Some(s.id.clone()),
                        vec![FieldError::new(field, message)],
                    )
                };
                let status = match apply_hold_state(tx, &settings, &name, &s)? {
                    StateApplied::Updated => "updated",
                    StateApplied::Unchanged => "duplicate",
                    StateApplied::UnknownRow => {
                        out.push(wrong(
                            "id",
                            "no row with this id was uploaded with this token".into(),
                        ));
                        continue;
                    }
                    StateApplied::OtherMarket => {
                        out.push(wrong(
                            "market",
                            format!("the row was uploaded for another market than {:?}", s.market),
                        ));
                        continue;
                    }
                    StateApplied::NoHold => {
                        out.push(wrong("id", "the row's reading has no hold here".into()));
                        continue;
                    }
                };
                out.push(HoldStateResult {
                    index,
                    id: Some(s.id),
                    status,
                    errors: Vec::new(),
                });
            }
            let count = |s: &str| out.iter().filter(|r| r.status == s).count();
            audit(
                tx,
                &name,
                "results.holds",
                None,
                &serde_json::json!({"rows": total, "updated": count("updated"), "duplicate": count("duplicate")}),
            )?;
            Ok(out)
        })
        .await?;
    answered.extend(done);
    answered.sort_by_key(|r| r.index);
    Ok(Json(HoldStatesAnswer { results: answered }))
}
