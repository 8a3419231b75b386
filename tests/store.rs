//! The store: dedup, a failure's hold and event in one transaction, corrections,
//! preliminaries, unknown markets, the migrator; `foodgate ingest` end to end.

use crate::support::{config, open, reading, temp_dir};
use chrono::Utc;
use foodgate::ingest::{ingest, IngestTarget};
use foodgate::judge::{JudgedReading, Judgement, Verdict};
use foodgate::store::{
    insert_batch, Batch, NewReading, Origin, Outcome, Reader, Store, StoreError,
};
use foodgate_parsers::{new_decoder, DecoderConfig, Encoding, Protocol, Reading};
use rusqlite::Connection;
use std::path::Path;
use std::process::Command;

fn item(r: JudgedReading, market: &str) -> NewReading {
    NewReading {
        origin: Origin::Instrument(
            r.reading
                .instrument
                .as_deref()
                .unwrap_or("IN-1")
                .to_string(),
        ),
        reading: r,
        market: market.into(),
        stall: Some("A12".into()),
        received_at: Utc::now(),
        frame: None,
    }
}

fn batch(items: Vec<NewReading>) -> Batch {
    Batch {
        frames: Vec::new(),
        readings: items,
    }
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn a_failure_stores_reading_hold_history_and_event_together() {
    let dir = temp_dir("fail");
    let cfg = config(&dir, &[("up", "http://127.0.0.1:9/events", "failures")]);
    let store = open(&cfg);
    let done = store
        .submit(batch(vec![
            item(reading("S1", "0.9", Verdict::Fail), "ZB-0003"),
            item(reading("S2", "0.01", Verdict::Pass), "ZB-0003"),
        ]))
        .unwrap();
    let Outcome::Stored {
        hold: Some(hold),
        identity,
        events: 1,
        ..
    } = &done.outcomes[0]
    else {
        panic!(
            "failure stored with a hold and one event: {:?}",
            done.outcomes[0]
        )
    };
    assert!(matches!(
        done.outcomes[1],
        Outcome::Stored {
            hold: None,
            events: 0,
            ..
        }
    ));
    let conn = store.inspect().unwrap();
    let (status, hist): (String, i64) = conn
        .query_row(
            "SELECT status, (SELECT count(*) FROM hold_history WHERE hold = holds.id) FROM holds WHERE id = ?1",
            [hold],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((status.as_str(), hist), ("held", 1));
    let (kind, ev_hold, body): (String, String, Vec<u8>) = conn
        .query_row("SELECT type, hold, body FROM outbox", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((kind.as_str(), &ev_hold), ("sample.failed", hold));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["event_id"],
        foodgate::store::identity::event_id(identity, "sample.failed").to_string()
    );
    assert_eq!(v["type"], "sample.failed");
    assert_eq!(v["market"], "ZB-0003");
    assert_eq!(v["stall"], "A12");
    assert_eq!(v["sample"]["id"], "S1");
    assert_eq!(v["sample"]["name"], "菠菜");
    assert_eq!(v["sample"]["category"], "leafy_vegetable");
    assert_eq!(v["reading"]["verdict"], "fail");
    assert_eq!(v["reading"]["analyte"], "chlorpyrifos");
    for key in [
        "instrument",
        "limit",
        "qualifier",
        "device_verdict",
        "measured_at",
    ] {
        assert!(v["reading"].get(key).is_some(), "reading key {key}");
    }
    assert_eq!(v["hold"]["id"].as_str(), Some(hold.as_str()));
    assert_eq!(v["hold"]["status"], "held");
    assert_eq!(v["hold"]["history"][0]["status"], "held");
    assert!(v["occurred_at"].as_str().unwrap().ends_with('Z'));
    // The pass made no event with send = "failures".
    assert_eq!(count(&conn, "SELECT count(*) FROM outbox"), 1);
    store.close();
}

#[test]
fn a_failing_job_leaves_nothing_behind_and_does_not_undo_others() {
    let dir = temp_dir("atomic");
    let cfg = config(&dir, &[("up", "http://127.0.0.1:9/events", "all")]);
    let store = open(&cfg);
    let settings = store.settings().clone();
    let b = batch(vec![item(reading("S1", "0.9", Verdict::Fail), "ZB-0001")]);
    let err = store
        .write(move |tx| {
            insert_batch(tx, &settings, b)?;
            // Something after the insert fails: the reading, hold and events go with it.
            Err::<(), _>(rusqlite::Error::QueryReturnedNoRows)
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Sqlite(_)), "{err}");
    store
        .submit(batch(vec![item(
            reading("S2", "0.9", Verdict::Fail),
            "ZB-0001",
        )]))
        .unwrap();
    let conn = store.inspect().unwrap();
    assert_eq!(count(&conn, "SELECT count(*) FROM readings"), 1);
    assert_eq!(count(&conn, "SELECT count(*) FROM holds"), 1);
    assert_eq!(count(&conn, "SELECT count(*) FROM hold_history"), 1);
    // sample.failed + result.recorded for the one stored failure.
    assert_eq!(count(&conn, "SELECT count(*) FROM outbox"), 2);
    store.close();
}

#[test]
fn the_same_reading_again_is_a_duplicate_with_its_original_verdict() {
    let dir = temp_dir("dup");
    let cfg = config(&dir, &[("up", "http://127.0.0.1:9/events", "all")]);
    let store = open(&cfg);
    let first = store
        .submit(batch(vec![item(
            reading("S1", "0.9", Verdict::Fail),
            "ZB-0003",
        )]))
        .unwrap();
    // Again, re-judged differently, alongside a new one and a duplicate inside the batch.
    let again = store
        .submit(batch(vec![
            item(reading("S1", "0.9", Verdict::Pass), "ZB-0003"),
            item(reading("S9", "0.1", Verdict::Pass), "ZB-0003"),
            item(reading("S9", "0.1", Verdict::Pass), "ZB-0003"),
            item(reading("S8", "0.1", Verdict::Pass), "NO-SUCH-MARKET"),
        ]))
        .unwrap();
    let Outcome::Stored { id, .. } = first.outcomes[0] else {
        panic!()
    };
    assert!(matches!(
        &again.outcomes[0],
        Outcome::Duplicate { id: d, verdict: Verdict::Fail, .. } if *d == id
    ));
    assert!(matches!(again.outcomes[1], Outcome::Stored { .. }));
    assert!(matches!(
        again.outcomes[2],
        Outcome::Duplicate {
            verdict: Verdict::Pass,
            ..
        }
    ));
    assert!(
        matches!(&again.outcomes[3], Outcome::Rejected { reason } if reason.contains("unknown market"))
    );
    let conn = store.inspect().unwrap();
    assert_eq!(count(&conn, "SELECT count(*) FROM readings"), 2);
    assert_eq!(count(&conn, "SELECT count(*) FROM holds"), 1);
    // S1: sample.failed + result.recorded; S9: result.recorded. No event twice.
    assert_eq!(count(&conn, "SELECT count(*) FROM outbox"), 3);
    store.close();
}

#[test]
fn preliminary_makes_no_hold_and_correction_sends_the_hold_to_review() {
    let dir = temp_dir("correction");
    let cfg = config(&dir, &[("up", "http://127.0.0.1:9/events", "failures")]);
    let store = open(&cfg);
    let mut pre = reading("S5", "0.7", Verdict::Fail);
    pre.reading.result_status = Some("P".into());
    let done = store.submit(batch(vec![item(pre, "ZB-0002")])).unwrap();
    assert!(matches!(
        done.outcomes[0],
        Outcome::Stored {
            hold: None,
            events: 0,
            ..
        }
    ));

    let fail = reading("S1", "0.9", Verdict::Fail);
    let mut fix = reading("S1", "0.02", Verdict::Pass);
    fix.reading.result_status = Some("C".into());
    let first = store.submit(batch(vec![item(fail, "ZB-0002")])).unwrap();
    let Outcome::Stored {
        hold: Some(hold), ..
    } = &first.outcomes[0]
    else {
        panic!()
    };
    store.submit(batch(vec![item(fix, "ZB-0002")])).unwrap();
    let conn = store.inspect().unwrap();
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM readings WHERE superseded = 1 AND sample_id = 'S1'"
        ),
        1
    );
    let status: String = conn
        .query_row("SELECT status FROM holds WHERE id = ?1", [hold], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(status, "review");
    let kinds: Vec<(String, Option<String>)> = conn
        .prepare("SELECT type, hold FROM outbox ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        kinds,
        vec![
            ("sample.failed".to_string(), Some(hold.clone())),
            ("hold.review".to_string(), Some(hold.clone()))
        ]
    );
    let body: Vec<u8> = conn
        .query_row(
            "SELECT body FROM outbox WHERE type = 'hold.review'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["hold"]["status"], "review");
    assert_eq!(v["hold"]["history"].as_array().unwrap().len(), 2);
    store.close();
}

#[test]
fn the_migrator_stamps_the_version_and_refuses_a_newer_database() {
    let dir = temp_dir("migrate");
    let cfg = config(&dir, &[]);
    let store = open(&cfg);
    store.close();
    let conn = Connection::open(cfg.database_path()).unwrap();
    let v: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v as usize, foodgate::store::schema::MIGRATIONS.len());
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(count(&conn, "SELECT count(*) FROM markets"), 484);
    // Append-only audit log.
    conn.execute(
        "INSERT INTO audit_log (at, actor, action) VALUES ('t', 'me', 'x')",
        [],
    )
    .unwrap();
    assert!(conn.execute("DELETE FROM audit_log", []).is_err());
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let again = Store::open(
        &cfg.database_path(),
        foodgate::store::StoreSettings::from_config(&cfg),
    );
    assert!(matches!(again, Err(StoreError::TooNew { found: 99, .. })));
}

fn fixture(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

#[test]
fn ingesting_a_capture_twice_stores_once_and_keeps_raw_bytes() {
    let dir = temp_dir("ingest-lib");
    let cfg = config(&dir, &[("up", "http://127.0.0.1:9/events", "all")]);
    let store = open(&cfg);
    let bytes = std::fs::read(fixture("astm/food_screening.bin")).unwrap();
    let target = IngestTarget {
        market: "ZB-0003".into(),
        stall: None,
        instrument: None,
        source: "ingest:ZB-0003".into(),
    };
    let fail_all = |_: &mut Reading| Judgement {
        verdict: Verdict::Fail,
        ..Judgement::not_judged()
    };
    let run = |store: &Store| {
        let mut d = new_decoder(
            Protocol::Astm,
            DecoderConfig {
                encoding: Some(Encoding::Gbk),
                ..DecoderConfig::default()
            },
        );
        ingest(store, d.as_mut(), &fail_all, &target, &bytes[..]).unwrap()
    };
    let first = run(&store);
    assert_eq!(first.readings, 3);
    assert_eq!((first.stored, first.duplicates, first.failures), (3, 0, 3));
    let conn = store.inspect().unwrap();
    let events = count(&conn, "SELECT count(*) FROM outbox");
    assert_eq!(events, 6, "sample.failed + result.recorded per failure");
    let second = run(&store);
    assert_eq!(
        (second.stored, second.duplicates, second.failures),
        (0, 3, 3)
    );
    assert_eq!(count(&conn, "SELECT count(*) FROM outbox"), events);
    assert_eq!(count(&conn, "SELECT count(*) FROM holds"), 3);
    // Every reading points at raw bytes whose part from the reading's own offset is its R
    // record (text in GBK as sent); consecutive readings share one frame.
    let rows: Vec<(String, i64, i64, Vec<u8>)> = conn
        .prepare(
            "SELECT r.value_text, json_extract(r.reading_json, '$.offset'), f.stream_offset, f.bytes
             FROM readings r JOIN raw_frames f ON f.id = r.raw_frame ORDER BY r.id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 3);
    for (value, offset, frame_offset, raw) in rows {
        let own = &raw[(offset - frame_offset) as usize..];
        assert!(own.starts_with(b"R|"), "{:?}", String::from_utf8_lossy(own));
        let end = own.iter().position(|&b| b == b'\r').unwrap_or(own.len());
        let record = &own[..end];
        let needle = [b"|".as_slice(), &Encoding::Gbk.encode(&value), b"|"].concat();
        assert!(
            record.windows(needle.len()).any(|w| w == needle.as_slice()),
            "{value} in {:?}",
            String::from_utf8_lossy(record)
        );
    }
    let frames = count(&conn, "SELECT count(*) FROM raw_frames");
    assert!((1..3).contains(&frames), "{frames} frames for 3 readings");
    store.close();
}

fn foodgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_foodgate"))
}

#[test]
fn ingest_command_is_safe_to_run_twice_and_refuses_bad_input() {
    let dir = temp_dir("ingest-cli");
    let cfg_path = dir.join("foodgate.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
            dir.join("data")
        ),
    )
    .unwrap();
    crate::support::import_builtin_markets_with(&cfg_path);
    let run = |extra: &[&str]| {
        foodgate()
            .args(["ingest", "--config"])
            .arg(&cfg_path)
            .args(["--protocol", "astm", "--encoding", "gbk"])
            .args(extra)
            .arg(fixture("astm/bad_checksum_lost.bin"))
            .output()
            .unwrap()
    };
    let last_json = |out: &std::process::Output| -> serde_json::Value {
        let text = String::from_utf8(out.stdout.clone()).unwrap();
        serde_json::from_str(text.lines().last().unwrap()).unwrap()
    };
    let first = run(&["--market", "ZB-0003", "--stall", "A1"]);
    assert!(first.status.success(), "{first:?}");
    let a = last_json(&first);
    let n = a["readings"].as_u64().unwrap();
    assert!(n > 0);
    assert_eq!(a["stored"], n);
    assert_eq!(a["duplicates"], 0);
    assert!(
        a["errors"].as_u64().unwrap() >= 1,
        "the lost frame is an error: {a}"
    );
    let second = run(&["--market", "ZB-0003", "--stall", "A1"]);
    let b = last_json(&second);
    assert_eq!(
        (b["stored"].as_u64(), b["duplicates"].as_u64()),
        (Some(0), Some(n))
    );
    // The rejected frame is kept with its error, once.
    let conn = Connection::open(dir.join("data/foodgate.db")).unwrap();
    let errors: Vec<String> = conn
        .prepare("SELECT error FROM raw_frames WHERE error IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("bad_checksum: ") && errors[0].contains("; message_discarded: "));
    let bad = run(&["--market", "NOPE"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown market"));

    std::fs::write(&cfg_path, "[server]\nlisten = 8080\n").unwrap();
    let bad = run(&["--market", "ZB-0003"]);
    assert_eq!(bad.status.code(), Some(2));
    let msg = String::from_utf8_lossy(&bad.stderr);
    assert!(
        msg.contains("foodgate.toml") && msg.contains("listen"),
        "{msg}"
    );
}

#[test]
fn outbox_commands_list_and_requeue_dead_events() {
    let dir = temp_dir("outbox-cli");
    let cfg_path = dir.join("foodgate.toml");
    // An upstream nobody listens on: the events stay in the outbox for the commands to see.
    std::fs::write(
        &cfg_path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n[[upstream]]\nname = \"block-api\"\n\
             url = \"http://127.0.0.1:9/events\"\nsecret = \"s\"\n",
            dir.join("data")
        ),
    )
    .unwrap();
    crate::support::import_builtin_markets_with(&cfg_path);
    let out = foodgate()
        .args(["ingest", "--config"])
        .arg(&cfg_path)
        .args([
            "--protocol",
            "astm",
            "--encoding",
            "gbk",
            "--market",
            "ZB-0003",
        ])
        .arg(fixture("astm/food_screening.bin"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let outbox = |args: &[&str]| {
        foodgate()
            .arg("outbox")
            .args(args)
            .arg("--config")
            .arg(&cfg_path)
            .output()
            .unwrap()
    };
    let rows = |out: &std::process::Output| -> Vec<Vec<String>> {
        String::from_utf8(out.stdout.clone())
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split('\t').map(String::from).collect())
            .collect()
    };
    // The two failures of the fixture (74.5% OPI, clenbuterol 阳性) wait as sample.failed.
    let listed = outbox(&["list"]);
    assert!(listed.status.success(), "{listed:?}");
    let pending = rows(&listed);
    assert_eq!(pending.len(), 2, "{pending:?}");
    for r in &pending {
        assert_eq!(
            (r[1].as_str(), r[2].as_str(), r[3].as_str()),
            ("block-api", "sample.failed", "pending")
        );
    }
    // An upstream answered 422 for the first: dead, with its answer kept.
    let conn = Connection::open(dir.join("data/foodgate.db")).unwrap();
    let first: i64 = pending[0][0].parse().unwrap();
    conn.execute(
        "UPDATE outbox SET status = 'dead', last_answer = '422 unknown stall' WHERE id = ?1",
        [first],
    )
    .unwrap();
    let dead = rows(&outbox(&["list", "--status", "dead"]));
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0][0].parse::<i64>().unwrap(), dead[0][7].as_str()),
        (first, "422 unknown stall")
    );
    // Only dead events are retried; unknown ids are refused.
    let second = pending[1][0].clone();
    let not_dead = outbox(&["retry", &second]);
    assert_eq!(not_dead.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&not_dead.stderr).contains("not dead"));
    let unknown = outbox(&["retry", "999999"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no outbox event"));
    let again = outbox(&["retry", &first.to_string()]);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(
        count(&conn, "SELECT count(*) FROM outbox WHERE status = 'dead'"),
        0
    );
    assert_eq!(rows(&outbox(&["list", "--status", "pending"])).len(), 2);
    let none = outbox(&["retry", "--dead"]);
    assert!(String::from_utf8_lossy(&none.stdout).contains("0 event(s)"));
}

/// `result.recorded` of a reading without a hold is stored without a body and built from the
/// reading when sent; a late registration that changes the reading first stores the body as
/// it was, so the event is sent with the same bytes before and after.
#[test]
fn a_result_body_built_when_sent_stays_the_same_when_the_reading_changes() {
    use foodgate::store::outbox;
    use foodgate::store::samples::{register, Registration, SampleRecord};
    let dir = temp_dir("lazy");
    let cfg = config(&dir, &[("up", "http://127.0.0.1:9/events", "all")]);
    let store = open(&cfg);
    let done = store
        .submit(batch(vec![item(
            reading("S1", "0.01", Verdict::Pass),
            "ZB-0003",
        )]))
        .unwrap();
    let Outcome::Stored { identity, .. } = &done.outcomes[0] else {
        panic!("stored: {:?}", done.outcomes[0])
    };
    let conn = store.inspect().unwrap();
    let stored: Vec<u8> = conn
        .query_row(
            "SELECT body FROM outbox WHERE type = 'result.recorded'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(stored.is_empty(), "body stored: {}", stored.len());
    let reader = store.reader().unwrap();
    let due = |r: &Reader| outbox::due(r, "up", i64::MAX, 10).unwrap();
    let first = due(&reader);
    assert_eq!(first.len(), 1);
    let v: serde_json::Value = serde_json::from_slice(&first[0].body).unwrap();
    let json: String = conn
        .query_row("SELECT reading_json FROM readings", [], |r| r.get(0))
        .unwrap();
    let id = foodgate::store::identity::event_id(identity, "result.recorded").to_string();
    assert_eq!(v["event_id"], id.as_str());
    assert_eq!(first[0].event_id, id);
    assert_eq!(v["type"], "result.recorded");
    assert_eq!(v["market"], "ZB-0003");
    assert_eq!(v["stall"], "A12");
    assert_eq!(v["sample"]["id"], "S1");
    assert_eq!(v["sample"]["name"], "菠菜");
    assert_eq!(v["sample"]["category"], "leafy_vegetable");
    assert_eq!(
        v["reading"],
        serde_json::from_str::<serde_json::Value>(&json).unwrap()
    );
    assert!(v["hold"].is_null());
    assert!(v.get("revision").is_none());

    // Changing the reading behind the store's back is refused while its body is unstored.
    let raw = Connection::open(cfg.database_path()).unwrap();
    raw.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    let refused = raw.execute("UPDATE readings SET stall = 'X9'", []);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("must be stored before")),
        "{refused:?}"
    );
    drop(raw);

    let settings = store.settings().clone();
    let rec = SampleRecord {
        sample_id: "S1".into(),
        market: "ZB-0003".into(),
        stall: Some("R9".into()),
        sample_name: None,
        category: None,
        vendor: None,
        supplier: None,
        certificate_no: None,
        sampled_at: None,
    };
    let done = store
        .write(move |tx| register(tx, &settings, &rec, "registrar"))
        .unwrap();
    assert!(matches!(done, Registration::Stored { .. }), "{done:?}");
    assert_eq!(
        count(&conn, "SELECT count(*) FROM readings WHERE stall = 'R9'"),
        1
    );
    let after = due(&reader);
    let same = after
        .iter()
        .find(|e| e.event_id == id)
        .expect("first event");
    assert_eq!(same.body, first[0].body, "the first event's bytes changed");
    let corrected = after
        .iter()
        .find(|e| e.event_id != id && e.kind == "result.recorded")
        .expect("corrected event");
    let c: serde_json::Value = serde_json::from_slice(&corrected.body).unwrap();
    assert_eq!(
        (c["stall"].as_str(), c["revision"].as_u64()),
        (Some("R9"), Some(1))
    );
    store.close();
}

/// An answer that comes back for an event deleted while it was on the wire (a folded hold's)
/// is recorded for nothing, even when the next event was given the same row id.
#[test]
fn a_late_answer_for_a_deleted_event_never_counts_for_the_next_one() {
    use foodgate::store::outbox::{self, Attempt};
    let dir = temp_dir("late-answer");
    let cfg = config(&dir, &[("up", "http://127.0.0.1:9/events", "failures")]);
    let store = open(&cfg);
    let reader = store.reader().unwrap();
    let failed = |store: &Store, id: &str| {
        let done = store
            .submit(batch(vec![item(
                reading(id, "0.9", Verdict::Fail),
                "ZB-0003",
            )]))
            .unwrap();
        match &done.outcomes[0] {
            Outcome::Stored {
                hold: Some(hold), ..
            } => hold.clone(),
            other => panic!("a hold: {other:?}"),
        }
    };
    let hold = failed(&store, "S1");
    let on_the_wire = outbox::due(&reader, "up", i64::MAX, 10).unwrap();
    assert_eq!(on_the_wire.len(), 1);
    let sent = on_the_wire[0].clone();
    store
        .write(move |tx| outbox::delete_hold_events(tx, &hold))
        .unwrap();
    failed(&store, "S2");
    let next = outbox::due(&reader, "up", i64::MAX, 10).unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(
        next[0].id, sent.id,
        "SQLite gave the next event the same row id"
    );
    assert_ne!(next[0].event_id, sent.event_id);
    store
        .write(move |tx| {
            let ok = Attempt::Delivered {
                answer: "HTTP 200".into(),
            };
            outbox::record(tx, "up", sent.id, &sent.event_id, 1_000, &ok)
        })
        .unwrap();
    let conn = store.inspect().unwrap();
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM outbox WHERE status = 'pending' AND attempts = 0"
        ),
        1,
        "the next event is still to be sent"
    );
    store.close();
}

/// A fresh `serve` database has no markets (and `serve` says how to import them);
/// `markets import --builtin` loads the 484 built-in ones, and a second run changes none.
#[test]
fn a_fresh_database_has_no_markets_until_the_builtin_registry_is_imported() {
    let dir = temp_dir("builtin-markets");
    let cfg_path = dir.join("foodgate.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
            dir.join("data")
        ),
    )
    .unwrap();
    let log = dir.join("serve.log");
    let mut child = foodgate()
        .args(["serve", "--config"])
        .arg(&cfg_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start serve");
    let start = std::time::Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("foodgate: API on") {
            break text;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("serve exited: {status}: {text}");
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "serve did not start: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.contains("the market registry is empty")
            && text.contains("foodgate markets import --builtin"),
        "{text}"
    );
    let markets = |sql: &str| {
        let conn = Connection::open(dir.join("data").join("foodgate.db")).unwrap();
        count(&conn, sql)
    };
    assert_eq!(markets("SELECT count(*) FROM markets"), 0);
    let out = foodgate()
        .args(["markets", "import", "--builtin", "--config"])
        .arg(&cfg_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("484 markets added, 0 updated"),
        "{out:?}"
    );
    assert_eq!(
        markets("SELECT count(*) FROM markets WHERE code GLOB 'ZB-[0-9][0-9][0-9][0-9]'"),
        484
    );
    let again = foodgate()
        .args(["markets", "import", "--builtin", "--config"])
        .arg(&cfg_path)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 markets added, 484 updated"),
        "{again:?}"
    );
    assert_eq!(markets("SELECT count(*) FROM markets"), 484);
}

#[test]
fn the_last_day_a_polled_instrument_was_read_survives_a_restart_and_never_goes_back() {
    use foodgate::store::poll_progress::{day_complete, last_complete_day};
    let dir = temp_dir("poll-progress");
    let cfg = config(&dir, &[]);
    let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
    let store = open(&cfg);
    assert_eq!(
        last_complete_day(&store.reader().unwrap(), "LZ-1").unwrap(),
        None
    );
    store
        .write(move |tx| {
            day_complete(tx, "LZ-1", day(2))?;
            // A re-read of an older day does not move it back.
            day_complete(tx, "LZ-1", day(1))?;
            day_complete(tx, "TL-1", day(3))
        })
        .unwrap();
    store.close();
    let store = open(&cfg);
    let reader = store.reader().unwrap();
    assert_eq!(last_complete_day(&reader, "LZ-1").unwrap(), Some(day(2)));
    assert_eq!(last_complete_day(&reader, "TL-1").unwrap(), Some(day(3)));
}
