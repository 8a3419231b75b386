//! Charts drawn on the server as inline SVG: no script, no library, no network.

use super::trend::DayTrend;
use maud::{html, Markup};

const W: f64 = 760.0;
const H: f64 = 250.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 48.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 34.0;

pub const TESTS_COLOR: &str = "#8fa9c8";
pub const FAIL_COLOR: &str = "#c0392b";
pub const COVERAGE_COLOR: &str = "#1e8449";

/// The smallest 1, 2 or 5 × 10ⁿ at or above `v` (at least 1): a round top for an axis.
pub fn nice_max(v: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            let top = step.saturating_mul(m);
            if top >= v {
                return top;
            }
        }
        step = step.saturating_mul(10);
    }
}

/// A coordinate as the chart writes it: one decimal.
fn at(v: f64) -> String {
    format!("{v:.1}")
}

/// Tests (bars), failures (red bars in front) and coverage % (line, right axis) per day.
pub fn trend_chart(days: &[DayTrend]) -> Markup {
    let n = days.len().max(1) as f64;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let top = nice_max(days.iter().map(|d| d.tests).max().unwrap_or(0));
    let slot = plot_w / n;
    let bar = (slot * 0.7).max(1.0);
    let y = |v: u64| TOP + plot_h - plot_h * (v as f64) / (top as f64);
    let y_pct = |p: f64| TOP + plot_h - plot_h * p.clamp(0.0, 100.0) / 100.0;
    let center = |i: usize| LEFT + slot * i as f64 + slot / 2.0;
    let line = days
        .iter()
        .enumerate()
        .map(|(i, d)| format!("{:.1},{:.1}", center(i), y_pct(d.tested_pct())))
        .collect::<Vec<_>>()
        .join(" ");
    // SVG elements are closed explicitly: inside HTML, `<rect>` without `/>` or `</rect>`
    // would swallow its siblings as children.
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (W) " " (H) } class="chart"
            role="img" aria-labelledby="trend-title" font-family="sans-serif" font-size="11" {
            title id="trend-title" { "Tests, failures and coverage over " (days.len()) " days" }
            // Grid and axes: tests on the left, coverage % on the right.
            @for i in 0..=4u64 {
                @let v = top * i / 4;
                @let gy = y(v);
                line x1=(LEFT) y1=(at(gy)) x2=(at(W - RIGHT)) y2=(at(gy)) stroke="#e3e7eb" {}
                text x=(at(LEFT - 6.0)) y=(at(gy + 4.0)) text-anchor="end" fill="#52606d" { (v) }
                text x=(at(W - RIGHT + 6.0)) y=(at(gy + 4.0)) fill=(COVERAGE_COLOR) { (25 * i) "%" }
            }
            @for (i, d) in days.iter().enumerate() {
                @let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
                g class="day" {
                    title {
                        (d.day.format("%Y-%m-%d")) ": " (d.tests) " tests, " (d.failures)
                        " failures, " (d.markets_tested) " of " (d.markets) " markets tested ("
                        (format!("{:.1}", d.tested_pct())) "%)"
                    }
                    rect x=(at(x)) y=(at(y(d.tests))) width=(at(bar))
                        height=(at(TOP + plot_h - y(d.tests))) fill=(TESTS_COLOR) {}
                    rect x=(at(x)) y=(at(y(d.failures))) width=(at(bar))
                        height=(at(TOP + plot_h - y(d.failures))) fill=(FAIL_COLOR) {}
                }
                // A date under every fifth day and the last, so labels never overlap.
                @if i % 5 == 0 || i + 1 == days.len() {
                    text x=(at(center(i))) y=(at(H - BOTTOM + 16.0)) text-anchor="middle"
                        fill="#52606d" { (d.day.format("%m-%d")) }
                }
            }
            polyline points=(line) fill="none" stroke=(COVERAGE_COLOR) stroke-width="2" {}
            @for (i, d) in days.iter().enumerate() {
                circle cx=(at(center(i))) cy=(at(y_pct(d.tested_pct()))) r="2.5"
                    fill=(COVERAGE_COLOR) {}
            }
            line x1=(LEFT) y1=(at(TOP + plot_h)) x2=(at(W - RIGHT)) y2=(at(TOP + plot_h))
                stroke="#52606d" {}
        }
    }
}

/// One bar pair of [`batch_bars`]: a market's batches and its failed ones.
pub struct BatchBar<'a> {
    pub label: &'a str,
    pub batches: u64,
    pub failed: u64,
}

/// Batches (bars) and failed batches (red bars in front) per market, `id` naming the chart.
pub fn batch_bars(id: &str, title: &str, bars: &[BatchBar<'_>]) -> Markup {
    let n = bars.len().max(1) as f64;
    let plot_w = W - LEFT - 12.0;
    let plot_h = H - TOP - BOTTOM;
    let top = nice_max(bars.iter().map(|b| b.batches).max().unwrap_or(0));
    let slot = plot_w / n;
    let bar = (slot * 0.7).max(1.0);
    let y = |v: u64| TOP + plot_h - plot_h * (v as f64) / (top as f64);
    let every = (bars.len() / 12).max(1);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (W) " " (H) } class="chart"
            role="img" aria-labelledby=(format!("{id}-title")) font-family="sans-serif" font-size="11" {
            title id=(format!("{id}-title")) { (title) }
            @for i in 0..=4u64 {
                @let v = top * i / 4;
                @let gy = y(v);
                line x1=(LEFT) y1=(at(gy)) x2=(at(W - 12.0)) y2=(at(gy)) stroke="#e3e7eb" {}
                text x=(at(LEFT - 6.0)) y=(at(gy + 4.0)) text-anchor="end" fill="#52606d" { (v) }
            }
            @for (i, b) in bars.iter().enumerate() {
                @let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
                g class="market" {
                    title { (b.label) ": " (b.batches) " 批次 batches, " (b.failed) " 不合格 failed" }
                    rect x=(at(x)) y=(at(y(b.batches))) width=(at(bar))
                        height=(at(TOP + plot_h - y(b.batches))) fill=(TESTS_COLOR) {}
                    rect x=(at(x)) y=(at(y(b.failed))) width=(at(bar))
                        height=(at(TOP + plot_h - y(b.failed))) fill=(FAIL_COLOR) {}
                }
                @if i % every == 0 {
                    text x=(at(x + bar / 2.0)) y=(at(H - BOTTOM + 16.0)) text-anchor="middle"
                        fill="#52606d" { (b.label.rsplit('-').next().unwrap_or(b.label)) }
                }
            }
            line x1=(LEFT) y1=(at(TOP + plot_h)) x2=(at(W - 12.0)) y2=(at(TOP + plot_h))
                stroke="#52606d" {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn round_axis_tops() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(1), 1);
        assert_eq!(nice_max(3), 5);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(11), 20);
        assert_eq!(nice_max(72_600), 100_000);
    }

    #[test]
    fn one_bar_pair_and_point_per_day() {
        let day = |d: u32, tests, failures, tested| DayTrend {
            day: NaiveDate::from_ymd_opt(2025, 3, d).unwrap(),
            tests,
            failures,
            markets_tested: tested,
            markets_met_quota: 0,
            markets: 4,
        };
        let svg = trend_chart(&[day(1, 10, 2, 1), day(2, 0, 0, 0), day(3, 20, 0, 4)]).into_string();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<g class=\"day\">").count(), 3);
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("2025-03-01: 10 tests, 2 failures, 1 of 4 markets tested (25.0%)"));
        // Coverage 100% on day 3 sits on the top grid line (y = TOP).
        assert!(svg.contains(&format!("cy=\"{TOP:.1}\"")), "{svg}");
    }
}
