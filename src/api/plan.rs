//! `GET /api/v1/plan?market=&date=`: a market's sampling plan for a day (`docs/plan.md`,
//! [`crate::store::plan`]): the stall × category pairs to test, as many as its quota, drawn
//! reproducibly from its history and weighted by risk. Kept when first drawn for today or a
//! past day; a later day's is a preview.

use super::schemas::ErrorBody;
use crate::auth::Role;
use crate::http::{ApiError, AppState};
use crate::judge::AnalyteRule;
use crate::store::plan::{plan_in, SamplingPlan};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlanQuery {
    /// the market code
    market: Option<String>,
    /// YYYY-MM-DD, default today
    date: Option<String>,
}

/// The shape of a plan, for the document.
#[derive(Serialize, ToSchema)]
#[schema(as = Plan)]
pub struct PlanDoc {
    pub market: String,
    #[schema(format = Date)]
    pub date: String,
    /// The market's daily quota: the plan's size (more when more stalls are high-risk).
    pub quota: u32,
    /// The draw's seed in hex: SHA-256 of "<market>|<date>", first 8 bytes.
    pub seed: String,
    /// Kept (today or earlier), or a preview (a later day).
    pub fixed: bool,
    /// The stall × category pairs tested within the 90 days before the day.
    pub candidates: u32,
    pub entries: Vec<PlanEntryDoc>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = PlanEntry)]
pub struct PlanEntryDoc {
    pub position: u32,
    pub stall: String,
    pub category: String,
    /// The stall's risk grade as the day began: low, medium or high.
    pub grade: String,
    /// A reading of this stall and category was received that day.
    pub done: bool,
}

/// The analytes that must not be present at all (a failure of one grades a stall high).
pub fn prohibited(state: &AppState) -> HashSet<String> {
    state
        .judge()
        .reference()
        .analytes()
        .iter()
        .filter(|a| a.rule() == AnalyteRule::Prohibited)
        .map(|a| a.id().as_str().to_string())
        .collect()
}

#[utoipa::path(get, path = "/api/v1/plan", operation_id = "plan",
    summary = "A market's sampling plan for a day, drawn reproducibly and weighted by risk",
    params(PlanQuery),
    responses(
        (status = 200, description = "the plan", body = PlanDoc),
        (status = 400, description = "bad request (`field` names it)", body = ErrorBody),
        (status = 404, description = "no such market", body = ErrorBody)
    ))]
pub async fn plan(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<PlanQuery>,
) -> Result<Json<SamplingPlan>, ApiError> {
    let who = state
        .authorize(
            &headers,
            &[
                Role::Station,
                Role::Contractor,
                Role::Regulator,
                Role::Admin,
            ],
        )
        .await?;
    let Some(market) = q.market.filter(|m| !m.trim().is_empty()) else {
        return Err(ApiError::bad_request("market: required").with_field("market"));
    };
    if !who.covers(&market) {
        return Err(ApiError::forbidden(format!(
            "market {market} is outside this token's markets"
        )));
    }
    let offset = state.utc_offset();
    let today = crate::store::coverage::today(offset);
    let date = match q.date.as_deref() {
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
            ApiError::bad_request(format!("date {d:?}: expected YYYY-MM-DD")).with_field("date")
        })?,
        None => today,
    };
    let banned = prohibited(&state);
    let m = market.clone();
    let plan = state
        .store()
        .write_async(move |tx| plan_in(tx, &m, date, today, &banned, offset))
        .await?;
    plan.map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no market {market:?}")))
}
