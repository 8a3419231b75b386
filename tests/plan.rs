//! The daily sampling plan (`docs/plan.md`): the same on every call, the quota's size, every
//! high-risk stall in it, and coverage counting it done as readings arrive.

use crate::support::{config, local8, new_token, temp_dir, TestApp};
use crate::web::row;
use chrono::{Duration, Utc};
use foodgate::auth::Role;
use serde_json::{json, Value};

const MARKET: &str = "ZB-0001";

/// A test of `stall` `days` ago (received then too): 0.5 fails, 0.01 passes.
fn test(n: usize, stall: &str, days: i64, fail: bool) -> Value {
    let at = local8(Utc::now() - Duration::days(days) - Duration::minutes(n as i64));
    let mut r = row(
        &format!("h{n}"),
        MARKET,
        if fail { "0.5" } else { "0.01" },
        &at,
    );
    r["stall"] = json!(stall);
    r["received_at"] = json!(at);
    r
}

async fn upload(app: &TestApp, token: &str, rows: Vec<Value>) {
    let (s, text) = app
        .post(
            "/api/v1/results",
            Some(token),
            "application/json",
            Value::Array(rows).to_string().as_bytes(),
        )
        .await;
    assert_eq!(s, 200, "{text}");
}

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let (s, text) = app.get(path, Some(token)).await;
    (
        s,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn pairs(plan: &Value) -> Vec<(String, String)> {
    plan["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["stall"].as_str().unwrap_or("?").into(),
                e["grade"].as_str().unwrap_or("?").into(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_days_plan_is_fixed_sized_by_quota_holds_high_risk_stalls_and_counts_done() {
    let dir = temp_dir("plan");
    let app = TestApp::builder(config(&dir, &[]))
        .builtin_markets()
        .start()
        .await;
    let admin = new_token(app.store(), "admin", Role::Admin, &[]).await;
    let reg = new_token(app.store(), "reg", Role::Regulator, &[]).await;
    let st = new_token(app.store(), "st", Role::Station, &[MARKET]).await;
    let other = new_token(app.store(), "st2", Role::Station, &["ZB-0002"]).await;
    let quota: i64 = app
        .store()
        .inspect()
        .expect("inspect")
        .query_row("SELECT quota FROM markets WHERE code = ?1", [MARKET], |r| {
            r.get(0)
        })
        .expect("quota");
    assert_eq!(quota, 10);

    // 30 stalls tested over the last weeks: S01 and S02 failed twice (high), S03–S05 once
    // 40 days ago (medium), the rest passed.
    let mut rows = Vec::new();
    for i in 1..=30 {
        let stall = format!("S{i:02}");
        match i {
            1 | 2 => {
                rows.push(test(rows.len(), &stall, 5, true));
                rows.push(test(rows.len(), &stall, 12, true));
            }
            3..=5 => rows.push(test(rows.len(), &stall, 40, true)),
            _ => rows.push(test(rows.len(), &stall, 3 + i as i64 % 20, false)),
        }
    }
    upload(&app, &admin, rows).await;

    let (s, plan) = get(&app, &st, &format!("/api/v1/plan?market={MARKET}")).await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(plan["fixed"], true);
    assert_eq!(plan["candidates"], 30, "{plan}");
    let drawn = pairs(&plan);
    assert_eq!(drawn.len(), 10, "{plan}");
    for high in ["S01", "S02"] {
        assert!(
            drawn.contains(&(high.to_string(), "high".to_string())),
            "{high}: {plan}"
        );
    }
    assert_eq!(
        drawn.iter().filter(|p| p.1 == "high").count(),
        2,
        "no other stall is high: {plan}"
    );
    assert_eq!(plan["seed"].as_str().map(str::len), Some(16));
    // The same on every call, and for every caller.
    let (_, again) = get(&app, &reg, &format!("/api/v1/plan?market={MARKET}")).await;
    assert_eq!(again, plan);
    // Another day draws again (a preview for tomorrow, kept for a past day).
    let tomorrow = (Utc::now() + Duration::days(2))
        .format("%Y-%m-%d")
        .to_string();
    let (_, later) = get(
        &app,
        &reg,
        &format!("/api/v1/plan?market={MARKET}&date={tomorrow}"),
    )
    .await;
    assert_eq!(later["fixed"], false);
    assert_eq!(pairs(&later).len(), 10);
    assert_ne!(pairs(&later), drawn, "another day, another draw");

    // Coverage counts the plan done as readings of its stalls and categories arrive.
    let progress = |c: &Value| -> (Value, Value) {
        let m = c["markets"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["market"] == MARKET).cloned())
            .expect("market");
        (m["plan_total"].clone(), m["plan_done"].clone())
    };
    let (_, cov) = get(&app, &reg, "/api/v1/coverage").await;
    assert_eq!(progress(&cov), (json!(10), json!(0)));
    let (_, cov2) = get(&app, &reg, "/api/v1/coverage").await;
    let m2 = cov2["markets"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["market"] == "ZB-0002").cloned())
        .expect("m2");
    assert!(m2["plan_total"].is_null(), "no plan drawn there");
    let planned: Vec<String> = drawn.iter().map(|p| p.0.clone()).collect();
    let outside = (1..=30)
        .map(|i| format!("S{i:02}"))
        .find(|s| !planned.contains(s))
        .expect("a stall outside the plan");
    let now = local8(Utc::now());
    let mut today = Vec::new();
    for (n, stall) in [&planned[0], &planned[1], &outside].into_iter().enumerate() {
        let mut r = row(&format!("t{n}"), MARKET, "0.01", &now);
        r["stall"] = json!(stall);
        today.push(r);
    }
    upload(&app, &st, today).await;
    let (_, cov) = get(&app, &reg, "/api/v1/coverage").await;
    assert_eq!(progress(&cov), (json!(10), json!(2)));
    let (_, after) = get(&app, &st, &format!("/api/v1/plan?market={MARKET}")).await;
    assert_eq!(
        pairs(&after),
        drawn,
        "today's readings do not change today's plan"
    );
    let done: Vec<bool> = after["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["done"].as_bool().unwrap_or(false))
        .collect();
    assert_eq!(done.iter().filter(|d| **d).count(), 2);

    // The tester's page and the dashboard show it.
    let st_sid = crate::web::session(app.addr(), &st).await;
    let cookie = format!("fg_session={st_sid}");
    let page =
        crate::web::request(app.addr(), "GET", "/station", &[("Cookie", &cookie)], b"").await;
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(
        text.contains("id=\"plan\"") && text.contains("(2 / 10)"),
        "{text}"
    );
    assert!(text.contains(&format!("✓ {}", planned[0])), "{text}");
    let reg_sid = crate::web::session(app.addr(), &reg).await;
    let cookie = format!("fg_session={reg_sid}");
    let page =
        crate::web::request(app.addr(), "GET", "/dashboard", &[("Cookie", &cookie)], b"").await;
    let text = page.text();
    assert!(
        text.contains("Plan done") && text.contains("2 / 10"),
        "{text}"
    );

    // Scope and errors.
    let (s, _) = get(&app, &other, &format!("/api/v1/plan?market={MARKET}")).await;
    assert_eq!(s, 403);
    let (s, v) = get(&app, &reg, "/api/v1/plan").await;
    assert_eq!((s, v["field"].as_str()), (400, Some("market")), "{v}");
    let (s, v) = get(
        &app,
        &reg,
        &format!("/api/v1/plan?market={MARKET}&date=12/4"),
    )
    .await;
    assert_eq!((s, v["field"].as_str()), (400, Some("date")), "{v}");
    let (s, _) = get(&app, &reg, "/api/v1/plan?market=XX-9").await;
    assert_eq!(s, 404);
    app.shutdown().await;
}
