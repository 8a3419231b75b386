//! Risk grades (`docs/risk.md`) of stalls, vendors and suppliers with known histories, through
//! the API: exactly the documented rule's, with their reasons; a station sees its own market.

use crate::support::{config, new_token, temp_dir, TestApp};
use crate::web::row;
use chrono::{Duration, FixedOffset, Utc};
use foodgate::auth::Role;
use serde_json::{json, Value};

const MARKET: &str = "ZB-0001";

/// A test of stall `stall` `days` ago: chlorpyrifos 0.5 fails, 0.01 passes; `clenbuterol`
/// found fails by the prohibited rule.
fn test(n: usize, stall: &str, days: i64, outcome: &str) -> Value {
    let at = (Utc::now() - Duration::days(days) - Duration::minutes(n as i64))
        .with_timezone(&FixedOffset::east_opt(8 * 3600).expect("offset"))
        .to_rfc3339();
    let value = match outcome {
        "fail" => "0.5",
        _ => "0.01",
    };
    let mut r = row(&format!("r{n}"), MARKET, value, &at);
    r["stall"] = json!(stall);
    if outcome == "banned" {
        r["analyte"] = json!("克伦特罗");
        r["category"] = json!("livestock_meat");
        r["sample_name"] = json!("猪肉");
        r["value"] = json!("1.2");
        r["unit"] = json!("μg/kg");
    }
    r
}

async fn grades(app: &TestApp, token: &str, query: &str) -> (u16, Value) {
    let (s, text) = app.get(&format!("/api/v1/risk?{query}"), Some(token)).await;
    (
        s,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalls_vendors_and_suppliers_get_the_documented_grades_with_reasons() {
    let dir = temp_dir("risk");
    let app = TestApp::builder(config(&dir, &[]))
        .builtin_markets()
        .start()
        .await;
    let admin = new_token(app.store(), "admin", Role::Admin, &[]).await;
    let reg = new_token(app.store(), "reg", Role::Regulator, &[]).await;
    let st = new_token(app.store(), "st", Role::Station, &[MARKET]).await;
    let history: Vec<(&str, i64, &str, &str)> = vec![
        // Two failures within 30 days: high.
        ("S1", 10, "fail", "张一"),
        ("S1", 20, "fail", "张一"),
        // One failure 40 days ago: medium.
        ("S2", 40, "fail", "李二"),
        ("S2", 5, "pass", "李二"),
        // A prohibited substance 80 days ago: high.
        ("S3", 80, "banned", "王三"),
        // A failure 60 days ago, passes from 40 days ago on: medium, one level down: low.
        ("S4", 60, "fail", "赵四"),
        ("S4", 40, "pass", "赵四"),
        ("S4", 2, "pass", "赵四"),
        // Two failures 50 and 45 days ago (not within 30): medium.
        ("S5", 50, "fail", "钱五"),
        ("S5", 45, "fail", "钱五"),
        // Only passes: low.
        ("S6", 3, "pass", "孙六"),
        // A failure 100 days ago is out of the window: low.
        ("S7", 100, "fail", "周七"),
        ("S7", 5, "pass", "周七"),
        // A prohibited failure 70 days ago, passes since 35 days ago: high, down to medium.
        ("S8", 70, "banned", "吴八"),
        ("S8", 35, "pass", "吴八"),
    ];
    // The vendors (and a supplier) come with the samples' registration.
    let samples: Vec<Value> = history
        .iter()
        .enumerate()
        .map(|(n, (stall, _, _, vendor))| {
            json!({"sample_id": format!("S-r{n}"), "market": MARKET, "stall": stall,
                   "vendor": vendor, "supplier": format!("供应商{}", &stall[1..])})
        })
        .collect();
    let (s, text) = app
        .post(
            "/api/v1/samples",
            Some(&admin),
            "application/json",
            Value::Array(samples).to_string().as_bytes(),
        )
        .await;
    assert_eq!(s, 200, "{text}");
    let rows: Vec<Value> = history
        .iter()
        .enumerate()
        .map(|(n, (stall, days, outcome, _))| test(n, stall, *days, outcome))
        .collect();
    let (s, text) = app
        .post(
            "/api/v1/results",
            Some(&admin),
            "application/json",
            Value::Array(rows).to_string().as_bytes(),
        )
        .await;
    assert_eq!(s, 200, "{text}");
    let stored: Value = serde_json::from_str(&text).expect("json");
    let verdicts: Vec<&str> = stored["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["verdict"].as_str().unwrap_or("?"))
        .collect();
    let want: Vec<&str> = history
        .iter()
        .map(|h| if h.2 == "pass" { "pass" } else { "fail" })
        .collect();
    assert_eq!(verdicts, want, "{stored}");

    let (s, v) = grades(&app, &st, &format!("kind=stall&market={MARKET}")).await;
    assert_eq!(s, 200, "{v}");
    let got: Vec<(&str, &str)> = v["grades"]
        .as_array()
        .expect("grades")
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap_or("?"),
                g["grade"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    // Highest first, then by stall.
    assert_eq!(
        got,
        [
            ("S1", "high"),
            ("S3", "high"),
            ("S2", "medium"),
            ("S5", "medium"),
            ("S8", "medium"),
            ("S4", "low"),
            ("S6", "low"),
            ("S7", "low"),
        ],
        "{v}"
    );
    let of = |key: &str| -> Value {
        v["grades"]
            .as_array()
            .and_then(|g| g.iter().find(|g| g["key"] == key).cloned())
            .expect(key)
    };
    assert_eq!(
        (
            of("S1")["failures_30"].as_u64(),
            of("S1")["failures_90"].as_u64()
        ),
        (Some(2), Some(2))
    );
    let reasons = |key: &str| of(key)["reasons"].to_string();
    assert!(
        reasons("S1").contains("2 failures in 30 days"),
        "{}",
        reasons("S1")
    );
    assert!(
        reasons("S3").contains("prohibited substance clenbuterol"),
        "{}",
        reasons("S3")
    );
    assert!(
        reasons("S4").contains("one level down"),
        "{}",
        reasons("S4")
    );
    assert!(
        reasons("S8").contains("one level down"),
        "{}",
        reasons("S8")
    );
    assert_eq!(v["rules"]["high_failures"], 2);

    // Vendors grade the same way; without a market a regulator sees those that failed.
    let (s, v) = grades(&app, &reg, "kind=vendor").await;
    assert_eq!(s, 200, "{v}");
    let vendors: Vec<(&str, &str)> = v["grades"]
        .as_array()
        .expect("grades")
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap_or("?"),
                g["grade"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        vendors,
        [
            ("张一", "high"),
            ("王三", "high"),
            ("吴八", "medium"),
            ("李二", "medium"),
            ("钱五", "medium"),
            ("赵四", "low"),
        ],
        "{v}"
    );

    let (s, v) = grades(&app, &reg, &format!("kind=supplier&market={MARKET}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["grades"][0]["key"], "供应商1", "{v}");
    assert_eq!(v["grades"][0]["grade"], "high", "{v}");
    assert_eq!(v["grades"].as_array().map(Vec::len), Some(8), "{v}");

    // Scope: a station names its own market; a bad kind names the field.
    let (s, _) = grades(&app, &st, "kind=stall").await;
    assert_eq!(s, 400);
    let (s, _) = grades(&app, &st, "kind=stall&market=ZB-0002").await;
    assert_eq!(s, 403);
    let (s, v) = grades(&app, &reg, "kind=stalls").await;
    assert_eq!(s, 400);
    assert_eq!(v["field"], "kind", "{v}");
    app.shutdown().await;
}
