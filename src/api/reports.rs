//! `GET /api/v1/reports/monthly?month=YYYY-MM[&district=][&format=csv]` (regulator, admin):
//! the monthly report of [`crate::store::monthly`], as JSON or as CSV that Excel opens right
//! (UTF-8 with a byte-order mark, Chinese and English headers).

use super::schemas::ErrorBody;
use crate::auth::Role;
use crate::http::{ApiError, AppState};
use crate::store::monthly::{monthly_report, DistrictMonth, MonthFigures, MonthlyReport};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthlyQuery {
    /// YYYY-MM, default this month
    month: Option<String>,
    /// only this district
    district: Option<String>,
    /// json|csv
    format: Option<String>,
}

/// The first day of month `text` (`YYYY-MM`), or what is wrong with it.
pub fn parse_month(text: &str) -> Result<NaiveDate, ApiError> {
    let bad = || {
        ApiError::bad_request(format!("month {text:?}: expected YYYY-MM, like 2026-11"))
            .with_field("month")
    };
    if text.len() != 7 || text.as_bytes().get(4) != Some(&b'-') {
        return Err(bad());
    }
    NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").map_err(|_| bad())
}

/// The figures of a market, a district or the total.
#[derive(Serialize, ToSchema)]
#[schema(as = MonthFigures)]
pub struct MonthFiguresDoc {
    /// Readings (not superseded) of the month.
    pub tests: u64,
    /// 抽检批次: distinct samples with a pass or fail reading.
    pub batches: u64,
    pub passed: u64,
    /// 不合格: batches with a failing reading.
    pub failed: u64,
    /// 销毁批次: failed batches whose goods were destroyed.
    pub destroyed: u64,
    /// 销毁数量 (kg).
    pub destroyed_kg: f64,
    /// 抽检摊位: distinct stalls tested.
    pub stalls: u64,
    /// 不合格率: failed / batches (0..1); null without batches.
    pub rate: Option<f64>,
}

/// One market of the report.
#[derive(Serialize, ToSchema)]
#[schema(as = MarketMonth)]
pub struct MarketMonthDoc {
    pub market: String,
    pub name: String,
    pub district: String,
    #[serde(flatten)]
    pub figures: MonthFiguresDoc,
}

/// A district's subtotal (the total has the same shape).
#[derive(Serialize, ToSchema)]
#[schema(as = DistrictMonth)]
pub struct DistrictMonthDoc {
    pub district: String,
    pub markets: u64,
    pub markets_tested: u64,
    #[serde(flatten)]
    pub figures: MonthFiguresDoc,
}

/// `GET /api/v1/reports/monthly`.
#[derive(Serialize, ToSchema)]
#[schema(as = MonthlyReport)]
pub struct MonthlyReportDoc {
    /// YYYY-MM
    pub month: String,
    pub district: Option<String>,
    pub markets: Vec<MarketMonthDoc>,
    pub districts: Vec<DistrictMonthDoc>,
    pub total: DistrictMonthDoc,
}

/// The CSV columns, Chinese first.
const HEADER: [&str; 12] = [
    "市场代码 Market",
    "市场名称 Name",
    "区县 District",
    "检测次数 Tests",
    "抽检批次 Batches",
    "合格 Passed",
    "不合格 Failed",
    "销毁批次 Destroyed batches",
    "销毁数量(kg) Destroyed kg",
    "抽检摊位 Stalls",
    "不合格率 Unqualified rate",
    "行 Row",
];

/// A rate as a percent with 2 decimals; `—` without batches.
pub fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".to_string(), |r| format!("{:.2}%", r * 100.0))
}

/// Kilograms with at most 3 decimals, no trailing zeros.
pub fn kg_text(kg: f64) -> String {
    let s = format!("{kg:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn figures_cells(f: &MonthFigures) -> [String; 8] {
    [
        f.tests.to_string(),
        f.batches.to_string(),
        f.passed.to_string(),
        f.failed.to_string(),
        f.destroyed.to_string(),
        kg_text(f.destroyed_kg),
        f.stalls.to_string(),
        percent(f.rate),
    ]
}

/// The report as CSV: a byte-order mark, the header, the markets, each district's subtotal
/// after its markets, the total.
pub fn report_csv(r: &MonthlyReport) -> Result<Vec<u8>, csv::Error> {
    let mut out = b"\xEF\xBB\xBF".to_vec();
    {
        let mut w = csv::Writer::from_writer(&mut out);
        w.write_record(HEADER)?;
        let subtotal = |w: &mut csv::Writer<&mut Vec<u8>>, d: &DistrictMonth, what: &str| {
            let mut row = vec![String::new(), String::new(), d.district.clone()];
            row.extend(figures_cells(&d.figures));
            row.push(what.to_string());
            w.write_record(&row)
        };
        let mut districts = r.districts.iter().peekable();
        for (i, m) in r.markets.iter().enumerate() {
            let mut row = vec![m.market.clone(), m.name.clone(), m.district.clone()];
            row.extend(figures_cells(&m.figures));
            row.push("市场 market".to_string());
            w.write_record(&row)?;
            let last_of_district = r
                .markets
                .get(i + 1)
                .is_none_or(|n| n.district != m.district);
            if last_of_district {
                if let Some(d) = districts.next() {
                    subtotal(&mut w, d, "区县小计 district subtotal")?;
                }
            }
        }
        subtotal(&mut w, &r.total, "合计 total")?;
        w.flush()?;
    }
    Ok(out)
}

#[utoipa::path(get, path = "/api/v1/reports/monthly", operation_id = "monthly_report",
    summary = "The monthly report: per market, district subtotals and a total; regulator, admin",
    params(MonthlyQuery),
    responses(
        (status = 200, description = "the report (`format=csv`: CSV with a UTF-8 byte-order mark)", content(
            (MonthlyReportDoc = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "bad request (`field` names it)", body = ErrorBody)
    ))]
pub async fn monthly(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<MonthlyQuery>,
) -> Result<Response, ApiError> {
    state
        .authorize(&headers, &[Role::Regulator, Role::Admin])
        .await?;
    let month = match q.month.as_deref() {
        Some(m) => parse_month(m)?,
        None => this_month(&state),
    };
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(f) => {
            return Err(
                ApiError::bad_request(format!("format {f:?}: expected json or csv"))
                    .with_field("format"),
            )
        }
    };
    let district = q.district.filter(|d| !d.trim().is_empty());
    let report = state
        .read(move |conn| Ok(monthly_report(conn, month, district.as_deref())?))
        .await?;
    if !csv {
        return Ok(Json(report).into_response());
    }
    let body = report_csv(&report).map_err(ApiError::internal)?;
    let mut r = Response::new(Body::from(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"foodgate-monthly-{}.csv\"",
        report.month
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// The first day of the current month at the service's offset.
pub fn this_month(state: &AppState) -> NaiveDate {
    let today = crate::store::coverage::today(state.utc_offset());
    today.with_day0(0).unwrap_or(today)
}
