//! The coverage aggregate (migration 0009) against an independent count from the readings:
//! generated data with duplicates, invalid and unknown verdicts, instrument clocks more than
//! 24 h off, readings without a time, corrections (also onto another day), several markets
//! and days; kept by the insert path, and back-filled by the migration.

use crate::support::{config, open, reading, temp_dir};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use foodgate::judge::Verdict;
use foodgate::store::coverage::{coverage_of, trend};
use foodgate::store::{Batch, NewReading, Origin, Reader, Store};
use rusqlite::Connection;
use std::collections::{BTreeMap, HashSet};

pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const MARKETS: [&str; 4] = ["ZB-0001", "ZB-0002", "ZB-0003", "ZB-0100"];

fn tz() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap()
}

/// Readings over four local days (2025-03-03 … 06), in batches, each submitted once and some
/// again (duplicates), with corrections of earlier readings.
pub(crate) fn generate(store: &Store, rng: &mut Rng) -> (usize, usize) {
    let base = tz().with_ymd_and_hms(2025, 3, 3, 0, 0, 0).unwrap();
    let mut sent: Vec<NewReading> = Vec::new();
    let mut corrections = 0;
    for b in 0..12 {
        let mut items = Vec::new();
        for i in 0..150 {
            let market = MARKETS[rng.below(4) as usize];
            // Received over four days; most measured a little before, some without a time,
            // some with a clock days off (counted on the day received).
            let received = base + Duration::minutes(rng.below(4 * 24 * 60) as i64);
            let measured = match rng.below(10) {
                0 => None,
                1 => Some(received + Duration::days(3)),
                2 => Some(received - Duration::hours(30)),
                _ => Some(received - Duration::minutes(rng.below(600) as i64)),
            };
            let verdict = match rng.below(10) {
                0 => Verdict::Invalid,
                1 => Verdict::Unknown,
                2 | 3 => Verdict::Fail,
                _ => Verdict::Pass,
            };
            let sample = format!("S{}", rng.below(60));
            let mut r = reading(&sample, &format!("0.{b}{i}"), verdict);
            r.reading.instrument = Some(format!("IN-{}", rng.below(3)).into());
            r.reading.measured_at = measured;
            if rng.below(3) == 0 {
                // No sample id: the sample is stall + commodity + hour.
                r.reading.sample_id = None;
                r.reading.sample_name = Some(["菠菜", "韭菜"][rng.below(2) as usize].into());
            }
            let stall = format!("A{}", rng.below(3));
            items.push(NewReading {
                origin: Origin::Instrument(
                    r.reading.instrument.as_deref().unwrap_or("").to_string(),
                ),
                reading: r,
                market: market.to_string(),
                stall: Some(stall),
                received_at: received.with_timezone(&Utc),
                frame: None,
            });
        }
        // Corrections of readings sent before: same instrument, sample and analyte, another
        // value and verdict, received later (sometimes days later: another local day).
        for _ in 0..10 {
            let Some(old) = sent
                .get(rng.below(sent.len().max(1) as u64) as usize)
                .cloned()
            else {
                break;
            };
            if old.reading.reading.sample_id.is_none() {
                continue;
            }
            let mut c = old.clone();
            c.reading.reading.result_status = Some("C".into());
            c.reading.reading.value_text = Some(format!("0.{}c", rng.below(1000)).into());
            c.reading.verdict = if rng.below(2) == 0 {
                Verdict::Pass
            } else {
                Verdict::Fail
            };
            c.received_at = old.received_at + Duration::minutes(30 + rng.below(3 * 24 * 60) as i64);
            c.reading.reading.measured_at = Some(c.received_at.with_timezone(&tz()));
            items.push(c);
            corrections += 1;
        }
        // Some readings of the batch again in the same batch, and some of earlier batches.
        let again: Vec<NewReading> = items.iter().step_by(17).cloned().collect();
        let earlier: Vec<NewReading> = sent.iter().step_by(31).take(10).cloned().collect();
        sent.extend(items.iter().cloned());
        items.extend(again);
        items.extend(earlier);
        store
            .submit(Batch {
                frames: Vec::new(),
                readings: items,
            })
            .unwrap();
    }
    (sent.len(), corrections)
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Count {
    tests: u64,
    failures: u64,
    samples: u64,
    last: Option<String>,
}

/// The documented count, from each reading's stored times, verdict and sample fields (not from
/// `local_day`, `sample_ref` or the aggregate).
fn independent(conn: &Connection) -> BTreeMap<(String, String), Count> {
    let mut stmt = conn
        .prepare(
            "SELECT market, stall, sample_id, sample_name, measured_at, received_at, verdict
             FROM readings WHERE superseded = 0",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let mut out: BTreeMap<(String, String), Count> = BTreeMap::new();
    let mut samples: HashSet<(String, String, String)> = HashSet::new();
    for (market, stall, sample_id, name, measured, received, verdict) in rows {
        let received_t = DateTime::parse_from_rfc3339(&received).unwrap();
        let measured_t = measured.map(|m| DateTime::parse_from_rfc3339(&m).unwrap());
        let at = measured_t
            .filter(|m| (*m - received_t).num_seconds().abs() <= 86_400)
            .unwrap_or(received_t);
        let day = at.with_timezone(&tz()).format("%Y-%m-%d").to_string();
        let c = out.entry((day.clone(), market.clone())).or_default();
        c.tests += 1;
        c.failures += u64::from(verdict == "fail");
        if c.last.as_deref().is_none_or(|l| *l < *received) {
            c.last = Some(received.clone());
        }
        if verdict == "pass" || verdict == "fail" {
            let key = match sample_id {
                Some(id) => format!("id:{id}"),
                None => format!(
                    "{}|{}|{}",
                    stall.unwrap_or_default(),
                    name.unwrap_or_default(),
                    measured_t
                        .unwrap_or(received_t)
                        .with_timezone(&Utc)
                        .format("%Y-%m-%dT%H")
                ),
            };
            if samples.insert((day, market, key)) {
                c.samples += 1;
            }
        }
    }
    out
}

fn check(conn: &Connection, reader: &Reader) -> u64 {
    let want = independent(conn);
    let days: Vec<String> = (0..12)
        .map(|d| {
            (NaiveDate::from_ymd_opt(2025, 3, 1).unwrap() + Duration::days(d))
                .format("%Y-%m-%d")
                .to_string()
        })
        .collect();
    let mut total = 0;
    for day in &days {
        let cov = coverage_of(reader, day).unwrap();
        assert_eq!(cov.markets.len(), 484);
        for m in &cov.markets {
            let w = want.get(&(day.clone(), m.market.clone()));
            let got = Count {
                tests: m.tests,
                failures: m.failures,
                samples: m.samples,
                last: m.last_result_at.clone(),
            };
            match w {
                Some(w) => assert_eq!(&got, w, "{} on {day}", m.market),
                None => assert_eq!(got, Count::default(), "{} on {day}", m.market),
            }
            assert_eq!(m.met, m.samples >= m.quota);
        }
        total += cov.summary.tests;
    }
    // Every counted reading is on one of the days looked at.
    assert_eq!(total, want.values().map(|c| c.tests).sum::<u64>());
    total
}

#[test]
fn the_aggregate_equals_a_count_of_the_readings_and_the_migration_backfills_it() {
    let dir = temp_dir("coverage-aggregate");
    let cfg = config(&dir, &[]);
    let store = open(&cfg);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (sent, corrections) = generate(&store, &mut rng);
    let conn = store.inspect().unwrap();
    let reader = store.reader().unwrap();
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM readings", [], |r| r.get(0))
        .unwrap();
    let superseded: i64 = conn
        .query_row(
            "SELECT count(*) FROM readings WHERE superseded = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // The data has what the count must get right.
    assert!(
        stored as usize <= sent && corrections > 30,
        "{stored} {sent}"
    );
    assert!(superseded > 20, "{superseded} superseded");
    let kinds: i64 = conn
        .query_row(
            "SELECT count(DISTINCT verdict) FROM readings WHERE superseded = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kinds, 4);
    let counted = check(&conn, &reader);
    assert_eq!(counted as i64, stored - superseded);

    // The trend sums the same days.
    let t = trend(&reader, NaiveDate::from_ymd_opt(2025, 3, 12).unwrap(), 30).unwrap();
    assert_eq!(t.len(), 30);
    assert_eq!(t[0].date, "2025-02-11");
    assert_eq!(t[29].date, "2025-03-12");
    assert_eq!(t.iter().map(|d| d.tests).sum::<u64>(), counted);
    for d in &t {
        let cov = coverage_of(&reader, &d.date).unwrap();
        assert_eq!(
            (
                d.tests,
                d.failures,
                d.samples,
                d.markets,
                d.markets_tested,
                d.markets_met_quota
            ),
            (
                cov.summary.tests,
                cov.summary.failures,
                cov.summary.samples,
                484,
                cov.summary.markets_tested,
                cov.summary.markets_met_quota
            ),
            "{}",
            d.date
        );
        assert!((d.tested_pct - d.markets_tested as f64 * 100.0 / 484.0).abs() < 1e-9);
    }
    drop(conn);
    store.close();

    // An older database: the aggregate tables do not exist yet; migrating fills them.
    {
        let raw = Connection::open(cfg.database_path()).unwrap();
        raw.execute_batch("DROP TABLE coverage_days; DROP TABLE coverage_samples;")
            .unwrap();
        let idx_0009 = foodgate::store::schema::MIGRATIONS
            .iter()
            .position(|m| m.contains("CREATE TABLE coverage_days"))
            .unwrap();
        // Run the migration itself on the older database (later migrations stay applied).
        raw.execute_batch(foodgate::store::schema::MIGRATIONS[idx_0009])
            .unwrap();
    }
    let store = open(&cfg);
    let conn = store.inspect().unwrap();
    let reader = store.reader().unwrap();
    assert_eq!(check(&conn, &reader), counted);
    // And it is kept from there on: more readings, more corrections.
    generate(&store, &mut rng);
    let after = check(&conn, &reader);
    assert!(after > counted);
    store.close();
}
