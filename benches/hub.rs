//! A station catching up with its city hub (issue 9): one measurement, not a criterion loop.
//!
//! A station store holds `FOODGATE_BENCH_READINGS` (default 100 000) readings of one market,
//! spread over the last five days, none forwarded yet (its hub was unreachable). Its uplink
//! then starts, with a `format = "results"` upstream to a hub on loopback (the real store,
//! API and uplink of both, in this process), and delivers everything: batches of up to
//! 1,000 rows, two at a time. Meanwhile a regulator asks the hub for the coverage of the
//! busiest day, one request after another. Printed: readings per second of the catch-up, and
//! the coverage requests' p50 / p99 / max latency.
//!
//! Run: `cargo bench --bench hub` (criterion is not used: a catch-up happens once; its
//! length is the figure).

use chrono::{Duration as Days, Utc};
use foodgate::auth::{self, NewToken, Role};
use foodgate::config::Config;
use foodgate::judge::Judge;
use foodgate::store::{Batch, NewReading, Origin, Store, StoreSettings};
use foodgate_parsers::{Protocol, Reading};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MARKET: &str = "ZB-0003";

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("foodgate-bench-hub-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn config(dir: &std::path::Path, upstream: &str) -> Config {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nutc_offset = \"+08:00\"\n{upstream}",
        dir.join("data")
    );
    Config::parse(&text, "bench.toml").expect("config")
}

async fn get(addr: SocketAddr, path: &str, token: &str) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    String::from_utf8_lossy(buf.get(9..12).unwrap_or_default())
        .parse()
        .unwrap_or(0)
}

fn pending(store: &Store) -> i64 {
    store
        .inspect()
        .expect("reader")
        .query_row(
            "SELECT count(*) FROM outbox WHERE status = 'pending'",
            [],
            |r| r.get(0),
        )
        .expect("count")
}

fn main() {
    let n: usize = std::env::var("FOODGATE_BENCH_READINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(n));
}

/// The built-in market registry: a new database has no markets.
fn import_markets(store: &Store) {
    store
        .write(|tx| foodgate::markets::import_builtin(tx, "bench"))
        .expect("import the built-in markets");
}

async fn run(n: usize) {
    // The hub: store and API.
    let hub_cfg = config(&dir("hub"), "");
    let hub = Store::open(
        &hub_cfg.database_path(),
        StoreSettings::from_config(&hub_cfg),
    )
    .expect("hub store");
    tokio::task::block_in_place(|| import_markets(&hub));
    let token = |name: &str, role: Role, markets: &[&str]| {
        let new = NewToken {
            name: name.into(),
            role,
            markets: markets.iter().map(|m| m.to_string()).collect(),
            expires_days: None,
        };
        hub.write(move |tx| Ok(auth::create(tx, &new, "bench")))
            .expect("write")
            .expect("token")
    };
    let station_token =
        tokio::task::block_in_place(|| token("station-3", Role::Station, &[MARKET]));
    let regulator = tokio::task::block_in_place(|| token("regulator", Role::Regulator, &[]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hub_addr = listener.local_addr().expect("addr");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let state = foodgate::http::AppState::new(hub.clone(), Judge::builtin());
    let mut api_stop = stop_rx.clone();
    tokio::spawn(foodgate::service::serve(listener, state, async move {
        let _ = api_stop.wait_for(|s| *s).await;
    }));

    // The station, with n readings stored while its hub was away.
    let station_cfg = config(
        &dir("station"),
        &format!(
            "[[upstream]]\nname = \"hub\"\nurl = \"http://{hub_addr}/api/v1/results\"\n\
             format = \"results\"\nsend = \"all\"\nsecret = \"k\"\ntoken = {station_token:?}\n"
        ),
    );
    let station = Store::open(
        &station_cfg.database_path(),
        StoreSettings::from_config(&station_cfg),
    )
    .expect("station store");
    tokio::task::block_in_place(|| import_markets(&station));
    let judge = Judge::builtin();
    let now = Utc::now();
    let fill = Instant::now();
    let mut i = 0;
    while i < n {
        let mut readings = Vec::with_capacity(2000);
        for _ in 0..2000.min(n - i) {
            // Five days, newest last; one in ten fails.
            let at = now - Days::seconds(((n - i) as i64 * 5 * 86_400) / n as i64);
            let mut r = Reading::new(Protocol::Astm, "chlorpyrifos");
            r.instrument = Some("IN-1".into());
            r.sample_id = Some(format!("S{i:07}").into());
            r.sample_name = Some("菠菜".into());
            r.analyte_code = Some("CPF".into());
            let v = if i % 10 == 0 { "0.05" } else { "0.01" };
            r.value_text = Some(v.into());
            r.value = v.parse().ok();
            r.unit = Some("mg/kg".into());
            r.measured_at = Some(at.fixed_offset());
            readings.push(NewReading {
                reading: judge.judged(r),
                market: MARKET.into(),
                stall: Some(format!("A{:02}", i % 40)),
                origin: Origin::Instrument("IN-1".into()),
                received_at: at,
                frame: None,
            });
            i += 1;
        }
        station
            .submit_async(Batch {
                frames: Vec::new(),
                readings,
            })
            .await
            .expect("submit");
    }
    eprintln!(
        "station: {n} readings stored in {:.1} s, {} rows waiting for the hub",
        fill.elapsed().as_secs_f64(),
        pending(&station)
    );
    let busiest = (now - Days::days(1))
        .with_timezone(&station_cfg.utc_offset)
        .format("%Y-%m-%d")
        .to_string();

    // The regulator asks for coverage all along.
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let regulator_task = tokio::spawn({
        let path = format!("/api/v1/coverage?date={busiest}");
        async move {
            let mut lat = Vec::new();
            while !*done_rx.borrow() {
                let t = Instant::now();
                let status = get(hub_addr, &path, &regulator).await;
                assert_eq!(status, 200, "coverage");
                lat.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            lat
        }
    });

    let start = Instant::now();
    let (_h, mut workers) =
        foodgate::uplink::spawn(station.clone(), station_cfg.upstreams.clone(), stop_rx);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let left = tokio::task::block_in_place(|| pending(&station));
        if left == 0 {
            break;
        }
    }
    let took = start.elapsed();
    let _ = done_tx.send(true);
    let mut lat = regulator_task.await.expect("regulator");
    let _ = stop.send(true);
    while workers.join_next().await.is_some() {}
    let arrived: i64 = hub
        .inspect()
        .expect("reader")
        .query_row("SELECT count(*) FROM readings", [], |r| r.get(0))
        .expect("count");
    assert_eq!(arrived as usize, n, "every reading arrived once");
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "catch-up: {n} readings in {:.1} s = {:.0} readings/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    println!(
        "hub coverage ({busiest}) during catch-up: {} requests, p50 {} ms, p99 {} ms, max {} ms",
        lat.len(),
        pct(0.50).as_millis(),
        pct(0.99).as_millis(),
        lat.last().copied().unwrap_or_default().as_millis()
    );
    station.close_async().await;
    hub.close_async().await;
}
