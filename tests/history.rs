//! The month of history `foodgate demo` stores: judged, with holds, and no event queued
//! for the past.

use chrono::{DateTime, FixedOffset, Utc};
use foodgate::demo::history::generate;
use foodgate::judge::Judge;
use foodgate::store::{Store, StoreSettings};

#[test]
fn history_is_stored_judged_with_holds_and_queues_no_event() {
    let dir = std::env::temp_dir().join(format!("foodgate-history-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let offset = FixedOffset::east_opt(8 * 3600).expect("offset");
    // A store that routes failures upstream, like the demo's.
    let settings = StoreSettings {
        utc_offset: offset,
        routes: vec![foodgate::store::Route {
            upstream: "up".into(),
            send: foodgate::config::SendMode::Failures,
            format: foodgate::config::Format::Events,
        }],
        judge: Judge::builtin(),
        legacy_identity_keys: true,
        resample_days: 3,
        trace_days: 7,
    };
    let store = Store::open(&dir.join("h.db"), settings).expect("store");
    crate::support::import_builtin_markets(&store);
    let now = DateTime::parse_from_rfc3339("2026-03-10T12:00:00+08:00")
        .expect("time")
        .with_timezone(&Utc);
    let h = generate(&store, &Judge::builtin(), offset, now, 5, 3).expect("history");
    let conn = store.inspect().expect("inspect");
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
    assert_eq!(h.markets, 456);
    assert_eq!(count("SELECT count(*) FROM readings") as usize, h.readings);
    assert_eq!(
        count("SELECT count(*) FROM readings WHERE verdict = 'fail'") as usize,
        h.failures
    );
    assert_eq!(
        count("SELECT count(*) FROM readings WHERE verdict NOT IN ('pass', 'fail')"),
        0
    );
    assert!(h.failures > 0, "{h:?}");
    assert_eq!(count("SELECT count(*) FROM holds") as usize, h.failures);
    assert_eq!(
        count("SELECT count(*) FROM outbox"),
        0,
        "no event for the past"
    );
    // Nothing after `now`; the last day is 2026-03-10, the first 2026-03-06.
    assert_eq!(
        count("SELECT count(*) FROM readings WHERE received_at > '2026-03-10T04:00:04Z'"),
        0
    );
    assert_eq!(
        conn.query_row("SELECT min(local_day) FROM readings", [], |r| r
            .get::<_, String>(0))
            .expect("min day"),
        "2026-03-06"
    );
    // Holds older than two days are confirmed, with that step in their history.
    let old_open = count(
        "SELECT count(*) FROM holds h JOIN readings r ON r.id = h.reading
         WHERE h.status = 'held' AND r.local_day < '2026-03-08'",
    );
    assert_eq!(old_open, 0);
    assert_eq!(
        count("SELECT count(*) FROM hold_history WHERE status = 'confirmed'"),
        count("SELECT count(*) FROM holds WHERE status = 'confirmed'")
    );
    assert!(count("SELECT count(*) FROM holds WHERE status = 'confirmed'") > 0);
    store.close();
    let _ = std::fs::remove_dir_all(&dir);
}
