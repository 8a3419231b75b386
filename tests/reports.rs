//! The monthly report against counts made directly from the rows uploaded (JSON and CSV):
//! per market, per district and in total; the CSV (with its byte-order mark) and the page
//! say the same; roles and bad months are refused.

use crate::support::TestApp;
use crate::web::{request, session};
use foodgate::auth::{NewToken, Role};
use foodgate::store::Store;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const MARKETS: [&str; 3] = ["ZB-0001", "ZB-0012", "ZB-0002"];

async fn token(store: &Store, name: &str, role: Role) -> String {
    let new = NewToken {
        name: name.into(),
        role,
        markets: match role {
            Role::Regulator | Role::Admin => Vec::new(),
            _ => MARKETS.iter().map(|m| m.to_string()).collect(),
        },
        expires_days: None,
    };
    store
        .write_async(move |tx| Ok(foodgate::auth::create(tx, &new, "test")))
        .await
        .expect("write")
        .expect("token")
}

/// One uploaded row as the test knows it.
#[derive(Debug, Clone)]
struct Up {
    id: String,
    market: &'static str,
    stall: String,
    sample: String,
    fail: bool,
    at: String,
}

#[derive(Debug, Default, Clone, PartialEq)]
struct Want {
    tests: u64,
    batches: u64,
    failed: u64,
    destroyed: u64,
    kg: f64,
    stalls: u64,
}

/// The figures of `rows` (those in November 2026 local time), `destroyed` the kilograms per
/// sample destroyed.
fn expected(rows: &[Up], markets: &[&str], destroyed: &BTreeMap<String, f64>) -> Want {
    let month: Vec<&Up> = rows
        .iter()
        .filter(|r| r.at.starts_with("2026-11") && markets.contains(&r.market))
        .collect();
    let samples: BTreeSet<(&str, &str)> = month
        .iter()
        .map(|r| (r.market, r.sample.as_str()))
        .collect();
    let failed: BTreeSet<(&str, &str)> = month
        .iter()
        .filter(|r| r.fail)
        .map(|r| (r.market, r.sample.as_str()))
        .collect();
    let stalls: BTreeSet<(&str, &str)> =
        month.iter().map(|r| (r.market, r.stall.as_str())).collect();
    let gone: Vec<f64> = failed
        .iter()
        .filter_map(|(_, s)| destroyed.get(*s).copied())
        .collect();
    Want {
        tests: month.len() as u64,
        batches: samples.len() as u64,
        failed: failed.len() as u64,
        destroyed: gone.len() as u64,
        kg: gone.iter().sum(),
        stalls: stalls.len() as u64,
    }
}

fn got(v: &Value) -> Want {
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    Want {
        tests: n("tests"),
        batches: n("batches"),
        failed: n("failed"),
        destroyed: n("destroyed"),
        kg: v["destroyed_kg"].as_f64().expect("kg"),
        stalls: n("stalls"),
    }
}

fn row_json(u: &Up) -> Value {
    json!({"id": u.id, "market": u.market, "stall": u.stall, "sample_id": u.sample,
           "sample_name": "菠菜", "category": "leafy_vegetable", "analyte": "毒死蜱",
           "method": "spectrophotometric", "value": if u.fail { "0.5" } else { "0.01" },
           "unit": "mg/kg", "measured_at": u.at, "received_at": u.at, "instrument": "IN-1",
           "tester": "张三丰"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monthly_report_equals_counts_of_the_uploaded_rows() {
    let dir = crate::support::temp_dir("reports");
    let cfg = crate::support::config(&dir, &[]);
    let app = TestApp::builder(cfg).builtin_markets().start().await;
    let co = token(app.store(), "co1", Role::Contractor).await;
    let reg = token(app.store(), "reg", Role::Regulator).await;

    // October 31 and November, local time; a sample tested twice (a pass, then a fail);
    // stalls repeated. Rows carry the time they were received (as a station's forwarded rows
    // do): a reading counts in its local day, of `received_at` when `measured_at` is far
    // from it ("Coverage: what is counted").
    let mut rows = Vec::new();
    let mut k = 0;
    for (mi, market) in MARKETS.iter().enumerate() {
        for day in [31u32, 1, 2, 15, 30] {
            let month = if day == 31 { "10" } else { "11" };
            for t in 0..(3 + mi * 2) {
                k += 1;
                let fail = (k % 5) == 0;
                rows.push(Up {
                    id: format!("r{k}"),
                    market,
                    stall: format!("A{}", k % 4),
                    sample: format!("S-{market}-{day}-{t}"),
                    fail,
                    at: format!("2026-{month}-{day:02}T{:02}:30:00+08:00", 8 + t),
                });
            }
        }
    }
    let twice = rows[7].clone();
    rows.push(Up {
        id: "again".into(),
        fail: !twice.fail,
        ..twice
    });
    // Half as JSON, half as CSV.
    let (json_rows, csv_rows) = rows.split_at(rows.len() / 2);
    let body = Value::Array(json_rows.iter().map(row_json).collect()).to_string();
    let (s, v) = app
        .post(
            "/api/v1/results",
            Some(&co),
            "application/json",
            body.as_bytes(),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let mut csv = String::from(
        "id,market,stall,sample_id,sample_name,category,analyte,method,value,unit,measured_at,received_at,instrument,tester\n",
    );
    for u in csv_rows {
        csv.push_str(&format!(
            "{},{},{},{},菠菜,leafy_vegetable,毒死蜱,spectrophotometric,{},mg/kg,{},{},IN-1,张三丰\n",
            u.id,
            u.market,
            u.stall,
            u.sample,
            if u.fail { "0.5" } else { "0.01" },
            u.at,
            u.at
        ));
    }
    let (s, text) = app
        .post(
            "/api/v1/results",
            Some(&co),
            "text/csv; charset=utf-8",
            csv.as_bytes(),
        )
        .await;
    assert_eq!(s, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).expect("json");
    assert!(
        answer["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["status"] == "stored"),
        "{answer}"
    );

    // Destroy the goods of two November failures: confirm, stop the sale, destroy.
    let (_, holds) = app.get("/api/v1/holds", Some(&reg)).await;
    let holds: Value = serde_json::from_str(&holds).expect("json");
    let mut destroyed = BTreeMap::new();
    for (h, kg) in holds["holds"]
        .as_array()
        .expect("holds")
        .iter()
        .filter(|h| {
            h["reading"]["measured_at"]
                .as_str()
                .is_some_and(|t| t.starts_with("2026-11"))
        })
        .zip([12.5, 3.25])
    {
        let id = h["id"].as_str().expect("id");
        let rt = json!({"id": format!("rt-{id}"), "analyte": "毒死蜱", "category": "leafy_vegetable",
            "method": "spectrophotometric", "instrument": "IN-1", "value": "0.9", "unit": "mg/kg",
            "measured_at": h["reading"]["measured_at"], "received_at": h["reading"]["measured_at"]});
        let post = |path: String, body: Value| {
            let (app, co) = (&app, &co);
            async move {
                let (s, t) = app
                    .post(
                        &path,
                        Some(co),
                        "application/json",
                        body.to_string().as_bytes(),
                    )
                    .await;
                assert_eq!(s, 200, "{path}: {t}");
            }
        };
        post(format!("/api/v1/holds/{id}/retest"), rt).await;
        let act = format!("/api/v1/holds/{id}/actions");
        post(
            act.clone(),
            json!({"action": "stop_sale", "operator": "李四"}),
        )
        .await;
        post(
            act,
            json!({"action": "destroy", "kg": kg, "method": "深埋", "witness": "王五"}),
        )
        .await;
        destroyed.insert(h["sample"]["id"].as_str().expect("sample").to_string(), kg);
    }
    assert_eq!(destroyed.len(), 2);
    // The retests are tests too: they count in the report as the readings they are.
    for sample in destroyed.keys() {
        let original = rows
            .iter()
            .find(|r| &r.sample == sample)
            .expect("row")
            .clone();
        rows.push(Up {
            id: format!("rt-of-{sample}"),
            fail: true,
            ..original
        });
    }

    let (s, text) = app
        .get("/api/v1/reports/monthly?month=2026-11", Some(&reg))
        .await;
    assert_eq!(s, 200, "{text}");
    let report: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(report["month"], "2026-11");
    for m in MARKETS {
        let line = report["markets"]
            .as_array()
            .expect("markets")
            .iter()
            .find(|x| x["market"] == m)
            .unwrap_or_else(|| panic!("{m} missing"));
        assert_eq!(got(line), expected(&rows, &[m], &destroyed), "{m}: {line}");
        let b = line["batches"].as_f64().unwrap_or(0.0);
        let want_rate = line["failed"].as_f64().unwrap_or(0.0) / b;
        assert!((line["rate"].as_f64().expect("rate") - want_rate).abs() < 1e-12);
    }
    let zhangdian = report["districts"]
        .as_array()
        .expect("districts")
        .iter()
        .find(|d| d["district"] == "张店区")
        .expect("张店区");
    assert_eq!(
        got(zhangdian),
        expected(&rows, &["ZB-0001", "ZB-0012"], &destroyed)
    );
    assert_eq!(zhangdian["markets_tested"], 2);
    assert_eq!(got(&report["total"]), expected(&rows, &MARKETS, &destroyed));
    let all = expected(&rows, &MARKETS, &destroyed);
    assert_eq!(
        (all.destroyed, all.kg),
        (2, 15.75),
        "both destructions counted"
    );
    assert_eq!(
        report["markets"].as_array().map(Vec::len),
        Some(484),
        "every market listed"
    );
    let untested = report["markets"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["market"] == "ZB-0003").cloned())
        .expect("ZB-0003");
    assert_eq!(
        (untested["batches"].as_u64(), untested["rate"].is_null()),
        (Some(0), true)
    );
    // October is another month.
    let (_, text) = app
        .get("/api/v1/reports/monthly?month=2026-10", Some(&reg))
        .await;
    let october: Value = serde_json::from_str(&text).expect("json");
    let oct_rows = rows.iter().filter(|r| r.at.starts_with("2026-10")).count() as u64;
    assert_eq!(october["total"]["tests"], oct_rows);
    // One district only.
    let (_, text) = app
        .get(
            "/api/v1/reports/monthly?month=2026-11&district=%E5%BC%A0%E5%BA%97%E5%8C%BA",
            Some(&reg),
        )
        .await;
    let one: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(one["districts"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        one["total"],
        zhangdian.clone(),
        "the district's total is its subtotal"
    );

    // The CSV: a byte-order mark, the same figures.
    let (status, head, body) = crate::support::request(
        app.addr(),
        "GET",
        "/api/v1/reports/monthly?month=2026-11&format=csv",
        &[("Authorization", &format!("Bearer {reg}"))],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    let h = |k: &str| {
        head.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(h("content-type"), "text/csv; charset=utf-8");
    assert!(h("content-disposition").contains("foodgate-monthly-2026-11.csv"));
    assert_eq!(&body[..3], b"\xEF\xBB\xBF");
    let mut rd = csv::Reader::from_reader(&body[3..]);
    let headers = rd.headers().expect("header").clone();
    assert_eq!(&headers[4], "抽检批次 Batches");
    let records: Vec<csv::StringRecord> = rd.records().map(|r| r.expect("record")).collect();
    assert_eq!(
        records.len(),
        484 + 11 + 1,
        "markets, a subtotal per district, the total"
    );
    let of = |rec: &csv::StringRecord| Want {
        tests: rec[3].parse().expect("tests"),
        batches: rec[4].parse().expect("batches"),
        failed: rec[6].parse().expect("failed"),
        destroyed: rec[7].parse().expect("destroyed"),
        kg: rec[8].parse().expect("kg"),
        stalls: rec[9].parse().expect("stalls"),
    };
    let m1 = records
        .iter()
        .find(|r| &r[0] == "ZB-0001")
        .expect("ZB-0001");
    assert_eq!(of(m1), expected(&rows, &["ZB-0001"], &destroyed));
    let total = records.last().expect("total");
    assert_eq!(&total[11], "合计 total");
    assert_eq!(of(total), expected(&rows, &MARKETS, &destroyed));
    let want = expected(&rows, &MARKETS, &destroyed);
    assert_eq!(
        &total[10],
        format!("{:.2}%", want.failed as f64 / want.batches as f64 * 100.0)
    );

    // The page: the same total, a chart per district.
    let sid = session(app.addr(), &reg).await;
    let cookie = format!("fg_session={sid}");
    let page = request(
        app.addr(),
        "GET",
        "/reports/monthly?month=2026-11",
        &[("Cookie", &cookie)],
        b"",
    )
    .await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        html.contains(&format!(
            "id=\"batches\"><span class=\"n\">{}</span>",
            want.batches
        )),
        "{html}"
    );
    assert!(html.contains(&format!(
        "id=\"failed\"><span class=\"n\">{}</span>",
        want.failed
    )));
    assert_eq!(html.matches("<svg").count(), 11, "one chart per district");
    assert!(html.contains("月度快检报表"));

    // Who may, and bad months.
    let (s, _) = app
        .get("/api/v1/reports/monthly?month=2026-11", Some(&co))
        .await;
    assert_eq!(s, 403);
    let (s, _) = app.get("/api/v1/reports/monthly?month=2026-11", None).await;
    assert_eq!(s, 401);
    for bad in ["2026-13", "2026-1", "november", "2026-11-01"] {
        let (s, text) = app
            .get(&format!("/api/v1/reports/monthly?month={bad}"), Some(&reg))
            .await;
        assert_eq!(s, 400, "{bad}: {text}");
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["field"], "month", "{v}");
    }
    let page = request(app.addr(), "GET", "/reports/monthly", &[], b"").await;
    assert_eq!(page.status, 303, "signed out: to the sign-in form");
    app.shutdown().await;
}
