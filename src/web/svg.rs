//! Charts drawn on the server as inline SVG: no script, no library, no network.

use super::dashboard::DayTrend;
use super::html::esc;
use std::fmt::Write as _;

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

/// Tests (bars), failures (red bars in front) and coverage % (line, right axis) per day.
pub fn trend_chart(days: &[DayTrend]) -> String {
    let n = days.len().max(1) as f64;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let top = nice_max(days.iter().map(|d| d.tests).max().unwrap_or(0));
    let slot = plot_w / n;
    let bar = (slot * 0.7).max(1.0);
    let y = |v: u64| TOP + plot_h - plot_h * (v as f64) / (top as f64);
    let y_pct = |p: f64| TOP + plot_h - plot_h * p.clamp(0.0, 100.0) / 100.0;
    let mut s = String::with_capacity(16 * 1024);
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" class=\"chart\" \
         role=\"img\" aria-labelledby=\"trend-title\" font-family=\"sans-serif\" \
         font-size=\"11\"><title id=\"trend-title\">Tests, failures and coverage over {} days</title>",
        days.len()
    );
    // Grid and axes: tests on the left, coverage % on the right.
    for i in 0..=4u64 {
        let v = top * i / 4;
        let gy = y(v);
        let pct = 25 * i;
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{gy:.1}\" x2=\"{:.1}\" y2=\"{gy:.1}\" stroke=\"#e3e7eb\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#52606d\">{v}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{COVERAGE_COLOR}\">{pct}%</text>",
            W - RIGHT,
            LEFT - 6.0,
            gy + 4.0,
            W - RIGHT + 6.0,
            gy + 4.0
        );
    }
    let mut line = String::new();
    for (i, d) in days.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let cx = LEFT + slot * i as f64 + slot / 2.0;
        let pct = d.coverage_pct();
        let _ = write!(
            s,
            "<g class=\"day\"><title>{}: {} tests, {} failures, {} of {} markets tested ({:.1}%)</title>\
             <rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" fill=\"{TESTS_COLOR}\"/>\
             <rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" fill=\"{FAIL_COLOR}\"/></g>",
            esc(&d.day.format("%Y-%m-%d").to_string()),
            d.tests,
            d.failures,
            d.markets_tested,
            d.markets,
            pct,
            y(d.tests),
            TOP + plot_h - y(d.tests),
            y(d.failures),
            TOP + plot_h - y(d.failures),
        );
        let _ = write!(
            line,
            "{}{cx:.1},{:.1}",
            if i == 0 { "" } else { " " },
            y_pct(pct)
        );
        // A date under every fifth day and the last, so labels never overlap.
        if i % 5 == 0 || i + 1 == days.len() {
            let _ = write!(
                s,
                "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#52606d\">{}</text>",
                H - BOTTOM + 16.0,
                d.day.format("%m-%d")
            );
        }
    }
    let _ = write!(
        s,
        "<polyline points=\"{line}\" fill=\"none\" stroke=\"{COVERAGE_COLOR}\" stroke-width=\"2\"/>"
    );
    for (i, d) in days.iter().enumerate() {
        let cx = LEFT + slot * i as f64 + slot / 2.0;
        let _ = write!(
            s,
            "<circle cx=\"{cx:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{COVERAGE_COLOR}\"/>",
            y_pct(d.coverage_pct())
        );
    }
    let _ = write!(
        s,
        "<line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#52606d\"/></svg>",
        TOP + plot_h,
        W - RIGHT,
        TOP + plot_h
    );
    s
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
        let svg = trend_chart(&[day(1, 10, 2, 1), day(2, 0, 0, 0), day(3, 20, 0, 4)]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<g class=\"day\">").count(), 3);
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("2025-03-01: 10 tests, 2 failures, 1 of 4 markets tested (25.0%)"));
        // Coverage 100% on day 3 sits on the top grid line (y = TOP).
        assert!(svg.contains(&format!("cy=\"{TOP:.1}\"")), "{svg}");
    }
}
