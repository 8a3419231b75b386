//! `GET /exposure[?days=30]`: public exposure (公开曝光) of the city's confirmed failures,
//! newest first, Chinese first with English beside (no sign-in; `docs/exposure.md`). Every
//! field comes from instruments, uploads or registrations and goes in as [`PlainText`].

use super::html::{message_page, page, respond, PlainText};
use crate::api::exposure::{exposure_rows, period, ExposedRow};
use crate::http::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, FixedOffset};
use maud::{html, Markup};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct ExposurePageQuery {
    days: Option<String>,
}

fn row(r: &ExposedRow, offset: FixedOffset) -> Markup {
    let f = &r.failure;
    let day = DateTime::parse_from_rfc3339(&f.tested_at)
        .map(|t| t.with_timezone(&offset).format("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| f.tested_at.clone());
    let value = format!(
        "{} {}",
        f.value.as_deref().unwrap_or("—"),
        f.unit.as_deref().unwrap_or("")
    );
    let limit = match (f.limit_value, f.limit_unit.as_deref()) {
        (Some(v), u) => format!("≤ {v} {}", u.unwrap_or("")),
        (None, _) => "不得检出 · not allowed".to_string(),
    };
    html! {
        tr {
            td { (day) }
            td {
                (PlainText(f.market_name.as_deref().unwrap_or(&f.market)))
                br; span class="muted" { (PlainText(&f.market)) }
            }
            td { (PlainText(f.stall.as_deref().unwrap_or("—"))) }
            td { (PlainText(f.vendor.as_deref().unwrap_or("—"))) }
            td { (PlainText(f.commodity.as_deref().unwrap_or("—"))) }
            td {
                (PlainText(&r.item))
                @if r.item != f.analyte { br; span class="muted" { (PlainText(&f.analyte)) } }
            }
            td class="num" {
                (PlainText(value.trim()))
                br; span class="muted" { (PlainText(limit.trim())) }
                @if let Some(s) = &f.limit_source { br; span class="muted" { (PlainText(s)) } }
            }
            td { (PlainText(&r.handling_zh)) br; span class="muted" { (PlainText(&r.handling_en)) } }
        }
    }
}

/// `GET /exposure`.
pub async fn exposure_page(
    State(state): State<AppState>,
    q: Result<Query<ExposurePageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let days = q.ok().and_then(|Query(q)| q.days);
    let (days, since) = match period(&state, days.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            return message_page(
                StatusCode::BAD_REQUEST,
                "公开曝光 · Exposure",
                &format!("查询期限有误 · {}", e.message),
            )
        }
    };
    let rows = match exposure_rows(&state, since.clone()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e.message, "exposure page failed");
            return message_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "公开曝光 · Exposure",
                "暂时无法显示，请稍后再试 · Cannot be shown just now, try again later",
            );
        }
    };
    let offset = state.utc_offset();
    let body = html! {
        header {
            h1 { "不合格食品公开曝光 " span class="muted" { "Public exposure of unqualified food" } }
            p {
                "近 " (days) " 天（自 " (since) " 起）经复检确认不合格的食品，共 " strong { (rows.len()) } " 批 · "
                "Food confirmed unqualified by a retest in the last " (days) " days (since "
                (since) "): " (rows.len()) " batches"
            }
            p class="muted" {
                a href="/exposure?days=7" { "7 天 · 7 days" } " · "
                a href="/exposure?days=30" { "30 天 · 30 days" } " · "
                a href="/exposure?days=90" { "90 天 · 90 days" }
            }
        }
        main { section {
            @if rows.is_empty() {
                p { "这段时间没有确认的不合格食品。 · No confirmed failures in this period." }
            } @else {
                div class="scroll" { table id="exposed" {
                    thead { tr {
                        th { "日期" br; span class="muted" { "Date" } }
                        th { "市场" br; span class="muted" { "Market" } }
                        th { "摊位" br; span class="muted" { "Stall" } }
                        th { "经营者" br; span class="muted" { "Vendor" } }
                        th { "商品" br; span class="muted" { "Commodity" } }
                        th { "检测项目" br; span class="muted" { "Test item" } }
                        th { "检测值 / 限量" br; span class="muted" { "Value / limit" } }
                        th { "处置情况" br; span class="muted" { "What was done" } }
                    } }
                    tbody { @for r in &rows { (row(r, offset)) } }
                } }
            }
        } }
    };
    respond(
        StatusCode::OK,
        page(
            "zh-CN",
            "不合格食品公开曝光 · Public exposure",
            html! {},
            body,
        ),
    )
}
