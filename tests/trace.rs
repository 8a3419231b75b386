//! Traceability across markets (`docs/trace.md`): a failure of a certificate sampled in three
//! markets puts `traced` holds on the other two, each with one `sample.traced` upstream; a
//! pass of one releases just that one. Without a certificate, the supplier's samples of the
//! same commodity within `trace_days` are the batch, and a sample that passed within a day
//! of the failure, one of another commodity or one sampled too long before are not held.
//! `GET /api/v1/trace` shows a batch to regulators only.

use crate::support::{
    config, local8, new_token, temp_dir, wait_progress, Action, Receiver, TestApp, PATIENT,
};
use crate::web::row;
use chrono::{Duration, Utc};
use foodgate::auth::Role;
use serde_json::{json, Value};

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> Value {
    let (s, text) = app
        .post(
            path,
            Some(token),
            "application/json",
            body.to_string().as_bytes(),
        )
        .await;
    assert_eq!(s, 200, "{path}: {text}");
    serde_json::from_str(&text).expect("json")
}

/// A sample registration: id `S-<id>` in `market`, of `name` from `supplier`.
fn sample(
    id: &str,
    market: &str,
    name: &str,
    supplier: &str,
    cert: Option<&str>,
    at: &str,
) -> Value {
    json!({"sample_id": format!("S-{id}"), "market": market, "stall": format!("T-{id}"),
           "sample_name": name, "category": "leafy_vegetable", "vendor": "王五",
           "supplier": supplier, "certificate_no": cert, "sampled_at": at})
}

/// A reading of sample `S-<id>`: 0.5 mg/kg chlorpyrifos fails, 0.01 passes.
fn reading(id: &str, market: &str, name: &str, value: &str, at: &str) -> Value {
    let mut r = row(id, market, value, at);
    r["stall"] = json!(format!("T-{id}"));
    r["sample_name"] = json!(name);
    r
}

/// The batch as the trace API lists it: (market, [hold statuses]) per sample.
async fn batch(app: &TestApp, token: &str, query: &str) -> (Value, Vec<(String, Vec<String>)>) {
    let (s, text) = app
        .get(&format!("/api/v1/trace?{query}"), Some(token))
        .await;
    assert_eq!(s, 200, "{text}");
    let v: Value = serde_json::from_str(&text).expect("json");
    let mut rows: Vec<(String, Vec<String>)> = v["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .map(|s| {
            let holds = s["holds"]
                .as_array()
                .expect("holds")
                .iter()
                .map(|h| h["status"].as_str().unwrap_or("?").to_string())
                .collect();
            (s["market"].as_str().unwrap_or("?").to_string(), holds)
        })
        .collect();
    rows.sort();
    (v, rows)
}

fn traced_events(receiver: &Receiver) -> Vec<Value> {
    receiver
        .accepted()
        .into_iter()
        .filter(|r| r.kind == "sample.traced")
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_is_held_in_every_other_market_until_each_sample_passes() {
    let receiver = Receiver::start(|_, _| Action::Status(200)).await;
    let dir = temp_dir("trace");
    let app = TestApp::builder(config(&dir, &[("block", &receiver.url(), "failures")]))
        .builtin_markets()
        .start()
        .await;
    let admin = new_token(app.store(), "admin", Role::Admin, &[]).await;
    let reg = new_token(app.store(), "reg", Role::Regulator, &[]).await;
    let st = new_token(app.store(), "st", Role::Station, &["ZB-0001"]).await;
    let now = Utc::now();
    let ago = |h: i64| local8(now - Duration::hours(h));

    // Certificate HG-7 in three markets; a failure in the first.
    let v = post(
        &app,
        "/api/v1/samples",
        &admin,
        json!([
            sample("a", "ZB-0001", "菠菜", "绿源农场", Some("HG-7"), &ago(5)),
            sample("b", "ZB-0002", "菠菜", "绿源农场", Some("HG-7"), &ago(5)),
            sample("c", "ZB-0003", "菠菜", "绿源农场", Some("HG-7"), &ago(5)),
        ]),
    )
    .await;
    assert!(
        v["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["status"] == "stored"),
        "{v}"
    );
    let v = post(
        &app,
        "/api/v1/results",
        &admin,
        json!([reading("a", "ZB-0001", "菠菜", "0.5", &ago(1))]),
    )
    .await;
    assert_eq!(v["results"][0]["verdict"], "fail", "{v}");
    let (listed, rows) = batch(&app, &reg, "certificate_no=HG-7").await;
    assert_eq!(
        rows,
        [
            ("ZB-0001".to_string(), vec!["held".to_string()]),
            ("ZB-0002".into(), vec!["traced".into()]),
            ("ZB-0003".into(), vec!["traced".into()]),
        ],
        "{listed}"
    );
    let failed_id = listed["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .find(|s| s["market"] == "ZB-0001")
        .and_then(|s| s["readings"][0]["id"].as_str())
        .expect("the failure's id")
        .to_string();
    for s in listed["samples"].as_array().expect("samples") {
        if s["market"] != "ZB-0001" {
            assert_eq!(s["holds"][0]["traced_from"], failed_id.as_str(), "{s}");
            assert!(s["readings"].as_array().is_some_and(|r| r.is_empty()));
        }
    }

    // One sample.traced per traced hold, naming the failure.
    wait_progress("the events delivered", PATIENT, || {
        2u64.saturating_sub(traced_events(&receiver).len() as u64)
    })
    .await;
    let traced = traced_events(&receiver);
    let mut markets: Vec<&str> = traced
        .iter()
        .map(|e| e["market"].as_str().unwrap_or("?"))
        .collect();
    markets.sort();
    assert_eq!(markets, ["ZB-0002", "ZB-0003"]);
    for e in &traced {
        assert_eq!(e["traced_from"]["reading"], failed_id.as_str(), "{e}");
        assert_eq!(e["traced_from"]["market"], "ZB-0001");
        assert_eq!(e["hold"]["status"], "traced");
        assert_eq!(e["sample"]["certificate_no"], "HG-7");
    }

    // A pass in the second market releases that hold only.
    post(
        &app,
        "/api/v1/results",
        &admin,
        json!([reading("b", "ZB-0002", "菠菜", "0.01", &ago(0))]),
    )
    .await;
    let (_, rows) = batch(&app, &reg, "certificate_no=HG-7").await;
    assert_eq!(
        rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
        [
            vec!["held".to_string()],
            vec!["released".into()],
            vec!["traced".into()]
        ]
    );
    let b_hold = traced
        .iter()
        .find(|e| e["market"] == "ZB-0002")
        .and_then(|e| e["hold"]["id"].as_str())
        .expect("b's hold")
        .to_string();
    wait_progress("the release delivered", PATIENT, || {
        u64::from(!receiver.accepted().iter().any(|r| {
            r.kind == "hold.released" && String::from_utf8_lossy(&r.body).contains(&b_hold)
        }))
    })
    .await;
    // The holds list has the traced one left, and its market's testers see it.
    let (s, text) = app.get("/api/v1/holds?status=traced", Some(&reg)).await;
    assert_eq!(s, 200, "{text}");
    let v: Value = serde_json::from_str(&text).expect("json");
    let traced_now: Vec<&str> = v["holds"]
        .as_array()
        .expect("holds")
        .iter()
        .map(|h| h["market"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(traced_now, ["ZB-0003"], "{v}");
    let tester = new_token(app.store(), "st3", Role::Station, &["ZB-0003"]).await;
    let sid = crate::web::session(app.addr(), &tester).await;
    let cookie = format!("fg_session={sid}");
    let page =
        crate::web::request(app.addr(), "GET", "/station", &[("Cookie", &cookie)], b"").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("追溯待检"), "{}", page.text());

    // A traced hold's stall is its sample's; a retest on it is a test of its sample.
    let c_hold = v["holds"][0]["id"].as_str().expect("c's hold").to_string();
    let (s, text) = crate::support::http(
        app.addr(),
        "PATCH",
        &format!("/api/v1/holds/{c_hold}"),
        Some(&tester),
        Some("application/json"),
        br#"{"stall": "Z9"}"#,
    )
    .await;
    assert_eq!(s, 409, "{text}");
    let v = post(
        &app,
        &format!("/api/v1/holds/{c_hold}/retest"),
        &tester,
        json!({"id": "c-rt", "analyte": "毒死蜱", "category": "leafy_vegetable",
               "method": "spectrophotometric", "instrument": "IN-3", "value": "0.01",
               "unit": "mg/kg", "measured_at": ago(0)}),
    )
    .await;
    assert_eq!(v["status"], "released", "{v}");

    // The same failure stored again traces nothing twice.
    post(
        &app,
        "/api/v1/results",
        &admin,
        json!([reading("a", "ZB-0001", "菠菜", "0.5", &ago(1))]),
    )
    .await;
    let (_, rows) = batch(&app, &reg, "certificate_no=HG-7").await;
    assert_eq!(
        rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
        [
            vec!["held".to_string()],
            vec!["released".into()],
            vec!["released".into()]
        ]
    );

    // A sample of the batch registered after the failure is held too.
    post(
        &app,
        "/api/v1/samples",
        &admin,
        json!([sample(
            "j",
            "ZB-0010",
            "菠菜",
            "绿源农场",
            Some("HG-7"),
            &ago(0)
        )]),
    )
    .await;
    let (_, rows) = batch(&app, &reg, "certificate_no=HG-7").await;
    assert_eq!(rows.len(), 4);
    assert!(
        rows.contains(&("ZB-0010".to_string(), vec!["traced".to_string()])),
        "{rows:?}"
    );
    // A failure whose certificate is registered afterwards traces its batch then.
    post(
        &app,
        "/api/v1/samples",
        &admin,
        json!([sample(
            "n",
            "ZB-0012",
            "芹菜",
            "白云农场",
            Some("HG-9"),
            &ago(3)
        )]),
    )
    .await;
    let mut late = reading("m", "ZB-0011", "芹菜", "0.5", &ago(1));
    late["sample_id"] = json!("S-m");
    post(&app, "/api/v1/results", &admin, json!([late])).await;
    assert!(batch(&app, &reg, "certificate_no=HG-9")
        .await
        .1
        .iter()
        .all(|r| r.1.is_empty()));
    post(
        &app,
        "/api/v1/samples",
        &admin,
        json!([sample(
            "m",
            "ZB-0011",
            "芹菜",
            "白云农场",
            Some("HG-9"),
            &ago(3)
        )]),
    )
    .await;
    let (_, rows) = batch(&app, &reg, "certificate_no=HG-9").await;
    assert_eq!(
        rows,
        [
            ("ZB-0011".to_string(), vec!["held".to_string()]),
            ("ZB-0012".into(), vec!["traced".into()]),
        ]
    );

    // Without a certificate: the supplier's 菠菜 within 7 days, not passed within a day.
    post(
        &app,
        "/api/v1/samples",
        &admin,
        json!([
            sample("d", "ZB-0004", "菠菜", "青山蔬菜", None, &ago(48)),
            sample("e", "ZB-0005", "菠菜", "青山蔬菜", None, &ago(24 * 10)),
            sample("f", "ZB-0006", "芹菜", "青山蔬菜", None, &ago(48)),
            sample("g", "ZB-0007", "菠菜", "青山蔬菜", None, &ago(72)),
            sample("h", "ZB-0008", "菠菜", "青山蔬菜", None, &ago(24)),
            sample("i", "ZB-0009", "菠菜", "青山蔬菜", None, &ago(2)),
        ]),
    )
    .await;
    post(
        &app,
        "/api/v1/results",
        &admin,
        json!([
            reading("g", "ZB-0007", "菠菜", "0.01", &ago(72)),
            reading("h", "ZB-0008", "菠菜", "0.01", &ago(2)),
        ]),
    )
    .await;
    post(
        &app,
        "/api/v1/results",
        &admin,
        json!([reading("i", "ZB-0009", "菠菜", "0.5", &ago(1))]),
    )
    .await;
    let (listed, rows) = batch(&app, &reg, "supplier=青山蔬菜").await;
    let held: Vec<(&str, Vec<String>)> =
        rows.iter().map(|(m, h)| (m.as_str(), h.clone())).collect();
    assert_eq!(
        held,
        [
            ("ZB-0004", vec!["traced".to_string()]),
            ("ZB-0005", vec![]),
            ("ZB-0006", vec![]),
            ("ZB-0007", vec!["traced".into()]),
            ("ZB-0008", vec![]),
            ("ZB-0009", vec!["held".into()]),
        ],
        "{listed}"
    );

    // Regulators and admins only; a query names its field.
    let (s, _) = app
        .get("/api/v1/trace?certificate_no=HG-7", Some(&st))
        .await;
    assert_eq!(s, 403);
    let (s, text) = app.get("/api/v1/trace", Some(&reg)).await;
    assert_eq!(s, 400, "{text}");
    assert!(text.contains("certificate_no"), "{text}");
    let (s, text) = app
        .get("/api/v1/trace?certificate_no=HG-7&supplier=x", Some(&reg))
        .await;
    assert_eq!(s, 400, "{text}");
    app.shutdown().await;
}
