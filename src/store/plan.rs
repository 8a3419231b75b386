//! The daily sampling plan of a market (`docs/plan.md`): "双随机" random selection weighted by
//! risk. The candidates are the stall × commodity category pairs the market tested within the
//! 90 days before the day; each high-risk stall ([`super::risk`], graded as the day began) is
//! in the plan with one of its pairs, and the rest of the market's quota is drawn from the
//! other pairs, a medium-risk stall's pairs weighted double. The draw is reproducible: seeded
//! by SHA-256 of `"<market>|<day>"` (the seed is in the answer), candidates in (stall,
//! category) order, each given `-ln(u) / weight` for the next `u` of a SplitMix64 stream, and
//! the smallest taken (Efraimidis–Spirakis weighted sampling without replacement).
//!
//! A plan for today or a past day is kept when it is first drawn, so that it is the same on
//! every call; coverage counts an entry done when a reading of that stall and category was
//! received that day. A plan for a later day is a preview, drawn again on each call.

use super::coverage::PLAN_DONE;
use super::risk::{grades_before, Grade, RiskKind};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};
use rusqlite::Connection;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};

/// One entry: a stall and a commodity category to test that day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanEntry {
    pub position: u32,
    pub stall: String,
    pub category: String,
    pub grade: Grade,
    /// A reading of this stall and category was received that day.
    pub done: bool,
}

/// A market's plan for a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SamplingPlan {
    pub market: String,
    pub date: String,
    pub quota: u32,
    /// Hex of the draw's seed: SHA-256 of `"<market>|<date>"`, first 8 bytes.
    pub seed: String,
    /// Kept (today or earlier) or a preview (a later day).
    pub fixed: bool,
    pub candidates: u32,
    pub entries: Vec<PlanEntry>,
}

fn seed(market: &str, date: &str) -> u64 {
    let h = Sha256::digest(format!("{market}|{date}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    u64::from_be_bytes(b)
}

/// SplitMix64: the draw's random stream.
struct SplitMix(u64);

impl SplitMix {
    fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // 53 bits in (0, 1]: never 0, so the logarithm is finite.
        ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }
}

/// The draw: `candidates` (stall, category) with their stall's grade, in any order.
pub fn draw(
    market: &str,
    date: &str,
    quota: u32,
    candidates: &[(String, String, Grade)],
) -> Vec<(String, String, Grade)> {
    let mut c: Vec<&(String, String, Grade)> = candidates.iter().collect();
    c.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    c.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    let mut rng = SplitMix(seed(market, date));
    let mut keyed: Vec<(f64, &(String, String, Grade))> = c
        .into_iter()
        .map(|e| {
            let weight = if e.2 == Grade::Medium { 2.0 } else { 1.0 };
            (-rng.next_unit().ln() / weight, e)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(String, String, Grade)> = Vec::new();
    let mut stalls_in = HashSet::new();
    // Every high-risk stall, with its best-keyed pair.
    for (_, e) in &keyed {
        if e.2 == Grade::High && stalls_in.insert(e.0.clone()) {
            out.push((*e).clone());
        }
    }
    for (_, e) in &keyed {
        if out.len() >= quota as usize {
            break;
        }
        if !out.iter().any(|o| o.0 == e.0 && o.1 == e.1) {
            out.push((*e).clone());
        }
    }
    out
}

/// The plan of `market` for `date` (in the writer's transaction: it may keep a plan): kept if it was drawn before, else drawn now (and kept
/// when `date` is not after `today`). `None` for a market the registry does not know.
pub fn plan_of(
    tx: &Connection,
    market: &str,
    date: NaiveDate,
    today: NaiveDate,
    prohibited: &HashSet<String>,
    offset: FixedOffset,
) -> rusqlite::Result<Option<SamplingPlan>> {
    let day = date.format("%Y-%m-%d").to_string();
    let Some(quota) = tx
        .prepare_cached("SELECT quota FROM markets WHERE code = ?1")?
        .query_row([market], |r| r.get::<_, i64>(0))
        .optional()?
    else {
        return Ok(None);
    };
    let quota = u32::try_from(quota).unwrap_or(0);
    let kept: Option<(u32, String)> = tx
        .prepare_cached("SELECT quota, seed FROM plans WHERE market = ?1 AND day = ?2")?
        .query_row([market, day.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((quota, seed_hex)) = kept {
        let entries = kept_entries(tx, market, &day)?;
        let candidates = candidate_count(tx, market, date)?;
        return Ok(Some(SamplingPlan {
            market: market.into(),
            date: day,
            quota,
            seed: seed_hex,
            fixed: true,
            candidates,
            entries,
        }));
    }
    // As the day began: the day's own readings neither grade nor join the candidates.
    let start: DateTime<Utc> = date
        .and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(offset).single())
        .map(|t| t.to_utc())
        .unwrap_or_else(Utc::now);
    let graded = grades_before(
        tx,
        RiskKind::Stall,
        Some(market),
        prohibited,
        offset,
        start,
        &day,
    )?;
    let grade_of: BTreeMap<&str, Grade> =
        graded.iter().map(|g| (g.key.as_str(), g.grade)).collect();
    let since = (date - Duration::days(90)).format("%Y-%m-%d").to_string();
    let pairs: Vec<(String, String)> = tx
        .prepare_cached(
            "SELECT DISTINCT stall, category FROM readings WHERE market = ?1
             AND local_day >= ?2 AND local_day < ?3 AND superseded = 0
             AND verdict IN ('pass', 'fail') AND stall IS NOT NULL AND stall <> ''
             AND category IS NOT NULL AND category <> ''",
        )?
        .query_map(params![market, since, day], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let candidates: Vec<(String, String, Grade)> = pairs
        .into_iter()
        .map(|(s, c)| {
            let g = grade_of.get(s.as_str()).copied().unwrap_or(Grade::Low);
            (s, c, g)
        })
        .collect();
    let drawn = draw(market, &day, quota, &candidates);
    let seed_hex = format!("{:016x}", seed(market, &day));
    let fixed = date <= today;
    if fixed {
        tx.prepare_cached(
            "INSERT INTO plans (market, day, quota, seed, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            market,
            day,
            quota,
            seed_hex,
            super::codec::rfc3339(Utc::now())
        ])?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO plan_entries (market, day, position, stall, category, grade)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (i, (s, c, g)) in drawn.iter().enumerate() {
            insert.execute(params![market, day, i as i64 + 1, s, c, g.as_str()])?;
        }
    }
    let entries = if fixed {
        kept_entries(tx, market, &day)?
    } else {
        drawn
            .into_iter()
            .enumerate()
            .map(|(i, (stall, category, grade))| PlanEntry {
                position: i as u32 + 1,
                stall,
                category,
                grade,
                done: false,
            })
            .collect()
    };
    Ok(Some(SamplingPlan {
        market: market.into(),
        date: day,
        quota,
        seed: seed_hex,
        fixed,
        candidates: candidates.len() as u32,
        entries,
    }))
}

fn candidate_count(tx: &Connection, market: &str, date: NaiveDate) -> rusqlite::Result<u32> {
    let since = (date - Duration::days(90)).format("%Y-%m-%d").to_string();
    let day = date.format("%Y-%m-%d").to_string();
    tx.prepare_cached(
        "SELECT count(*) FROM (SELECT DISTINCT stall, category FROM readings WHERE market = ?1
         AND local_day >= ?2 AND local_day < ?3 AND superseded = 0
         AND verdict IN ('pass', 'fail') AND stall IS NOT NULL AND stall <> ''
         AND category IS NOT NULL AND category <> '')",
    )?
    .query_row(params![market, since, day], |r| r.get(0))
}

fn kept_entries(tx: &Connection, market: &str, day: &str) -> rusqlite::Result<Vec<PlanEntry>> {
    tx.prepare_cached(&format!(
        "SELECT p.position, p.stall, p.category, p.grade, {PLAN_DONE} FROM plan_entries p
         WHERE p.market = ?1 AND p.day = ?2 ORDER BY p.position"
    ))?
    .query_map([market, day], |r| {
        let grade: String = r.get(3)?;
        Ok(PlanEntry {
            position: r.get(0)?,
            stall: r.get(1)?,
            category: r.get(2)?,
            grade: match grade.as_str() {
                "high" => Grade::High,
                "medium" => Grade::Medium,
                _ => Grade::Low,
            },
            done: r.get(4)?,
        })
    })?
    .collect()
}

/// The kept plan of `market` for local day `day`, if one was drawn (pages show it).
pub fn kept_plan(
    db: &impl super::Db,
    market: &str,
    day: &str,
) -> rusqlite::Result<Option<Vec<PlanEntry>>> {
    let conn = db.connection();
    let kept: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM plans WHERE market = ?1 AND day = ?2)")?
        .query_row([market, day], |r| r.get(0))?;
    if !kept {
        return Ok(None);
    }
    kept_entries(conn, market, day).map(Some)
}

/// [`plan_of`] in the writer's transaction `tx`.
pub fn plan_in(
    tx: &mut super::tx::Tx<'_>,
    market: &str,
    date: NaiveDate,
    today: NaiveDate,
    prohibited: &HashSet<String>,
    offset: FixedOffset,
) -> rusqlite::Result<Option<SamplingPlan>> {
    plan_of(tx.conn(), market, date, today, prohibited, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(stall: &str, cat: &str, g: Grade) -> (String, String, Grade) {
        (stall.into(), cat.into(), g)
    }

    #[test]
    fn the_draw_is_reproducible_sized_by_the_quota_and_holds_every_high_stall() {
        let mut all = Vec::new();
        for i in 0..40 {
            let g = match i {
                3 | 17 => Grade::High,
                5..=9 => Grade::Medium,
                _ => Grade::Low,
            };
            for cat in ["leafy_vegetable", "fruit"] {
                all.push(c(&format!("S{i:02}"), cat, g));
            }
        }
        let a = draw("ZB-0001", "2026-12-04", 10, &all);
        let mut shuffled = all.clone();
        shuffled.reverse();
        assert_eq!(
            a,
            draw("ZB-0001", "2026-12-04", 10, &shuffled),
            "order does not matter"
        );
        assert_eq!(a.len(), 10);
        assert!(a.iter().any(|e| e.0 == "S03") && a.iter().any(|e| e.0 == "S17"));
        assert_ne!(
            a,
            draw("ZB-0001", "2026-12-05", 10, &all),
            "another day, another draw"
        );
        assert_ne!(a, draw("ZB-0002", "2026-12-04", 10, &all));
        // More high stalls than the quota: all of them still.
        assert_eq!(draw("ZB-0001", "2026-12-04", 1, &all).len(), 2);
        // Medium stalls are drawn about twice as often as low ones.
        let (mut medium, mut low) = (0, 0);
        for d in 1..=300 {
            for e in draw(
                "ZB-0001",
                &format!("2026-{:02}-{:02}", d % 12 + 1, d % 28 + 1),
                10,
                &all,
            ) {
                match e.2 {
                    Grade::Medium => medium += 1,
                    Grade::Low => low += 1,
                    Grade::High => {}
                }
            }
        }
        // 10 medium pairs against 66 low ones: per pair, medium ≈ 2 × low.
        let ratio = (medium as f64 / 10.0) / (low as f64 / 66.0);
        assert!(
            (1.6..2.6).contains(&ratio),
            "{medium} medium, {low} low: {ratio}"
        );
    }
}
