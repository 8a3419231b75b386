//! A station feeding the city hub (issue 9), all real: two `foodgate serve` processes on
//! loopback with their own data directories, a simulated enzyme printer (`foodgate simulate
//! --tcp`) on the station, the station's `[[upstream]] format = "results"` holding a station
//! token the hub's `foodgate token create` made, and a real events receiver on the hub. The
//! hub is killed while the station goes on testing and registering samples, then started
//! again: every reading arrives once, and samples registered before and after their readings
//! give the right stall on the hub and at the hub's receiver.

use crate::support::{temp_dir, wait_until, Action, Receiver, ServeProcess, TestApp, SECRET};
use rusqlite::Connection;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const MARKET: &str = "ZB-0003";
const LONG: Duration = crate::support::PATIENT;

fn foodgate(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_foodgate"))
        .args(args)
        .output()
        .expect("run foodgate");
    assert!(
        out.status.success(),
        "foodgate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn token(config: &Path, role: &str, name: &str) -> String {
    let c = config.to_str().expect("path");
    let out = foodgate(&[
        "token", "create", "--config", c, "--role", role, "--market", MARKET, "--name", name,
    ]);
    out.lines().last().expect("token line").trim().to_string()
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// One HTTP/1.1 request; the status and the JSON answer.
async fn http(addr: SocketAddr, method: &str, path: &str, token: &str, body: &str) -> (u16, Value) {
    let (status, text) = crate::support::http(
        addr,
        method,
        path,
        Some(token),
        Some("application/json"),
        body.as_bytes(),
    )
    .await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn db(dir: &Path) -> Connection {
    let c = Connection::open(dir.join("data").join("foodgate.db")).expect("open db");
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

fn count(dir: &Path, sql: &str) -> i64 {
    db(dir)
        .query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Run the enzyme printer simulator against the station's TCP link; every reading acked.
fn simulate(addr: SocketAddr, count: usize, seed: u64) {
    let out = foodgate(&[
        "simulate",
        "--protocol",
        "enzyme-print",
        "--tcp",
        &addr.to_string(),
        "--count",
        &count.to_string(),
        "--interval",
        "0",
        "--positive-rate",
        "1",
        "--seed",
        &seed.to_string(),
    ]);
    let last: Value = serde_json::from_str(out.lines().last().unwrap_or("{}")).expect("report");
    assert_eq!(last["readings"], count, "{out}");
    assert_eq!(last["failed"], 0, "{out}");
}

/// Stall of every reading of `sample` (in id order).
fn stalls(dir: &Path, sample: &str) -> Vec<Option<String>> {
    let conn = db(dir);
    let mut stmt = conn
        .prepare("SELECT stall FROM readings WHERE sample_id = ?1 ORDER BY id")
        .unwrap();
    let v = stmt
        .query_map([sample], |r| r.get(0))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    v
}

fn hub_config(dir: &Path, listen: &str, receiver: &str) -> PathBuf {
    let text = format!(
        "[server]\nlisten = {listen:?}\ndata_dir = {:?}\nutc_offset = \"+08:00\"\n\
         [[upstream]]\nname = \"block-api\"\nurl = {receiver:?}\nsecret = {SECRET:?}\n\
         timeout_s = 2\nretry_initial_ms = 50\nretry_max_ms = 200\n",
        dir.join("data")
    );
    let path = dir.join("hub.toml");
    std::fs::write(&path, text).unwrap();
    crate::support::import_builtin_markets_with(&path);
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_feeds_the_hub_through_an_outage_with_stalls_from_samples() {
    let rx = Receiver::start(|_, _| Action::Status(200)).await;
    let hub_dir = temp_dir("hub");
    let station_dir = temp_dir("station");

    // The hub, its tokens for the station and for a regulator.
    let hub_cfg = hub_config(&hub_dir, "127.0.0.1:0", &rx.url());
    let hub = ServeProcess::start(&hub_cfg, hub_dir.join("hub.log")).await;
    let hub_token = token(&hub_cfg, "station", "station-zb3");
    let regulator = {
        let c = hub_cfg.to_str().unwrap();
        let out = foodgate(&["token", "create", "--config", c, "--role", "regulator"]);
        out.lines().last().unwrap().trim().to_string()
    };

    // The station: an enzyme printer on TCP, the hub as a results upstream.
    let link = free_port();
    let station_cfg = station_dir.join("station.toml");
    std::fs::write(
        &station_cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nutc_offset = \"+08:00\"\n\
             [[instrument]]\nid = \"ENZ-1\"\nmarket = {MARKET:?}\nprotocol = \"enzyme-print\"\n\
             tcp = {{ listen = \"{link}\" }}\n\
             [[upstream]]\nname = \"city-hub\"\nurl = \"http://{}/api/v1/results\"\n\
             format = \"results\"\nsend = \"all\"\nsecret = {SECRET:?}\ntoken = {hub_token:?}\n\
             timeout_s = 2\nretry_initial_ms = 100\nretry_max_ms = 400\n",
            station_dir.join("data"),
            hub.addr()
        ),
    )
    .unwrap();
    crate::support::import_builtin_markets_with(&station_cfg);
    let station = ServeProcess::start(&station_cfg, station_dir.join("station.log")).await;
    let tester = token(&station_cfg, "station", "tester");

    // S0001 is registered before it is tested.
    let (status, answer) = http(
        station.addr(),
        "POST",
        "/api/v1/samples",
        &tester,
        &json!([{"sample_id": "S0001", "market": MARKET, "stall": "B07", "sample_name": "菠菜",
                 "category": "leafy_vegetable", "vendor": "王五", "certificate_no": "HG-1"}])
        .to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][0]["status"], "stored", "{answer}");

    simulate(link, 8, 3);
    // A printer waits for no acknowledgement: the station stores what it printed.
    wait_until("the station has 8 readings", LONG, || {
        count(&station_dir, "SELECT count(*) FROM readings") == 8
    })
    .await;
    assert_eq!(stalls(&station_dir, "S0001"), [Some("B07".to_string())]);
    wait_until("the hub has the station's 8 readings", LONG, || {
        count(&hub_dir, "SELECT count(*) FROM readings") == 8
    })
    .await;
    // The hub counts them in its coverage, on the station's local day.
    let day: String = db(&station_dir)
        .query_row("SELECT max(local_day) FROM readings", [], |r| r.get(0))
        .unwrap();
    let (status, cov) = http(
        hub.addr(),
        "GET",
        &format!("/api/v1/coverage?date={day}"),
        &regulator,
        "",
    )
    .await;
    assert_eq!(status, 200, "{cov}");
    let m = cov["markets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["market"] == MARKET)
        .cloned()
        .unwrap();
    assert_eq!(m["tests"], 8, "{m}");
    assert_eq!(m["failures"], 8, "{m}");
    assert_eq!(m["samples"], 8, "{m}");

    // The hub goes down; the station goes on testing and registers S0002 after its reading.
    let hub_addr = hub.addr();
    hub.kill();
    simulate(link, 6, 4);
    wait_until("the station has 14 readings", LONG, || {
        count(&station_dir, "SELECT count(*) FROM readings") == 14
    })
    .await;
    let (status, answer) = http(
        station.addr(),
        "POST",
        "/api/v1/samples",
        &tester,
        &json!([{"sample_id": "S0002", "market": MARKET, "stall": "C11"}]).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][0]["status"], "stored", "{answer}");
    // Both of S0002's readings (one from each run) took the stall at the station.
    assert_eq!(answer["results"][0]["readings"], 2, "{answer}");
    assert_eq!(
        stalls(&station_dir, "S0002"),
        [Some("C11".to_string()), Some("C11".to_string())]
    );
    let station_count = count(&station_dir, "SELECT count(*) FROM readings");
    assert_eq!(station_count, 14);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        count(
            &station_dir,
            "SELECT count(*) FROM outbox WHERE status = 'pending' AND attempts > 0"
        ) > 0,
        "the station tried the hub while it was down"
    );
    assert_eq!(
        count(
            &station_dir,
            "SELECT count(*) FROM outbox WHERE status = 'dead'"
        ),
        0
    );

    // The hub comes back on the same address: the station catches up by itself.
    let hub_cfg = hub_config(&hub_dir, &hub_addr.to_string(), &rx.url());
    let hub = ServeProcess::start(&hub_cfg, hub_dir.join("hub2.log")).await;
    wait_until("the station's outbox is delivered", LONG, || {
        count(
            &station_dir,
            "SELECT count(*) FROM outbox WHERE status <> 'delivered'",
        ) == 0
    })
    .await;
    // Every reading arrived once: as many as the station has, one upload row each.
    assert_eq!(
        count(&hub_dir, "SELECT count(*) FROM readings"),
        station_count
    );
    assert_eq!(
        count(&hub_dir, "SELECT count(DISTINCT row_id) FROM uploads"),
        station_count
    );
    let station_ids: Vec<String> = {
        let conn = db(&station_dir);
        let mut s = conn
            .prepare("SELECT identity FROM readings ORDER BY identity")
            .unwrap();
        let v = s
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        v
    };
    let hub_rows: Vec<String> = {
        let conn = db(&hub_dir);
        let mut s = conn
            .prepare("SELECT row_id FROM uploads ORDER BY row_id")
            .unwrap();
        let v = s
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        v
    };
    assert_eq!(
        hub_rows, station_ids,
        "the hub's rows are the station's readings"
    );

    // Stalls on the hub: S0001 registered before, S0002 after (its first reading reached
    // the hub before the registration, its second after).
    assert_eq!(
        stalls(&hub_dir, "S0001"),
        [Some("B07".to_string()), Some("B07".to_string())]
    );
    assert_eq!(
        stalls(&hub_dir, "S0002"),
        [Some("C11".to_string()), Some("C11".to_string())]
    );
    let hold_stalls: Vec<(String, Option<String>)> = {
        let conn = db(&hub_dir);
        let mut s = conn
            .prepare(
                "SELECT r.sample_id, h.stall FROM holds h JOIN readings r ON r.id = h.reading
                 WHERE r.sample_id IN ('S0001', 'S0002') ORDER BY r.sample_id, r.id",
            )
            .unwrap();
        let v = s
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        v
    };
    let c11 = Some("C11".to_string());
    let b07 = Some("B07".to_string());
    assert_eq!(
        hold_stalls,
        [
            ("S0001".to_string(), b07.clone()),
            ("S0001".to_string(), b07.clone()),
            ("S0002".to_string(), c11.clone()),
            ("S0002".to_string(), c11.clone()),
        ]
    );

    // At the hub's receiver: per hold, the last event has the right stall; S0002's first
    // reading was sent with no stall, then corrected under a new event id.
    let hub_holds = count(&hub_dir, "SELECT count(*) FROM holds");
    assert_eq!(hub_holds, station_count, "every reading failed");
    wait_until("the hub's events are delivered", LONG, || {
        count(
            &hub_dir,
            "SELECT count(*) FROM outbox WHERE status <> 'delivered'",
        ) == 0
    })
    .await;
    let events: Vec<Value> = rx
        .accepted()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let mut last: std::collections::BTreeMap<String, Value> = Default::default();
    for e in &events {
        last.insert(e["hold"]["id"].as_str().unwrap().to_string(), e.clone());
    }
    assert_eq!(last.len() as i64, hub_holds);
    for e in last.values() {
        match e["sample"]["id"].as_str() {
            Some("S0001") => assert_eq!(e["stall"], "B07", "{e}"),
            Some("S0002") => assert_eq!(e["stall"], "C11", "{e}"),
            _ => {}
        }
    }
    let s2: Vec<&Value> = events
        .iter()
        .filter(|e| e["sample"]["id"] == "S0002")
        .collect();
    assert_eq!(
        s2.iter()
            .map(|e| (e["stall"].clone(), e["revision"].clone()))
            .collect::<Vec<_>>(),
        [
            (Value::Null, Value::Null),
            (Value::Null, Value::Null),
            (json!("C11"), json!(1)),
            (json!("C11"), json!(1))
        ],
        "S0002: both readings reached the hub before its registration, then were corrected"
    );
    let ids: std::collections::HashSet<&str> =
        s2.iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 4, "a corrected event has its own id");

    // The hub's coverage of the day is the station's own count of it.
    let station_day = count(
        &station_dir,
        &format!("SELECT count(*) FROM readings WHERE local_day = '{day}'"),
    );
    let (_, cov) = http(
        hub.addr(),
        "GET",
        &format!("/api/v1/coverage?date={day}"),
        &regulator,
        "",
    )
    .await;
    let m = cov["markets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["market"] == MARKET)
        .cloned()
        .unwrap();
    assert_eq!(m["tests"], station_day, "{m}");
    assert_eq!(m["failures"], station_day, "{m}");

    hub.stop().await;
    station.stop().await;
}

// ---------------------------------------------------------------------------------------
// In-process nodes (the real store, API and uplink in this test's runtime): a hub's per-row
// answers, refused tokens, and what registered samples do to readings, holds and events.

/// The service in-process on 127.0.0.1:0 (its store, API and uplink), and its store.
struct Node {
    store: foodgate::store::Store,
    addr: SocketAddr,
    app: TestApp,
}

impl Node {
    async fn start(name: &str, upstreams: &str) -> Node {
        let dir = temp_dir(name);
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nutc_offset = \"+08:00\"\n{upstreams}",
            dir.join("data")
        );
        let config = foodgate::config::Config::parse(&text, "node.toml").expect("config");
        let app = TestApp::builder(config).builtin_markets().start().await;
        Node {
            store: app.store().clone(),
            addr: app.addr(),
            app,
        }
    }

    async fn token(&self, name: &str, role: foodgate::auth::Role, markets: &[&str]) -> String {
        let new = foodgate::auth::NewToken {
            name: name.into(),
            role,
            markets: markets.iter().map(|m| m.to_string()).collect(),
            expires_days: None,
        };
        self.store
            .write_async(move |tx| Ok(foodgate::auth::create(tx, &new, "test")))
            .await
            .expect("write")
            .expect("token")
    }

    fn count(&self, sql: &str) -> i64 {
        self.store
            .inspect()
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn outbox(&self) -> Vec<foodgate::store::outbox::OutboxRow> {
        foodgate::store::outbox::list(&self.store.reader().unwrap(), None, 100_000).unwrap()
    }
}

fn results_upstream(hub: SocketAddr, token: &str) -> String {
    format!(
        "[[upstream]]\nname = \"hub\"\nurl = \"http://{hub}/api/v1/results\"\nformat = \"results\"\n\
         send = \"all\"\nsecret = {SECRET:?}\ntoken = {token:?}\ntimeout_s = 2\n\
         retry_initial_ms = 50\nretry_max_ms = 200\n"
    )
}

/// A judged chlorpyrifos reading of sample `sample` from instrument IN-1.
fn new_reading(sample: &str, value: &str, market: &str) -> foodgate::store::NewReading {
    let r = crate::support::reading(sample, value, foodgate::judge::Verdict::Unknown);
    foodgate::store::NewReading {
        reading: foodgate::judge::Judge::builtin().judged(r.reading),
        market: market.into(),
        stall: None,
        origin: foodgate::store::Origin::Instrument("IN-1".into()),
        received_at: chrono::Utc::now(),
        frame: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_answers_per_row_rejected_rows_die_with_their_errors_the_rest_deliver() {
    use foodgate::auth::Role;
    let hub = Node::start("hub-rows", "").await;
    let station_token = hub.token("station-3", Role::Station, &[MARKET]).await;
    let station = Node::start("station-rows", &results_upstream(hub.addr, &station_token)).await;
    let batch = foodgate::store::Batch {
        frames: Vec::new(),
        readings: vec![
            new_reading("S1", "0.01", MARKET),
            new_reading("S2", "0.05", MARKET),
            // Outside the hub token's markets: the hub rejects this row alone.
            new_reading("S3", "0.01", "ZB-0004"),
            new_reading("S4", "0.01", MARKET),
        ],
    };
    station.store.submit_async(batch).await.expect("submit");
    wait_until("every row answered", LONG, || {
        station.outbox().iter().all(|e| e.status != "pending")
    })
    .await;
    let rows = station.outbox();
    let statuses: Vec<&str> = rows.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(statuses, ["delivered", "delivered", "dead", "delivered"]);
    assert!(rows
        .iter()
        .all(|e| e.kind == "result.row" && e.attempts == 1));
    let dead = rows[2].last_answer.as_deref().unwrap_or_default();
    assert!(dead.contains("rejected"), "{dead}");
    assert!(
        dead.contains("\"field\":\"market\"") && dead.contains("outside this token's markets"),
        "the row's own errors are kept: {dead}"
    );
    assert_eq!(hub.count("SELECT count(*) FROM readings"), 3);
    // One request carried the batch.
    assert_eq!(
        hub.count("SELECT count(*) FROM audit_log WHERE action = 'results.upload'"),
        1
    );
    // The hub judged the forwarded rows as the station did.
    assert_eq!(
        hub.count("SELECT count(*) FROM readings WHERE verdict = 'fail'"),
        station
            .count("SELECT count(*) FROM readings WHERE verdict = 'fail' AND market = 'ZB-0003'")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_the_hub_refuses_makes_the_whole_batch_dead_with_the_answer() {
    let hub = Node::start("hub-401", "").await;
    let station = Node::start("station-401", &results_upstream(hub.addr, "fg_not-a-token")).await;
    let batch = foodgate::store::Batch {
        frames: Vec::new(),
        readings: vec![
            new_reading("S1", "0.01", MARKET),
            new_reading("S2", "0.05", MARKET),
        ],
    };
    station.store.submit_async(batch).await.expect("submit");
    wait_until("the batch answered", LONG, || {
        station.outbox().iter().all(|e| e.status != "pending")
    })
    .await;
    for e in station.outbox() {
        assert_eq!((e.status.as_str(), e.attempts), ("dead", 1));
        let a = e.last_answer.unwrap_or_default();
        assert!(a.starts_with("HTTP 401"), "{a}");
    }
    assert_eq!(hub.count("SELECT count(*) FROM readings"), 0);
}

/// POST a JSON body to a node's API.
async fn post(node: &Node, path: &str, token: &str, body: Value) -> Value {
    let (status, text) = node
        .app
        .post(
            path,
            Some(token),
            "application/json",
            body.to_string().as_bytes(),
        )
        .await;
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert_eq!(status, 200, "{path}: {v}");
    v
}

fn row(id: &str, sample: &str, category: &str) -> Value {
    json!({"id": id, "market": MARKET, "sample_id": sample, "sample_name": "样品",
           "category": category, "analyte": "chlorpyrifos", "value": "0.05", "unit": "mg/kg",
           "measured_at": "2025-03-04T09:30:00+08:00"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_samples_give_stall_and_category_before_and_after_readings() {
    use foodgate::auth::Role;
    let rx = Receiver::start(|_, _| Action::Status(200)).await;
    let node = Node::start(
        "samples",
        &format!(
            "[[upstream]]\nname = \"block\"\nurl = {:?}\nsecret = {SECRET:?}\n\
             retry_initial_ms = 50\nretry_max_ms = 200\n",
            rx.url()
        ),
    )
    .await;
    let st = node.token("tester", Role::Station, &[MARKET]).await;
    let hold_of = |sample: &str| -> (String, String, Option<String>) {
        node.store
            .inspect()
            .unwrap()
            .query_row(
                "SELECT h.id, h.status, h.stall FROM holds h JOIN readings r ON r.id = h.reading
                 WHERE r.sample_id = ?1",
                [sample],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    };

    // Registered first: the reading is judged with the registered category. Chlorpyrifos
    // 0.05 mg/kg has no limit for fruit, but fails leafy vegetables (0.02).
    let a = post(
        &node,
        "/api/v1/samples",
        &st,
        json!([{"sample_id": "S1", "market": MARKET,
        "stall": "A01", "category": "leafy_vegetable"}]),
    )
    .await;
    assert_eq!(a["results"][0]["status"], "stored", "{a}");
    let a = post(
        &node,
        "/api/v1/results",
        &st,
        json!([row("r1", "S1", "fruit")]),
    )
    .await;
    assert_eq!(a["results"][0]["verdict"], "fail", "{a}");
    assert_eq!(hold_of("S1").2.as_deref(), Some("A01"));

    // Registered after a failure, with a category under which it would not fail: the
    // verdict stays, the hold goes to review (a person decides), the stall is filled in.
    let a = post(
        &node,
        "/api/v1/results",
        &st,
        json!([row("r2", "S2", "leafy_vegetable")]),
    )
    .await;
    assert_eq!(a["results"][0]["verdict"], "fail", "{a}");
    let a = post(
        &node,
        "/api/v1/samples",
        &st,
        json!([{"sample_id": "S2", "market": MARKET,
        "stall": "B02", "category": "fruit"}]),
    )
    .await;
    assert_eq!(
        (
            a["results"][0]["status"].clone(),
            a["results"][0]["readings"].clone()
        ),
        (json!("stored"), json!(1)),
        "{a}"
    );
    let (s2_hold, status, stall) = hold_of("S2");
    assert_eq!((status.as_str(), stall.as_deref()), ("review", Some("B02")));
    assert_eq!(
        node.count("SELECT count(*) FROM readings WHERE sample_id = 'S2' AND verdict = 'fail'"),
        1
    );

    // Registered after a reading that did not fail, with a category under which it fails:
    // a failure now, with its hold and its event.
    let a = post(
        &node,
        "/api/v1/results",
        &st,
        json!([row("r3", "S3", "fruit")]),
    )
    .await;
    assert_ne!(a["results"][0]["verdict"], "fail", "{a}");
    let reg = json!([{"sample_id": "S3", "market": MARKET, "stall": "C03", "category": "leafy_vegetable"}]);
    post(&node, "/api/v1/samples", &st, reg.clone()).await;
    let (s3_hold, status, stall) = hold_of("S3");
    assert_eq!((status.as_str(), stall.as_deref()), ("held", Some("C03")));
    // The same registration again changes nothing; a correction of the stall does.
    let a = post(&node, "/api/v1/samples", &st, reg).await;
    assert_eq!(a["results"][0]["status"], "duplicate", "{a}");
    let a = post(
        &node,
        "/api/v1/samples",
        &st,
        json!([{"sample_id": "S3", "market": MARKET,
        "stall": "C04", "category": "leafy_vegetable"}]),
    )
    .await;
    assert_eq!(
        (
            a["results"][0]["status"].clone(),
            a["results"][0]["readings"].clone()
        ),
        (json!("updated"), json!(1)),
        "{a}"
    );
    assert_eq!(hold_of("S3").2.as_deref(), Some("C04"));

    // A stall set by hand on a hold: audited, in the history, and sent upstream again.
    let (status, h) = http(
        node.addr,
        "PATCH",
        &format!("/api/v1/holds/{s2_hold}"),
        &st,
        &json!({"stall": "B09"}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["stall"], "B09");
    assert!(
        h["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"].as_str().unwrap().contains("B09")),
        "{h}"
    );
    assert_eq!(
        node.count("SELECT count(*) FROM audit_log WHERE action = 'hold.stall'"),
        1
    );

    // Rows that cannot be registered say why; the good ones are unaffected.
    let a = post(
        &node,
        "/api/v1/samples",
        &st,
        json!([
            {"market": MARKET, "stall": "X"},
            {"sample_id": "S9", "market": MARKET, "category": "moon_rock"},
            {"sample_id": "S9", "market": "ZB-0001"},
            {"sample_id": "S9", "market": MARKET, "sampled_at": "yesterday"},
            {"sample_id": "S9", "market": MARKET, "stall": "D09"},
        ]),
    )
    .await;
    let fields: Vec<(Value, Value)> = a["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["status"].clone(), r["errors"][0]["field"].clone()))
        .collect();
    assert_eq!(
        fields,
        [
            (json!("rejected"), json!("sample_id")),
            (json!("rejected"), json!("category")),
            (json!("rejected"), json!("market")),
            (json!("rejected"), json!("sampled_at")),
            (json!("stored"), Value::Null),
        ]
    );

    // What the receiver saw, per hold, in order: every correction with its own event id.
    wait_until("events delivered", LONG, || {
        node.outbox().iter().all(|e| e.status == "delivered")
    })
    .await;
    let seen = |hold: &str| -> Vec<(String, Value, Value)> {
        rx.accepted()
            .iter()
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
            .filter(|e| e["hold"]["id"] == hold)
            .map(|e| {
                (
                    e["type"].as_str().unwrap().to_string(),
                    e["stall"].clone(),
                    e["revision"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(
        seen(&s2_hold),
        [
            ("sample.failed".to_string(), Value::Null, Value::Null),
            ("sample.failed".to_string(), json!("B02"), json!(1)),
            ("hold.review".to_string(), json!("B02"), json!(1)),
            ("sample.failed".to_string(), json!("B09"), json!(2)),
        ]
    );
    assert_eq!(
        seen(&s3_hold),
        [
            ("sample.failed".to_string(), json!("C03"), Value::Null),
            ("sample.failed".to_string(), json!("C04"), json!(2)),
        ]
    );
    let ids: std::collections::HashSet<String> =
        rx.accepted().iter().map(|r| r.event_id.clone()).collect();
    assert_eq!(ids.len(), rx.accepted().len(), "no event id twice");
    // Late registrations moved verdicts: the coverage aggregate followed them.
    let conn = node.store.inspect().unwrap();
    let recount = |sql: &str| -> Vec<(String, String, i64, i64, i64)> {
        conn.prepare(sql)
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let from_readings = recount(
        "SELECT local_day, market, count(*), coalesce(sum(verdict = 'fail'), 0),
                count(DISTINCT CASE WHEN verdict IN ('pass', 'fail') THEN sample_ref END)
         FROM readings WHERE superseded = 0 GROUP BY local_day, market ORDER BY 1, 2",
    );
    let aggregate = recount(
        "SELECT day, market, tests, failures, samples FROM coverage_days
         WHERE tests > 0 ORDER BY 1, 2",
    );
    assert!(from_readings.iter().any(|r| r.3 > 0));
    assert_eq!(aggregate, from_readings);
    drop(conn);
    assert_eq!(node.app.shutdown().await, foodgate::service::Stopped::Clean);
}
