//! Public exposure (`docs/exposure.md`): `/exposure` and `GET /api/v1/exposure` list the
//! confirmed failures only (a retest confirmed them; destroyed goods too), never a released
//! hold or one awaiting its retest, escape every field, and need no token.

use crate::support::{config, local8, new_token, temp_dir, TestApp};
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

/// Fail `id` in `market` at `stall` and return its hold.
async fn fail(app: &TestApp, admin: &str, id: &str, market: &str, stall: &str) -> String {
    let mut r = row(id, market, "0.5", &local8(Utc::now() - Duration::hours(3)));
    r["stall"] = json!(stall);
    let v = post(app, "/api/v1/results", admin, json!([r])).await;
    v["results"][0]["hold"]
        .as_str()
        .expect("a hold")
        .to_string()
}

async fn retest(
    app: &TestApp,
    admin: &str,
    hold: &str,
    id: &str,
    value: &str,
    method: &str,
) -> Value {
    let body = json!({"id": id, "analyte": "毒死蜱", "category": "leafy_vegetable",
        "method": method, "instrument": "IN-2", "value": value, "unit": "mg/kg",
        "measured_at": local8(Utc::now() - Duration::hours(2))});
    post(app, &format!("/api/v1/holds/{hold}/retest"), admin, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_confirmed_failures_are_exposed_escaped_and_without_a_token() {
    let dir = temp_dir("exposure");
    let app = TestApp::builder(config(&dir, &[]))
        .builtin_markets()
        .start()
        .await;
    let admin = new_token(
        app.store(),
        "st",
        Role::Station,
        &["ZB-0001", "ZB-0002", "ZB-0003", "ZB-0004", "ZB-0005"],
    )
    .await;
    post(
        &app,
        "/api/v1/samples",
        &admin,
        json!([{"sample_id": "S-x1", "market": "ZB-0005", "stall": "<b>X1</b>",
                "sample_name": "<script>alert(1)</script>菠菜", "vendor": "O'Neil & 张"}]),
    )
    .await;
    // Confirmed by a retest; released by an independent one; awaiting its retest;
    // destroyed and closed... (confirmed, then stop sale and destroy); a hostile one, confirmed.
    let confirmed = fail(&app, &admin, "c1", "ZB-0001", "A1").await;
    retest(
        &app,
        &admin,
        &confirmed,
        "c1-rt",
        "0.7",
        "spectrophotometric",
    )
    .await;
    let released = fail(&app, &admin, "r1", "ZB-0002", "B1").await;
    let v = retest(&app, &admin, &released, "r1-rt", "0.01", "gc-ms").await;
    assert_eq!(v["status"], "released", "{v}");
    fail(&app, &admin, "h1", "ZB-0003", "C1").await;
    let destroyed = fail(&app, &admin, "d1", "ZB-0004", "D1").await;
    retest(
        &app,
        &admin,
        &destroyed,
        "d1-rt",
        "0.8",
        "spectrophotometric",
    )
    .await;
    let act = format!("/api/v1/holds/{destroyed}/actions");
    post(
        &app,
        &act,
        &admin,
        json!({"action": "stop_sale", "operator": "李四"}),
    )
    .await;
    post(
        &app,
        &act,
        &admin,
        json!({"action": "destroy", "kg": 12.5, "method": "深埋", "witness": "王五"}),
    )
    .await;
    let hostile = fail(&app, &admin, "x1", "ZB-0005", "<b>X1</b>").await;
    retest(&app, &admin, &hostile, "x1-rt", "0.9", "spectrophotometric").await;

    let (s, text) = app.get("/api/v1/exposure?days=30", None).await;
    assert_eq!(s, 200, "{text}");
    let v: Value = serde_json::from_str(&text).expect("json");
    let mut markets: Vec<&str> = v["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .map(|f| f["market"].as_str().unwrap_or("?"))
        .collect();
    markets.sort();
    assert_eq!(markets, ["ZB-0001", "ZB-0004", "ZB-0005"], "{v}");
    let of = |m: &str| {
        v["failures"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["market"] == m).cloned())
            .expect(m)
    };
    assert_eq!(
        of("ZB-0004")["handling_zh"],
        "已销毁 12.5 公斤，待复抽",
        "{v}"
    );
    assert_eq!(of("ZB-0001")["item"], "毒死蜱");
    assert_eq!(of("ZB-0001")["value"], "0.5");
    assert_eq!(of("ZB-0005")["vendor"], "O'Neil & 张");
    assert!(
        v["failures"][0]["tested_at"].as_str() >= v["failures"][2]["tested_at"].as_str(),
        "newest first"
    );

    let (s, page) = app.get("/exposure", None).await;
    assert_eq!(s, 200);
    assert!(page.contains("公开曝光") && page.contains("lang=\"zh-CN\""));
    for m in ["ZB-0001", "ZB-0004", "ZB-0005"] {
        assert!(page.contains(m), "{m}");
    }
    for m in ["ZB-0002", "ZB-0003"] {
        assert!(!page.contains(m), "{m} is not a confirmed failure");
    }
    assert!(
        !page.contains("<script>alert") && !page.contains("<b>X1"),
        "escaped"
    );
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;菠菜"),
        "escaped commodity"
    );
    assert!(page.contains("&lt;b&gt;X1&lt;/b&gt;"));
    assert!(page.contains("O&#39;Neil &amp; 张") || page.contains("O'Neil &amp; 张"));

    let (s, _) = app.get("/api/v1/exposure?days=0", None).await;
    assert_eq!(s, 400);
    let (s, _) = app.get("/exposure?days=abc", None).await;
    assert_eq!(s, 400);
    app.shutdown().await;
}
