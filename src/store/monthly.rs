//! The regulators' monthly report (`GET /api/v1/reports/monthly`, `/reports/monthly`): per
//! market, with district subtotals and a total, what was tested in a month and what became of
//! the failures.
//!
//! Counted as the daily coverage counts (`docs/reference.md`, "Coverage: what is counted"),
//! over the readings (not superseded) whose local day is in the month:
//! - `tests`: the readings;
//! - `batches` (抽检批次): the distinct samples with a pass or fail reading;
//! - `failed` (不合格): the batches with a failing reading; `passed` the others;
//! - `destroyed` (销毁批次): the failed batches whose hold recorded a destruction, and `kg`
//!   (销毁数量) the kilograms of those destructions (a destruction counts in the month of
//!   its failed test);
//! - `stalls` (抽检摊位): the distinct stalls named by the batches' readings;
//! - `rate` (不合格率): failed / batches, none when there was no batch.

use chrono::NaiveDate;
use rusqlite::params;
use serde::Serialize;
use std::collections::BTreeMap;

/// The figures of one market, district or the whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MonthFigures {
    pub tests: u64,
    pub batches: u64,
    pub passed: u64,
    pub failed: u64,
    pub destroyed: u64,
    pub destroyed_kg: f64,
    pub stalls: u64,
    /// Failed / batches (0..1); none without batches.
    pub rate: Option<f64>,
}

impl MonthFigures {
    fn add(&mut self, o: &MonthFigures) {
        self.tests += o.tests;
        self.batches += o.batches;
        self.passed += o.passed;
        self.failed += o.failed;
        self.destroyed += o.destroyed;
        self.destroyed_kg += o.destroyed_kg;
        self.stalls += o.stalls;
        self.rate = rate(self.failed, self.batches);
    }
}

fn rate(failed: u64, batches: u64) -> Option<f64> {
    (batches > 0).then(|| failed as f64 / batches as f64)
}

/// One market's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MarketMonth {
    pub market: String,
    pub name: String,
    pub district: String,
    #[serde(flatten)]
    pub figures: MonthFigures,
}

/// One district's subtotal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistrictMonth {
    pub district: String,
    pub markets: u64,
    /// Markets with at least one test.
    pub markets_tested: u64,
    #[serde(flatten)]
    pub figures: MonthFigures,
}

/// The report of a month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthlyReport {
    /// `YYYY-MM`.
    pub month: String,
    /// Only this district, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
    /// Every registered market (of the district), by district then code; a market that tested
    /// without being registered comes last under district "".
    pub markets: Vec<MarketMonth>,
    pub districts: Vec<DistrictMonth>,
    pub total: DistrictMonth,
}

/// The first day of `month` and of the month after it (`YYYY-MM-DD`).
pub fn month_bounds(month: NaiveDate) -> (String, String) {
    let next = month
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(month);
    (
        month.format("%Y-%m-%d").to_string(),
        next.format("%Y-%m-%d").to_string(),
    )
}

/// The report of the month starting on `month` (its first day), for `district` or all.
pub fn monthly_report(
    db: &impl super::Db,
    month: NaiveDate,
    district: Option<&str>,
) -> rusqlite::Result<MonthlyReport> {
    let conn = db.connection();
    let (from, to) = month_bounds(month);
    // One pass over the month's readings by the (local_day, market) index.
    let mut figures: BTreeMap<String, MonthFigures> = BTreeMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT r.market, count(*),
                count(DISTINCT CASE WHEN r.verdict IN ('pass', 'fail') THEN r.sample_ref END),
                count(DISTINCT CASE WHEN r.verdict = 'fail' THEN r.sample_ref END),
                count(DISTINCT CASE WHEN r.verdict = 'fail' AND h.destroyed_kg IS NOT NULL
                                    THEN r.sample_ref END),
                coalesce(sum(CASE WHEN r.verdict = 'fail' THEN h.destroyed_kg END), 0),
                count(DISTINCT CASE WHEN r.verdict IN ('pass', 'fail')
                                     AND trim(coalesce(r.stall, '')) <> '' THEN trim(r.stall) END)
         FROM readings r LEFT JOIN holds h ON h.reading = r.id
         WHERE r.local_day >= ?1 AND r.local_day < ?2 AND r.superseded = 0
         GROUP BY r.market",
    )?;
    let rows = stmt.query_map(params![from, to], |r| {
        let n = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
        let (batches, failed) = (n(2)?, n(3)?);
        Ok((
            r.get::<_, String>(0)?,
            MonthFigures {
                tests: n(1)?,
                batches,
                passed: batches.saturating_sub(failed),
                failed,
                destroyed: n(4)?,
                destroyed_kg: r.get(5)?,
                stalls: n(6)?,
                rate: rate(failed, batches),
            },
        ))
    })?;
    for row in rows {
        let (market, f) = row?;
        figures.insert(market, f);
    }
    let mut markets = Vec::new();
    let mut reg = conn.prepare_cached(
        "SELECT code, name, district FROM markets
         WHERE ?1 IS NULL OR district = ?1 ORDER BY district, code",
    )?;
    let registered = reg.query_map([district], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in registered {
        let (code, name, d) = row?;
        let f = figures.remove(&code).unwrap_or_default();
        markets.push(MarketMonth {
            market: code,
            name,
            district: d,
            figures: f,
        });
    }
    if district.is_none() {
        // Tested but not (or no longer) registered: still counted, under no district.
        for (code, f) in figures {
            markets.push(MarketMonth {
                market: code,
                name: String::new(),
                district: String::new(),
                figures: f,
            });
        }
    }
    let mut districts: Vec<DistrictMonth> = Vec::new();
    let mut total = DistrictMonth {
        district: district.unwrap_or_default().to_string(),
        markets: 0,
        markets_tested: 0,
        figures: MonthFigures::default(),
    };
    for m in &markets {
        if districts.last().is_none_or(|d| d.district != m.district) {
            districts.push(DistrictMonth {
                district: m.district.clone(),
                markets: 0,
                markets_tested: 0,
                figures: MonthFigures::default(),
            });
        }
        for d in [districts.last_mut(), Some(&mut total)]
            .into_iter()
            .flatten()
        {
            d.markets += 1;
            d.markets_tested += u64::from(m.figures.tests > 0);
            d.figures.add(&m.figures);
        }
    }
    Ok(MonthlyReport {
        month: month.format("%Y-%m").to_string(),
        district: district.map(str::to_string),
        markets,
        districts,
        total,
    })
}
