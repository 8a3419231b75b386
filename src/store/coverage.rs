//! The per-market-per-day coverage aggregate (`coverage_days`, migration 0009), kept in the
//! transaction that stores or supersedes the readings, and the queries that read it.
//!
//! `docs/reference.md`, "Coverage: what is counted": `tests` are the readings (not superseded) whose local day
//! is D, `failures` those that failed, `samples` the distinct samples with at least one pass
//! or fail reading that day. Counting distinct samples incrementally needs, per sample and
//! day, how many pass/fail readings still count (`coverage_samples`): a sample enters the
//! day's count when that goes above zero and leaves it when a correction takes it to zero.
//!
//! The insert path only notes changes in memory ([`CoverageDelta`]); the writer applies them
//! once per job ([`CoverageDelta::flush`]) before the job's changes are committed, so a
//! 2,000-reading batch costs a few aggregate writes, not two per reading.

use super::Db;
use super::Reader;
use crate::judge::Verdict;
use chrono::{Days, FixedOffset, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::HashMap;

/// Changes to one market-day, not yet written.
#[derive(Debug)]
struct DayDelta {
    market: String,
    day: String,
    tests: i64,
    failures: i64,
    /// Latest `received_at` among readings added.
    last: Option<String>,
    /// A reading left the day: its latest receipt time must be read again.
    recount_last: bool,
}

/// Aggregate changes of one writer job.
#[derive(Debug, Default)]
pub struct CoverageDelta {
    /// A job touches one or a few market-days: a short list searched linearly.
    days: Vec<DayDelta>,
    /// (sample, index into `days`) → change in that sample's pass/fail readings.
    samples: HashMap<(i64, usize), i64>,
    /// Change in the number of stored readings per verdict (`reading_totals`), in the order
    /// of [`VERDICTS`]: superseded readings stay stored, so only a new reading or a changed
    /// verdict moves these.
    totals: [i64; 4],
}

/// The verdicts `reading_totals` counts, as stored in `readings.verdict`.
pub const VERDICTS: [Verdict; 4] = [
    Verdict::Pass,
    Verdict::Fail,
    Verdict::Invalid,
    Verdict::Unknown,
];

fn verdict_slot(v: Verdict) -> usize {
    VERDICTS.iter().position(|&x| x == v).unwrap_or(3)
}

impl CoverageDelta {
    fn day_index(&mut self, market: &str, day: &str) -> usize {
        if let Some(i) = self
            .days
            .iter()
            .rposition(|d| d.day == day && d.market == market)
        {
            return i;
        }
        self.days.push(DayDelta {
            market: market.to_string(),
            day: day.to_string(),
            tests: 0,
            failures: 0,
            last: None,
            recount_last: false,
        });
        self.days.len() - 1
    }

    /// A reading was stored (counts from now on).
    pub fn add(
        &mut self,
        market: &str,
        day: &str,
        sample: Option<i64>,
        verdict: Verdict,
        received_at: &str,
    ) {
        let i = self.day_index(market, day);
        if let Some(d) = self.days.get_mut(i) {
            d.tests += 1;
            d.failures += i64::from(verdict == Verdict::Fail);
            if d.last.as_deref().is_none_or(|l| l < received_at) {
                d.last = Some(received_at.to_string());
            }
        }
        if let (Some(s), Verdict::Pass | Verdict::Fail) = (sample, verdict) {
            *self.samples.entry((s, i)).or_insert(0) += 1;
        }
    }

    /// A reading stopped counting (superseded by a correction).
    pub fn remove(&mut self, market: &str, day: &str, sample: Option<i64>, verdict: Verdict) {
        let i = self.day_index(market, day);
        if let Some(d) = self.days.get_mut(i) {
            d.tests -= 1;
            d.failures -= i64::from(verdict == Verdict::Fail);
            d.recount_last = true;
        }
        if let (Some(s), Verdict::Pass | Verdict::Fail) = (sample, verdict) {
            *self.samples.entry((s, i)).or_insert(0) -= 1;
        }
    }

    /// A reading was stored with `verdict` (it counts in the totals for good).
    pub fn stored(&mut self, verdict: Verdict) {
        if let Some(n) = self.totals.get_mut(verdict_slot(verdict)) {
            *n += 1;
        }
    }

    /// A stored reading's verdict changed from `before` to `after`.
    pub fn verdict_changed(&mut self, before: Verdict, after: Verdict) {
        if let Some(n) = self.totals.get_mut(verdict_slot(before)) {
            *n -= 1;
        }
        self.stored(after);
    }

    pub fn is_empty(&self) -> bool {
        self.days.is_empty() && self.totals.iter().all(|&n| n == 0)
    }

    /// Write the changes into the aggregate (in the caller's transaction) and forget them.
    ///
    /// Read, then insert or update: an UPSERT would make SQLite open a statement journal.
    pub fn flush(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        for (v, change) in VERDICTS.iter().zip(std::mem::take(&mut self.totals)) {
            if change == 0 {
                continue;
            }
            let verdict = crate::store::insert::verdict_str(*v);
            let updated = conn
                .prepare_cached("UPDATE reading_totals SET n = n + ?2 WHERE verdict = ?1")?
                .execute(params![verdict, change])?;
            if updated == 0 {
                conn.prepare_cached("INSERT INTO reading_totals (verdict, n) VALUES (?1, ?2)")?
                    .execute(params![verdict, change])?;
            }
        }
        if self.days.is_empty() {
            return Ok(());
        }
        let mut samples_change = vec![0i64; self.days.len()];
        for ((sample, i), change) in self.samples.drain() {
            let Some(day) = self.days.get(i).map(|d| d.day.as_str()) else {
                continue;
            };
            if change == 0 {
                continue;
            }
            let before: Option<i64> = conn
                .prepare_cached(
                    "SELECT readings FROM coverage_samples WHERE sample_ref = ?1 AND day = ?2",
                )?
                .query_row(params![sample, day], |r| r.get(0))
                .optional()?;
            let old = before.unwrap_or(0);
            let new = old + change;
            if let Some(slot) = samples_change.get_mut(i) {
                *slot += i64::from(new > 0) - i64::from(old > 0);
            }
            let sql = match (before.is_some(), new > 0) {
                (true, true) => {
                    "UPDATE coverage_samples SET readings = ?3 WHERE sample_ref = ?1 AND day = ?2"
                }
                (true, false) => "DELETE FROM coverage_samples WHERE sample_ref = ?1 AND day = ?2",
                (false, true) => {
                    "INSERT INTO coverage_samples (sample_ref, day, readings) VALUES (?1, ?2, ?3)"
                }
                (false, false) => continue,
            };
            let mut stmt = conn.prepare_cached(sql)?;
            if new > 0 {
                stmt.execute(params![sample, day, new])?;
            } else {
                stmt.execute(params![sample, day])?;
            }
        }
        for (d, samples) in self.days.drain(..).zip(samples_change) {
            type Row = (i64, i64, i64, Option<String>);
            let before: Option<Row> = conn
                .prepare_cached(
                    "SELECT tests, failures, samples, last_result_at FROM coverage_days
                     WHERE day = ?1 AND market = ?2",
                )?
                .query_row(params![d.day, d.market], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            let last: Option<String> = if d.recount_last {
                conn.prepare_cached(
                    "SELECT max(received_at) FROM readings
                     WHERE market = ?1 AND local_day = ?2 AND superseded = 0",
                )?
                .query_row(params![d.market, d.day], |r| r.get(0))?
            } else {
                let old = before.as_ref().and_then(|b| b.3.clone());
                old.max(d.last)
            };
            match before {
                Some((tests, failures, old_samples, _)) => conn
                    .prepare_cached(
                        "UPDATE coverage_days SET tests = ?3, failures = ?4, samples = ?5,
                            last_result_at = ?6 WHERE day = ?1 AND market = ?2",
                    )?
                    .execute(params![
                        d.day,
                        d.market,
                        tests + d.tests,
                        failures + d.failures,
                        old_samples + samples,
                        last
                    ])?,
                None => conn
                    .prepare_cached(
                        "INSERT INTO coverage_days (day, market, tests, failures, samples,
                            last_result_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![d.day, d.market, d.tests, d.failures, samples, last])?,
            };
        }
        Ok(())
    }
}

/// Stored readings per verdict (superseded ones included), every verdict present.
pub fn reading_totals(reader: &Reader) -> rusqlite::Result<Vec<(&'static str, u64)>> {
    let conn = reader.connection();
    let mut stmt = conn.prepare_cached("SELECT n FROM reading_totals WHERE verdict = ?1")?;
    VERDICTS
        .iter()
        .map(|&v| {
            let name = crate::store::insert::verdict_str(v);
            let n: Option<i64> = stmt.query_row([name], |r| r.get(0)).optional()?;
            Ok((name, count(n.unwrap_or(0))))
        })
        .collect()
}

/// One market's coverage on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketCoverage {
    pub market: String,
    pub name: String,
    pub district: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub samples: u64,
    pub tests: u64,
    pub failures: u64,
    pub quota: u64,
    pub met: bool,
    pub last_result_at: Option<String>,
    /// The day's sampling plan (`docs/plan.md`), where one was drawn: its entries, and those
    /// done (a reading of that stall and category received that day).
    pub plan_total: Option<u64>,
    pub plan_done: Option<u64>,
}

/// All markets together on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub markets: u64,
    pub markets_tested: u64,
    pub markets_met_quota: u64,
    pub samples: u64,
    pub tests: u64,
    pub failures: u64,
}

/// `GET /api/v1/coverage`: a day's summary and every registered market, tested or not.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub date: String,
    pub summary: Summary,
    pub markets: Vec<MarketCoverage>,
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Coverage of every registered market on local day `date` (`YYYY-MM-DD`).
pub fn coverage_of(reader: &Reader, date: &str) -> rusqlite::Result<Coverage> {
    let conn = reader.connection();
    let markets: Vec<MarketCoverage> = conn
        .prepare_cached(
            "SELECT m.code, m.name, m.district, m.type, m.quota, coalesce(c.tests, 0),
                coalesce(c.failures, 0), coalesce(c.samples, 0), c.last_result_at
             FROM markets m LEFT JOIN coverage_days c ON c.day = ?1 AND c.market = m.code
             ORDER BY m.code",
        )?
        .query_map([date], |r| {
            let quota = count(r.get(4)?);
            let samples = count(r.get(7)?);
            Ok(MarketCoverage {
                market: r.get(0)?,
                name: r.get(1)?,
                district: r.get(2)?,
                kind: r.get(3)?,
                quota,
                tests: count(r.get(5)?),
                failures: count(r.get(6)?),
                samples,
                met: samples >= quota,
                last_result_at: r.get(8)?,
                plan_total: None,
                plan_done: None,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let plans = plan_progress(reader, date)?;
    let mut markets = markets;
    for m in &mut markets {
        if let Some((total, done)) = plans.get(&m.market) {
            m.plan_total = Some(*total);
            m.plan_done = Some(*done);
        }
    }
    let mut s = Summary {
        markets: markets.len() as u64,
        ..Summary::default()
    };
    for m in &markets {
        s.markets_tested += u64::from(m.tests > 0);
        s.markets_met_quota += u64::from(m.met);
        s.samples += m.samples;
        s.tests += m.tests;
        s.failures += m.failures;
    }
    Ok(Coverage {
        date: date.to_string(),
        summary: s,
        markets,
    })
}

/// Whether a sampling plan's entry `p` (`plan_entries`, `super::plan`) was tested on its
/// day: a reading of its stall and category received that day.
pub(super) const PLAN_DONE: &str = "EXISTS (SELECT 1 FROM readings r WHERE r.market = p.market
    AND r.local_day = p.day AND r.stall = p.stall AND r.category = p.category
    AND r.superseded = 0)";

/// Per market, a day's kept plan: (entries, entries done).
pub fn plan_progress(
    db: &impl super::Db,
    day: &str,
) -> rusqlite::Result<std::collections::BTreeMap<String, (u64, u64)>> {
    db.connection()
        .prepare_cached(&format!(
            "SELECT p.market, count(*), sum({PLAN_DONE}) FROM plan_entries p WHERE p.day = ?1
             GROUP BY p.market"
        ))?
        .query_map([day], |r| {
            let n: i64 = r.get(1)?;
            let done: i64 = r.get(2)?;
            Ok((
                r.get(0)?,
                (
                    u64::try_from(n).unwrap_or(0),
                    u64::try_from(done).unwrap_or(0),
                ),
            ))
        })?
        .collect()
}

/// One day of the trend: the day's [`Summary`] plus the shares the dashboard draws.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendDay {
    pub date: String,
    pub markets: u64,
    pub markets_tested: u64,
    pub markets_met_quota: u64,
    pub samples: u64,
    pub tests: u64,
    pub failures: u64,
    /// The share of registered markets that met their quota, in percent.
    pub met_quota_pct: f64,
    /// The share of registered markets with at least one test, in percent.
    pub tested_pct: f64,
}

/// Today, as the local day of `utc_offset` (the day coverage counts in).
pub fn today(utc_offset: FixedOffset) -> NaiveDate {
    Utc::now().with_timezone(&utc_offset).date_naive()
}

/// The `days` local days ending with `last_day` (oldest first, every day present, days
/// without data as zeros), against the markets registered now and their current quotas.
pub fn trend(reader: &Reader, last_day: NaiveDate, days: u32) -> rusqlite::Result<Vec<TrendDay>> {
    let conn = reader.connection();
    let days = days.max(1);
    let first = last_day
        .checked_sub_days(Days::new(u64::from(days - 1)))
        .unwrap_or(NaiveDate::MIN);
    let fmt = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let (markets, no_quota): (i64, i64) = conn
        .prepare_cached("SELECT count(*), coalesce(sum(quota <= 0), 0) FROM markets")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    // Markets with a quota of 0 meet it without a test, as in `coverage_of`.
    let mut by_day: HashMap<String, (i64, i64, i64, i64, i64)> = conn
        .prepare_cached(
            "SELECT c.day, sum(c.tests), sum(c.failures), sum(c.samples), sum(c.tests > 0),
                sum(m.quota > 0 AND c.samples >= m.quota)
             FROM coverage_days c JOIN markets m ON m.code = c.market
             WHERE c.day BETWEEN ?1 AND ?2 GROUP BY c.day",
        )?
        .query_map(params![fmt(first), fmt(last_day)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let pct = |n: i64| {
        if markets > 0 {
            n as f64 * 100.0 / markets as f64
        } else {
            0.0
        }
    };
    Ok(first
        .iter_days()
        .take(days as usize)
        .map(|d| {
            let date = fmt(d);
            let (tests, failures, samples, tested, met) = by_day.remove(&date).unwrap_or_default();
            let met = met + no_quota;
            TrendDay {
                date,
                markets: count(markets),
                markets_tested: count(tested),
                markets_met_quota: count(met),
                samples: count(samples),
                tests: count(tests),
                failures: count(failures),
                met_quota_pct: pct(met),
                tested_pct: pct(tested),
            }
        })
        .collect())
}
