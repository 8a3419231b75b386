//! `reading_totals` (migration 0012, read by `GET /metrics`) against a count of the readings:
//! after inserts, duplicates, corrections and late sample registrations that change verdicts;
//! back-filled by the migration, which also gives every copied outbox row the `event_key` the
//! insert path computes.

use crate::coverage::{generate, Rng};
use crate::support::{config, open, temp_dir};
use foodgate::store::coverage::reading_totals;
use foodgate::store::identity::hex_key;
use foodgate::store::outbox::event_key;
use foodgate::store::samples::{register, Registration, SampleRecord};
use foodgate::store::Db;
use foodgate::store::{Reader, StoreSettings};
use rusqlite::Connection;
use std::collections::BTreeMap;

/// What migrations 0015 and later added that running them again would add twice: the tests
/// that replay an older database's migrations take it off first. (0016 rebuilds `holds` and
/// can run again as it is.)
const UNDO_0015_AND_LATER: &str = "DROP TABLE poll_progress;
     ALTER TABLE hold_history DROP COLUMN action;
     ALTER TABLE hold_history DROP COLUMN fields;";

fn counted(conn: &Connection) -> BTreeMap<String, u64> {
    let mut m: BTreeMap<String, u64> = ["pass", "fail", "invalid", "unknown"]
        .iter()
        .map(|v| (v.to_string(), 0))
        .collect();
    let mut stmt = conn
        .prepare("SELECT verdict, count(*) FROM readings GROUP BY verdict")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .unwrap();
    for row in rows {
        let (v, n) = row.unwrap();
        m.insert(v, n as u64);
    }
    m
}

fn totals(reader: &Reader) -> BTreeMap<String, u64> {
    reading_totals(reader)
        .unwrap()
        .into_iter()
        .map(|(v, n)| (v.to_string(), n))
        .collect()
}

#[test]
fn reading_totals_equal_a_count_of_the_readings_and_the_migration_backfills_them() {
    let dir = temp_dir("reading-totals");
    // An upstream that takes every result, so that the outbox has rows to migrate.
    let cfg = config(&dir, &[("up", "http://127.0.0.1:9/events", "all")]);
    let store = open(&cfg);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    generate(&store, &mut rng);
    let conn = store.inspect().unwrap();
    let reader = store.reader().unwrap();
    let superseded: i64 = conn
        .query_row(
            "SELECT count(*) FROM readings WHERE superseded = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(superseded > 20, "{superseded} superseded");
    let before = counted(&conn);
    assert_eq!(totals(&reader), before);
    // Superseded readings stay stored and counted.
    let all: i64 = conn
        .query_row("SELECT count(*) FROM readings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(before.values().sum::<u64>(), all as u64);

    // Late registrations: under `fruit` chlorpyrifos has no limit, so readings judged
    // against leafy vegetables change their verdict (a failure keeps its own: a person
    // decides).
    let settings = StoreSettings::from_config(&cfg);
    for market in ["ZB-0001", "ZB-0002", "ZB-0003", "ZB-0100"] {
        for s in 0..30 {
            let rec = SampleRecord {
                sample_id: format!("S{s}"),
                market: market.into(),
                stall: Some("R1".into()),
                sample_name: None,
                category: Some("fruit".into()),
                vendor: None,
                supplier: None,
                certificate_no: None,
                sampled_at: None,
            };
            let settings = settings.clone();
            let done = store
                .write(move |tx| register(tx, &settings, &rec, "registrar"))
                .unwrap();
            assert!(matches!(
                done,
                Registration::Stored { .. } | Registration::Updated { .. }
            ));
        }
    }
    let after = counted(&conn);
    assert_ne!(after, before, "the registrations changed no verdict");
    assert_eq!(after.values().sum::<u64>(), all as u64);
    assert_eq!(totals(&reader), after);

    // More readings, duplicates and corrections on top.
    generate(&store, &mut rng);
    let grown = counted(&conn);
    assert!(grown.values().sum::<u64>() > all as u64);
    assert_eq!(totals(&reader), grown);
    let outbox: i64 = conn
        .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert!(outbox > 1000, "{outbox} outbox rows");
    drop(conn);
    store.close();

    // As before migration 0012: no totals, keys not computed, nothing of 0013 and later.
    // Opening migrates again.
    {
        let raw = Connection::open(cfg.database_path()).unwrap();
        raw.execute_batch(
            "DROP TABLE reading_totals;
             DROP TRIGGER readings_lazy_bodies_frozen;
             DROP TABLE outbox_upstreams;
             UPDATE outbox SET event_key = 0;
             UPDATE readings SET identity_key = 0;",
        )
        .unwrap();
        raw.execute_batch(UNDO_0015_AND_LATER).unwrap();
        let idx = foodgate::store::schema::MIGRATIONS
            .iter()
            .position(|m| m.contains("CREATE TABLE reading_totals"))
            .unwrap();
        raw.pragma_update(None, "user_version", idx as i64).unwrap();
    }
    let store = open(&cfg);
    let conn = store.inspect().unwrap();
    let reader = store.reader().unwrap();
    assert_eq!(totals(&reader), grown);
    let keys = |sql: &str| -> Vec<(String, i64)> {
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        rows
    };
    let events = keys("SELECT event_id, event_key FROM outbox");
    assert_eq!(events.len() as i64, outbox);
    for (id, key) in &events {
        assert_eq!(*key, event_key(id), "{id}");
        assert_ne!(*key, 0, "{id}");
    }
    let readings = keys("SELECT identity, identity_key FROM readings");
    assert_eq!(readings.len() as u64, grown.values().sum::<u64>());
    for (id, key) in &readings {
        assert_eq!(*key, hex_key(id), "{id}");
    }
    let broken: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(broken, 0);
    // Stored again after the migration: no event is queued twice.
    generate(&store, &mut Rng(0x9e37_79b9_7f4a_7c15));
    let dup: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT 1 FROM outbox GROUP BY event_id, upstream HAVING count(*) > 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dup, 0);
    assert_eq!(totals(&reader), counted(&conn));
    store.close();
}

#[test]
fn event_key_is_the_first_15_hex_digits_of_the_event_id() {
    assert_eq!(
        event_key("12345678-9abc-def0-1234-56789abcdef0"),
        0x0123_4567_89ab_cdef
    );
    assert_eq!(event_key(""), 0);
    // Anything else, as the migration's SQL computes it: a non-hex digit counts -1.
    assert_eq!(event_key("g"), -(1 << 56));
}

/// A database as release 0011 left it (identity UNIQUE, outbox UNIQUE (event_id, upstream)),
/// with a hold, an upload and a superseded reading pointing at readings by id.
#[test]
fn migration_0012_keeps_an_old_databases_readings_holds_uploads_and_events() {
    use crate::support::reading;
    use foodgate::judge::Verdict;
    use foodgate::store::identity::{reading_identity, Origin};
    use foodgate::store::{Batch, NewReading, Outcome};

    let dir = temp_dir("migration-0012");
    let cfg = config(&dir, &[("up", "http://127.0.0.1:9/events", "all")]);
    std::fs::create_dir_all(cfg.database_path().parent().unwrap()).unwrap();
    let origin = Origin::Instrument("IN-1".into());
    let again = reading("S1", "0.05", Verdict::Pass);
    let identity = reading_identity(&origin, &again.reading);
    let event = "0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0";
    {
        let mut raw = Connection::open(cfg.database_path()).unwrap();
        let idx = foodgate::store::schema::MIGRATIONS
            .iter()
            .position(|m| m.contains("CREATE TABLE reading_totals"))
            .unwrap();
        for (i, m) in foodgate::store::schema::MIGRATIONS[..idx]
            .iter()
            .enumerate()
        {
            let tx = raw.transaction().unwrap();
            tx.execute_batch(m).unwrap();
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .unwrap();
            tx.commit().unwrap();
        }
        // A database of that time had the demo markets its migrations inserted.
        raw.execute(
            "INSERT INTO markets (code, name, district, type, quota, updated_at)
             VALUES ('ZB-0001', 'Demo market 1', 'District 1', 'convenience', 10, 'x')",
            [],
        )
        .unwrap();
        raw.execute_batch(&format!(
            "PRAGMA foreign_keys = ON;
             INSERT INTO readings (id, identity, market, protocol, analyte, received_at,
                 local_day, verdict, reason, reading_json, superseded, superseded_by)
             VALUES (1, 'feedface', 'ZB-0001', 'astm', 'chlorpyrifos', '2025-03-04T01:00:00.000Z',
                 '2025-03-04', 'fail', 'over', '{{}}', 1, NULL),
                (2, '{identity}', 'ZB-0001', 'astm', 'chlorpyrifos', '2025-03-04T02:00:00.000Z',
                 '2025-03-04', 'pass', 'under', '{{}}', 0, NULL);
             UPDATE readings SET superseded_by = 2 WHERE id = 1;
             INSERT INTO holds (id, reading, market, status, created_at, updated_at)
             VALUES ('h1', 1, 'ZB-0001', 'review', 'x', 'x');
             INSERT INTO uploads (uploader, row_id, content_hash, reading, received_at)
             VALUES ('u', 'r2', 'c', 2, 'x');
             INSERT INTO outbox (event_id, upstream, type, hold, body, created_ms, next_attempt_ms)
             VALUES ('{event}', 'up', 'hold.review', 'h1', X'7B7D', 1, 1);"
        ))
        .unwrap();
    }
    let store = open(&cfg);
    let conn = store.inspect().unwrap();
    let reader = store.reader().unwrap();
    let got: (i64, i64, String) = conn
        .query_row(
            "SELECT identity_key, superseded_by, verdict FROM readings WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(got, (0x0fee_dfac_e000_0000, 2, "fail".to_string()));
    assert_eq!(hex_key("feedface"), 0x0fee_dfac_e000_0000);
    let (key, body): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT event_key, body FROM outbox WHERE event_id = ?1 AND hold = 'h1'",
            [event],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((key, body), (0x00f1_e2d3_c4b5_a596, b"{}".to_vec()));
    let joined: i64 = conn
        .query_row(
            "SELECT count(*) FROM holds h JOIN readings r ON r.id = h.reading
             JOIN uploads u ON u.reading = r.superseded_by",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(joined, 1);
    let broken: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(broken, 0);
    assert_eq!(
        totals(&reader),
        BTreeMap::from([
            ("fail".to_string(), 1),
            ("invalid".to_string(), 0),
            ("pass".to_string(), 1),
            ("unknown".to_string(), 0)
        ])
    );
    // The migrated identity still finds the reading: stored again, it is a duplicate.
    let done = store
        .submit(Batch {
            frames: Vec::new(),
            readings: vec![NewReading {
                reading: again,
                market: "ZB-0001".into(),
                stall: None,
                origin,
                received_at: chrono::Utc::now(),
                frame: None,
            }],
        })
        .unwrap();
    assert_eq!(
        done.outcomes,
        vec![Outcome::Duplicate {
            id: 2,
            identity,
            verdict: Verdict::Pass
        }]
    );
    // An event queued before the migration (no `reading` then) is not queued again for its
    // reading; a new one is queued once.
    let queue = |id: &'static str| {
        store
            .write(move |tx| {
                foodgate::store::outbox::enqueue(
                    tx,
                    Some(1),
                    id,
                    "up",
                    "hold.review",
                    Some("h1"),
                    b"{}",
                    5,
                )
            })
            .unwrap()
    };
    assert_eq!(queue(event), 0);
    let fresh = "1f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0";
    assert_eq!((queue(fresh), queue(fresh)), (1, 0));
    let readings: Vec<Option<i64>> = conn
        .prepare("SELECT reading FROM outbox ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(readings, vec![None, Some(1)]);
    // References are enforced on the rebuilt table.
    let refused = store
        .write(|tx| {
            tx.connection()
                .execute("DELETE FROM readings WHERE id = 2", [])
        })
        .unwrap_err();
    assert!(refused.to_string().contains("FOREIGN KEY"), "{refused}");
    store.close();
}

/// The outbox as `GROUP BY upstream, status` counts it, with the creation time of the first
/// pending event of each upstream.
fn outbox_counted(conn: &Connection) -> Vec<(String, u64, u64, u64, Option<i64>)> {
    let mut stmt = conn
        .prepare(
            "SELECT upstream, sum(status = 'pending'), sum(status = 'delivered'),
                sum(status = 'dead'),
                (SELECT created_ms FROM outbox p WHERE p.upstream = o.upstream
                 AND p.status = 'pending' ORDER BY id LIMIT 1)
             FROM outbox o GROUP BY upstream ORDER BY upstream",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
                r.get::<_, i64>(3)? as u64,
                r.get(4)?,
            ))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    rows
}

fn outbox_kept(reader: &Reader) -> Vec<(String, u64, u64, u64, Option<i64>)> {
    foodgate::store::outbox::counts(reader)
        .unwrap()
        .into_iter()
        .map(|c| {
            (
                c.upstream,
                c.pending,
                c.delivered,
                c.dead,
                c.oldest_pending_ms,
            )
        })
        .collect()
}

/// `outbox_upstreams` (migration 0014, read by `/metrics`) against a count of the outbox after
/// events are queued, delivered, retried, killed and requeued, on two upstreams; the last
/// error shows while anything is pending or dead and goes once the queue is empty; the
/// migration back-fills it.
#[test]
fn outbox_counts_kept_per_upstream_equal_a_count_of_the_outbox() {
    use foodgate::store::outbox::{self, Attempt};
    let dir = temp_dir("outbox-totals");
    let cfg = config(
        &dir,
        &[
            ("a", "http://127.0.0.1:9/events", "all"),
            ("b", "http://127.0.0.1:9/events", "failures"),
        ],
    );
    let store = open(&cfg);
    generate(&store, &mut Rng(0x5eed));
    let conn = store.inspect().unwrap();
    let reader = store.reader().unwrap();
    let before = outbox_counted(&conn);
    assert_eq!(before.len(), 2, "{before:?}");
    assert_eq!(outbox_kept(&reader), before);

    // Attempts: every third delivered, every fifth retried, every seventh dead.
    let ids: Vec<(i64, String, String)> = conn
        .prepare("SELECT id, upstream, event_id FROM outbox ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let attempts: Vec<(i64, String, String, Attempt)> = ids
        .iter()
        .enumerate()
        .filter_map(|(i, (id, up, event))| {
            let a = if i % 3 == 0 {
                Attempt::Delivered {
                    answer: "HTTP 200".into(),
                }
            } else if i % 5 == 0 {
                Attempt::Retry {
                    answer: format!("HTTP 503 #{i}"),
                    next_attempt_ms: 1,
                }
            } else if i % 7 == 0 {
                Attempt::Dead {
                    answer: format!("HTTP 400 #{i}"),
                }
            } else {
                return None;
            };
            Some((*id, up.clone(), event.clone(), a))
        })
        .collect();
    let last_failed = attempts
        .iter()
        .rev()
        .find(|(_, up, _, a)| up == "a" && !matches!(a, Attempt::Delivered { .. }))
        .map(|(_, _, _, a)| match a {
            Attempt::Retry { answer, .. } | Attempt::Dead { answer } => answer.clone(),
            Attempt::Delivered { .. } => unreachable!(),
        });
    store
        .write(move |tx| {
            for (id, up, event, a) in &attempts {
                outbox::record(tx, up, *id, event, 1_000, a)?;
            }
            // Recorded again (a late answer): changes nothing.
            if let Some((id, up, event, a)) = attempts.first() {
                outbox::record(tx, up, *id, event, 1_001, a)?;
            }
            Ok(())
        })
        .unwrap();
    let moved = outbox_counted(&conn);
    assert_ne!(moved, before);
    assert_eq!(outbox_kept(&reader), moved);
    let a = outbox::counts(&reader).unwrap();
    assert_eq!(a[0].last_error, last_failed);

    // Dead ones back in the queue, one by id and then all.
    let dead: i64 = conn
        .query_row(
            "SELECT min(id) FROM outbox WHERE status = 'dead'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    store
        .write(move |tx| outbox::retry_if_dead(tx, dead, 2_000))
        .unwrap();
    assert_eq!(outbox_kept(&reader), outbox_counted(&conn));
    store
        .write(|tx| outbox::retry_dead(tx, None, 2_000))
        .unwrap();
    let requeued = outbox_counted(&conn);
    assert!(requeued.iter().all(|c| c.3 == 0), "{requeued:?}");
    assert_eq!(outbox_kept(&reader), requeued);

    // Everything delivered: no error is shown any more.
    let pending: Vec<(i64, String, String)> = conn
        .prepare("SELECT id, upstream, event_id FROM outbox WHERE status = 'pending'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    store
        .write(move |tx| {
            for (id, up, event) in &pending {
                let ok = Attempt::Delivered {
                    answer: "HTTP 200".into(),
                };
                outbox::record(tx, up, *id, event, 3_000, &ok)?;
            }
            Ok(())
        })
        .unwrap();
    let done = outbox_counted(&conn);
    assert!(done.iter().all(|c| c.1 == 0 && c.3 == 0), "{done:?}");
    assert_eq!(outbox_kept(&reader), done);
    assert!(outbox::counts(&reader)
        .unwrap()
        .iter()
        .all(|c| c.last_error.is_none()));

    // More events, then the migration run again on what an older version left.
    generate(&store, &mut Rng(0xfeed));
    let grown = outbox_counted(&conn);
    drop(conn);
    store.close();
    {
        let raw = Connection::open(cfg.database_path()).unwrap();
        // As before migration 0014 (and what came after it).
        raw.execute_batch("DROP TABLE outbox_upstreams;").unwrap();
        raw.execute_batch(UNDO_0015_AND_LATER).unwrap();
        let idx = foodgate::store::schema::MIGRATIONS
            .iter()
            .position(|m| m.contains("CREATE TABLE outbox_upstreams"))
            .unwrap();
        raw.pragma_update(None, "user_version", idx as i64).unwrap();
    }
    let store = open(&cfg);
    let conn = store.inspect().unwrap();
    let reader = store.reader().unwrap();
    assert_eq!(outbox_kept(&reader), grown);
    drop(conn);
    store.close();
}
