//! `GET /api/v1/coverage?date=YYYY-MM-DD[&format=csv]` (SPEC "Coverage: what is counted").
//!
//! Every reading carries its `local_day` (of `measured_at`, or of `received_at` when the
//! instrument clock is missing or more than 24 h off, in `server.utc_offset`), fixed when it
//! is stored; the count is one pass over that day's entries per market in the covering index
//! `readings_coverage` (the table itself is not read), with every registered market listed,
//! tested or not.
//! A superseded reading (replaced by a correction) is not counted: the correction is the test.

use super::{csv_response, ApiError, AppState};
use crate::auth::Role;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{NaiveDate, Utc};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketCoverage {
    pub market: String,
    pub name: String,
    pub district: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub samples: u64,
    pub tests: u64,
    pub failures: u64,
    pub quota: u64,
    pub met: bool,
    pub last_result_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub markets: u64,
    pub markets_tested: u64,
    pub markets_met_quota: u64,
    pub samples: u64,
    pub tests: u64,
    pub failures: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub date: String,
    pub summary: Summary,
    pub markets: Vec<MarketCoverage>,
}

/// Coverage of every registered market on local day `date` (`YYYY-MM-DD`).
pub fn coverage_of(conn: &Connection, date: &str) -> rusqlite::Result<Coverage> {
    let markets: Vec<MarketCoverage> = conn
        .prepare_cached(
            "SELECT m.code, m.name, m.district, m.type, m.quota,
                count(r.id),
                coalesce(sum(r.verdict = 'fail'), 0),
                count(DISTINCT CASE WHEN r.verdict IN ('pass', 'fail') THEN r.sample_ref END),
                max(r.received_at)
             FROM markets m
             LEFT JOIN readings r ON r.market = m.code AND r.local_day = ?1 AND r.superseded = 0
             GROUP BY m.code ORDER BY m.code",
        )?
        .query_map([date], |r| {
            let quota = r.get::<_, i64>(4)?.max(0) as u64;
            let samples = r.get::<_, i64>(7)?.max(0) as u64;
            Ok(MarketCoverage {
                market: r.get(0)?,
                name: r.get(1)?,
                district: r.get(2)?,
                kind: r.get(3)?,
                quota,
                tests: r.get::<_, i64>(5)?.max(0) as u64,
                failures: r.get::<_, i64>(6)?.max(0) as u64,
                samples,
                met: samples >= quota,
                last_result_at: r.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut s = Summary {
        markets: markets.len() as u64,
        ..Summary::default()
    };
    for m in &markets {
        s.markets_tested += u64::from(m.tests > 0);
        s.markets_met_quota += u64::from(m.met);
        s.samples += m.samples;
        s.tests += m.tests;
        s.failures += m.failures;
    }
    Ok(Coverage {
        date: date.to_string(),
        summary: s,
        markets,
    })
}

#[derive(Debug, Deserialize)]
pub struct CoverageQuery {
    date: Option<String>,
    format: Option<String>,
}

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
        None => Utc::now().with_timezone(&state.utc_offset()).date_naive(),
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
