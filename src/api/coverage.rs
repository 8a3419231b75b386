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
    /// CSV headers and words: zh (default) or en
    lang: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/coverage", operation_id = "coverage",
    summary = "Daily coverage of every registered market; regulator, admin",
    params(CoverageQuery),
    responses(
        (status = 200, description = "the day's summary and every market (`format=csv`: the markets as CSV that Excel opens right: UTF-8 with a byte-order mark, a header row in Chinese (`lang=en`: English), 是/否 for yes and no, times local, as an attachment)", content(
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
    let en = match q.lang.as_deref() {
        None | Some("zh") => false,
        Some("en") => true,
        Some(l) => {
            return Err(
                ApiError::bad_request(format!("lang {l:?}: expected zh or en")).with_field("lang"),
            )
        }
    };
    let body = coverage_csv(&cov, en, state.utc_offset()).map_err(ApiError::internal)?;
    let mut r = csv_response(body);
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!(
        "attachment; filename=\"foodgate-coverage-{}.csv\"",
        cov.date
    )) {
        r.headers_mut()
            .insert(axum::http::header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// The coverage CSV headers: Chinese, and English.
const CSV_HEADERS: [(&str, &str); 12] = [
    ("市场编号", "market"),
    ("市场名称", "name"),
    ("区县", "district"),
    ("类型", "type"),
    ("抽检样品", "samples"),
    ("检测项次", "tests"),
    ("不合格", "failures"),
    ("每日任务", "quota"),
    ("是否达标", "met"),
    ("最后结果时间", "last_result_at"),
    ("计划抽检", "plan_total"),
    ("计划完成", "plan_done"),
];

/// The markets of `cov` as CSV: a UTF-8 byte-order mark (so that Excel on Chinese Windows
/// reads it as UTF-8), headers in Chinese or English, 是/否 (yes/no), local times.
pub fn coverage_csv(
    cov: &Coverage,
    en: bool,
    offset: chrono::FixedOffset,
) -> Result<Vec<u8>, csv::Error> {
    let mut out = b"\xEF\xBB\xBF".to_vec();
    {
        let mut w = csv::Writer::from_writer(&mut out);
        w.write_record(CSV_HEADERS.iter().map(|(zh, e)| if en { *e } else { *zh }))?;
        let yes_no = |b: bool| match (b, en) {
            (true, false) => "是",
            (false, false) => "否",
            (true, true) => "yes",
            (false, true) => "no",
        };
        let local = |t: &str| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| {
                    t.with_timezone(&offset)
                        .format("%Y-%m-%d %H:%M:%S")
                        .to_string()
                })
                .unwrap_or_else(|_| t.to_string())
        };
        let opt = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
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
                yes_no(m.met),
                &m.last_result_at.as_deref().map(local).unwrap_or_default(),
                &opt(m.plan_total),
                &opt(m.plan_done),
            ])?;
        }
        w.flush()?;
    }
    Ok(out)
}
