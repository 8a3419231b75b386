//! `GET /dashboard[?date=&sort=&dir=]`: the regulators' page (regulator and admin, signed in).
//!
//! The coverage is [`coverage_of`], the very function behind `GET /api/v1/coverage`, so the
//! page and the API cannot disagree. Sorting is by query-string links: it works without
//! JavaScript (the page has none).

use super::html::{message_page, page, respond, url_encode, PlainText};
use super::session::csrf_for;
use super::signin::redirect;
use super::svg;
use super::trend::{trend, DayTrend};
use crate::api::ops::{instrument_views, InstrumentView};
use crate::auth::Role;
use crate::http::AppState;
use crate::store::coverage::{coverage_of, Coverage, MarketCoverage};
use crate::store::{pages, HoldStatus};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Days in the trend chart.
pub const TREND_DAYS: u32 = 30;
/// Open (and overdue) holds listed at most.
pub const HOLDS_SHOWN: usize = 100;

pub use crate::store::pages::OpenHold;

/// What the dashboard shows of the holds.
pub struct HoldsView {
    /// Not closed or released, newest first, at most [`HOLDS_SHOWN`].
    pub open: Vec<OpenHold>,
    /// Overdue, the longest overdue first, at most [`HOLDS_SHOWN`].
    pub overdue: Vec<OpenHold>,
    /// Holds in each status, all days.
    pub counts: BTreeMap<String, u64>,
}

/// The holds the dashboard shows; `cutoff` is the overdue cut-off now.
pub fn open_holds(conn: &impl crate::store::Db, cutoff: &str) -> rusqlite::Result<HoldsView> {
    use crate::store::pages::HoldList;
    Ok(HoldsView {
        open: pages::open_holds(conn, HoldList::Unfinished, cutoff, HOLDS_SHOWN)?,
        overdue: pages::open_holds(conn, HoldList::Overdue, cutoff, HOLDS_SHOWN)?,
        counts: pages::hold_counts(conn)?,
    })
}

/// A hold status in plain words, Chinese first.
pub fn hold_words(status: &str) -> String {
    match status.parse::<HoldStatus>() {
        Ok(s) => {
            let h = crate::store::Handling {
                status: s,
                destroyed_kg: None,
                resampled: false,
            };
            format!("{} {}", h.zh(), h.en())
        }
        Err(_) => "Unknown status".into(),
    }
}

/// Sort keys of the coverage table: (key, column title, numeric).
const COLUMNS: [(&str, &str, bool); 10] = [
    ("market", "Market", false),
    ("name", "Name", false),
    ("district", "District", false),
    ("type", "Type", false),
    ("samples", "Samples / quota", true),
    ("tests", "Tests", true),
    ("failures", "Failures", true),
    ("met", "Quota", true),
    ("plan", "Plan done", true),
    ("last", "Last result", true),
];

/// Sort the markets by `key` (an unknown key sorts by market code); ties by market code.
pub fn sort_markets(markets: &mut [MarketCoverage], key: &str, descending: bool) {
    markets.sort_by(|a, b| {
        let o = match key {
            "name" => a.name.cmp(&b.name),
            "district" => a.district.cmp(&b.district),
            "type" => a.kind.cmp(&b.kind),
            "samples" => a.samples.cmp(&b.samples),
            "tests" => a.tests.cmp(&b.tests),
            "failures" => a.failures.cmp(&b.failures),
            "met" => a.met.cmp(&b.met),
            "plan" => a.plan_done.cmp(&b.plan_done),
            "last" => a.last_result_at.cmp(&b.last_result_at),
            _ => a.market.cmp(&b.market),
        };
        let o = if descending { o.reverse() } else { o };
        o.then_with(|| a.market.cmp(&b.market))
    });
}

#[derive(Debug, Deserialize)]
pub struct DashboardQuery {
    date: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
}

/// `GET /dashboard`.
pub async fn dashboard(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<DashboardQuery>, QueryRejection>,
) -> Response {
    let Some((who, sid)) = (match super::signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    }) else {
        let here = uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/dashboard");
        return redirect(&format!("/login?next={}", url_encode(here)), &[]);
    };
    if !matches!(who.role, Role::Regulator | Role::Admin) {
        // With a way out: another token needs this session ended first.
        let body = html! {
            header { h1 { "Not allowed" } }
            main { section {
                p {
                    "You are signed in as " (PlainText(&who.name)) " with a " (who.role.as_str())
                    " token: the dashboard is for regulator and admin tokens only."
                }
                form method="post" action="/logout" {
                    input type="hidden" name="csrf" value=(csrf_for(&sid));
                    button type="submit" { "Sign out" }
                }
            } }
        };
        return respond(
            StatusCode::FORBIDDEN,
            page("en", "Not allowed", html! {}, body),
        );
    }
    let Ok(Query(q)) = query else {
        return message_page(
            StatusCode::BAD_REQUEST,
            "Bad address",
            "The query string could not be read: expected date=YYYY-MM-DD, sort and dir.",
        );
    };
    let offset = state.utc_offset();
    let date = match q.date.as_deref().filter(|d| !d.is_empty()) {
        None => Utc::now().with_timezone(&offset).date_naive(),
        Some(d) => match NaiveDate::parse_from_str(d, "%Y-%m-%d") {
            Ok(d) => d,
            Err(_) => {
                return message_page(
                    StatusCode::BAD_REQUEST,
                    "Bad date",
                    &format!("date {d:?}: expected YYYY-MM-DD"),
                )
            }
        },
    };
    let sort = q
        .sort
        .filter(|s| COLUMNS.iter().any(|(k, _, _)| k == s))
        .unwrap_or_else(|| "market".to_string());
    let numeric = COLUMNS.iter().any(|(k, _, n)| *k == sort && *n);
    let descending = match q.dir.as_deref() {
        Some("desc") => true,
        Some("asc") => false,
        _ => numeric,
    };
    let day = date.format("%Y-%m-%d").to_string();
    let cutoff = crate::store::holds::overdue_cutoff(state.store().settings(), Utc::now());
    let data = state
        .read(move |conn| {
            let cov = coverage_of(conn, &day)?;
            let trend = trend(conn, date, TREND_DAYS, offset)?;
            let holds = open_holds(conn, &cutoff)?;
            Ok((cov, trend, holds))
        })
        .await;
    let (mut cov, trend, holds) = match data {
        Ok(d) => d,
        Err(e) => return failed(&e.message),
    };
    let instruments = match instrument_views(&state).await {
        Ok(i) => i,
        Err(e) => return failed(&e.message),
    };
    sort_markets(&mut cov.markets, &sort, descending);
    let view = View {
        who: &who,
        csrf: csrf_for(&sid),
        date,
        offset,
        sort: &sort,
        descending,
    };
    let body = view.render(&cov, &trend, &holds, &instruments);
    respond(
        StatusCode::OK,
        page(
            "en",
            &format!("Dashboard {} · foodgate", cov.date),
            html! {},
            body,
        ),
    )
}

fn failed(message: &str) -> Response {
    tracing::error!(error = %message, "dashboard failed");
    message_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Dashboard unavailable",
        &format!("The data could not be read: {message}"),
    )
}

/// `at` (RFC 3339) as local `HH:MM`, with the date when it is not `day`.
pub fn local_time(at: &str, offset: FixedOffset, day: Option<NaiveDate>) -> String {
    match DateTime::parse_from_rfc3339(at) {
        Ok(t) => {
            let t = t.with_timezone(&offset);
            if day == Some(t.date_naive()) {
                t.format("%H:%M").to_string()
            } else {
                t.format("%Y-%m-%d %H:%M").to_string()
            }
        }
        Err(_) => at.to_string(),
    }
}

struct View<'a> {
    who: &'a crate::auth::Principal,
    csrf: String,
    date: NaiveDate,
    offset: FixedOffset,
    sort: &'a str,
    descending: bool,
}

impl View<'_> {
    fn render(
        &self,
        cov: &Coverage,
        trend: &[DayTrend],
        holds: &HoldsView,
        instruments: &[InstrumentView],
    ) -> Markup {
        html! {
            header {
                h1 { "foodgate · market testing dashboard" }
                a href={ "/reports/monthly?month=" (self.date.format("%Y-%m")) } { "月度报表 Monthly report" }
                form method="get" action="/dashboard" class="inline" {
                    label { "Date " input type="date" name="date" value=(self.date.format("%Y-%m-%d")); }
                    input type="hidden" name="sort" value=(PlainText(self.sort));
                    input type="hidden" name="dir" value=(if self.descending { "desc" } else { "asc" });
                    " " button type="submit" { "Show" }
                }
                div {
                    "Signed in as " strong { (PlainText(&self.who.name)) } " (" (self.who.role.as_str()) ") "
                    form method="post" action="/logout" class="inline" {
                        input type="hidden" name="csrf" value=(self.csrf);
                        button type="submit" class="link" { "Sign out" }
                    }
                }
            }
            main {
                (self.summary(cov, holds))
                section id="trend" {
                    h2 { "Last " (trend.len()) " days" }
                    div class="scroll" { (svg::trend_chart(trend)) }
                    p class="legend" {
                        span { i class="sw" style={ "background:" (svg::TESTS_COLOR) } {} "tests" }
                        span { i class="sw" style={ "background:" (svg::FAIL_COLOR) } {} "failures" }
                        span {
                            i class="sw" style={ "background:" (svg::COVERAGE_COLOR) } {}
                            "coverage (markets tested, % of all, right axis)"
                        }
                    }
                }
                @if !holds.overdue.is_empty() { (self.overdue(&holds.overdue)) }
                div class="two" {
                    (self.holds(holds))
                    (self.instruments(instruments))
                }
                (self.coverage_table(cov))
            }
        }
    }

    fn summary(&self, cov: &Coverage, holds: &HoldsView) -> Markup {
        let m = &cov.summary;
        let count = |h: HoldStatus| holds.counts.get(h.as_str()).copied().unwrap_or(0);
        let open: u64 = HoldStatus::ALL
            .into_iter()
            .filter(|s| s.is_unfinished())
            .map(count)
            .sum();
        let overdue = holds.overdue.len();
        let card = |id: &str, class: &str, n: u64, label: String| {
            html! {
                div class={ "card " (class) } id=(id) { span class="n" { (n) } (label) }
            }
        };
        html! {
            section id="summary" {
                h2 { "Summary for " (PlainText(&cov.date)) }
                div class="cards" {
                    (card("markets-tested", "", m.markets_tested, format!("markets tested of {}", m.markets)))
                    (card(
                        "markets-met-quota",
                        if m.markets_met_quota == m.markets { "good" } else { "" },
                        m.markets_met_quota,
                        format!("met their quota of {}", m.markets),
                    ))
                    (card("samples", "", m.samples, "samples".into()))
                    (card("tests", "", m.tests, "tests".into()))
                    (card("failures", if m.failures > 0 { "bad" } else { "good" }, m.failures, "failures".into()))
                    (card("open-holds", if open > 0 { "bad" } else { "" }, open, "holds open (all days)".into()))
                    (card(
                        "overdue-holds",
                        if overdue > 0 { "bad" } else { "good" },
                        overdue as u64,
                        format!("{}holds overdue (no passing re-sample in time)", if overdue >= HOLDS_SHOWN { "≥ " } else { "" }),
                    ))
                }
            }
        }
    }

    fn holds(&self, holds: &HoldsView) -> Markup {
        let all: Vec<String> = HoldStatus::ALL
            .iter()
            .map(|k| {
                format!(
                    "{k}: {}",
                    holds.counts.get(k.as_str()).copied().unwrap_or(0)
                )
            })
            .collect();
        html! {
            section id="holds" {
                h2 { "Open holds" }
                p class="muted" {
                    "All holds by status — " (all.join(", "))
                    @if holds.open.len() >= HOLDS_SHOWN {
                        " (the newest " (HOLDS_SHOWN) " open ones shown)"
                    }
                }
                @if holds.open.is_empty() {
                    p { "No open holds." }
                } @else {
                    div class="scroll box" { table {
                        thead { tr {
                            th { "Since" } th { "Market" } th { "Stall" } th { "Sample" }
                            th { "Item" } th { "Status" }
                        } }
                        tbody { @for h in &holds.open { (self.hold_row(h, &h.created_at)) } }
                    } }
                }
            }
        }
    }

    /// The overdue holds: what a regulator must chase.
    fn overdue(&self, overdue: &[OpenHold]) -> Markup {
        html! {
            section id="overdue" {
                h2 { "逾期未复抽 Overdue: no passing re-sample in time" }
                p class="muted" {
                    "Confirmed failures whose stall has not passed a re-sample of the same commodity within the \
                     deadline, the longest overdue first"
                    @if overdue.len() >= HOLDS_SHOWN { " (the first " (HOLDS_SHOWN) " shown)" }
                    "."
                }
                div class="scroll box" { table {
                    thead { tr {
                        th { "Failed test" } th { "Market" } th { "Stall" } th { "Sample" }
                        th { "Item" } th { "Status" }
                    } }
                    tbody { @for h in overdue { (self.hold_row(h, &h.tested_at)) } }
                } }
            }
        }
    }

    /// One hold, with `time` in its first column.
    fn hold_row(&self, h: &OpenHold, time: &str) -> Markup {
        let value = match (&h.value, &h.unit) {
            (Some(v), Some(u)) => format!("{v} {u}"),
            (Some(v), None) => v.clone(),
            _ => String::new(),
        };
        html! {
            tr {
                td { (local_time(time, self.offset, Some(self.date))) }
                td title=(PlainText(&h.market_name)) { (PlainText(&h.market)) }
                td { (PlainText(h.stall.as_deref().unwrap_or("—"))) }
                td { (PlainText(h.sample.as_deref().unwrap_or("—"))) }
                td title=(PlainText(&value)) { (PlainText(&h.analyte)) }
                td {
                    span class={ "tag " (PlainText(&h.status)) } title=(PlainText(&h.status)) {
                        (hold_words(&h.status))
                    }
                    @if h.overdue { " " span class="tag off" { "逾期 overdue" } }
                }
            }
        }
    }

    fn instruments(&self, instruments: &[InstrumentView]) -> Markup {
        let online = instruments.iter().filter(|i| i.online).count();
        html! {
            section id="instruments" {
                h2 { "Instruments: " (online) " online, " (instruments.len() - online) " offline" }
                @if instruments.is_empty() {
                    p { "No instruments are configured or recorded." }
                } @else {
                    div class="scroll box" { table {
                        thead { tr {
                            th { "Instrument" } th { "Market" } th { "Protocol" } th { "Link" }
                            th { "Last seen" } th class="num" { "Readings" }
                        } }
                        tbody { @for i in instruments { (self.instrument_row(i)) } }
                    } }
                }
            }
        }
    }

    fn instrument_row(&self, i: &InstrumentView) -> Markup {
        let detail = format!(
            "decode errors: {}, reconnects: {}{}",
            i.decode_errors,
            i.reconnects,
            i.last_error
                .as_deref()
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default()
        );
        let last_seen = i
            .last_seen
            .as_deref()
            .map(|t| local_time(t, self.offset, Some(self.date)))
            .unwrap_or_else(|| "never".into());
        html! {
            tr {
                td { (PlainText(&i.id)) }
                td { (PlainText(&i.market)) }
                td { (PlainText(&i.protocol)) }
                td {
                    span class={ "tag " (if i.online { "on" } else { "off" }) } title=(PlainText(&detail)) {
                        (if i.online { "online" } else { "offline" })
                    }
                }
                td { (last_seen) }
                td class="num" { (i.readings) }
            }
        }
    }

    fn sort_link(&self, key: &str, title: &str, numeric: bool) -> Markup {
        let current = self.sort == key;
        // A click on the current column flips it; another column starts in its natural
        // direction (largest numbers first, text A→Z).
        let desc = if current { !self.descending } else { numeric };
        let arrow = match (current, self.descending) {
            (false, _) => "",
            (true, true) => " ▼",
            (true, false) => " ▲",
        };
        let href = format!(
            "/dashboard?date={}&sort={}&dir={}",
            url_encode(&self.date.format("%Y-%m-%d").to_string()),
            url_encode(key),
            if desc { "desc" } else { "asc" },
        );
        html! { a href=(href) { (title) } (arrow) }
    }

    fn coverage_table(&self, cov: &Coverage) -> Markup {
        html! {
            section id="coverage" {
                h2 { "Coverage of all " (cov.markets.len()) " markets on " (PlainText(&cov.date)) }
                div class="scroll" { table {
                    thead { tr {
                        @for (key, title, numeric) in COLUMNS {
                            th class=[(numeric && key != "met" && key != "last").then_some("num")] {
                                (self.sort_link(key, title, numeric))
                            }
                        }
                    } }
                    tbody { @for m in &cov.markets { (self.market_row(m)) } }
                } }
            }
        }
    }

    fn market_row(&self, m: &MarketCoverage) -> Markup {
        let last = m
            .last_result_at
            .as_deref()
            .map(|t| local_time(t, self.offset, Some(self.date)))
            .unwrap_or_default();
        html! {
            tr class=[(m.failures > 0).then_some("fail")] {
                td { (PlainText(&m.market)) }
                td { (PlainText(&m.name)) }
                td { (PlainText(&m.district)) }
                td { (PlainText(&m.kind)) }
                td class="num" { (m.samples) " / " (m.quota) }
                td class="num" { (m.tests) }
                td class="num" { (m.failures) }
                td class=(if m.met { "met" } else { "unmet" }) { (if m.met { "✓ met" } else { "✗ not met" }) }
                td class="num plan" {
                    @if let (Some(t), Some(d)) = (m.plan_total, m.plan_done) { (d) " / " (t) } @else { "—" }
                }
                td { (last) }
            }
        }
    }
}
