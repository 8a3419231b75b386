//! `GET /api/v1/risk?kind=stall|vendor|supplier[&market=]`: risk grades with their reasons
//! (`docs/risk.md`, [`crate::store::risk`]). Regulators and admins see any market and, without
//! one, every subject that failed within 90 days; a station or contractor names a market of
//! its own.

use super::schemas::ErrorBody;
use crate::auth::Role;
use crate::http::{ApiError, AppState};
use crate::store::risk::{grades, Graded, RiskKind, RiskRules, RULES};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RiskQuery {
    /// stall, vendor or supplier
    kind: Option<String>,
    /// a market code (required for station and contractor tokens)
    market: Option<String>,
}

#[derive(Serialize)]
pub struct RiskAnswer {
    pub kind: RiskKind,
    pub market: Option<String>,
    pub rules: RiskRules,
    pub grades: Vec<Graded>,
}

/// The shape of [`RiskAnswer`], for the document.
#[derive(Serialize, ToSchema)]
#[schema(as = Risk)]
pub struct RiskDoc {
    /// stall, vendor or supplier
    pub kind: String,
    pub market: Option<String>,
    /// The rules the grades follow (`docs/risk.md`).
    #[schema(value_type = Object)]
    pub rules: serde_json::Value,
    /// Highest grade first.
    pub grades: Vec<GradedDoc>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = RiskGrade)]
pub struct GradedDoc {
    pub kind: String,
    /// A stall's market.
    pub market: Option<String>,
    /// The stall code, the vendor or the supplier.
    pub key: String,
    /// low, medium or high
    pub grade: String,
    /// Why, Chinese first.
    pub reasons: Vec<String>,
    pub failures_30: u64,
    pub failures_90: u64,
    pub tests_90: u64,
    #[schema(format = DateTime)]
    pub last_failure: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/risk", operation_id = "risk",
    summary = "Risk grades of stalls, vendors or suppliers with their reasons",
    params(RiskQuery),
    responses(
        (status = 200, description = "the grades, highest first", body = RiskDoc),
        (status = 400, description = "bad request (`field` names it)", body = ErrorBody)
    ))]
pub async fn risk(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RiskQuery>,
) -> Result<Json<RiskAnswer>, ApiError> {
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
    let kind = match q.kind.as_deref().map(RiskKind::parse) {
        Some(Some(k)) => k,
        _ => {
            return Err(ApiError::bad_request(format!(
                "kind {:?}: expected stall, vendor or supplier",
                q.kind.unwrap_or_default()
            ))
            .with_field("kind"))
        }
    };
    let market = q.market.filter(|m| !m.trim().is_empty());
    match &market {
        None if who.role.is_scoped() => {
            return Err(
                ApiError::bad_request("market: required for a station or contractor token")
                    .with_field("market"),
            )
        }
        Some(m) if !who.covers(m) => {
            return Err(ApiError::forbidden(format!(
                "market {m} is outside this token's markets"
            )))
        }
        _ => {}
    }
    let prohibited = super::plan::prohibited(&state);
    let offset = state.utc_offset();
    let m = market.clone();
    let graded = state
        .read(move |conn| {
            Ok(grades(
                conn,
                kind,
                m.as_deref(),
                &prohibited,
                offset,
                chrono::Utc::now(),
            )?)
        })
        .await?;
    Ok(Json(RiskAnswer {
        kind,
        market,
        rules: RULES,
        grades: graded,
    }))
}
