//! HTTP API throughput and latency on loopback: the real router ([`service::serve`]) on a real
//! socket and a real store, driven by a hyper client with keep-alive.
//!
//! - `upload/none/100000`, `upload/all/100000`: 100,000 readings as 100 `POST
//!   /api/v1/results` of 1,000 JSON rows, one after the other, into a fresh store; `all`
//!   has one `send = "all"` upstream, so every reading also queues a `result.recorded` event
//!   (and a failure its hold and `sample.failed`) in the same transaction. No uplink runs:
//!   this measures storing, not delivering.
//! - `coverage/day`: `GET /api/v1/coverage?date=…` for one day of a store holding a year of
//!   data (484 markets × 50 readings × 365 days = 8,833,000 readings). The store is built once
//!   and kept in `target/bench-data/coverage-year/` (about 3 GB; delete it to rebuild). Besides
//!   criterion's figures it prints p50/p99 over 300 requests.
//!
//! Building the year through the insert path would take hours here (and ~24 GB, with raw
//! frames and outbox bodies). Coverage reads only `coverage_days` and `markets`, so the
//! readings are written by an `INSERT … SELECT` per day into the real `readings` table (the
//! schema and indexes of the current migrations, 50 readings per market and day with fails,
//! invalids and several readings per sample; `sample_ref` numbers the samples, whose rows
//! coverage never reads, so `samples` stays empty), and the aggregate is then built by the
//! migration itself: the bench drops it, winds `user_version` back to before migration 0009
//! and reopens the store, which back-fills `coverage_days` from the readings as an upgraded
//! installation would. The bench checks the day's totals against a count of the readings.
//! The same store also keeps the covering index of migration 0006, and the bench times the
//! query that scanned it (the code before the aggregate) for comparison.
//!
//! `FOODGATE_BENCH_ONCE=1` runs each part once and prints its figures (no criterion).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use foodgate::auth::{self, NewToken, Role};
use foodgate::config::Config;
use foodgate::http::ratelimit::RateLimit;
use foodgate::http::AppState;
use foodgate::judge::Judge;
use foodgate::service;
use foodgate::store::{Store, StoreSettings};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const READINGS: usize = 100_000;
const PER_REQUEST: usize = 1_000;
const YEAR_DAYS: u32 = 365;
const PER_MARKET_DAY: u32 = 50;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// Whether the command line's filter (criterion's, e.g. `cargo bench --bench api -- upload`)
/// selects `part`: its setup (the year store, a fresh upload store) is skipped otherwise.
fn wanted(part: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    filters.is_empty() || filters.iter().any(|f| part.contains(f.as_str()))
}

fn fresh_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "foodgate-apibench-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(data: &Path, send: Option<&str>) -> Config {
    let mut text = format!("[server]\ndata_dir = {data:?}\nutc_offset = \"+08:00\"\n");
    if let Some(send) = send {
        text.push_str(&format!(
            "[[upstream]]\nname = \"up\"\nurl = \"http://127.0.0.1:9/events\"\nsend = {send:?}\nsecret = \"k\"\n"
        ));
    }
    Config::parse(&text, "bench").unwrap()
}

struct Server {
    addr: SocketAddr,
    store: Store,
    token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

static TOKENS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

async fn start(cfg: &Config, role: Role, limit: Option<RateLimit>) -> Server {
    let store = Store::open(&cfg.database_path(), StoreSettings::from_config(cfg)).unwrap();
    let new = NewToken {
        // A new name per server: a database the bench reuses keeps the tokens of earlier ones.
        name: format!(
            "bench-{}",
            TOKENS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ),
        role,
        markets: Vec::new(),
        expires_days: None,
    };
    // A new database has no markets: the built-in registry (an existing one keeps its own).
    store
        .write_async(|tx| foodgate::markets::import_builtin(tx, "bench"))
        .await
        .unwrap();
    let token = store
        .write_async(move |tx| Ok(auth::create(tx, &new, "bench")))
        .await
        .unwrap()
        .unwrap();
    let mut state = AppState::new(store.clone(), Judge::builtin());
    if let Some(l) = limit {
        state = state.with_rate_limit(l);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(service::serve(listener, state, async move {
        let _ = rx.await;
    }));
    Server {
        addr,
        store,
        token,
        stop,
        task,
    }
}

impl Server {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
        self.store.close_async().await;
    }
}

async fn send(
    client: &HttpClient,
    s: &Server,
    method: &str,
    path: &str,
    body: Bytes,
) -> (u16, Bytes) {
    let req = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", s.addr))
        .header("authorization", format!("Bearer {}", s.token))
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, body)
}

/// 100 bodies of 1,000 rows: 484 markets, one in ten failing (value over the limit).
fn upload_bodies() -> Vec<Bytes> {
    let names = ["菠菜", "韭菜", "小白菜", "芹菜"];
    (0..READINGS / PER_REQUEST)
        .map(|b| {
            let rows: Vec<serde_json::Value> = (0..PER_REQUEST)
                .map(|i| {
                    let n = b * PER_REQUEST + i;
                    let value = if n % 10 == 0 { "0.9" } else { "0.01" };
                    serde_json::json!({
                        "id": format!("r{n}"),
                        "market": format!("ZB-{:04}", 1 + n % 484),
                        "stall": format!("A{}", n % 7),
                        "sample_id": format!("S{}", n / 3),
                        "sample_name": names[n % 4],
                        "category": "leafy_vegetable",
                        "analyte": "chlorpyrifos",
                        "method": "spectrophotometric",
                        "value": value,
                        "unit": "mg/kg",
                        "measured_at": format!("2025-03-04T{:02}:{:02}:{:02}+08:00", 8 + n % 10, n % 60, (n / 60) % 60),
                        "instrument": "IN-1",
                        "tester": "T1",
                    })
                })
                .collect();
            Bytes::from(serde_json::to_vec(&rows).unwrap())
        })
        .collect()
}

/// Upload every body into a fresh store; the time of the uploads alone.
async fn upload_once(client: &HttpClient, bodies: &[Bytes], send_mode: Option<&str>) -> Duration {
    let dir = fresh_dir();
    let cfg = config(&dir.join("data"), send_mode);
    // The default rate limit: a bulk upload must not hit it.
    let s = start(&cfg, Role::Admin, None).await;
    let t = Instant::now();
    for body in bodies {
        let (status, answer) = send(client, &s, "POST", "/api/v1/results", body.clone()).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    }
    let took = t.elapsed();
    let stored: i64 = s
        .store
        .inspect()
        .unwrap()
        .query_row("SELECT count(*) FROM readings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored as usize, READINGS);
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    took
}

fn bench_upload(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if !wanted("upload/none upload/all") {
        return;
    }
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let bodies = upload_bodies();
    if std::env::var_os("FOODGATE_BENCH_ONCE").is_some() {
        for mode in [None, Some("all")] {
            let written = written_bytes();
            let cpu = cpu_time();
            let took = rt.block_on(upload_once(&client, &bodies, mode));
            let cpu = cpu_time().saturating_sub(cpu);
            println!(
                "upload once ({}): {READINGS} readings in {:.2} s = {:.0}/s; CPU (client, server, \
                 store, all threads, store setup included) {:.2} s = {:.0} per CPU second; \
                 {:.1} KB written per reading",
                mode.unwrap_or("none"),
                took.as_secs_f64(),
                READINGS as f64 / took.as_secs_f64(),
                cpu.as_secs_f64(),
                READINGS as f64 / cpu.as_secs_f64(),
                (written_bytes() - written) as f64 / READINGS as f64 / 1e3
            );
        }
        return;
    }
    let mut g = c.benchmark_group("upload");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    g.throughput(Throughput::Elements(READINGS as u64));
    for mode in [None, Some("all")] {
        g.bench_function(format!("{}/{READINGS}", mode.unwrap_or("none")), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += rt.block_on(upload_once(&client, &bodies, mode));
                }
                total
            })
        });
    }
    g.finish();
}

/// User + system CPU time of this process, all threads (/proc/self/stat, 100 ticks a second).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Bytes this process has written through `write` calls (WAL, checkpoints): the write
/// amplification behind the time.
fn written_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn year_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data/coverage-year")
}

/// Day by day from `first` (`YYYY-MM-DD`), market by market, as they would arrive. Per market
/// and day: 50 readings of 20 samples (sample_ref unique per market, day and sample), every
/// 10th failing, every 17th invalid; received at a time of that local day.
fn insert_days(tx: &rusqlite::Transaction<'_>, first: &str, days: u32, t: Instant) {
    let mut day = tx
        .prepare(&format!(
            "WITH RECURSIVE m(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM m WHERE k < 484),
                 r(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM r WHERE j < {last_reading}),
                 g(n, k, j, t) AS (SELECT ?1, k, j, strftime('%Y-%m-%dT%H:%M:%S.000Z',
                     ?2, '+' || ?1 || ' days', '+' || (j * 10) || ' minutes')
                     FROM m, r)
             INSERT INTO readings (identity, market, stall, sample_ref, instrument, protocol,
                 sample_id, sample_name, analyte, value, unit, measured_at, received_at,
                 local_day, verdict, reason, result_status, reading_json, identity_key)
             SELECT printf('y%d.%d.%d', n, k, j), printf('ZB-%04d', k), 'A' || (j % 5),
                 (n * 484 + k) * 20 + j % 20, 'IN-' || k, 'astm', 'S' || (j % 20), '菠菜',
                 'chlorpyrifos', 0.01, 'mg/kg', t, t, substr(t, 1, 10),
                 CASE WHEN j % 10 = 0 THEN 'fail' WHEN j % 17 = 0 THEN 'invalid'
                      ELSE 'pass' END,
                 'generated', 'F', '{{}}', (n * 484 + k) * 1000 + j
             FROM g",
            last_reading = PER_MARKET_DAY - 1
        ))
        .unwrap();
    for n in 0..days {
        let added = day.execute(rusqlite::params![n, first]).unwrap();
        assert_eq!(added, 484 * PER_MARKET_DAY as usize);
        if n % 50 == 0 {
            eprintln!(
                "bench store: day {n} after {:.0} s",
                t.elapsed().as_secs_f64()
            );
        }
    }
}

/// The year store (see the module comment), built unless it is there already.
fn year_store() -> Config {
    let dir = year_dir();
    let cfg = config(&dir, None);
    let done = dir.join("complete");
    if done.exists() {
        return cfg;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let t = Instant::now();
    // The schema of every migration, and the built-in market registry.
    let store = Store::open(&cfg.database_path(), StoreSettings::from_config(&cfg)).unwrap();
    store
        .write(|tx| foodgate::markets::import_builtin(tx, "bench"))
        .unwrap();
    store.close();
    let mut conn = rusqlite::Connection::open(cfg.database_path()).unwrap();
    conn.pragma_update(None, "cache_size", -524_288).unwrap();
    // `sample_ref` numbers samples without rows in `samples` (3.5 million of them that
    // coverage never reads): no reference checks while generating.
    conn.pragma_update(None, "foreign_keys", false).unwrap();
    let tx = conn.transaction().unwrap();
    insert_days(&tx, "2025-01-01", YEAR_DAYS, t);
    // Migration 0009 again, which back-fills the aggregate from the readings (run by itself:
    // rewinding `user_version` would run the later migrations again too).
    tx.execute_batch("DROP TABLE coverage_days; DROP TABLE coverage_samples;")
        .unwrap();
    let m0009 = foodgate::store::schema::MIGRATIONS
        .iter()
        .find(|m| m.contains("CREATE TABLE coverage_days"))
        .unwrap();
    tx.execute_batch(m0009).unwrap();
    tx.commit().unwrap();
    drop(conn);
    // The index the code before the aggregate read (migration 0006; 0009 drops it), for the
    // comparison with the scan.
    rusqlite::Connection::open(cfg.database_path())
        .unwrap()
        .execute_batch(
            "CREATE INDEX IF NOT EXISTS readings_coverage ON readings
                 (market, local_day, superseded, verdict, sample_ref, received_at);",
        )
        .unwrap();
    std::fs::write(&done, b"").unwrap();
    println!("built the year store in {:.0} s", t.elapsed().as_secs_f64());
    cfg
}

/// The query before the aggregate (migration 0006's covering index), for comparison.
const SCAN: &str = "SELECT m.code, m.quota, count(r.id), coalesce(sum(r.verdict = 'fail'), 0),
        count(DISTINCT CASE WHEN r.verdict IN ('pass', 'fail') THEN r.sample_ref END),
        max(r.received_at)
     FROM markets m
     LEFT JOIN readings r INDEXED BY readings_coverage
         ON r.market = m.code AND r.local_day = ?1 AND r.superseded = 0
     GROUP BY m.code ORDER BY m.code";

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    (at(0.50), at(0.99))
}

fn bench_coverage(c: &mut Criterion) {
    if !wanted("coverage/day") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let cfg = year_store();
    // A benchmark asks far faster than a dashboard: the limit is raised for it.
    let limit = RateLimit {
        per_second: 1e6,
        burst: 1e6,
    };
    let s = rt.block_on(start(&cfg, Role::Regulator, Some(limit)));
    let day = "2025-07-15";
    let path = format!("/api/v1/coverage?date={day}");
    // The answer is right: its totals are a count of that day's readings.
    let (status, body) = rt.block_on(send(&client, &s, "GET", &path, Bytes::new()));
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let conn = s.store.inspect().unwrap();
    let (tests, failures): (i64, i64) = conn
        .query_row(
            "SELECT count(*), sum(verdict = 'fail') FROM readings WHERE local_day = ?1",
            [day],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(v["summary"]["tests"], tests);
    assert_eq!(v["summary"]["failures"], failures);
    assert_eq!(v["summary"]["samples"], 484 * 20);
    assert_eq!(tests, 484 * i64::from(PER_MARKET_DAY));

    let mut http = Vec::new();
    for _ in 0..300 {
        let t = Instant::now();
        let (status, _) = rt.block_on(send(&client, &s, "GET", &path, Bytes::new()));
        http.push(t.elapsed());
        assert_eq!(status, 200);
    }
    let mut scan = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let n = conn
            .prepare_cached(SCAN)
            .unwrap()
            .query_map([day], |_| Ok(()))
            .unwrap()
            .count();
        scan.push(t.elapsed());
        assert_eq!(n, 484);
    }
    let (p50, p99) = percentiles(http);
    let (s50, s99) = percentiles(scan);
    println!(
        "coverage of one day, a year in the store: HTTP (aggregate) p50 {:.2} ms p99 {:.2} ms over 300; \
         the readings scan before it (query only) p50 {:.1} ms p99 {:.1} ms over 30",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        s50.as_secs_f64() * 1e3,
        s99.as_secs_f64() * 1e3
    );
    if std::env::var_os("FOODGATE_BENCH_ONCE").is_none() {
        let mut g = c.benchmark_group("coverage");
        g.sample_size(200);
        g.bench_function("day", |b| {
            b.iter(|| rt.block_on(send(&client, &s, "GET", &path, Bytes::new())))
        });
        g.finish();
    }
    drop(conn);
    rt.block_on(s.stop());
}

/// `reports/month`: `GET /api/v1/reports/monthly` for a month of a city (484 markets × 50
/// readings × 30 days = 726,000 readings, a third of the failures' goods destroyed), in a
/// store built for it (`target/bench-data/monthly/`, rebuilt each run: a few seconds).
fn bench_monthly(c: &mut Criterion) {
    if !wanted("reports/month") {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data/monthly");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = config(&dir, None);
    let store = Store::open(&cfg.database_path(), StoreSettings::from_config(&cfg)).unwrap();
    store
        .write(|tx| foodgate::markets::import_builtin(tx, "bench"))
        .unwrap();
    store.close();
    let t = Instant::now();
    let mut conn = rusqlite::Connection::open(cfg.database_path()).unwrap();
    conn.pragma_update(None, "foreign_keys", false).unwrap();
    let tx = conn.transaction().unwrap();
    insert_days(&tx, "2025-11-01", 30, t);
    tx.execute_batch(
        "INSERT INTO holds (id, reading, market, stall, status, created_at, updated_at,
             destroyed_kg, destroyed_at)
         SELECT 'h' || id, id, market, stall, CASE WHEN id % 3 = 0 THEN 'destroyed' ELSE 'held' END,
             received_at, received_at, CASE WHEN id % 3 = 0 THEN 2.5 END,
             CASE WHEN id % 3 = 0 THEN received_at END
         FROM readings WHERE verdict = 'fail';",
    )
    .unwrap();
    tx.commit().unwrap();
    drop(conn);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let limit = RateLimit {
        per_second: 1e6,
        burst: 1e6,
    };
    let s = rt.block_on(start(&cfg, Role::Regulator, Some(limit)));
    let path = "/api/v1/reports/monthly?month=2025-11";
    let (status, body) = rt.block_on(send(&client, &s, "GET", path, Bytes::new()));
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["total"]["tests"], 484 * 50 * 30);
    assert_eq!(v["total"]["batches"], 484 * 20 * 30);
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let (status, _) = rt.block_on(send(&client, &s, "GET", path, Bytes::new()));
        times.push(t.elapsed());
        assert_eq!(status, 200);
    }
    let (p50, p99) = percentiles(times);
    println!(
        "monthly report of a city month (726,000 readings): p50 {:.0} ms, p99 {:.0} ms over 20",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    if std::env::var_os("FOODGATE_BENCH_ONCE").is_none() {
        let mut g = c.benchmark_group("reports");
        g.sample_size(10);
        g.bench_function("month", |b| {
            b.iter(|| rt.block_on(send(&client, &s, "GET", path, Bytes::new())))
        });
        g.finish();
    }
    rt.block_on(s.stop());
}

criterion_group!(benches, bench_upload, bench_coverage, bench_monthly);
criterion_main!(benches);
