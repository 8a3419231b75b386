//! `GET /markets/{code}/board`: the market's public display screen (no sign-in).
//!
//! It shows what shoppers may know and nothing else: time, commodity, stall, test item,
//! verdict and what was done about a failure. Its query (`store::pages`) reads only those
//! columns, never `reading_json` (which carries the tester), the uploader, instruments or
//! vendors, so nothing personal can reach the page by accident.

use super::html::{page, respond, PlainText};
use crate::http::AppState;
use crate::judge::Reference;
use crate::store::{markets, pages};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use maud::{html, Markup, PreEscaped};

/// Results shown at most (failures first, so none is ever cut off behind passes).
const SHOWN: usize = 500;
/// The board reloads itself this often (seconds).
pub const REFRESH_S: u32 = 60;

/// One result as the board shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardRow {
    /// When it was measured (or received, when the instrument clock is missing or far off).
    pub at: DateTime<Utc>,
    pub commodity: Option<String>,
    pub stall: Option<String>,
    pub analyte: String,
    pub verdict: String,
    pub hold: Option<crate::store::Handling>,
    pub preliminary: bool,
}

/// The results of `market` on local day `day`: failures first, then newest first.
pub fn board_rows(
    conn: &impl crate::store::Db,
    market: &str,
    day: NaiveDate,
) -> rusqlite::Result<Vec<BoardRow>> {
    let mut rows: Vec<BoardRow> =
        pages::board_readings(conn, market, &day.format("%Y-%m-%d").to_string())?
            .into_iter()
            .map(|r| {
                let received = DateTime::parse_from_rfc3339(&r.received_at)
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_default();
                // The same rule as the local day: the instrument's clock unless it is missing
                // or more than 24 h away from the receipt.
                let at = r
                    .measured_at
                    .and_then(|m| DateTime::parse_from_rfc3339(&m).ok())
                    .map(|m| m.with_timezone(&Utc))
                    .filter(|m| (*m - received).num_hours().abs() <= 24)
                    .unwrap_or(received);
                BoardRow {
                    at,
                    commodity: r.commodity,
                    stall: r.stall,
                    analyte: r.analyte,
                    verdict: r.verdict,
                    hold: r.hold,
                    preliminary: r.result_status.as_deref() == Some("P"),
                }
            })
            .collect();
    rows.sort_by(|a, b| {
        (b.verdict == "fail")
            .cmp(&(a.verdict == "fail"))
            .then(b.at.cmp(&a.at))
    });
    rows.truncate(SHOWN);
    Ok(rows)
}

/// The test item as people in the market call it (see [`Reference::item_name`]).
pub(crate) fn item_name(reference: &Reference, analyte: &str) -> String {
    reference.item_name(analyte)
}

fn verdict_words(verdict: &str) -> (&'static str, &'static str) {
    match verdict {
        "pass" => ("合格", "Pass"),
        "fail" => ("不合格", "Fail"),
        "invalid" => ("无效", "Invalid test"),
        _ => ("待判定", "Not judged"),
    }
}

const BOARD_CSS: &str = "<style>
body{background:#0f1b2a;color:#f2f5f8}
header{background:#15304f}
section{background:#17263a;color:#f2f5f8}
th,td{border-bottom:1px solid #2b3d55;font-size:1.15rem;white-space:normal}
.v{font-size:1.7rem;font-weight:800;white-space:nowrap}
tr.pass .v{color:#5ee08a}
tr.fail td{color:#ff6b5e}
tr.fail{background:#3b1616}
tr.fail .v{color:#ff4b3a}
.muted{color:#9fb0c3}
.big{font-size:1.4rem}
@media (max-width:700px){
thead{display:none}
table,tbody,tr,td{display:block}
tr{padding:.5rem .2rem;border-bottom:1px solid #2b3d55}
td{border:0;padding:.1rem .3rem}
td.t,td.c,td.s,td.i{display:inline-block;font-size:1.05rem}
td.c{font-weight:700}
}
</style>";

/// `GET /markets/{code}/board`.
pub async fn board(State(state): State<AppState>, Path(code): Path<String>) -> Response {
    let offset: FixedOffset = state.utc_offset();
    let now = Utc::now().with_timezone(&offset);
    let today = now.date_naive();
    let c = code.clone();
    let data = state
        .read(move |conn| {
            let Some(name) = markets::name(conn, &c)? else {
                return Ok(None);
            };
            Ok(Some((name, board_rows(conn, &c, today)?)))
        })
        .await;
    let (name, rows) = match data {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(&code),
        Err(e) => {
            tracing::error!(error = %e.message, market = %code, "board failed");
            return respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                page(
                    "zh-CN",
                    "暂时无法显示 · Unavailable",
                    html! { meta http-equiv="refresh" content="60"; },
                    html! { main { section {
                        p class="big" { "暂时无法显示检测结果，一分钟后自动重试。" }
                        p { "The results cannot be shown just now; this page retries every minute." }
                    } } },
                ),
            );
        }
    };
    let reference = state.judge().reference();
    let failures = rows.iter().filter(|r| r.verdict == "fail").count();
    let body = html! {
        header {
            h1 { (PlainText(&name)) " " span class="muted" { (PlainText(&code)) } }
            div class="big" { "今日快检结果 · Today's test results · " (today.format("%Y-%m-%d")) }
        }
        main {
            section {
                p class="big" id="counts" {
                    "今日检测 " strong { (rows.len()) } " 项，不合格 " strong { (failures) } " 项 · "
                    (rows.len()) " tests today, " (failures) " failed"
                }
                @if rows.is_empty() {
                    p class="big" { "今天还没有检测结果。 · No results yet today." }
                } @else {
                    div class="scroll" { table {
                        thead { tr {
                            th { "时间" br; span class="muted" { "Time" } }
                            th { "商品" br; span class="muted" { "Commodity" } }
                            th { "摊位" br; span class="muted" { "Stall" } }
                            th { "检测项目" br; span class="muted" { "Test" } }
                            th { "结果" br; span class="muted" { "Result" } }
                            th { "处理情况" br; span class="muted" { "What was done" } }
                        } }
                        tbody {
                            @for r in &rows {
                                (result_row(r, reference, offset))
                            }
                        }
                    } }
                }
            }
            p class="muted" { "每分钟自动刷新 · Refreshes every minute · " (now.format("%H:%M")) }
        }
    };
    respond(
        StatusCode::OK,
        page(
            "zh-CN",
            &format!("{name} · 今日快检结果"),
            html! {
                meta http-equiv="refresh" content=(REFRESH_S);
                (PreEscaped(BOARD_CSS))
            },
            body,
        ),
    )
}

/// One result line: the verdict in words, and what was done about a failure.
fn result_row(r: &BoardRow, reference: &Reference, offset: FixedOffset) -> Markup {
    let (zh, en) = verdict_words(&r.verdict);
    let class = match r.verdict.as_str() {
        "fail" => "fail",
        "pass" => "pass",
        _ => "other",
    };
    html! {
        tr class=(class) {
            td class="t" { (r.at.with_timezone(&offset).format("%H:%M")) }
            td class="c" { (PlainText(r.commodity.as_deref().unwrap_or("—"))) }
            td class="s" { (PlainText(r.stall.as_deref().unwrap_or("—"))) }
            td class="i" { (PlainText(&item_name(reference, &r.analyte))) }
            td class="v" { (zh) br; span style="font-size:1rem" { (en) } }
            td {
                @match (&r.hold, r.verdict.as_str()) {
                    (Some(h), _) => {
                        (h.zh()) br; span class="muted" { (h.en()) }
                    }
                    (None, "fail") if r.preliminary => {
                        "初步结果，待确认" br;
                        span class="muted" { "Preliminary result, to be confirmed" }
                    }
                    (None, "fail") => {
                        "复检结果，见上方处理" br;
                        span class="muted" { "A retest: see the hold it belongs to" }
                    }
                    _ => {}
                }
            }
        }
    }
}

fn not_found(code: &str) -> Response {
    let body = html! {
        header { h1 { "没有这个市场 · No such market" } }
        main { section {
            p class="big" { "市场代码 " (PlainText(code)) " 未登记。" }
            p { "No market with the code " (PlainText(code)) " is registered." }
        } }
    };
    respond(
        StatusCode::NOT_FOUND,
        page("zh-CN", "没有这个市场 · No such market", html! {}, body),
    )
}
