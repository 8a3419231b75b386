//! `GET /station[?market=]`: the testing room's page, for the people who run the analyzers
//! (signed in with a station or contractor token). Chinese first, English beside it, made for
//! a phone: the open holds of the market with a button for each step its state allows, today's
//! readings as they arrive (the page refreshes itself every 30 s; the forms are pages of their
//! own, so a refresh never loses what someone is typing), a button to register a sample, and
//! the instruments. The forms: [`super::station_forms`].

use super::html::{page, respond, url_encode, PlainText};
use super::session::csrf_for;
use crate::api::ops::{instrument_views, InstrumentView};
use crate::auth::{Principal, Role};
use crate::http::AppState;
use crate::store::holds::{list_holds, HoldFilter, HoldView};
use crate::store::results::{self, ResultsFilter};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, FixedOffset, Utc};
use maud::{html, Markup};
use serde::Deserialize;

/// The roles the testing room's pages are for.
pub const TESTERS: [Role; 2] = [Role::Station, Role::Contractor];
/// Today's readings shown at most.
const READINGS_SHOWN: i64 = 200;

/// Styles of the testing room's pages: big touch targets, one column on a phone.
pub const STYLE: &str = "
.actions{display:flex;flex-wrap:wrap;gap:.5rem;margin:.5rem 0 0}
main>.actions{margin:0 0 1rem}
a.button,button.big{display:inline-block;padding:.6rem .9rem;border-radius:6px;background:#1f3a5f;color:#fff;text-decoration:none;border:0;font-size:1rem;min-height:44px}
a.button.light{background:#e8edf2;color:#1d2630}
.hold{border:1px solid #e3e7eb;border-radius:8px;padding:.7rem;margin:0 0 .7rem}
.hold h3{margin:0 0 .3rem;font-size:1rem}
.done{background:#d5f0dd;color:#145a32;padding:.6rem .8rem;border-radius:6px;margin:0 0 1rem}
form.stack label{display:block;margin:0 0 .6rem}
form.stack input,form.stack select,form.stack textarea{display:block;width:100%;max-width:28rem;margin-top:.2rem;min-height:40px}
.field-error{color:#c0392b;font-size:.9rem}
ol.history{padding-left:1.2rem;margin:.3rem 0}
";

#[derive(Debug, Deserialize)]
pub struct StationQuery {
    market: Option<String>,
    /// What was just done (`sample`, or an action's name), for the message.
    done: Option<String>,
    /// The sample or hold it was done to.
    id: Option<String>,
}

/// The market the page is about: the one asked for if the token covers it, else its first.
pub fn chosen_market(who: &Principal, asked: Option<&str>) -> Option<String> {
    match asked.filter(|m| who.covers(m)) {
        Some(m) => Some(m.to_string()),
        None => who.markets.first().cloned(),
    }
}

/// An action's name on a button, Chinese first.
pub fn action_label(action: &str) -> &'static str {
    match action {
        "stop_sale" => "停售下架 Stop sale",
        "lab_sent" => "送检 Send to a lab",
        "lab_result" => "检验结果 Lab result",
        "destroy" => "销毁 Destroy",
        "resample" => "复抽 Re-sample",
        "close" => "结案 Close",
        _ => "处理 Act",
    }
}

/// A time as the room reads it: `HH:MM` today, else `MM-DD HH:MM`.
pub fn room_time(t: &str, offset: FixedOffset) -> String {
    match DateTime::parse_from_rfc3339(t) {
        Ok(t) => {
            let t = t.with_timezone(&offset);
            if t.date_naive() == Utc::now().with_timezone(&offset).date_naive() {
                t.format("%H:%M").to_string()
            } else {
                t.format("%m-%d %H:%M").to_string()
            }
        }
        Err(_) => t.to_string(),
    }
}

/// The item's Chinese name where the reference data has one, else its id.
pub fn item_name(state: &AppState, analyte: &str) -> String {
    state
        .judge()
        .reference()
        .analyte(analyte)
        .and_then(|a| a.aliases().find(|n| !n.is_ascii()).map(str::to_string))
        .map(|zh| format!("{zh} {analyte}"))
        .unwrap_or_else(|| analyte.to_string())
}

/// One reading as the room's table shows it.
struct RoomReading {
    at: String,
    stall: String,
    sample: String,
    item: String,
    value: String,
    verdict: String,
}

fn room_reading(state: &AppState, row: &results::ResultRow) -> RoomReading {
    let v: serde_json::Value = serde_json::from_str(&row.reading_json).unwrap_or_default();
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    let value = match (v["value_text"].as_str(), v["value"].as_f64()) {
        (Some(t), _) => t.to_string(),
        (None, Some(x)) => x.to_string(),
        _ => String::new(),
    };
    let at = v["measured_at"]
        .as_str()
        .unwrap_or(&row.received_at)
        .to_string();
    RoomReading {
        at: room_time(&at, state.utc_offset()),
        stall: row.stall.clone().unwrap_or_default(),
        sample: text("sample_name"),
        item: item_name(state, &text("analyte")),
        value: format!("{value} {}", text("unit")).trim().to_string(),
        verdict: text("verdict"),
    }
}

fn verdict_words(v: &str) -> (&'static str, &'static str) {
    match v {
        "pass" => ("合格 Pass", "tag on"),
        "fail" => ("不合格 Failed", "tag off"),
        "invalid" => ("无效 Invalid", "tag"),
        _ => ("未判定 Unknown", "tag"),
    }
}

/// The hold's sample, stall, item and value in one line.
pub fn hold_line(state: &AppState, h: &HoldView) -> String {
    let r = &h.reading;
    let value = r["value_text"]
        .as_str()
        .map(str::to_string)
        .or_else(|| r["value"].as_f64().map(|x| x.to_string()))
        .unwrap_or_default();
    format!(
        "{} · 摊位 {} · {} {} {}",
        h.sample.name.as_deref().unwrap_or("—"),
        h.stall.as_deref().unwrap_or("—"),
        item_name(state, r["analyte"].as_str().unwrap_or_default()),
        value,
        r["unit"].as_str().unwrap_or_default()
    )
}

/// The header of the room's pages: the market, a market switch, sign out.
pub fn room_header(who: &Principal, sid: &str, market: &str, title: &str) -> Markup {
    html! {
        header {
            h1 { (title) " · " (PlainText(market)) }
            @if who.markets.len() > 1 {
                form method="get" action="/station" class="inline" {
                    label { "市场 Market "
                        select name="market" {
                            @for m in &who.markets {
                                option value=(PlainText(m)) selected[m == market] { (PlainText(m)) }
                            }
                        }
                    }
                    " " button type="submit" { "切换 Go" }
                }
            }
            span { (PlainText(&who.name)) }
            form method="post" action="/logout" class="inline" {
                input type="hidden" name="csrf" value=(csrf_for(sid));
                button type="submit" class="link" { "退出 Sign out" }
            }
        }
    }
}

fn hold_card(state: &AppState, h: &HoldView, market: &str) -> Markup {
    html! {
        div class="hold" id={ "hold-" (PlainText(&h.id)) } {
            h3 {
                span class={ "tag " (h.status.as_str()) } { (h.status_zh) " " (h.status.as_str()) }
                @if h.overdue_at.is_some() { " " span class="tag off" { "逾期 Overdue" } }
            }
            div { (PlainText(&hold_line(state, h))) }
            div class="muted" {
                "检出 Found " (room_time(h.history.first().map_or("", |e| e.at.as_str()), state.utc_offset()))
            }
            div class="actions" {
                @for a in &h.actions {
                    a class="button" href={ "/station/holds/" (url_encode(&h.id)) "?action=" (a) "&market=" (url_encode(market)) } {
                        (action_label(a))
                    }
                }
                a class="button light" href={ "/station/holds/" (url_encode(&h.id)) "?market=" (url_encode(market)) } {
                    "详情 Details"
                }
            }
        }
    }
}

/// Today's sampling plan (`docs/plan.md`), where one was drawn: what to test, what is done.
fn plan_section(plan: &[crate::store::plan::PlanEntry]) -> Markup {
    let done = plan.iter().filter(|e| e.done).count();
    html! {
        section id="plan" {
            h2 { "今日抽检计划 Today's sampling plan (" (done) " / " (plan.len()) ")" }
            ul {
                @for e in plan {
                    li class=[e.done.then_some("done")] {
                        (if e.done { "✓ " } else { "○ " })
                        (PlainText(&e.stall)) " · "
                        (PlainText(&e.category))
                        @if e.grade == crate::store::risk::Grade::High { " · 高风险 high risk" }
                    }
                }
            }
        }
    }
}

fn instruments_section(instruments: &[InstrumentView], state: &AppState) -> Markup {
    html! {
        section id="instruments" {
            h2 { "仪器 Instruments" }
            @if instruments.is_empty() {
                p class="muted" { "本市场没有配置仪器 No instruments configured for this market." }
            } @else {
                div class="scroll" { table {
                    thead { tr { th { "仪器 Instrument" } th { "状态 Status" } th { "最后 Last seen" } th class="num" { "读数 Readings" } } }
                    tbody {
                        @for i in instruments {
                            tr {
                                td { (PlainText(&i.id)) " " span class="muted" { (PlainText(&i.protocol)) } }
                                td {
                                    span class={ "tag " (if i.online { "on" } else { "off" }) } {
                                        (if i.online { "在线 Online" } else { "离线 Offline" })
                                    }
                                }
                                td { (i.last_seen.as_deref().map(|t| room_time(t, state.utc_offset())).unwrap_or_else(|| "—".into())) }
                                td class="num" { (i.readings) }
                            }
                        }
                    }
                } }
            }
        }
    }
}

/// `GET /station`.
pub async fn station(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<StationQuery>, QueryRejection>,
) -> Response {
    let (who, sid) = match super::page_principal(
        &state,
        &headers,
        &uri,
        &TESTERS,
        "the testing room's page is for station and contractor tokens (regulators: /dashboard).",
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let q = query.map(|Query(q)| q).unwrap_or(StationQuery {
        market: None,
        done: None,
        id: None,
    });
    let Some(market) = chosen_market(&who, q.market.as_deref()) else {
        return super::html::message_page(
            StatusCode::FORBIDDEN,
            "No market",
            "This token covers no market.",
        );
    };
    let offset = state.utc_offset();
    let today = Utc::now().with_timezone(&offset).date_naive();
    let m = market.clone();
    let data = state
        .read(move |reader| {
            let holds = list_holds(
                reader,
                &HoldFilter {
                    status: None,
                    markets: Some(vec![m.clone()]),
                    overdue_cutoff: None,
                },
            )?;
            let readings = results::list(
                reader,
                &ResultsFilter {
                    market: Some(m.clone()),
                    date: Some(today.format("%Y-%m-%d").to_string()),
                    verdict: None,
                    analyte: None,
                    before: None,
                    scope: None,
                    limit: READINGS_SHOWN,
                },
            )?;
            let name = crate::store::markets::name(reader, &m)?;
            let plan =
                crate::store::plan::kept_plan(reader, &m, &today.format("%Y-%m-%d").to_string())?;
            Ok((holds, readings, name, plan))
        })
        .await;
    let (holds, readings, name, plan) = match data {
        Ok(d) => d,
        Err(e) => {
            return super::html::message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                &format!("The page could not be read: {}", e.message),
            )
        }
    };
    let open: Vec<&HoldView> = holds.iter().filter(|h| h.status.is_unfinished()).collect();
    let instruments: Vec<InstrumentView> = instrument_views(&state)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.market == market)
        .collect();
    let rows: Vec<RoomReading> = readings.iter().map(|r| room_reading(&state, r)).collect();
    let failed = rows.iter().filter(|r| r.verdict == "fail").count();
    let done = match (q.done.as_deref(), q.id.as_deref()) {
        (Some("sample"), Some(id)) => Some(format!("样品已登记 Sample registered: {id}")),
        (Some(a), Some(_)) if crate::store::hold_actions::ACTIONS.contains(&a) => {
            Some(format!("已记录 Recorded: {}", action_label(a)))
        }
        _ => None,
    };
    let body = html! {
        (room_header(&who, &sid, &market, "检测室 Testing room"))
        main {
            @if let Some(d) = &done { p class="done" id="done" { (PlainText(d)) } }
            p class="muted" { (PlainText(name.as_deref().unwrap_or(&market))) }
            div class="actions" {
                a class="button" id="register" href={ "/station/samples/new?market=" (url_encode(&market)) } {
                    "登记样品 Register a sample"
                }
            }
            @if let Some(plan) = &plan { (plan_section(plan)) }
            section id="holds" {
                h2 { "待处理 Open holds (" (open.len()) ")" }
                @if open.is_empty() {
                    p class="muted" { "没有待处理的不合格 No open holds." }
                }
                @for h in &open { (hold_card(&state, h, &market)) }
            }
            section id="readings" {
                h2 { "今日检测 Today's tests: " (rows.len()) ", 不合格 failed " (failed) }
                @if rows.is_empty() {
                    p class="muted" { "今天还没有检测结果 No results yet today." }
                } @else {
                    div class="scroll" { table {
                        thead { tr {
                            th { "时间 Time" } th { "摊位 Stall" } th { "样品 Sample" }
                            th { "项目 Item" } th { "结果 Value" } th { "判定 Verdict" }
                        } }
                        tbody {
                            @for r in &rows {
                                @let (words, class) = verdict_words(&r.verdict);
                                tr class=[(r.verdict == "fail").then_some("fail")] {
                                    td { (r.at) } td { (PlainText(&r.stall)) } td { (PlainText(&r.sample)) }
                                    td { (PlainText(&r.item)) } td { (PlainText(&r.value)) }
                                    td { span class=(class) { (words) } }
                                }
                            }
                        }
                    } }
                }
                p class="muted" { "每 30 秒自动刷新 Refreshes every 30 s" }
            }
            (instruments_section(&instruments, &state))
        }
    };
    respond(
        StatusCode::OK,
        page(
            "zh-CN",
            &format!("检测室 {market} · foodgate"),
            html! {
                meta http-equiv="refresh" content="30";
                style { (maud::PreEscaped(STYLE)) }
            },
            body,
        ),
    )
}
