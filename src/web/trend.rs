//! The 30-day trend the dashboard draws: tests, failures and markets tested per local day.

use chrono::{FixedOffset, NaiveDate, Utc};

/// One day of the trend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayTrend {
    pub day: NaiveDate,
    pub tests: u64,
    pub failures: u64,
    pub markets_tested: u64,
    pub markets_met_quota: u64,
    /// Registered markets (today's registry).
    pub markets: u64,
}

impl DayTrend {
    /// The share of registered markets that tested that day, in percent (the dashboard's
    /// "coverage").
    pub fn tested_pct(&self) -> f64 {
        if self.markets == 0 {
            0.0
        } else {
            100.0 * self.markets_tested as f64 / self.markets as f64
        }
    }
}

/// `days` days of tests, failures and markets tested, ending at `last_day` (local days of
/// `utc_offset`, counted as coverage counts them), read from the per-market-per-day
/// aggregate. Days after today hold no readings, so the trend ends at today at the latest.
pub fn trend(
    conn: &crate::store::Reader,
    last_day: NaiveDate,
    days: u32,
    utc_offset: FixedOffset,
) -> rusqlite::Result<Vec<DayTrend>> {
    let today = Utc::now().with_timezone(&utc_offset).date_naive();
    let last = last_day.min(today);
    Ok(crate::store::coverage::trend(conn, last, days.max(1))?
        .into_iter()
        .filter_map(|t| {
            Some(DayTrend {
                day: NaiveDate::parse_from_str(&t.date, "%Y-%m-%d").ok()?,
                tests: t.tests,
                failures: t.failures,
                markets_tested: t.markets_tested,
                markets_met_quota: t.markets_met_quota,
                markets: t.markets,
            })
        })
        .collect())
}
