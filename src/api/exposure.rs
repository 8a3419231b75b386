//! `GET /api/v1/exposure?days=30` (public, no token): the city's confirmed failures of the
//! last `days` days, newest first (`docs/exposure.md`, [`crate::store::exposure`]).

use super::schemas::ErrorBody;
use crate::http::{ApiError, AppState};
use crate::store::exposure::{exposed, Exposed};
use axum::extract::{Query, State};
use axum::Json;
use chrono::Duration;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The longest period asked for.
pub const MAX_DAYS: i64 = 366;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExposureQuery {
    /// the period in days, ending today (default 30, at most 366)
    days: Option<String>,
}

/// One failure with its handling in words.
#[derive(Serialize)]
pub struct ExposedRow {
    #[serde(flatten)]
    pub failure: Exposed,
    /// The item's Chinese name, where the reference data has one.
    pub item: String,
    pub status: crate::store::HoldStatus,
    pub handling_zh: String,
    pub handling_en: String,
}

#[derive(Serialize)]
pub struct ExposureAnswer {
    pub days: i64,
    pub since: String,
    pub failures: Vec<ExposedRow>,
}

/// The shape of the answer, for the document.
#[derive(Serialize, ToSchema)]
#[schema(as = Exposure)]
pub struct ExposureDoc {
    pub days: i64,
    #[schema(format = Date)]
    pub since: String,
    /// Newest first, at most 2000.
    pub failures: Vec<ExposedDoc>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = ExposedFailure)]
pub struct ExposedDoc {
    #[schema(format = DateTime)]
    pub tested_at: String,
    pub market: String,
    pub market_name: Option<String>,
    pub stall: Option<String>,
    pub vendor: Option<String>,
    pub commodity: Option<String>,
    /// The analyte id; `item` is its Chinese name.
    pub analyte: String,
    pub item: String,
    pub value: Option<String>,
    pub unit: Option<String>,
    pub limit_value: Option<f64>,
    pub limit_unit: Option<String>,
    pub limit_source: Option<String>,
    pub status: super::schemas::HoldStatusDoc,
    /// What was done, in words a shopper understands (停售, 已销毁 12.5 公斤, 复抽合格).
    pub handling_zh: String,
    pub handling_en: String,
}

/// The first local day of a period of `days` days ending today, or what is wrong.
pub fn period(state: &AppState, days: Option<&str>) -> Result<(i64, String), ApiError> {
    let days = match days {
        None => 30,
        Some(d) => match d.trim().parse::<i64>() {
            Ok(n) if (1..=MAX_DAYS).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "days {d:?}: expected a whole number of days from 1 to {MAX_DAYS}"
                ))
                .with_field("days"))
            }
        },
    };
    let today = crate::store::coverage::today(state.utc_offset());
    let since = (today - Duration::days(days - 1))
        .format("%Y-%m-%d")
        .to_string();
    Ok((days, since))
}

/// The failures of the period with their words.
pub async fn exposure_rows(state: &AppState, since: String) -> Result<Vec<ExposedRow>, ApiError> {
    let rows = state.read(move |conn| Ok(exposed(conn, &since)?)).await?;
    let reference = state.judge().reference();
    Ok(rows
        .into_iter()
        .map(|failure| ExposedRow {
            item: reference.item_name(&failure.analyte),
            status: failure.handling.status,
            handling_zh: failure.handling.zh(),
            handling_en: failure.handling.en(),
            failure,
        })
        .collect())
}

#[utoipa::path(get, path = "/api/v1/exposure", operation_id = "exposure", security(()),
    summary = "Public exposure: the city's confirmed failures of a period, newest first (no token)",
    params(ExposureQuery),
    responses(
        (status = 200, description = "the failures", body = ExposureDoc),
        (status = 400, description = "bad `days`", body = ErrorBody)
    ))]
pub async fn exposure(
    State(state): State<AppState>,
    Query(q): Query<ExposureQuery>,
) -> Result<Json<ExposureAnswer>, ApiError> {
    let (days, since) = period(&state, q.days.as_deref())?;
    let failures = exposure_rows(&state, since.clone()).await?;
    Ok(Json(ExposureAnswer {
        days,
        since,
        failures,
    }))
}
