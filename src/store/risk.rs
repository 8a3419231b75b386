//! Risk grades of stalls, vendors and suppliers from their history (`docs/risk.md`). The rules
//! are data ([`RULES`]): `high` = [`RiskRules::high_failures`] or more failures within
//! [`RiskRules::high_days`], or one failure of a prohibited substance within
//! [`RiskRules::prohibited_days`]; `medium` = one failure within [`RiskRules::medium_days`];
//! `low` otherwise. A grade falls back one level once passing tests have run for
//! [`RiskRules::fallback_days`] since the last failure (the first pass after it is that old,
//! and nothing failed since).

use chrono::{DateTime, Duration, FixedOffset, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// The grading rules.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RiskRules {
    pub high_failures: usize,
    pub high_days: i64,
    pub prohibited_days: i64,
    pub medium_days: i64,
    pub fallback_days: i64,
}

/// The rules in force (`docs/risk.md`).
pub const RULES: RiskRules = RiskRules {
    high_failures: 2,
    high_days: 30,
    prohibited_days: 90,
    medium_days: 90,
    fallback_days: 30,
};

/// Whose risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskKind {
    Stall,
    Vendor,
    Supplier,
}

impl RiskKind {
    pub fn parse(s: &str) -> Option<RiskKind> {
        match s {
            "stall" => Some(RiskKind::Stall),
            "vendor" => Some(RiskKind::Vendor),
            "supplier" => Some(RiskKind::Supplier),
            _ => None,
        }
    }

    /// The subject's key in a row of readings `r` joined with samples `s`.
    fn column(self) -> &'static str {
        match self {
            RiskKind::Stall => "r.stall",
            RiskKind::Vendor => "s.vendor",
            RiskKind::Supplier => "s.supplier",
        }
    }
}

/// A risk grade, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Grade {
    Low,
    Medium,
    High,
}

impl Grade {
    fn down(self) -> Grade {
        match self {
            Grade::High => Grade::Medium,
            Grade::Medium | Grade::Low => Grade::Low,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Grade::Low => "low",
            Grade::Medium => "medium",
            Grade::High => "high",
        }
    }
}

/// One pass or fail test of a subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Tested {
    pub failed: bool,
    pub analyte: String,
    pub at: DateTime<FixedOffset>,
}

/// A subject's grade and why.
#[derive(Debug, Clone, Serialize)]
pub struct Graded {
    pub kind: RiskKind,
    /// The stall's market (stalls only).
    pub market: Option<String>,
    /// The stall code, vendor or supplier.
    pub key: String,
    pub grade: Grade,
    pub reasons: Vec<String>,
    pub failures_30: usize,
    pub failures_90: usize,
    pub tests_90: usize,
    pub last_failure: Option<String>,
}

fn day(t: &DateTime<FixedOffset>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// The grade of a subject with `tests` (any order) at `now` under `rules`; `prohibited`
/// holds the analytes that must not be present at all.
pub fn grade(
    tests: &[Tested],
    prohibited: &HashSet<String>,
    rules: &RiskRules,
    now: DateTime<Utc>,
) -> (Grade, Vec<String>) {
    let within = |t: &Tested, days: i64| now.signed_duration_since(t.at) <= Duration::days(days);
    let fails: Vec<&Tested> = tests.iter().filter(|t| t.failed).collect();
    let recent: Vec<&Tested> = fails
        .iter()
        .copied()
        .filter(|t| within(t, rules.high_days))
        .collect();
    let banned: Vec<&Tested> = fails
        .iter()
        .copied()
        .filter(|t| within(t, rules.prohibited_days) && prohibited.contains(&t.analyte))
        .collect();
    let in_90: Vec<&Tested> = fails
        .iter()
        .copied()
        .filter(|t| within(t, rules.medium_days))
        .collect();
    let days = |v: &[&Tested]| {
        let mut d: Vec<String> = v.iter().map(|t| day(&t.at)).collect();
        d.sort();
        d.join(", ")
    };
    let mut reasons = Vec::new();
    let base = if recent.len() >= rules.high_failures || !banned.is_empty() {
        if recent.len() >= rules.high_failures {
            reasons.push(format!(
                "{} 天内 {} 次不合格 / {} failures in {} days ({})",
                rules.high_days,
                recent.len(),
                recent.len(),
                rules.high_days,
                days(&recent)
            ));
        }
        for b in &banned {
            reasons.push(format!(
                "禁用物质 {} 检出 / prohibited substance {} found ({})",
                b.analyte,
                b.analyte,
                day(&b.at)
            ));
        }
        Grade::High
    } else if !in_90.is_empty() {
        reasons.push(format!(
            "{} 天内 {} 次不合格 / {} failure(s) in {} days ({})",
            rules.medium_days,
            in_90.len(),
            in_90.len(),
            rules.medium_days,
            days(&in_90)
        ));
        Grade::Medium
    } else {
        reasons.push(format!(
            "{} 天内无不合格 / no failure in {} days",
            rules.medium_days, rules.medium_days
        ));
        Grade::Low
    };
    if base == Grade::Low {
        return (base, reasons);
    }
    let last = fails.iter().map(|t| t.at).max();
    let first_pass = tests
        .iter()
        .filter(|t| !t.failed && last.is_some_and(|l| t.at > l))
        .map(|t| t.at)
        .min();
    if let Some(p) = first_pass {
        if now.signed_duration_since(p) >= Duration::days(rules.fallback_days) {
            reasons.push(format!(
                "自 {} 起复抽合格满 {} 天，降一级 / passing re-samples for {} days since {}: one level down",
                day(&p),
                rules.fallback_days,
                rules.fallback_days,
                day(&p)
            ));
            return (base.down(), reasons);
        }
    }
    (base, reasons)
}

/// The grades of every `kind` subject of `market` tested within the last 90 days, or, with no
/// market, of every subject with a failure in that time; highest grade first.
pub fn grades(
    db: &impl super::Db,
    kind: RiskKind,
    market: Option<&str>,
    prohibited: &HashSet<String>,
    offset: FixedOffset,
    now: DateTime<Utc>,
) -> rusqlite::Result<Vec<Graded>> {
    grades_before(db, kind, market, prohibited, offset, now, "9999-12-31")
}

/// [`grades`] from the readings received before local day `until` only (a day's sampling
/// plan grades as the day began, so that it stays the same all day).
pub fn grades_before(
    db: &impl super::Db,
    kind: RiskKind,
    market: Option<&str>,
    prohibited: &HashSet<String>,
    offset: FixedOffset,
    now: DateTime<Utc>,
    until: &str,
) -> rusqlite::Result<Vec<Graded>> {
    let conn = db.connection();
    let since = (now.with_timezone(&offset) - Duration::days(RULES.medium_days + 1))
        .format("%Y-%m-%d")
        .to_string();
    let col = kind.column();
    // (market for stalls, key) → tests.
    let mut subjects: BTreeMap<(Option<String>, String), Vec<Tested>> = BTreeMap::new();
    let mut add =
        |market: Option<String>, key: String, verdict: String, analyte: String, at: String| {
            let (Ok(at), false) = (DateTime::parse_from_rfc3339(&at), key.trim().is_empty()) else {
                return;
            };
            let market = (kind == RiskKind::Stall).then_some(market).flatten();
            subjects.entry((market, key)).or_default().push(Tested {
                failed: verdict == "fail",
                analyte,
                at,
            });
        };
    type Row = (Option<String>, Option<String>, String, String, String);
    let read = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Row> {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    };
    let select = format!(
        "SELECT r.market, {col}, r.verdict, r.analyte, coalesce(r.measured_at, r.received_at)
         FROM readings r LEFT JOIN samples s ON s.id = r.sample_ref"
    );
    match market {
        Some(m) => {
            let mut stmt = conn.prepare_cached(&format!(
                "{select} WHERE r.market = ?1 AND r.local_day >= ?2 AND r.local_day < ?3
                 AND r.superseded = 0 AND r.verdict IN ('pass', 'fail') AND {col} IS NOT NULL"
            ))?;
            for row in stmt.query_map(rusqlite::params![m, since, until], read)? {
                let (mk, key, v, a, at) = row?;
                add(mk, key.unwrap_or_default(), v, a, at);
            }
        }
        None => {
            // The subjects that failed, then each one's tests in the period.
            let failing: Vec<Row> = conn
                .prepare_cached(&format!(
                    "{select} WHERE r.verdict = 'fail' AND r.local_day >= ?1 AND r.local_day < ?2
                     AND r.superseded = 0 AND {col} IS NOT NULL"
                ))?
                .query_map([since.as_str(), until], read)?
                .collect::<rusqlite::Result<_>>()?;
            let mut seen = HashSet::new();
            // A stall is of its market; a vendor or supplier of any (`?1` is null).
            let of_subject = format!(
                "{select} WHERE (?1 IS NULL OR r.market = ?1) AND {col} = ?2
                 AND r.local_day >= ?3 AND r.local_day < ?4 AND r.superseded = 0
                 AND r.verdict IN ('pass', 'fail')"
            );
            let mut stmt = conn.prepare_cached(&of_subject)?;
            for (mk, key, ..) in failing {
                let Some(key) = key else { continue };
                let m = (kind == RiskKind::Stall).then(|| mk.clone()).flatten();
                if !seen.insert((m.clone(), key.clone())) {
                    continue;
                }
                for row in stmt.query_map(rusqlite::params![m, key, since, until], read)? {
                    let (mk, key, v, a, at) = row?;
                    add(mk, key.unwrap_or_default(), v, a, at);
                }
            }
        }
    }
    let mut out: Vec<Graded> = subjects
        .into_iter()
        .map(|((market, key), tests)| {
            let (grade, reasons) = grade(&tests, prohibited, &RULES, now);
            let within = |t: &Tested, d: i64| now.signed_duration_since(t.at) <= Duration::days(d);
            let fails = |d: i64| tests.iter().filter(|t| t.failed && within(t, d)).count();
            Graded {
                kind,
                market,
                key,
                grade,
                reasons,
                failures_30: fails(RULES.high_days),
                failures_90: fails(RULES.medium_days),
                tests_90: tests
                    .iter()
                    .filter(|t| within(t, RULES.medium_days))
                    .count(),
                last_failure: tests
                    .iter()
                    .filter(|t| t.failed)
                    .map(|t| t.at)
                    .max()
                    .map(|t| t.to_rfc3339()),
            }
        })
        .collect();
    if market.is_none() {
        // Days are the days readings were received: keep those that failed within 90 days.
        out.retain(|g| g.failures_90 > 0);
    }
    out.sort_by(|a, b| {
        b.grade
            .cmp(&a.grade)
            .then_with(|| (&a.market, &a.key).cmp(&(&b.market, &b.key)))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(failed: bool, analyte: &str, days_ago: i64, now: DateTime<Utc>) -> Tested {
        Tested {
            failed,
            analyte: analyte.into(),
            at: (now - Duration::days(days_ago)).fixed_offset(),
        }
    }

    #[test]
    fn grades_follow_the_documented_rules() {
        let now = Utc::now();
        let banned: HashSet<String> = ["carbofuran".to_string()].into();
        let g = |tests: &[Tested]| grade(tests, &banned, &RULES, now).0;
        let cpf = "chlorpyrifos";
        assert_eq!(g(&[]), Grade::Low);
        assert_eq!(g(&[t(false, cpf, 1, now)]), Grade::Low);
        assert_eq!(
            g(&[t(true, cpf, 10, now), t(true, cpf, 25, now)]),
            Grade::High
        );
        assert_eq!(
            g(&[t(true, cpf, 10, now), t(true, cpf, 45, now)]),
            Grade::Medium
        );
        assert_eq!(g(&[t(true, cpf, 89, now)]), Grade::Medium);
        assert_eq!(g(&[t(true, cpf, 91, now)]), Grade::Low);
        assert_eq!(g(&[t(true, "carbofuran", 80, now)]), Grade::High);
        // Passing re-samples for 30 days since the last failure: one level down.
        assert_eq!(
            g(&[
                t(true, cpf, 60, now),
                t(false, cpf, 40, now),
                t(false, cpf, 2, now)
            ]),
            Grade::Low
        );
        assert_eq!(
            g(&[t(true, "carbofuran", 70, now), t(false, cpf, 35, now)]),
            Grade::Medium
        );
        // Not yet 30 days of passes, or a pass before the failure only: no change.
        assert_eq!(
            g(&[t(true, cpf, 40, now), t(false, cpf, 20, now)]),
            Grade::Medium
        );
        assert_eq!(
            g(&[t(false, cpf, 80, now), t(true, cpf, 40, now)]),
            Grade::Medium
        );
    }
}
