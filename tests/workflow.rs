//! The positive workflow through the API of the whole service, with a real upstream receiver:
//! fail → retest positive → stop sale → lab sent → lab positive → destroy 12.5 kg → re-sample
//! passes → close. Each step is in the hold's history and reaches the upstream as its own
//! event exactly once; an action out of order is refused and changes nothing. And the
//! deadline: a confirmed failure older than `resample_days` with no passing re-sample is
//! overdue (listed, counted, reported upstream once, also across restarts).

use crate::support::{config, temp_dir, wait_progress, Action, Receiver, TestApp};
use crate::web::row;
use chrono::{Duration, FixedOffset, Utc};
use foodgate::auth::{self, NewToken, Role};
use foodgate::store::Store;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

const STALL: StdDuration = StdDuration::from_secs(60);

fn create_token(store: &Store, name: &str, role: Role, markets: &[&str]) -> String {
    let new = NewToken {
        name: name.into(),
        role,
        markets: markets.iter().map(|m| m.to_string()).collect(),
        expires_days: None,
    };
    let store = store.clone();
    std::thread::spawn(move || store.write(move |tx| Ok(auth::create(tx, &new, "test"))))
        .join()
        .expect("token thread")
        .expect("write")
        .expect("create token")
}

/// Tokens made before the service starts: name → token.
type Tokens = std::sync::Arc<std::sync::Mutex<BTreeMap<&'static str, String>>>;

async fn start(cfg: foodgate::config::Config, tokens: &Tokens) -> TestApp {
    let t = tokens.clone();
    let fresh = tokens.lock().unwrap().is_empty();
    let mut b = TestApp::builder(cfg);
    if fresh {
        b = b.builtin_markets().before_start(move |store| {
            let mut t = t.lock().unwrap();
            t.insert(
                "st1",
                create_token(store, "st1", Role::Station, &["ZB-0001"]),
            );
            t.insert(
                "st2",
                create_token(store, "st2", Role::Station, &["ZB-0002"]),
            );
            t.insert("reg", create_token(store, "reg", Role::Regulator, &[]));
        });
    }
    b.start().await
}

fn local(t: chrono::DateTime<Utc>) -> String {
    t.with_timezone(&FixedOffset::east_opt(8 * 3600).expect("offset"))
        .to_rfc3339()
}

async fn post(app: &TestApp, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let (status, text) = app
        .post(
            path,
            Some(token),
            "application/json",
            body.to_string().as_bytes(),
        )
        .await;
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {text}: {e}"));
    (status, v)
}

async fn get(app: &TestApp, path: &str, token: &str) -> Value {
    let (status, text) = app.get(path, Some(token)).await;
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).expect("json")
}

/// Upload one row (see `web::row`); the hold its failure opened, if it did.
async fn upload(app: &TestApp, token: &str, row: Value) -> Option<String> {
    let (status, v) = post(app, "/api/v1/results", token, &json!([row])).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["results"][0]["status"], "stored", "{v}");
    v["results"][0]["hold"].as_str().map(str::to_string)
}

/// A retest of the failure at `at` on the same instrument and method: positive at 0.7.
fn retest(id: &str, value: &str, at: &str) -> Value {
    json!({"id": id, "analyte": "毒死蜱", "category": "leafy_vegetable",
           "method": "spectrophotometric", "instrument": "IN-1", "value": value,
           "unit": "mg/kg", "measured_at": at})
}

/// The hold as the API shows it.
async fn hold(app: &TestApp, token: &str, id: &str) -> Value {
    let v = get(app, "/api/v1/holds", token).await;
    v["holds"]
        .as_array()
        .expect("holds")
        .iter()
        .find(|h| h["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("hold {id} not listed: {v}"))
}

/// The types of the events queued for `hold`, in order.
fn queued(app: &TestApp, hold: &str) -> Vec<String> {
    let conn = app.store().inspect().expect("inspect");
    let mut stmt = conn
        .prepare("SELECT type FROM outbox WHERE hold = ?1 ORDER BY id")
        .expect("prepare");
    let v = stmt
        .query_map([hold], |r| r.get(0))
        .expect("query")
        .collect::<Result<Vec<String>, _>>()
        .expect("rows");
    v
}

fn pending(app: &TestApp) -> u64 {
    let conn = app.store().inspect().expect("inspect");
    conn.query_row(
        "SELECT count(*) FROM outbox WHERE status = 'pending'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .expect("count") as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_goes_from_hold_to_destroyed_goods_and_a_passing_resample_each_step_once() {
    let receiver = Receiver::start(|_, _| Action::Status(200)).await;
    let dir = temp_dir("workflow-path");
    let cfg = config(&dir, &[("block", &receiver.url(), "failures")]);
    let tokens = Tokens::default();
    let app = start(cfg, &tokens).await;
    let (st1, st2, reg) = {
        let t = tokens.lock().unwrap();
        (t["st1"].clone(), t["st2"].clone(), t["reg"].clone())
    };
    let now = Utc::now();
    let failed_at = local(now - Duration::hours(3));
    let hold_id = upload(&app, &st1, row("w1", "ZB-0001", "0.5", &failed_at))
        .await
        .expect("a failure opens a hold");
    let actions = format!("/api/v1/holds/{hold_id}/actions");

    // Refused, and nothing changes: the answer, then the hold and its events are as before.
    let refused = |body: Value, status: u16, field: Option<&'static str>| {
        let (app, st1, actions, hold_id) = (&app, &st1, &actions, &hold_id);
        async move {
            let before = hold(app, st1, hold_id).await;
            let events = queued(app, hold_id);
            let (s, v) = post(app, actions, st1, &body).await;
            assert_eq!(s, status, "{body} → {v}");
            assert!(!v["error"].as_str().unwrap_or("").is_empty(), "{v}");
            if let Some(f) = field {
                assert_eq!(v["field"], f, "{body} → {v}");
            }
            assert_eq!(
                hold(app, st1, hold_id).await,
                before,
                "{body} changed the hold"
            );
            assert_eq!(queued(app, hold_id), events, "{body} queued an event");
        }
    };
    // Before the retest confirmed it, nothing of the positive path is allowed.
    let h = hold(&app, &st1, &hold_id).await;
    assert_eq!(h["status"], "held");
    assert_eq!(h["actions"], json!([]));
    refused(
        json!({"action": "destroy", "kg": 12.5, "method": "深埋", "witness": "王五"}),
        409,
        None,
    )
    .await;
    refused(
        json!({"action": "stop_sale", "operator": "李四"}),
        409,
        None,
    )
    .await;
    refused(json!({"action": "close"}), 409, None).await;

    // Retest positive: confirmed.
    let (s, v) = post(
        &app,
        &format!("/api/v1/holds/{hold_id}/retest"),
        &st1,
        &retest("w1-rt", "0.7", &local(now - Duration::hours(2))),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "confirmed", "{v}");
    assert_eq!(v["actions"], json!(["stop_sale", "resample"]));

    // Out of order, malformed, or not this token's: refused.
    refused(
        json!({"action": "destroy", "kg": 12.5, "method": "深埋", "witness": "王五"}),
        409,
        None,
    )
    .await;
    refused(json!({"action": "close"}), 409, None).await;
    refused(json!({"action": "stop_sale"}), 400, Some("operator")).await;
    refused(json!({"action": "burn"}), 400, Some("action")).await;
    refused(
        json!({"action": "stop_sale", "operator": "李四", "at": local(now + Duration::hours(1))}),
        422,
        Some("at"),
    )
    .await;
    for token in [&st2, &reg] {
        let (s, v) = post(
            &app,
            &actions,
            token,
            &json!({"action": "stop_sale", "operator": "x"}),
        )
        .await;
        assert_eq!(s, 403, "{v}");
    }

    // The path, step by step.
    let steps: [(Value, &str); 4] = [
        (
            json!({"action": "stop_sale", "operator": "李四"}),
            "stopped",
        ),
        (
            json!({"action": "lab_sent", "lab": "市食品检验所", "lab_sample_no": "L-2026-117"}),
            "lab",
        ),
        (
            json!({"action": "lab_result", "result": "positive", "reference": "R-9"}),
            "stopped",
        ),
        (
            json!({"action": "destroy", "kg": "12.5", "method": "深埋", "witness": "王五"}),
            "destroyed",
        ),
    ];
    for (i, (body, status)) in steps.iter().enumerate() {
        if i == 3 {
            refused(
                json!({"action": "destroy", "kg": -1, "method": "深埋", "witness": "王五"}),
                400,
                Some("kg"),
            )
            .await;
        }
        let (s, v) = post(&app, &actions, &st1, body).await;
        assert_eq!(s, 200, "{body} → {v}");
        assert_eq!(v["status"], *status, "{body} → {v}");
    }
    let h = hold(&app, &st1, &hold_id).await;
    assert_eq!(h["destroyed_kg"], json!(12.5));
    assert_eq!(
        h["actions"],
        json!(["resample"]),
        "closing needs the re-sample"
    );
    refused(json!({"action": "close"}), 409, None).await;

    // The re-sample: of another stall refused, of the stall and commodity accepted.
    let later = local(now - Duration::minutes(30));
    let mut other = row("w2", "ZB-0001", "0.01", &later);
    other["stall"] = json!("B3");
    upload(&app, &st1, other).await;
    upload(&app, &st1, row("w3", "ZB-0001", "0.01", &later)).await;
    let results = get(&app, "/api/v1/results?market=ZB-0001", &st1).await;
    let id_of = |sample: &str| -> String {
        results["results"]
            .as_array()
            .expect("results")
            .iter()
            .find(|r| r["sample_id"] == sample)
            .and_then(|r| r["id"].as_str())
            .unwrap_or_else(|| panic!("no reading of {sample}: {results}"))
            .to_string()
    };
    let (b3, a12) = (id_of("S-w2"), id_of("S-w3"));
    refused(
        json!({"action": "resample", "reading": b3}),
        422,
        Some("reading"),
    )
    .await;
    refused(
        json!({"action": "resample", "reading": "no-such-reading"}),
        422,
        Some("reading"),
    )
    .await;
    let (s, v) = post(
        &app,
        &actions,
        &st1,
        &json!({"action": "resample", "reading": a12}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "destroyed");
    assert_eq!(v["resample_reading"], json!(a12));
    assert_eq!(v["actions"], json!(["close"]));
    let (s, v) = post(
        &app,
        &actions,
        &st1,
        &json!({"action": "close", "note": "结案"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "closed");
    assert_eq!(v["actions"], json!([]));
    refused(json!({"action": "close"}), 409, None).await;

    // Every step in the history, by the station's token, with its fields.
    let history = v["history"].as_array().expect("history");
    let seen: Vec<(&str, &str)> = history
        .iter()
        .map(|e| {
            (
                e["status"].as_str().unwrap_or("?"),
                e["action"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("held", "-"),
            ("confirmed", "-"),
            ("stopped", "stop_sale"),
            ("lab", "lab_sent"),
            ("stopped", "lab_result"),
            ("destroyed", "destroy"),
            ("destroyed", "resample"),
            ("closed", "close"),
        ],
        "{v}"
    );
    for e in &history[2..] {
        assert_eq!(e["by"], "st1", "{e}");
        assert!(e["fields"]["at"].is_string(), "{e}");
    }
    assert_eq!(history[2]["fields"]["operator"], "李四");
    assert_eq!(history[3]["fields"]["lab_sample_no"], "L-2026-117");
    assert_eq!(history[4]["fields"]["result"], "positive");
    assert_eq!(history[5]["fields"]["kg"], json!(12.5));
    assert_eq!(history[5]["fields"]["witness"], "王五");
    assert_eq!(history[6]["fields"]["reading"], json!(a12));
    assert_eq!(history[7]["fields"]["note"], "结案");

    // Upstream: each step one event, delivered once, in order, signed, about this hold.
    let expected = [
        "sample.failed",
        "hold.confirmed",
        "hold.stop_sale",
        "hold.lab_sent",
        "hold.lab_result",
        "hold.destroyed",
        "hold.resampled",
        "hold.closed",
    ];
    assert_eq!(queued(&app, &hold_id), expected);
    wait_progress("events delivered", STALL, || pending(&app)).await;
    let got = receiver.accepted();
    let kinds: Vec<&str> = got.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds, expected,
        "passing re-samples send nothing (send = failures)"
    );
    let mut ids: Vec<&str> = got.iter().map(|r| r.event_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), expected.len(), "one event id per step");
    for r in &got {
        assert!(r.signature_ok, "{}", r.kind);
        let body: Value = serde_json::from_slice(&r.body).expect("event json");
        assert_eq!(body["hold"]["id"], hold_id.as_str(), "{}", r.kind);
        assert_eq!(body["market"], "ZB-0001");
    }
    let destroyed: Value = serde_json::from_slice(&got[5].body).expect("json");
    assert_eq!(destroyed["hold"]["status"], "destroyed");
    let last = destroyed["hold"]["history"]
        .as_array()
        .and_then(|h| h.last().cloned())
        .expect("history in the event");
    assert_eq!(last["fields"]["kg"], json!(12.5), "{destroyed}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_failure_without_a_resample_in_time_is_overdue_and_reported_once() {
    let receiver = Receiver::start(|_, _| Action::Status(200)).await;
    let dir = temp_dir("workflow-overdue");
    let cfg = config(&dir, &[("block", &receiver.url(), "failures")]);
    assert_eq!(cfg.resample_days, 3, "the default");
    let tokens = Tokens::default();
    let app = start(cfg.clone(), &tokens).await;
    let st1 = tokens.lock().unwrap()["st1"].clone();
    let reg = tokens.lock().unwrap()["reg"].clone();
    let now = Utc::now();
    // Failed 4 days ago and confirmed: overdue. Failed 1 day ago and confirmed: not yet.
    // Failed 4 days ago, not confirmed (still held): not on the path, not overdue.
    let mut confirmed = Vec::new();
    for (id, days) in [("old", 4), ("new", 1)] {
        let at = now - Duration::days(days);
        let h = upload(&app, &st1, row(id, "ZB-0001", "0.5", &local(at)))
            .await
            .expect("hold");
        let (s, v) = post(
            &app,
            &format!("/api/v1/holds/{h}/retest"),
            &st1,
            &retest(&format!("{id}-rt"), "0.7", &local(at + Duration::hours(1))),
        )
        .await;
        assert_eq!((s, v["status"].as_str()), (200, Some("confirmed")), "{v}");
        confirmed.push(h);
    }
    let held = upload(
        &app,
        &st1,
        row("held", "ZB-0001", "0.5", &local(now - Duration::days(4))),
    )
    .await
    .expect("hold");
    let overdue = get(&app, "/api/v1/holds?overdue=true", &reg).await;
    let listed: Vec<&str> = overdue["holds"]
        .as_array()
        .expect("holds")
        .iter()
        .filter_map(|h| h["id"].as_str())
        .collect();
    assert_eq!(listed, [confirmed[0].as_str()], "{overdue}");
    assert_ne!(listed[0], held);
    let (s, metrics) = app.get("/metrics", Some(&reg)).await;
    assert_eq!(s, 200);
    assert!(
        metrics.lines().any(|l| l == "foodgate_holds_overdue 1"),
        "{metrics}"
    );
    let (s, v) = app.get("/api/v1/holds?overdue=maybe", Some(&reg)).await;
    assert_eq!(s, 400, "{v}");
    // The dashboard lists it, and only it, as overdue.
    let sid = crate::web::session(app.addr(), &reg).await;
    let cookie = format!("fg_session={sid}");
    let page = crate::web::request(app.addr(), "GET", "/dashboard", &[("Cookie", &cookie)], b"")
        .await
        .text();
    let section = page
        .split("<section id=\"overdue\">")
        .nth(1)
        .and_then(|s| s.split("</section>").next())
        .unwrap_or_else(|| panic!("no overdue section: {page}"));
    assert_eq!(
        section.matches("<tr>").count(),
        2,
        "a header and one hold: {section}"
    );
    assert!(
        section.contains("ZB-0001") && section.contains("A12"),
        "{section}"
    );
    assert!(
        page.contains("id=\"overdue-holds\"><span class=\"n\">1</span>"),
        "{page}"
    );

    // The deadline pass runs when the service starts (and every minute): restart twice.
    app.shutdown().await;
    for _ in 0..2 {
        let app = start(cfg.clone(), &tokens).await;
        let pending_overdue = || {
            let conn = app.store().inspect().expect("inspect");
            conn.query_row(
                "SELECT count(*) FROM holds WHERE overdue_at IS NULL AND id = ?1",
                [&confirmed[0]],
                |r| r.get::<_, i64>(0),
            )
            .expect("count") as u64
        };
        wait_progress("the deadline pass", STALL, pending_overdue).await;
        wait_progress("events delivered", STALL, || pending(&app)).await;
        let h = hold(&app, &reg, &confirmed[0]).await;
        assert!(h["overdue_at"].is_string(), "{h}");
        let marks = h["history"]
            .as_array()
            .expect("history")
            .iter()
            .filter(|e| e["action"] == "overdue")
            .count();
        assert_eq!(marks, 1, "{h}");
        assert_eq!(
            hold(&app, &reg, &confirmed[1]).await["overdue_at"],
            Value::Null
        );
        app.shutdown().await;
    }
    let overdue: Vec<_> = receiver
        .accepted()
        .into_iter()
        .filter(|r| r.kind == "hold.overdue")
        .collect();
    assert_eq!(overdue.len(), 1, "one hold.overdue, once");
    let body: Value = serde_json::from_slice(&overdue[0].body).expect("json");
    assert_eq!(body["hold"]["id"], confirmed[0].as_str());
    assert_eq!(body["hold"]["status"], "confirmed");
}
