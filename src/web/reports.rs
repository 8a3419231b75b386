//! `GET /reports/monthly[?month=YYYY-MM&district=]`: the monthly report for regulators
//! (signed in, regulator or admin), the same figures as `GET /api/v1/reports/monthly`: a
//! table by district and market with subtotals and the total, a chart per district, and the
//! CSV to download.

use super::html::{message_page, page, respond, url_encode, PlainText};
use super::svg::{batch_bars, BatchBar};
use crate::api::reports::{kg_text, parse_month, percent, this_month};
use crate::auth::Role;
use crate::http::AppState;
use crate::store::monthly::{monthly_report, DistrictMonth, MarketMonth, MonthFigures};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct MonthlyPageQuery {
    month: Option<String>,
    district: Option<String>,
}

fn cells(f: &MonthFigures) -> Markup {
    html! {
        td class="num" { (f.batches) }
        td class="num" { (f.passed) }
        td class="num" { (f.failed) }
        td class="num" { (f.destroyed) }
        td class="num" { (kg_text(f.destroyed_kg)) }
        td class="num" { (f.stalls) }
        td class="num" { (percent(f.rate)) }
        td class="num" { (f.tests) }
    }
}

fn subtotal(d: &DistrictMonth, label: &str) -> Markup {
    html! {
        tr class="subtotal" {
            td colspan="2" { strong { (label) } " · " (PlainText(&d.district)) }
            td class="num" { (d.markets_tested) " / " (d.markets) }
            (cells(&d.figures))
        }
    }
}

fn market_row(m: &MarketMonth) -> Markup {
    html! {
        tr class=[(m.figures.failed > 0).then_some("fail")] {
            td { (PlainText(&m.market)) }
            td { (PlainText(&m.name)) }
            td {}
            (cells(&m.figures))
        }
    }
}

pub async fn monthly_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<MonthlyPageQuery>, QueryRejection>,
) -> Response {
    let roles = [Role::Regulator, Role::Admin];
    if let Err(r) = super::page_principal(
        &state,
        &headers,
        &uri,
        &roles,
        "the monthly report is for regulator and admin tokens only.",
    )
    .await
    {
        return r;
    }
    let Ok(Query(q)) = query else {
        return message_page(
            StatusCode::BAD_REQUEST,
            "Bad address",
            "The query string could not be read: expected month=YYYY-MM and district.",
        );
    };
    let month = match q.month.as_deref().filter(|m| !m.is_empty()) {
        None => this_month(&state),
        Some(m) => match parse_month(m) {
            Ok(d) => d,
            Err(e) => return message_page(StatusCode::BAD_REQUEST, "Bad month", &e.message),
        },
    };
    let district = q.district.filter(|d| !d.trim().is_empty());
    let d = district.clone();
    let data = state
        .read(move |conn| {
            let report = monthly_report(conn, month, d.as_deref())?;
            // Every district, for the filter.
            let all = monthly_report(conn, month, None)?;
            let names: Vec<String> = all.districts.into_iter().map(|d| d.district).collect();
            Ok((report, names))
        })
        .await;
    let (report, names) = match data {
        Ok(d) => d,
        Err(e) => {
            return message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                &format!("The report could not be read: {}", e.message),
            )
        }
    };
    let csv = format!(
        "/api/v1/reports/monthly?month={}{}&format=csv",
        url_encode(&report.month),
        district
            .as_deref()
            .map(|d| format!("&district={}", url_encode(d)))
            .unwrap_or_default()
    );
    let t = &report.total.figures;
    let body = html! {
        header {
            h1 { "月度快检报表 Monthly report · " (PlainText(&report.month)) }
            form method="get" action="/reports/monthly" class="inline" {
                label { "月份 Month " input type="month" name="month" value=(PlainText(&report.month)); }
                " "
                label { "区县 District "
                    select name="district" {
                        option value="" { "全部 All" }
                        @for n in &names {
                            option value=(PlainText(n)) selected[district.as_deref() == Some(n.as_str())] {
                                (PlainText(if n.is_empty() { "(未登记 unregistered)" } else { n }))
                            }
                        }
                    }
                }
                " " button type="submit" { "查看 Show" }
            }
            a href="/dashboard" { "看板 Dashboard" }
        }
        main {
            section id="summary" {
                h2 { "合计 Total" @if let Some(d) = &district { " · " (PlainText(d)) } }
                div class="cards" {
                    div class="card" id="batches" { span class="n" { (t.batches) } "抽检批次 batches tested" }
                    div class={ "card " (if t.failed > 0 { "bad" } else { "good" }) } id="failed" {
                        span class="n" { (t.failed) } "不合格 failed (" (percent(t.rate)) ")"
                    }
                    div class="card" id="destroyed" {
                        span class="n" { (t.destroyed) } "销毁批次 destroyed, " (kg_text(t.destroyed_kg)) " kg"
                    }
                    div class="card" id="stalls" { span class="n" { (t.stalls) } "抽检摊位 stalls tested" }
                }
                p { a href=(csv) download { "下载 CSV (Excel) · Download CSV" } }
            }
            @for d in &report.districts {
                section class="district" {
                    h2 { (PlainText(if d.district.is_empty() { "(未登记 unregistered)" } else { &d.district })) }
                    @let bars: Vec<BatchBar<'_>> = report.markets.iter()
                        .filter(|m| m.district == d.district)
                        .map(|m| BatchBar { label: &m.market, batches: m.figures.batches, failed: m.figures.failed })
                        .collect();
                    div class="scroll" {
                        (batch_bars(
                            &format!("chart-{}", url_encode(&d.district)),
                            &format!("{}: 抽检批次 batches and 不合格 failed per market", d.district),
                            &bars,
                        ))
                    }
                    p class="legend" {
                        span { i class="sw" style={ "background:" (super::svg::TESTS_COLOR) } {} "抽检批次 batches" }
                        span { i class="sw" style={ "background:" (super::svg::FAIL_COLOR) } {} "不合格 failed" }
                    }
                }
            }
            section id="table" {
                h2 { "按市场 By market" }
                div class="scroll" { table {
                    thead { tr {
                        th { "市场 Market" } th { "名称 Name" } th { "已检 Tested" }
                        th class="num" { "抽检批次 Batches" } th class="num" { "合格 Passed" }
                        th class="num" { "不合格 Failed" } th class="num" { "销毁批次 Destroyed" }
                        th class="num" { "销毁数量 kg" } th class="num" { "抽检摊位 Stalls" }
                        th class="num" { "不合格率 Rate" } th class="num" { "检测次数 Tests" }
                    } }
                    tbody {
                        @for d in &report.districts {
                            @for m in report.markets.iter().filter(|m| m.district == d.district) {
                                (market_row(m))
                            }
                            (subtotal(d, "区县小计 Subtotal"))
                        }
                        (subtotal(&report.total, "合计 Total"))
                    }
                } }
            }
        }
    };
    let title = format!("月度报表 {} · foodgate", report.month);
    respond(
        StatusCode::OK,
        page(
            "zh-CN",
            &title,
            html! { style { "tr.subtotal td{background:#eef2f6;font-weight:600}" } },
            body,
        ),
    )
}
