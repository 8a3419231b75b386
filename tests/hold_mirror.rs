//! A station's positive workflow reaches its hub: after each retest and action the station
//! forwards the hold's state (`hold.state` → the hub's `/api/v1/results/holds`), and the hub's
//! hold of the same row ends as the station's — status, destroyed kilograms, the re-sample,
//! every history entry once — with the events its own upstreams get for each step.

use crate::support::{config, temp_dir, wait_progress, Action, Receiver, TestApp, PATIENT, SECRET};
use crate::web::row;
use chrono::{Duration, FixedOffset, Utc};
use foodgate::auth::{NewToken, Role};
use foodgate::store::Store;
use serde_json::{json, Value};

const MARKET: &str = "ZB-0003";

async fn token(store: &Store, name: &str, role: Role) -> String {
    let new = NewToken {
        name: name.into(),
        role,
        markets: match role {
            Role::Regulator | Role::Admin => Vec::new(),
            _ => vec![MARKET.to_string()],
        },
        expires_days: None,
    };
    store
        .write_async(move |tx| Ok(foodgate::auth::create(tx, &new, "test")))
        .await
        .expect("write")
        .expect("token")
}

fn local(t: chrono::DateTime<Utc>) -> String {
    t.with_timezone(&FixedOffset::east_opt(8 * 3600).expect("offset"))
        .to_rfc3339()
}

async fn post(app: &TestApp, path: &str, token: &str, body: &Value) -> Value {
    let (status, text) = app
        .post(
            path,
            Some(token),
            "application/json",
            body.to_string().as_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{path} {body}: {text}");
    serde_json::from_str(&text).expect("json")
}

fn pending(store: &Store) -> u64 {
    let conn = store.inspect().expect("inspect");
    conn.query_row(
        "SELECT count(*) FROM outbox WHERE status = 'pending'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .expect("count") as u64
}

fn count(store: &Store, sql: &str) -> i64 {
    let conn = store.inspect().expect("inspect");
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stations_workflow_reaches_the_hubs_hold_step_by_step_once() {
    // The hub sends its own failures and hold events to a receiver (the city's blocking
    // system); the station forwards everything to the hub.
    let receiver = Receiver::start(|_, _| Action::Status(200)).await;
    let hub_dir = temp_dir("mirror-hub");
    let hub = TestApp::builder(config(&hub_dir, &[("block", &receiver.url(), "failures")]))
        .builtin_markets()
        .start()
        .await;
    let hub_station = token(hub.store(), "zb3", Role::Station).await;
    let other_station = token(hub.store(), "zb3-other", Role::Station).await;
    let reg = token(hub.store(), "reg", Role::Regulator).await;
    let dir = temp_dir("mirror-station");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nutc_offset = \"+08:00\"\n\
         [[upstream]]\nname = \"hub\"\nurl = \"http://{}/api/v1/results\"\nformat = \"results\"\n\
         send = \"all\"\nsecret = {SECRET:?}\ntoken = {hub_station:?}\ntimeout_s = 5\n\
         retry_initial_ms = 50\nretry_max_ms = 200\n",
        dir.join("data"),
        hub.addr()
    );
    let station = TestApp::builder(foodgate::config::Config::parse(&text, "s.toml").expect("cfg"))
        .builtin_markets()
        .start()
        .await;
    let tester = token(station.store(), "张三", Role::Station).await;

    // At the station: fail, retest positive, stop sale, destroy 12.5 kg, re-sample, close.
    let now = Utc::now();
    let v = post(
        &station,
        "/api/v1/results",
        &tester,
        &json!([row("m1", MARKET, "0.5", &local(now - Duration::hours(3)))]),
    )
    .await;
    let hold = v["results"][0]["hold"].as_str().expect("hold").to_string();
    let retest = json!({"id": "m1-rt", "analyte": "毒死蜱", "category": "leafy_vegetable",
        "method": "spectrophotometric", "instrument": "IN-1", "value": "0.7", "unit": "mg/kg",
        "measured_at": local(now - Duration::hours(2))});
    let v = post(
        &station,
        &format!("/api/v1/holds/{hold}/retest"),
        &tester,
        &retest,
    )
    .await;
    assert_eq!(v["status"], "confirmed", "{v}");
    let act = format!("/api/v1/holds/{hold}/actions");
    post(
        &station,
        &act,
        &tester,
        &json!({"action": "stop_sale", "operator": "李四"}),
    )
    .await;
    post(
        &station,
        &act,
        &tester,
        &json!({"action": "destroy", "kg": 12.5, "method": "深埋", "witness": "王五"}),
    )
    .await;
    post(
        &station,
        "/api/v1/results",
        &tester,
        &json!([row("m2", MARKET, "0.01", &local(now - Duration::hours(1)))]),
    )
    .await;
    let (_, listed) = station
        .get(&format!("/api/v1/results?market={MARKET}"), Some(&tester))
        .await;
    let listed: Value = serde_json::from_str(&listed).expect("json");
    let resample = listed["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["sample_id"] == "S-m2")
        .and_then(|r| r["id"].as_str())
        .expect("the re-sample's id")
        .to_string();
    post(
        &station,
        &act,
        &tester,
        &json!({"action": "resample", "reading": resample}),
    )
    .await;
    let closed = post(&station, &act, &tester, &json!({"action": "close"})).await;
    assert_eq!(closed["status"], "closed");

    wait_progress("the station's outbox delivered", PATIENT, || {
        pending(station.store())
    })
    .await;
    assert_eq!(
        count(
            station.store(),
            "SELECT count(*) FROM outbox WHERE status = 'dead'"
        ),
        0,
        "nothing refused by the hub"
    );
    assert_eq!(
        count(
            station.store(),
            "SELECT count(*) FROM outbox WHERE type = 'hold.state'"
        ),
        5,
        "one state per retest and action"
    );

    // At the hub: one hold (the failing retest's own folded in, as at the station), in the
    // station's state, with every step once.
    let (_, text) = hub.get("/api/v1/holds", Some(&reg)).await;
    let holds: Value = serde_json::from_str(&text).expect("json");
    let holds = holds["holds"].as_array().expect("holds");
    assert_eq!(holds.len(), 1, "{holds:?}");
    let h = &holds[0];
    assert_eq!(h["status"], "closed", "{h}");
    assert_eq!(h["destroyed_kg"], json!(12.5));
    assert!(h["resample_reading"].is_string(), "{h}");
    let steps: Vec<(String, String, String)> = h["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| {
            (
                e["status"].as_str().unwrap_or("?").to_string(),
                e["action"].as_str().unwrap_or("-").to_string(),
                e["by"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    let by = "zb3/张三".to_string();
    assert_eq!(steps[0].0, "held");
    assert_eq!(
        steps[1..],
        [
            ("confirmed".to_string(), "-".to_string(), by.clone()),
            ("stopped".into(), "stop_sale".into(), by.clone()),
            ("destroyed".into(), "destroy".into(), by.clone()),
            ("destroyed".into(), "resample".into(), by.clone()),
            ("closed".into(), "close".into(), by.clone()),
        ],
        "{h}"
    );
    assert_eq!(h["history"][3]["fields"]["witness"], "王五");

    // The hub's own upstream: each step of its hold once.
    wait_progress("the hub's outbox delivered", PATIENT, || {
        pending(hub.store())
    })
    .await;
    let kinds: Vec<String> = receiver
        .accepted()
        .into_iter()
        .filter(|r| {
            serde_json::from_slice::<Value>(&r.body).is_ok_and(|b| b["hold"]["id"] == h["id"])
        })
        .map(|r| r.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "sample.failed",
            "hold.confirmed",
            "hold.stop_sale",
            "hold.destroyed",
            "hold.resampled",
            "hold.closed"
        ],
        "every event the hub sent: {:?}",
        receiver
            .accepted()
            .into_iter()
            .map(|r| {
                let b = serde_json::from_slice::<Value>(&r.body).unwrap_or_default();
                format!("{} {} hold={}", r.kind, r.event_id, b["hold"]["id"])
            })
            .collect::<Vec<_>>()
    );

    // The last state again: nothing new. Another uploader's row, a bad state: rejected.
    let conn = station.store().inspect().expect("inspect");
    let last: Vec<u8> = conn
        .query_row(
            "SELECT body FROM outbox WHERE type = 'hold.state' ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("last state");
    drop(conn);
    let last: Value = serde_json::from_slice(&last).expect("json");
    let entries = count(hub.store(), "SELECT count(*) FROM hold_history");
    let v = post(
        &hub,
        "/api/v1/results/holds",
        &hub_station,
        &json!([last.clone()]),
    )
    .await;
    assert_eq!(v["results"][0]["status"], "duplicate", "{v}");
    let v = post(
        &hub,
        "/api/v1/results/holds",
        &other_station,
        &json!([last.clone()]),
    )
    .await;
    assert_eq!(v["results"][0]["status"], "rejected", "{v}");
    assert_eq!(v["results"][0]["errors"][0]["field"], "id", "{v}");
    let mut bad = last.clone();
    bad["destroyed_kg"] = json!(-3);
    bad["history"][0]["at"] = json!("yesterday");
    let v = post(
        &hub,
        "/api/v1/results/holds",
        &hub_station,
        &json!([bad, "x"]),
    )
    .await;
    let fields: Vec<&str> = v["results"][0]["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["destroyed_kg", "history[0].at"], "{v}");
    assert_eq!(v["results"][1]["status"], "rejected", "{v}");
    assert_eq!(
        count(hub.store(), "SELECT count(*) FROM hold_history"),
        entries
    );
    station.shutdown().await;
    hub.shutdown().await;
}
