//! `GET /api/v1/coverage?date=YYYY-MM-DD[&format=csv]` (`docs/reference.md`, "Coverage: what is counted").
//!
//! Every reading carries its `local_day` (of `measured_at`, or of `received_at` when the
//! instrument clock is missing or more than 24 h off, in `server.utc_offset`), fixed when it
//! is stored; the counts come from the per-market-per-day aggregate the store keeps in the
//! same transaction as the readings ([`crate::store::coverage`]), one row per market that
//! tested, with every registered market listed, tested or not.
//! A superseded reading (replaced by a correction) is not counted: the correction is the test.

use super::schemas::{self, ErrorBody};
use crate::auth::Role;
use crate::http::{csv_response, ApiError, AppState};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use serde::Deserialize;

pub use crate::store::coverage::{coverage_of, Coverage, MarketCoverage, Summary};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CoverageQuery {
    /// YYYY-MM-DD, default today
    date: Option<String>,
    /// json|csv
    format: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/coverage", operation_id = "coverage",
    summary = "Daily coverage of every registered market; regulator, admin",
    params(CoverageQuery),
    responses(
        (status = 200, description = "the day's summary and every market (`format=csv`: the markets as CSV with a header row)", content(
            (schemas::CoverageDoc = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "bad request", body = ErrorBody)
    ))]
pub async fn coverage(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CoverageQuery>,
) -> Result<Response, ApiError> {
    state
        .authorize(&headers, &[Role::Regulator, Role::Admin])
        .await?;
    let date = match q.date {
        Some(d) => NaiveDate::parse_from_str(&d, "%Y-%m-%d")
            .map_err(|_| ApiError::bad_request(format!("date {d:?}: expected YYYY-MM-DD")))?,
        None => crate::store::coverage::today(state.utc_offset()),
    };
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(f) => {
            return Err(ApiError::bad_request(format!(
                "format {f:?}: expected json or csv"
            )))
        }
    };
    let day = date.format("%Y-%m-%d").to_string();
    let cov = state.read(move |conn| Ok(coverage_of(conn, &day)?)).await?;
    if !csv {
        return Ok(Json(cov).into_response());
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "market",
        "name",
        "district",
        "type",
        "samples",
        "tests",
        "failures",
        "quota",
        "met",
        "last_result_at",
    ];
    w.write_record(header).map_err(ApiError::internal)?;
    for m in &cov.markets {
        w.write_record([
            m.market.as_str(),
            &m.name,
            &m.district,
            &m.kind,
            &m.samples.to_string(),
            &m.tests.to_string(),
            &m.failures.to_string(),
            &m.quota.to_string(),
            if m.met { "true" } else { "false" },
            m.last_result_at.as_deref().unwrap_or(""),
        ])
        .map_err(ApiError::internal)?;
    }
    let body = w.into_inner().map_err(ApiError::internal)?;
    Ok(csv_response(body))
}
