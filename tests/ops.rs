//! Operations: `foodgate backup` under load, raw retention.

use crate::support::{config, open, reading, temp_dir};
use chrono::{Duration as ChronoDuration, Utc};
use foodgate::judge::Verdict;
use foodgate::store::retention;
use foodgate::store::{Batch, NewReading, Origin, Outcome, RawFrame};
use rusqlite::{Connection, OpenFlags};
use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A batch of `n` readings (every tenth a failure), each with its own raw frame.
fn batch(tag: usize, n: usize, received: chrono::DateTime<Utc>) -> Batch {
    let mut b = Batch::default();
    for i in 0..n {
        let sample = format!("S{tag}-{i}");
        let (value, verdict) = if i % 10 == 0 {
            ("0.9", Verdict::Fail)
        } else {
            ("0.01", Verdict::Pass)
        };
        b.frames.push(RawFrame {
            source: "IN-1".into(),
            offset: (tag * 10_000 + i) as u64 * 64,
            bytes: format!("R|{sample}|{value}|padding to look like a frame").into_bytes(),
            error: None,
            received_at: received,
        });
        b.readings.push(NewReading {
            reading: reading(&sample, value, verdict),
            market: "ZB-0001".into(),
            stall: Some("A1".into()),
            origin: Origin::Instrument("IN-1".into()),
            received_at: received,
            frame: Some(i),
        });
    }
    b
}

fn stored_ids(outcomes: &[Outcome]) -> Vec<i64> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Stored { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_everything_committed_before_it() {
    let dir = temp_dir("backup-load");
    let cfg = config(&dir, &[("block", "http://127.0.0.1:9/events", "failures")]);
    let store = open(&cfg);
    // A first committed load, so the backup has something sizeable to copy.
    let mut committed: Vec<i64> = Vec::new();
    for tag in 0..20 {
        let c = store
            .submit_async(batch(tag, 200, Utc::now()))
            .await
            .unwrap();
        committed.extend(stored_ids(&c.outcomes));
    }
    // The writer keeps committing while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let store = store.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut tag = 1000;
            while !stop.load(Ordering::Relaxed) {
                let c = store
                    .submit_async(batch(tag, 100, Utc::now()))
                    .await
                    .unwrap();
                ids.extend(stored_ids(&c.outcomes));
                tag += 1;
            }
            ids
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Everything committed up to here must be in the copy: read what is committed now.
    let before: HashSet<i64> = {
        let conn = store.inspect().unwrap();
        let mut s = conn.prepare("SELECT id FROM readings").unwrap();
        let ids = s.query_map([], |r| r.get(0)).unwrap();
        ids.map(Result::unwrap).collect()
    };
    assert!(before.len() >= committed.len());
    let file = dir.join("copy.db");
    let cfg_file = dir.join("foodgate.toml");
    std::fs::write(
        &cfg_file,
        format!("[server]\ndata_dir = {:?}\n", dir.join("data")),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking({
        let file = file.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_foodgate"))
                .arg("backup")
                .arg("--config")
                .arg(&cfg_file)
                .arg(&file)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let during = writer.await.unwrap();
    assert!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!during.is_empty(), "the writer committed nothing meanwhile");
    let summary: serde_json::Value =
        serde_json::from_slice(out.stdout.trim_ascii_end()).expect("a JSON summary line");
    assert!(!dir.join("copy.db.partial").exists());

    let copy = Connection::open_with_flags(&file, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let in_copy: HashSet<i64> = {
        let mut s = copy.prepare("SELECT id FROM readings").unwrap();
        let ids = s.query_map([], |r| r.get(0)).unwrap();
        ids.map(Result::unwrap).collect()
    };
    assert_eq!(summary["readings"], in_copy.len() as i64);
    let missing: Vec<_> = before.difference(&in_copy).take(5).collect();
    assert!(
        missing.is_empty(),
        "committed before the backup, missing: {missing:?}"
    );
    // A consistent cut: every failure in the copy has its hold and its event, and nothing
    // in the copy points at a reading that is not there.
    let orphans: i64 = copy
        .query_row(
            "SELECT (SELECT count(*) FROM readings r WHERE r.verdict = 'fail'
                       AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.reading = r.id))
                  + (SELECT count(*) FROM holds h
                       WHERE NOT EXISTS (SELECT 1 FROM readings r WHERE r.id = h.reading))",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);
    let failures: i64 = copy
        .query_row(
            "SELECT count(*) FROM readings WHERE verdict = 'fail'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let events: i64 = copy
        .query_row(
            "SELECT count(*) FROM outbox WHERE type = 'sample.failed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(events, failures);
    // The copy opens as a store of its own (what a restore does).
    let restored_dir = dir.join("restored");
    std::fs::create_dir_all(&restored_dir).unwrap();
    std::fs::copy(&file, restored_dir.join("foodgate.db")).unwrap();
    let restored = foodgate::store::Store::open(
        &restored_dir.join("foodgate.db"),
        foodgate::store::StoreSettings::from_config(&cfg),
    )
    .unwrap();
    let n: i64 = restored
        .inspect()
        .unwrap()
        .query_row("SELECT count(*) FROM readings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n as usize, in_copy.len());
    restored.close_async().await;
    store.close_async().await;
}

#[test]
fn backup_refuses_the_live_file_and_a_missing_database() {
    let dir = temp_dir("backup-refuse");
    let cfg_file = dir.join("foodgate.toml");
    std::fs::write(
        &cfg_file,
        format!("[server]\ndata_dir = {:?}\n", dir.join("data")),
    )
    .unwrap();
    let run = |file: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_foodgate"))
            .args(["backup", "--config"])
            .arg(&cfg_file)
            .arg(file)
            .output()
            .unwrap()
    };
    let out = run(&dir.join("x.db"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database at"));
    let cfg = config(&dir, &[]);
    let store = open(&cfg);
    store.close();
    let out = run(&cfg.database_path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must not be the live database"));
}

#[tokio::test]
async fn retention_empties_old_raw_bytes_and_keeps_every_reading_and_its_frame() {
    let dir = temp_dir("retention");
    let cfg = config(&dir, &[("block", "http://127.0.0.1:9/events", "failures")]);
    let store = open(&cfg);
    let old = Utc::now() - ChronoDuration::days(500);
    let recent = Utc::now() - ChronoDuration::days(10);
    // 1,200 old readings: more than two pruning batches.
    for tag in 0..6 {
        store.submit_async(batch(tag, 200, old)).await.unwrap();
    }
    store.submit_async(batch(100, 50, recent)).await.unwrap();
    // An old rejected frame (no reading points at it).
    let mut rejected = Batch::default();
    rejected.frames.push(RawFrame {
        source: "IN-1".into(),
        offset: 999_999_999,
        bytes: b"garbage".to_vec(),
        error: Some("checksum".into()),
        received_at: old,
    });
    store.submit_async(rejected).await.unwrap();

    let snapshot = |conn: &Connection| -> (i64, i64, i64, i64) {
        conn.query_row(
            "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM holds),
                    (SELECT count(*) FROM hold_history), (SELECT count(*) FROM outbox)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
    };
    let conn = store.inspect().unwrap();
    let before = snapshot(&conn);
    let raw_before: i64 = conn
        .query_row("SELECT sum(length(bytes)) FROM raw_frames", [], |r| {
            r.get(0)
        })
        .unwrap();

    let pruned = retention::prune_due(&store, 400).await.unwrap();
    assert_eq!(pruned.frames, 1201);
    let after = snapshot(&conn);
    assert_eq!(
        before, after,
        "readings, holds, history and outbox untouched"
    );
    // Every reading still points at a frame row, with its hash and former length.
    let dangling: i64 = conn
        .query_row(
            "SELECT count(*) FROM readings r
             WHERE r.raw_frame IS NULL
                OR NOT EXISTS (SELECT 1 FROM raw_frames f WHERE f.id = r.raw_frame)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dangling, 0);
    let (old_left, old_len): (i64, i64) = conn
        .query_row(
            "SELECT sum(length(bytes)), sum(pruned_length) FROM raw_frames
             WHERE pruned_at IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(old_left, 0);
    assert_eq!(pruned.bytes as i64, old_len);
    let recent_left: i64 = conn
        .query_row(
            "SELECT count(*) FROM raw_frames WHERE pruned_at IS NULL AND length(bytes) > 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(recent_left, 50, "the recent frames keep their bytes");
    assert!(raw_before > old_len);
    // A second pass has nothing to do; re-ingesting an old frame is still a duplicate.
    assert_eq!(retention::prune_due(&store, 400).await.unwrap().frames, 0);
    let again = store.submit_async(batch(0, 200, old)).await.unwrap();
    assert_eq!(again.frames_stored, 0);
    assert!(again
        .outcomes
        .iter()
        .all(|o| matches!(o, Outcome::Duplicate { .. })));
    store.close_async().await;
}

/// A `serve` process killed when the test ends, also when an assertion fails.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_refusing_our_secret_then_fixed_gets_every_event_once_with_two_alert_lines() {
    use crate::support::{wait_until, Action, Receiver};
    use std::io::{BufRead, BufReader};
    use std::time::Duration;
    let broken = Arc::new(AtomicBool::new(true));
    let rx = {
        let broken = broken.clone();
        Receiver::start(move |_, _| {
            if broken.load(Ordering::Relaxed) {
                Action::Status(401)
            } else {
                Action::Status(200)
            }
        })
        .await
    };
    let dir = temp_dir("secret-401");
    let cfg = config(&dir, &[("block", &rx.url(), "failures")]);
    let store = open(&cfg);
    store.submit_async(batch(1, 100, Utc::now())).await.unwrap();
    store.close_async().await;
    let cfg_file = dir.join("foodgate.toml");
    std::fs::write(
        &cfg_file,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n[[upstream]]\nname = \"block\"\n\
             url = {:?}\nsecret = {:?}\nretry_initial_ms = 50\nretry_max_ms = 200\n",
            dir.join("data"),
            rx.url(),
            crate::support::SECRET
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_foodgate"))
        .args(["serve", "--config"])
        .arg(&cfg_file)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _serve = Serve(child);
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut log: Vec<String> = Vec::new();
    let addr = loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve prints its address");
        log.push(line.clone());
        if let Some(a) = line.split("API on http://").nth(1) {
            break a.trim().to_string();
        }
    };
    let db = cfg.database_path();
    let dead = || -> i64 {
        let c = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        c.query_row(
            "SELECT count(*) FROM outbox WHERE status = 'dead'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    wait_until("every event dead", crate::support::PATIENT, || dead() == 10).await;
    let metrics = http_get(&addr, "/metrics");
    assert!(
        metrics.contains("foodgate_upstream_up{upstream=\"block\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("foodgate_outbox_events{upstream=\"block\",status=\"dead\"} 10"));
    assert!(metrics.contains("foodgate_upstream_last_error{upstream=\"block\",error=\"HTTP 401"));

    // The secret is fixed upstream; one command puts every dead event back.
    broken.store(false, Ordering::Relaxed);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_foodgate"))
        .args(["outbox", "retry", "--dead", "--config"])
        .arg(&cfg_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("every event delivered", crate::support::PATIENT, || {
        rx.accepted().len() >= 10
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let accepted = rx.accepted();
    let ids: HashSet<_> = accepted.iter().map(|r| r.event_id.clone()).collect();
    assert_eq!(accepted.len(), 10, "each event accepted once");
    assert_eq!(ids.len(), 10);
    assert!(accepted.iter().all(|r| r.signature_ok));
    assert_eq!(dead(), 0);
    let metrics = http_get(&addr, "/metrics");
    assert!(
        metrics.contains("foodgate_upstream_up{upstream=\"block\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("foodgate_upstream_failing_seconds{upstream=\"block\"} 0"));
    // 10 events × at least one 401 each, but one alert line and one recovery line.
    let refused = rx.log().len() - accepted.len();
    assert!(refused >= 10);
    while let Ok(line) = lines_rx.try_recv() {
        log.push(line);
    }
    let alerts = log.iter().filter(|l| l.contains("ALERT upstream")).count();
    let recovered = log
        .iter()
        .filter(|l| l.contains("RECOVERED upstream"))
        .count();
    assert_eq!((alerts, recovered), (1, 1), "{log:#?}");
}

#[test]
fn retention_deletes_only_old_archive_day_files() {
    let dir = temp_dir("archive-retention");
    let inst = dir.join("raw").join("ZB-0001-OP1");
    std::fs::create_dir_all(&inst).unwrap();
    for name in [
        "2025-01-01.bin",
        "2025-01-01.1.bin",
        "2025-06-30.bin",
        "2025-07-01.bin",
        "notes.txt",
        "2025-01-01.txt",
    ] {
        std::fs::write(inst.join(name), b"12345").unwrap();
    }
    let before = chrono::NaiveDate::from_ymd_opt(2025, 7, 1).unwrap();
    let (files, bytes) = retention::prune_archive(&dir.join("raw"), before);
    assert_eq!((files, bytes), (3, 15));
    let mut left: Vec<_> = std::fs::read_dir(&inst)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["2025-01-01.txt", "2025-07-01.bin", "notes.txt"]);
    // A missing archive is nothing to do, not an error.
    assert_eq!(retention::prune_archive(&dir.join("nope"), before), (0, 0));
}
