//! Store and uplink throughput.
//!
//! - `ingest/foodgate`: a synthetic ASTM capture through `ingest` (decode, raw frames,
//!   samples, readings, and one `result.recorded` outbox row per reading, 10 % failures with
//!   hold + `sample.failed`), into a fresh database each iteration.
//! - `ingest/bare_rusqlite`: the same readings' rows inserted by a bare prepared-statement
//!   loop in one transaction: the floor the store is compared against.
//! - With `FOODGATE_BENCH_ONCE=1` also every row the ingest stored (all tables, all columns)
//!   re-inserted by a bare loop into the same schema: SQLite's ceiling for exactly those rows.
//! - `deliver`: outbox events to a local axum receiver, until all are delivered.
//!
//! `FOODGATE_BENCH_READINGS` sets the capture size (default 100 000 readings).
//! `FOODGATE_BENCH_ONCE=1` runs each ingest once and prints readings/s (for profiling and for
//! the 1,000,000-reading figure, where ten criterion samples take many minutes).
//! `FOODGATE_BENCH_CLOCK=cpu` reports the process's CPU time (user + system, all threads,
//! background checkpoints included) instead of wall time: on a shared, loaded machine wall
//! time measures the neighbours.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use foodgate::config::Config;
use foodgate::ingest::{ingest, IngestTarget};
use foodgate::judge::{JudgedReading, Judgement, Verdict};
use foodgate::store::{Store, StoreSettings};
use foodgate_parsers::{decode_all, new_decoder, DecoderConfig, Event, Protocol, Reading};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn readings_wanted() -> usize {
    std::env::var("FOODGATE_BENCH_READINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// The clock the ingest benchmarks read (see the module comment).
#[derive(Clone, Copy)]
enum Clock {
    Wall(Instant),
    Cpu(Duration),
}

fn cpu_time() -> Duration {
    // /proc/self/stat fields 14 and 15: utime and stime in clock ticks (100 per second).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

impl Clock {
    fn start() -> Clock {
        if std::env::var("FOODGATE_BENCH_CLOCK").as_deref() == Ok("cpu") {
            Clock::Cpu(cpu_time())
        } else {
            Clock::Wall(Instant::now())
        }
    }
    fn elapsed(self) -> Duration {
        match self {
            Clock::Wall(t) => t.elapsed(),
            Clock::Cpu(t) => cpu_time().saturating_sub(t),
        }
    }
}

fn fresh_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "foodgate-bench-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(dir: &std::path::Path, url: &str, send: &str) -> Config {
    Config::parse(
        &format!(
            "[server]\ndata_dir = {:?}\n[[upstream]]\nname = \"up\"\nurl = {url:?}\nsend = {send:?}\nsecret = \"k\"\n",
            dir.join("data")
        ),
        "bench",
    )
    .unwrap()
}

/// A capture with about `n` readings.
fn capture(n: usize) -> (Vec<u8>, usize) {
    // Measured: about 95 bytes of capture per reading; grow until enough.
    let mut bytes = n * 90;
    loop {
        let cap = foodgate_parsers::synth::astm_capture_counted(bytes, 7);
        if cap.results >= n {
            return (cap.bytes, cap.results);
        }
        bytes = bytes * 11 / 10;
    }
}

/// Fails one reading in ten (deterministically), passes the rest.
fn judge(r: &mut Reading) -> Judgement {
    let h = r
        .sample_id
        .as_deref()
        .map_or(0, |s| s.bytes().map(u32::from).sum::<u32>());
    let verdict = if (h + r.analyte.len() as u32) % 10 == 0 {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    Judgement {
        verdict,
        ..Judgement::not_judged()
    }
}

fn bare_insert(path: &std::path::Path, readings: &[JudgedReading]) {
    bare_insert_keyed(path, readings, |i| format!("{i:064}"))
}

/// The bare loop with `identity(i)` as the unique key (sequential, or hash-like as
/// foodgate's identities are).
fn bare_insert_keyed(
    path: &std::path::Path,
    readings: &[JudgedReading],
    identity: impl Fn(usize) -> String,
) {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").ok();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(
        "CREATE TABLE readings (id INTEGER PRIMARY KEY, identity TEXT NOT NULL UNIQUE, market TEXT,
           instrument TEXT, sample_id TEXT, sample_name TEXT, analyte TEXT, value REAL,
           value_text TEXT, unit TEXT, measured_at TEXT, verdict TEXT, reason TEXT, reading_json TEXT)",
    )
    .unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut stmt = tx
            .prepare(
                "INSERT INTO readings (identity, market, instrument, sample_id, sample_name, analyte,
                 value, value_text, unit, measured_at, verdict, reason, reading_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .unwrap();
        for (i, j) in readings.iter().enumerate() {
            let r = &j.reading;
            stmt.execute(rusqlite::params![
                identity(i),
                "ZB-0001",
                r.instrument.as_deref(),
                r.sample_id.as_deref(),
                r.sample_name.as_deref(),
                r.analyte.as_str(),
                r.value,
                r.value_text.as_deref(),
                r.unit.as_deref(),
                r.measured_at.map(|t| t.to_rfc3339()),
                "pass",
                j.reason.as_str(),
                serde_json::to_string(j).unwrap(),
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Every row foodgate stored in the database at `from`, table by table.
type Rows = Vec<(String, usize, Vec<Vec<rusqlite::types::Value>>)>;

fn read_rows(from: &std::path::Path) -> (Vec<String>, Rows) {
    let src = rusqlite::Connection::open(from).unwrap();
    let schema = strings(
        &src,
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'
         ORDER BY type = 'table' DESC, rowid",
        [],
    );
    let tables = strings(
        &src,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        [],
    );
    // Parents before children, so every foreign key is checked as foodgate's are: at once.
    let parents = |t: &str| {
        strings(
            &src,
            "SELECT \"table\" FROM pragma_foreign_key_list(?1)",
            [t],
        )
    };
    let mut ordered: Vec<String> = Vec::new();
    while ordered.len() < tables.len() {
        let before = ordered.len();
        for t in &tables {
            let ready = parents(t)
                .iter()
                .all(|p| p == t || ordered.contains(p) || !tables.contains(p));
            if !ordered.contains(t) && ready {
                ordered.push(t.clone());
            }
        }
        assert!(ordered.len() > before, "foreign keys in a cycle");
    }
    let mut rows = Vec::new();
    for t in ordered {
        let mut stmt = src.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = stmt.column_count();
        let all: Vec<Vec<rusqlite::types::Value>> = stmt
            .query_map([], |r| (0..n).map(|i| r.get(i)).collect())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        if !all.is_empty() {
            rows.push((t, n, all));
        }
    }
    (schema, rows)
}

/// The bare loop for the same rows foodgate stored (readings with all their columns, raw
/// frames, samples, holds, outbox, aggregates) into the same schema and indexes, with the same
/// page size and durability: SQLite's ceiling for writing exactly what an ingest writes.
fn bare_same_rows(path: &std::path::Path, schema: &[String], rows: &Rows) {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "page_size", 16_384).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").ok();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    for sql in schema {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "foreign_keys", true).unwrap();
    let tx = conn.transaction().unwrap();
    for (table, n, all) in rows {
        let marks: Vec<String> = (1..=*n).map(|i| format!("?{i}")).collect();
        let mut stmt = tx
            .prepare(&format!(
                "INSERT INTO \"{table}\" VALUES ({})",
                marks.join(", ")
            ))
            .unwrap();
        for row in all {
            stmt.execute(rusqlite::params_from_iter(row.iter()))
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// A fresh store with the built-in market registry (a new database has no markets), not
/// timed.
fn open_store(cfg: &Config) -> Store {
    let store = Store::open(&cfg.database_path(), StoreSettings::from_config(cfg)).unwrap();
    store
        .write(|tx| foodgate::markets::import_builtin(tx, "bench"))
        .unwrap();
    store
}

/// `bytes` (`n` readings) ingested into a fresh store with a `send = "all"` upstream; returns
/// the time it took on the bench's clock, the store's directory and its config.
fn timed_ingest(bytes: &[u8], n: usize) -> (Duration, PathBuf, Config) {
    let dir = fresh_dir();
    let cfg = config(&dir, "http://127.0.0.1:9/events", "all");
    let store = open_store(&cfg);
    let target = IngestTarget {
        market: "ZB-0001".into(),
        stall: None,
        instrument: None,
        source: "bench".into(),
    };
    let mut d = new_decoder(Protocol::Astm, DecoderConfig::default());
    let t = Clock::start();
    let s = ingest(&store, d.as_mut(), &judge, &target, bytes).unwrap();
    // Closing waits for the last background checkpoint: its work is counted.
    store.close();
    let took = t.elapsed();
    assert_eq!(s.stored as usize, n);
    (took, dir, cfg)
}

/// The first column of every row `sql` gives.
fn strings(conn: &rusqlite::Connection, sql: &str, params: impl rusqlite::Params) -> Vec<String> {
    let mut stmt = conn.prepare(sql).unwrap();
    let rows = stmt
        .query_map(params, |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows
}

fn bench_ingest(c: &mut Criterion) {
    let (bytes, n) = capture(readings_wanted());
    let decoded: Vec<JudgedReading> = decode_all(
        new_decoder(Protocol::Astm, DecoderConfig::default()).as_mut(),
        &bytes,
    )
    .into_iter()
    .filter_map(|e| match e {
        Event::Reading(r) => Some(JudgedReading::new(*r, Judgement::not_judged())),
        _ => None,
    })
    .collect();
    if std::env::var_os("FOODGATE_BENCH_ONCE").is_some() {
        let (took, dir, cfg) = timed_ingest(&bytes, n);
        // Bytes written (WAL, checkpoints) tell how much of the time is write amplification.
        let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
        let db = std::fs::metadata(cfg.database_path()).map_or(0, |m| m.len());
        println!("database {db} bytes; {}", io.replace('\n', " "));
        // The same rows by a bare loop: read them out first (not timed).
        let (schema, rows) = read_rows(&cfg.database_path());
        let same_dir = fresh_dir();
        let t = Clock::start();
        bare_same_rows(&same_dir.join("same.db"), &schema, &rows);
        let same = t.elapsed();
        let _ = std::fs::remove_dir_all(&same_dir);
        drop(rows);
        // FOODGATE_BENCH_KEEP=1: keep the database to look into (sizes of tables, indexes).
        if std::env::var_os("FOODGATE_BENCH_KEEP").is_some() {
            println!("kept {}", cfg.database_path().display());
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let dir = fresh_dir();
        let t = Clock::start();
        bare_insert(&dir.join("bare.db"), &decoded);
        let bare = t.elapsed();
        let _ = std::fs::remove_dir_all(&dir);
        // The same loop with SHA-256 keys: a unique index that grows at random places.
        let dir = fresh_dir();
        let t = Clock::start();
        bare_insert_keyed(&dir.join("bare.db"), &decoded, |i| {
            use sha2::Digest;
            sha2::Sha256::digest(i.to_le_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        });
        let hashed = t.elapsed();
        let _ = std::fs::remove_dir_all(&dir);
        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        println!(
            "bare with hashed identities: {:.2} s = {:.0}/s",
            hashed.as_secs_f64(),
            rate(hashed)
        );
        println!(
            "bare with foodgate's rows and schema: {:.2} s = {:.0}/s; foodgate / that {:.2}",
            same.as_secs_f64(),
            rate(same),
            took.as_secs_f64() / same.as_secs_f64()
        );
        println!(
            "ingest once: {n} readings: foodgate {:.2} s = {:.0}/s; bare {:.2} s = {:.0}/s; ratio {:.2}",
            took.as_secs_f64(),
            rate(took),
            bare.as_secs_f64(),
            rate(bare),
            took.as_secs_f64() / bare.as_secs_f64()
        );
        return;
    }
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(format!("foodgate/{n}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (took, dir, _) = timed_ingest(&bytes, n);
                total += took;
                let _ = std::fs::remove_dir_all(&dir);
            }
            total
        })
    });
    g.bench_function(format!("bare_rusqlite/{n}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = fresh_dir();
                let t = Clock::start();
                bare_insert(&dir.join("bare.db"), &decoded);
                total += t.elapsed();
                let _ = std::fs::remove_dir_all(&dir);
            }
            total
        })
    });
    g.finish();
}

fn bench_deliver(c: &mut Criterion) {
    const EVENTS: usize = 20_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/events",
            axum::routing::post(|_body: axum::body::Bytes| async { "ok" }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}/events")
    });
    let (bytes, events) = capture(EVENTS);
    let mut g = c.benchmark_group("deliver");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(events as u64));
    g.bench_function(format!("events/{events}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = fresh_dir();
                let cfg = config(&dir, &url, "all");
                let store = open_store(&cfg);
                let target = IngestTarget {
                    market: "ZB-0001".into(),
                    stall: None,
                    instrument: None,
                    source: "bench".into(),
                };
                let mut d = new_decoder(Protocol::Astm, DecoderConfig::default());
                let pass = |_: &mut Reading| Judgement {
                    verdict: Verdict::Pass,
                    ..Judgement::not_judged()
                };
                let s = ingest(&store, d.as_mut(), &pass, &target, &bytes[..]).unwrap();
                let want = s.stored;
                let conn = store.inspect().unwrap();
                let t = Instant::now();
                rt.block_on(async {
                    let (stop, rx) = tokio::sync::watch::channel(false);
                    let (_h, mut tasks) =
                        foodgate::uplink::spawn(store.clone(), cfg.upstreams.clone(), rx);
                    loop {
                        let delivered: i64 = conn
                            .query_row(
                                "SELECT count(*) FROM outbox WHERE status = 'delivered'",
                                [],
                                |r| r.get(0),
                            )
                            .unwrap();
                        if delivered as u64 >= want {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    total += t.elapsed();
                    let _ = stop.send(true);
                    while tasks.join_next().await.is_some() {}
                });
                drop(conn);
                store.close();
                let _ = std::fs::remove_dir_all(&dir);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench_ingest, bench_deliver);
criterion_main!(benches);
