//! Holds: `GET /api/v1/holds`, `PATCH /api/v1/holds/{id}` (stall),
//! `POST /api/v1/holds/{id}/retest` and `POST /api/v1/holds/{id}/actions`.
//!
//! What a retest does to a hold: [`crate::store::holds`]; the actions after it:
//! [`crate::store::hold_actions`].

use super::results::{prepare, store_rows, RowResult};
use super::rows::{self, FieldError};
use super::schemas::{self, ErrorBody};
use crate::auth::Role;
use crate::http::{ApiError, AppState};
use crate::store::audit::audit;
use crate::store::hold_actions::{apply_action, parse_action, Refused};
use crate::store::hold_mirror::queue_hold_state;
use crate::store::holds::{apply_retest, list_holds, load_hold, HoldFilter, HoldStatus, HoldView};
use crate::store::samples::correct_hold_stall;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HoldsQuery {
    /// held|confirmed|stopped|lab|destroyed|closed|released|review
    status: Option<String>,
    /// `true`: only the holds overdue now (confirmed, no passing re-sample within
    /// `server.resample_days` of the failed test)
    overdue: Option<String>,
}

/// `GET /api/v1/holds?status=`: newest first, at most 1000.
#[utoipa::path(get, path = "/api/v1/holds", operation_id = "list_holds",
    summary = "Holds (scoped)",
    params(HoldsQuery),
    responses(
        (status = 200, description = "the holds", body = schemas::HoldsPageDoc),
        (status = 400, description = "bad request", body = ErrorBody)
    ))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HoldsQuery>,
) -> Result<Json<HoldsAnswer>, ApiError> {
    let who = state.authorize(&headers, &Role::ALL).await?;
    let status = match &q.status {
        None => None,
        Some(s) => Some(
            s.parse::<HoldStatus>()
                .map_err(|e| ApiError::bad_request(format!("status: {e}")).with_field("status"))?,
        ),
    };
    let overdue = match q.overdue.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "overdue: expected true or false, got {other:?}"
            ))
            .with_field("overdue"))
        }
    };
    let filter = HoldFilter {
        status,
        markets: who.role.is_scoped().then_some(who.markets),
        overdue_cutoff: overdue.then(|| {
            crate::store::holds::overdue_cutoff(state.store().settings(), chrono::Utc::now())
        }),
    };
    let holds = state
        .read(move |conn| Ok(list_holds(conn, &filter)?))
        .await?;
    Ok(Json(HoldsAnswer { holds }))
}

/// The answer of `GET /api/v1/holds`.
#[derive(Debug, Serialize)]
pub struct HoldsAnswer {
    pub holds: Vec<HoldView>,
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchHold {
    /// The stall code: not empty, at most 128 bytes.
    #[schema(value_type = String, required = true)]
    stall: Option<String>,
}

/// `PATCH /api/v1/holds/{id}` with `{"stall": "A12"}`: set or correct the stall (audited;
/// the hold's sample and its other readings follow, upstreams get the corrected events: see
/// [`crate::store::samples`]).
#[utoipa::path(patch, path = "/api/v1/holds/{id}", operation_id = "patch_hold",
    summary = "Set or correct the stall of a hold (audited); station, contractor, admin",
    params(("id" = String, Path, description = "hold id")),
    request_body(content = PatchHold, content_type = "application/json"),
    responses(
        (status = 200, description = "the hold", body = schemas::HoldDoc),
        (status = 404, description = "not found", body = ErrorBody),
        (status = 422, description = "invalid", body = ErrorBody)
    ))]
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
    if hold.status == HoldStatus::Traced {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "a traced hold's stall is its sample's: correct the sample's registration (POST /api/v1/samples)",
        ));
    }
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetestAnswer {
    #[serde(flatten)]
    #[schema(value_type = schemas::HoldDoc)]
    pub hold: HoldView,
    /// What the retest did, in one sentence.
    pub outcome: String,
    pub retest: RowResult,
}

/// `POST /api/v1/holds/{id}/retest`: body one upload row.
#[utoipa::path(post, path = "/api/v1/holds/{id}/retest", operation_id = "retest_hold",
    summary = "Retest a held sample: one result row; station, contractor",
    params(("id" = String, Path, description = "hold id")),
    request_body(content = schemas::ResultRowDoc, content_type = "application/json"),
    responses(
        (status = 200, description = "the hold with its new status and history, `outcome` and `retest`", body = RetestAnswer),
        (status = 400, description = "bad request", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
        (status = 422, description = "invalid", body = ErrorBody)
    ))]
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
    // A traced hold is settled by any test of its sample, as the reading is stored.
    let traced = hold.status == HoldStatus::Traced;
    let (outcome, result) = state
        .store()
        .write_async(move |tx| {
            let mut results = store_rows(tx, &settings, &name, vec![p])?;
            let result = results.pop().unwrap_or_else(|| RowResult::rejected(0, None, vec![]));
            let outcome = match (result.status, result.reading) {
                ("stored", Some(_)) if traced => format!(
                    "the sample's test is recorded ({}): a pass releases the traced hold, a failure opens its own",
                    result.verdict.unwrap_or("?")
                ),
                ("stored", Some(reading)) => {
                    let outcome =
                        apply_retest(tx, &settings, &hid, &name, reading, result.hold.as_deref())?;
                    queue_hold_state(tx, &settings, &hid)?;
                    outcome
                }
                ("stored", None) => String::new(),
                ("duplicate", _) => "this retest was recorded before; nothing changed".to_string(),
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

/// The body of `POST /api/v1/holds/{id}/actions` (documentation only: the handler reads
/// the object itself, so that every wrong field is named).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ActionBody {
    /// stop_sale | lab_sent | lab_result | destroy | resample | close
    action: String,
    /// stop_sale: who stopped the sale.
    operator: Option<String>,
    /// lab_sent: the laboratory.
    lab: Option<String>,
    /// lab_sent: the laboratory's sample number.
    lab_sample_no: Option<String>,
    /// lab_result: positive | negative.
    result: Option<String>,
    /// lab_result: the laboratory's report reference.
    reference: Option<String>,
    /// destroy: kilograms destroyed, more than 0.
    kg: Option<f64>,
    /// destroy: how (销毁, 无害化处理, …).
    method: Option<String>,
    /// destroy: who witnessed it.
    witness: Option<String>,
    /// resample: the re-sample's reading id (`id` in `GET /api/v1/results`): same market,
    /// stall, commodity and item, tested after the failure.
    reading: Option<i64>,
    /// Any action: a note kept in the history.
    note: Option<String>,
    /// Any action: when it happened (RFC 3339, default now).
    at: Option<String>,
}

/// The answer of an action: the hold as it is now, and what the action did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActionAnswer {
    #[serde(flatten)]
    #[schema(value_type = schemas::HoldDoc)]
    pub hold: HoldView,
    /// What the action did, in one sentence (its history entry's reason).
    pub outcome: String,
}

/// `POST /api/v1/holds/{id}/actions`: one step of the workflow after a confirmed retest.
#[utoipa::path(post, path = "/api/v1/holds/{id}/actions", operation_id = "act_on_hold",
    summary = "Stop sale, laboratory, destruction, re-sample, close; station, contractor (scoped), admin",
    params(("id" = String, Path, description = "hold id")),
    request_body(content = ActionBody, content_type = "application/json"),
    responses(
        (status = 200, description = "the hold with its new status and history, and `outcome`", body = ActionAnswer),
        (status = 400, description = "a field is wrong (`field` names it)", body = ErrorBody),
        (status = 404, description = "no such hold", body = ErrorBody),
        (status = 409, description = "the hold's state does not allow the action; nothing changed", body = ErrorBody),
        (status = 422, description = "what the action names does not fit the hold (`field` names it)", body = ErrorBody)
    ))]
pub async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<ActionAnswer>, ApiError> {
    let who = state
        .authorize(&headers, &[Role::Station, Role::Contractor, Role::Admin])
        .await?;
    let obj: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("expected a JSON object with \"action\": {e}"))
        })?;
    let hold = scoped_hold(&state, &who, &id).await?;
    if hold.reading.is_null() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "a traced hold takes no action: a test of its sample settles it",
        ));
    }
    act_on(&state, &who, &hold.id, &obj).await.map(Json)
}

/// Apply the action in `obj` to hold `hold` for `who` (the API and the tester's page).
pub async fn act_on(
    state: &AppState,
    who: &crate::auth::Principal,
    hold: &str,
    obj: &serde_json::Map<String, serde_json::Value>,
) -> Result<ActionAnswer, ApiError> {
    let req =
        parse_action(obj).map_err(|e| ApiError::bad_request(e.to_string()).with_field(e.field))?;
    let settings = Arc::new(state.store().settings().clone());
    let name = who.name.clone();
    let admin = who.role == Role::Admin;
    let hid = hold.to_string();
    let done = state
        .store()
        .write_async(move |tx| {
            let done = apply_action(tx, &settings, &hid, &req, &name, admin, chrono::Utc::now())?;
            if let Some(Ok(applied)) = &done {
                queue_hold_state(tx, &settings, &hid)?;
                audit(
                    tx,
                    &name,
                    "hold.action",
                    Some(&hid),
                    &serde_json::json!({"action": req.action.name(), "status": applied.status, "fields": applied.entry.fields}),
                )?;
            }
            Ok(done)
        })
        .await?;
    let outcome = match done {
        None => return Err(ApiError::not_found(format!("no hold {hold:?}"))),
        Some(Err(Refused::Conflict(m))) => {
            return Err(ApiError::new(StatusCode::CONFLICT, "conflict", m))
        }
        Some(Err(Refused::Unfit { field, message })) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("{field}: {message}"),
            )
            .with_field(field))
        }
        Some(Ok(applied)) => applied.entry.reason,
    };
    let hid = hold.to_string();
    let hold = state
        .read(move |conn| Ok(load_hold(conn, &hid)?))
        .await?
        .ok_or_else(|| ApiError::not_found("the hold disappeared"))?;
    Ok(ActionAnswer { hold, outcome })
}

fn unprocessable(errors: &[FieldError]) -> ApiError {
    let text = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", text)
}
