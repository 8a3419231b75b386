//! `reading_totals` (migration 0012, read by `GET /metrics`) against a count of the readings:
//! after inserts, duplicates, corrections and late sample registrations that change verdicts;
//! back-filled by the migration, which also gives every copied outbox row the `event_key` the
//! insert path computes.

use crate::coverage::{generate, Rng};
use crate::support::{config, open, temp_dir};
use foodgate::store::coverage::reading_totals;
use foodgate::store::outbox::event_key;
use foodgate::store::samples::{register, Registration, SampleRecord};
use foodgate::store::StoreSettings;
use rusqlite::Connection;
use std::collections::BTreeMap;

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

fn totals(conn: &Connection) -> BTreeMap<String, u64> {
    reading_totals(conn)
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
    let conn = store.reader().unwrap();
    let superseded: i64 = conn
        .query_row(
            "SELECT count(*) FROM readings WHERE superseded = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(superseded > 20, "{superseded} superseded");
    let before = counted(&conn);
    assert_eq!(totals(&conn), before);
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
    assert_eq!(totals(&conn), after);

    // More readings, duplicates and corrections on top.
    generate(&store, &mut rng);
    let grown = counted(&conn);
    assert!(grown.values().sum::<u64>() > all as u64);
    assert_eq!(totals(&conn), grown);
    let outbox: i64 = conn
        .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert!(outbox > 1000, "{outbox} outbox rows");
    drop(conn);
    store.close();

    // An older database: no totals yet, and an outbox without `event_key`. Migration 0012
    // fills the one and computes the other as the insert path does.
    {
        let raw = Connection::open(cfg.database_path()).unwrap();
        raw.execute_batch(
            "DROP TABLE reading_totals;
             UPDATE outbox SET event_key = 0;",
        )
        .unwrap();
        let idx = foodgate::store::schema::MIGRATIONS
            .iter()
            .position(|m| m.contains("CREATE TABLE reading_totals"))
            .unwrap();
        raw.execute_batch(foodgate::store::schema::MIGRATIONS[idx])
            .unwrap();
        let mut stmt = raw
            .prepare("SELECT event_id, event_key FROM outbox")
            .unwrap();
        let rows: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows.len() as i64, outbox);
        for (id, key) in &rows {
            assert_eq!(*key, event_key(id), "{id}");
            assert_ne!(*key, 0, "{id}");
        }
    }
    let store = open(&cfg);
    let conn = store.reader().unwrap();
    assert_eq!(totals(&conn), grown);
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
    assert_eq!(totals(&conn), counted(&conn));
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
