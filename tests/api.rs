//! The HTTP API over loopback: a real server on 127.0.0.1:0, a fresh data directory, and a
//! minimal HTTP/1.1 client (no client library: what goes over the wire is what is tested).

use crate::support::{config, temp_dir};
use foodgate::auth::{self, NewToken, Role};
use foodgate::http::AppState;
use foodgate::judge::Judge;
use foodgate::store::Db;
use foodgate::store::{Store, StoreSettings};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use tokio::sync::oneshot;

struct App {
    addr: SocketAddr,
    store: Store,
    tokens: HashMap<&'static str, String>,
    _stop: oneshot::Sender<()>,
}

struct Resp {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

async fn token(
    store: &Store,
    name: &str,
    role: Role,
    markets: &[&str],
    days: Option<u32>,
) -> String {
    let new = NewToken {
        name: name.into(),
        role,
        markets: markets.iter().map(|m| m.to_string()).collect(),
        expires_days: days,
    };
    store
        .write_async(move |tx| Ok(auth::create(tx, &new, "test")))
        .await
        .expect("write")
        .expect("create token")
}

/// The app with one `events` upstream (never delivered: no uplink runs) and tokens:
/// station (ZB-0001), contractor (ZB-0002, ZB-0003), regulator, admin, expired, revoked.
async fn start(name: &str) -> App {
    let dir = temp_dir(name);
    let cfg = config(&dir, &[("block", "http://127.0.0.1:9/events", "failures")]);
    let store = Store::open(&cfg.database_path(), StoreSettings::from_config(&cfg)).expect("open");
    crate::support::import_builtin_markets(&store);
    let mut tokens = HashMap::new();
    tokens.insert(
        "station",
        token(&store, "st1", Role::Station, &["ZB-0001"], None).await,
    );
    tokens.insert(
        "contractor",
        token(
            &store,
            "co1",
            Role::Contractor,
            &["ZB-0002", "ZB-0003"],
            None,
        )
        .await,
    );
    tokens.insert(
        "regulator",
        token(&store, "reg", Role::Regulator, &[], None).await,
    );
    tokens.insert("admin", token(&store, "adm", Role::Admin, &[], None).await);
    tokens.insert(
        "expired",
        token(&store, "old", Role::Admin, &[], Some(0)).await,
    );
    tokens.insert(
        "revoked",
        token(&store, "gone", Role::Admin, &[], None).await,
    );
    store
        .write_async(|tx| Ok(auth::revoke(tx, "gone", "test")))
        .await
        .expect("write")
        .expect("revoke");
    // These tests send many bad tokens on purpose, all from 127.0.0.1: no failure limit.
    let state = AppState::new(store.clone(), Judge::builtin())
        .with_failure_limit(foodgate::http::abuse::FailureLimit::per_minute(0));
    let (addr, stop) = crate::support::serve_api(state).await;
    App {
        addr,
        store,
        tokens,
        _stop: stop,
    }
}

impl App {
    async fn req(
        &self,
        method: &str,
        path: &str,
        who: Option<&str>,
        ctype: &str,
        body: &[u8],
    ) -> Resp {
        let bearer = who.map(|w| {
            let t = self.tokens.get(w).cloned().unwrap_or_else(|| w.to_string());
            format!("Bearer {t}")
        });
        let mut headers = Vec::new();
        if let Some(b) = &bearer {
            headers.push(("Authorization", b.as_str()));
        }
        if !ctype.is_empty() {
            headers.push(("Content-Type", ctype));
        }
        let (status, head, body) =
            crate::support::request(self.addr, method, path, &headers, body).await;
        let headers = head
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("\r\n");
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, who: Option<&str>) -> Resp {
        self.req("GET", path, who, "", b"").await
    }

    async fn post_json(&self, path: &str, who: Option<&str>, body: &Value) -> Resp {
        self.req(
            "POST",
            path,
            who,
            "application/json",
            body.to_string().as_bytes(),
        )
        .await
    }

    fn db(&self) -> rusqlite::Connection {
        self.store.inspect().expect("reader")
    }
}

fn row(id: &str, market: &str, value: &str) -> Value {
    json!({"id": id, "market": market, "stall": "A12", "sample_id": format!("S-{id}"),
           "sample_name": "菠菜", "category": "leafy_vegetable", "analyte": "毒死蜱",
           "method": "spectrophotometric", "value": value, "unit": "mg/kg",
           "measured_at": "2025-03-04T09:30:00+08:00", "instrument": "IN-1", "tester": "王"})
}

fn statuses(r: &Value) -> Vec<String> {
    r["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|x| x["status"].as_str().unwrap_or("").to_string())
        .collect()
}

/// A hold in ZB-0001 (a failed upload by the station); returns its id.
async fn make_hold(app: &App, id: &str, value: &str) -> String {
    let r = app
        .post_json(
            "/api/v1/results",
            Some("station"),
            &json!([row(id, "ZB-0001", value)]),
        )
        .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["results"][0]["verdict"], "fail", "{v}");
    v["results"][0]["hold"]
        .as_str()
        .expect("hold id")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_checks_token_role_and_scope() {
    let app = start("api-auth").await;
    let hold = make_hold(&app, "h1", "0.5").await;
    let patch = json!({"stall": "B7"}).to_string();
    let retest =
        json!({"id": "rt-matrix", "analyte": "chlorpyrifos", "method": "spectrophotometric",
        "instrument": "IN-1", "value": "0.01", "unit": "mg/kg", "category": "leafy_vegetable"})
        .to_string();
    let upload = json!([row("m1", "ZB-0001", "0.01")]).to_string();
    let hold_path = format!("/api/v1/holds/{hold}");
    let retest_path = format!("/api/v1/holds/{hold}/retest");
    // (method, path, body, [station, contractor (other markets), regulator, admin])
    let cases: Vec<(&str, &str, &str, [u16; 4])> = vec![
        ("POST", "/api/v1/results", &upload, [200, 200, 403, 200]),
        ("GET", "/api/v1/results", "", [200, 200, 200, 200]),
        (
            "GET",
            "/api/v1/results?market=ZB-0001",
            "",
            [200, 403, 200, 200],
        ),
        (
            "GET",
            "/api/v1/coverage?date=2025-03-04",
            "",
            [403, 403, 200, 200],
        ),
        ("GET", "/api/v1/holds", "", [200, 200, 200, 200]),
        ("PATCH", &hold_path, &patch, [200, 403, 403, 200]),
        ("POST", &retest_path, &retest, [200, 403, 403, 403]),
        ("GET", "/api/v1/instruments", "", [200, 200, 200, 200]),
    ];
    for (method, path, body, expected) in &cases {
        let ct = if body.is_empty() {
            ""
        } else {
            "application/json"
        };
        for (who, code) in [
            (None, "token_missing"),
            (Some("not-a-token"), "token_unknown"),
            (Some("expired"), "token_expired"),
            (Some("revoked"), "token_revoked"),
        ] {
            let r = app.req(method, path, who, ct, body.as_bytes()).await;
            assert_eq!(r.status, 401, "{method} {path} as {who:?}");
            assert_eq!(r.json()["error"], code, "{method} {path} as {who:?}");
            assert!(!r.json()["message"].as_str().unwrap_or("").is_empty());
        }
        for (role, want) in ["station", "contractor", "regulator", "admin"]
            .iter()
            .zip(expected)
        {
            let r = app.req(method, path, Some(role), ct, body.as_bytes()).await;
            assert_eq!(
                r.status,
                *want,
                "{method} {path} as {role}: {}",
                String::from_utf8_lossy(&r.body)
            );
            if *want == 403 {
                assert_eq!(r.json()["error"], "forbidden");
            }
        }
    }
    // Public endpoints need no token.
    for path in ["/api/v1/openapi.json", "/healthz", "/metrics"] {
        assert_eq!(app.get(path, None).await.status, 200, "{path}");
    }
    // Scoped reads only show the token's markets.
    let r = app.get("/api/v1/holds", Some("contractor")).await.json();
    assert_eq!(r["holds"].as_array().map(Vec::len), Some(0));
    let r = app.get("/api/v1/holds", Some("station")).await.json();
    assert_eq!(r["holds"][0]["id"], hold.as_str());
    assert_eq!(r["holds"][0]["stall"], "B7");
    let r = app.get("/api/v1/results", Some("contractor")).await.json();
    assert_eq!(r["results"].as_array().map(Vec::len), Some(0));
    // A row for a market outside the token's scope is rejected with field `market`.
    let r = app
        .post_json(
            "/api/v1/results",
            Some("station"),
            &json!([row("x", "ZB-0002", "0.01")]),
        )
        .await
        .json();
    assert_eq!(r["results"][0]["status"], "rejected");
    assert_eq!(r["results"][0]["errors"][0]["field"], "market");
    // Writes are audited with the token's name.
    let audited: Vec<(String, String)> = app
        .db()
        .prepare("SELECT actor, action FROM audit_log ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for want in [
        ("st1", "results.upload"),
        ("st1", "hold.stall"),
        ("adm", "hold.stall"),
        ("st1", "hold.retest"),
        ("co1", "results.upload"),
    ] {
        assert!(
            audited.iter().any(|(a, b)| a == want.0 && b == want.1),
            "{want:?} not in {audited:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_code_is_stored_unjudged_with_its_code_an_unknown_name_is_rejected() {
    let app = start("api-unknown").await;
    let mut code = row("u1", "ZB-0001", "12");
    code["analyte"] = json!("unknown:0x0999");
    let mut empty = row("u2", "ZB-0001", "12");
    empty["analyte"] = json!("unknown: ");
    let mut name = row("u3", "ZB-0001", "12");
    name["analyte"] = json!("WBC");
    let r = app
        .post_json(
            "/api/v1/results",
            Some("admin"),
            &json!([code, empty, name]),
        )
        .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(statuses(&v), ["stored", "rejected", "rejected"], "{v}");
    assert_eq!(v["results"][0]["verdict"], "unknown", "{v}");
    assert!(
        v["results"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("0x0999"),
        "{v}"
    );
    for i in [1, 2] {
        assert_eq!(v["results"][i]["errors"][0]["field"], "analyte", "{v}");
    }
    let msg = v["results"][2]["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("unknown:<code>"),
        "the error says how to send it: {msg}"
    );
    let (analyte, code, holds): (String, String, i64) = app
        .db()
        .query_row(
            "SELECT analyte, analyte_code, (SELECT count(*) FROM holds) FROM readings",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (analyte.as_str(), code.as_str(), holds),
        ("unknown:0x0999", "0x0999", 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_upload_mixed_rows_duplicates_and_reuse() {
    let app = start("api-json").await;
    let mut bad = row("bad", "ZB-0001", "0.01");
    bad["measured_at"] = json!("yesterday");
    bad.as_object_mut().unwrap().remove("analyte");
    let mut num = row("num", "ZB-0001", "0");
    num["value"] = json!(0.01); // a JSON number is as good as text
    let body = json!([
        row("p1", "ZB-0001", "0.01"),
        row("f1", "ZB-0001", "0.5"),
        bad,
        row("other", "ZB-0004", "0.01"),
        row("nowhere", "ZB-9999", "0.01"),
        row("p1", "ZB-0001", "0.01"),
        num,
        "not an object",
    ]);
    let r = app.post_json("/api/v1/results", Some("admin"), &body).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        statuses(&v),
        [
            "stored",
            "stored",
            "rejected",
            "stored",
            "rejected",
            "duplicate",
            "stored",
            "rejected"
        ]
    );
    let res = &v["results"];
    for (i, x) in res.as_array().unwrap().iter().enumerate() {
        assert_eq!(x["index"], i);
    }
    assert_eq!(res[0]["verdict"], "pass");
    assert_eq!(res[1]["verdict"], "fail");
    assert!(
        res[1]["reason"].as_str().unwrap().contains("0.02"),
        "{}",
        res[1]
    );
    let fields: HashSet<&str> = res[2]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, HashSet::from(["analyte", "measured_at"]));
    assert_eq!(res[4]["errors"][0]["field"], "market");
    assert_eq!(res[5]["verdict"], "pass");
    // The failure made a hold and its sample.failed event, like an instrument reading.
    let db = app.db();
    let (holds, events): (i64, i64) = db
        .query_row(
            "SELECT (SELECT count(*) FROM holds), (SELECT count(*) FROM outbox WHERE type = 'sample.failed')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((holds, events), (1, 1));
    // The raw row bytes are kept.
    let raw: Vec<u8> = db
        .query_row(
            "SELECT f.bytes FROM readings r JOIN raw_frames f ON f.id = r.raw_frame WHERE r.sample_id = 'S-f1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&raw).unwrap(),
        row("f1", "ZB-0001", "0.5")
    );

    // The same body again: every good row is a duplicate with its original verdict.
    let again = app
        .post_json("/api/v1/results", Some("admin"), &body)
        .await
        .json();
    assert_eq!(
        statuses(&again),
        [
            "duplicate",
            "duplicate",
            "rejected",
            "duplicate",
            "rejected",
            "duplicate",
            "duplicate",
            "rejected"
        ]
    );
    assert_eq!(again["results"][1]["verdict"], "fail");
    let n: i64 = db
        .query_row("SELECT count(*) FROM readings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 4);
    let events2: i64 = db
        .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events2, events);
    // An id sent again with different content is rejected, never replaced.
    let changed = app
        .post_json(
            "/api/v1/results",
            Some("admin"),
            &json!([row("p1", "ZB-0001", "0.03")]),
        )
        .await
        .json();
    assert_eq!(changed["results"][0]["status"], "rejected");
    assert_eq!(changed["results"][0]["errors"][0]["field"], "id");
    assert_eq!(
        changed["results"][0]["errors"][0]["message"],
        "reused with different content"
    );
    // Ids are per uploader: another token may use "p1".
    let other = app
        .post_json(
            "/api/v1/results",
            Some("station"),
            &json!([row("p1", "ZB-0001", "0.01")]),
        )
        .await
        .json();
    assert_eq!(other["results"][0]["status"], "stored");

    // GET /results: newest first, filters, cursor paging, upload shape.
    let page = app
        .get("/api/v1/results?market=ZB-0001&limit=2", Some("regulator"))
        .await
        .json();
    let items = page["results"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["uploader"], "st1");
    assert_eq!(items[0]["protocol"], Value::Null);
    assert_eq!(items[0]["analyte"], "chlorpyrifos");
    assert_eq!(items[0]["source"], "A12");
    let next = page["next"].as_str().expect("next cursor");
    let rest = app
        .get(
            &format!("/api/v1/results?market=ZB-0001&limit=2&after={next}"),
            Some("regulator"),
        )
        .await
        .json();
    assert_eq!(rest["results"].as_array().unwrap().len(), 2);
    assert_eq!(rest["next"], Value::Null);
    let fails = app
        .get("/api/v1/results?verdict=fail", Some("admin"))
        .await
        .json();
    assert_eq!(fails["results"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_uploads_in_gbk_and_utf8() {
    let app = start("api-csv").await;
    let text = "id,market,stall,sample_id,sample_name,category,analyte,method,value,unit,qualifier,device_verdict,measured_at,instrument,tester\n\
        c1,ZB-0001,A1,,小白菜,leafy_vegetable,毒死蜱,spectrophotometric,0.01,mg/kg,,,2025-03-04T08:00:00+08:00,IN-9,李四\n\
        c2,ZB-0001,A2,,\"菠菜, 本地\",leafy_vegetable,chlorpyrifos,spectrophotometric,0.9,mg/kg,,,2025-03-04T08:05:00+08:00,IN-9,李四\n\
        c3,ZB-0001,A3,,菠菜,leafy_vegetable,chlorpyrifos,spectrophotometric,lots,mg/kg,,,2025-03-04T08:05:00+08:00,IN-9,李四\n";
    let (gbk, _, _) = encoding_rs::GBK.encode(text);
    for ctype in ["text/csv; charset=gbk", "text/csv"] {
        let r = app
            .req("POST", "/api/v1/results", Some("station"), ctype, &gbk)
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        if ctype.contains("gbk") {
            assert_eq!(statuses(&v), ["stored", "stored", "rejected"]);
            assert_eq!(v["results"][1]["verdict"], "fail");
            assert_eq!(v["results"][2]["errors"][0]["field"], "value");
        } else {
            // Detected as GBK, and the same rows: duplicates.
            assert_eq!(statuses(&v), ["duplicate", "duplicate", "rejected"]);
        }
    }
    let names: Vec<String> = app
        .db()
        .prepare("SELECT sample_name FROM readings ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(names, ["小白菜", "菠菜, 本地"]);
    // The same row as JSON is the same content.
    let same = json!([{"id": "c1", "market": "ZB-0001", "stall": "A1", "sample_name": "小白菜",
        "category": "leafy_vegetable", "analyte": "毒死蜱", "method": "spectrophotometric",
        "value": "0.01", "unit": "mg/kg", "measured_at": "2025-03-04T08:00:00+08:00",
        "instrument": "IN-9", "tester": "李四"}]);
    let r = app
        .post_json("/api/v1/results", Some("station"), &same)
        .await
        .json();
    assert_eq!(statuses(&r), ["duplicate"]);
    // UTF-8 CSV with a BOM.
    let mut utf8 = b"\xEF\xBB\xBF".to_vec();
    utf8.extend_from_slice(
        text.replace("c1,", "u1,")
            .replace("c2,", "u2,")
            .replace("c3,", "u3,")
            .as_bytes(),
    );
    let r = app
        .req(
            "POST",
            "/api/v1/results",
            Some("station"),
            "text/csv; charset=utf-8",
            &utf8,
        )
        .await;
    assert_eq!(statuses(&r.json()), ["stored", "stored", "rejected"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json() {
    let app = start("api-errors").await;
    let r = app.get("/nowhere", None).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("not_found"))
    );
    let r = app
        .req("DELETE", "/api/v1/results", Some("admin"), "", b"")
        .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let r = app
        .req(
            "POST",
            "/api/v1/results",
            Some("admin"),
            "application/xml",
            b"<a/>",
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let r = app
        .req(
            "POST",
            "/api/v1/results",
            Some("admin"),
            "application/json",
            b"{\"id\":1}",
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("bad_request"))
    );
    let r = app
        .req(
            "POST",
            "/api/v1/results",
            Some("admin"),
            "text/csv",
            b"just,some\nwords,here\n",
        )
        .await;
    assert_eq!(r.status, 400);
    let big = vec![b' '; 33 * 1024 * 1024];
    let r = app
        .req(
            "POST",
            "/api/v1/results",
            Some("admin"),
            "application/json",
            &big,
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (413, Some("payload_too_large"))
    );
    let many: Vec<Value> = (0..10_001).map(|i| json!({"id": i})).collect();
    let r = app
        .post_json("/api/v1/results", Some("admin"), &Value::Array(many))
        .await;
    assert_eq!(r.status, 413);
    let r = app.get("/api/v1/coverage?date=March", Some("admin")).await;
    assert_eq!(r.status, 400);
    assert!(r.headers.to_ascii_lowercase().contains("application/json"));
    let r = app.get("/api/v1/holds/nope", Some("admin")).await;
    assert_eq!(r.status, 405); // PATCH only
    let r = app
        .req(
            "PATCH",
            "/api/v1/holds/nope",
            Some("admin"),
            "application/json",
            b"{\"stall\":\"A\"}",
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("not_found"))
    );
    // The OpenAPI document names every route.
    let doc = app.get("/api/v1/openapi.json", None).await.json();
    for p in [
        "/api/v1/results",
        "/api/v1/coverage",
        "/api/v1/holds",
        "/api/v1/holds/{id}",
        "/api/v1/holds/{id}/retest",
        "/api/v1/instruments",
        "/api/v1/outbox",
        "/api/v1/outbox/{id}/retry",
        "/healthz",
        "/metrics",
        "/api/v1/openapi.json",
    ] {
        assert!(
            doc["paths"].get(p).is_some(),
            "{p} missing from the OpenAPI document"
        );
    }
    let m = String::from_utf8(app.get("/metrics", None).await.body).unwrap();
    assert!(m.contains("foodgate_readings{verdict=\"fail\"} 0"), "{m}");
    assert!(
        m.contains("foodgate_http_requests_total{route=\"/api/v1/coverage\",status=\"400\"} 1"),
        "{m}"
    );
}

/// Deterministic pseudo-random numbers (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coverage_matches_an_independent_count() {
    use chrono::{Duration, FixedOffset, Utc};
    let app = start("api-coverage").await;
    let tz = FixedOffset::east_opt(8 * 3600).unwrap();
    let now = Utc::now().with_timezone(&tz);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut rows = Vec::new();
    for i in 0..3000 {
        let market = format!("ZB-{:04}", 1 + rng.below(30));
        // Mostly within the last 36 h (both sides of local midnight), some far off (clock
        // wrong: counted on the day received), some without a time.
        let measured = match rng.below(20) {
            0 => Some(now - Duration::days(5)),
            1 => None,
            // Never near the 24 h edge, where the second of upload would decide.
            2..=5 => Some(now - Duration::minutes(26 * 60 + rng.below(10 * 60) as i64)),
            _ => Some(now - Duration::minutes(rng.below(20 * 60) as i64)),
        };
        let value = ["0.01", "0.5", "ND", "POS"][rng.below(4) as usize];
        let name = ["菠菜", "韭菜", "小白菜"][rng.below(3) as usize];
        let mut r = json!({"id": format!("g{i}"), "market": market, "stall": format!("S{}", rng.below(3)),
            "sample_name": name, "category": "leafy_vegetable",
            "analyte": "chlorpyrifos", "method": "spectrophotometric", "value": value, "unit": "mg/kg"});
        if rng.below(2) == 0 {
            r["sample_id"] = json!(format!("SID{}", rng.below(400)));
        }
        if let Some(t) = measured {
            r["measured_at"] = json!(t.to_rfc3339());
        }
        rows.push(r);
    }
    let mut verdicts = Vec::new();
    for chunk in rows.chunks(1000) {
        let v = app
            .post_json("/api/v1/results", Some("admin"), &json!(chunk))
            .await
            .json();
        for x in v["results"].as_array().unwrap() {
            assert_eq!(x["status"], "stored", "{x}");
            verdicts.push(x["verdict"].as_str().unwrap().to_string());
        }
    }
    assert!(
        verdicts.iter().any(|v| v == "invalid" || v == "unknown"),
        "{verdicts:?}"
    );
    let received = Utc::now().with_timezone(&tz);
    for day in [now.date_naive(), (now - Duration::days(1)).date_naive()] {
        #[derive(Default, Debug, PartialEq)]
        struct Count {
            tests: u64,
            failures: u64,
            samples: HashSet<String>,
        }
        let mut want: BTreeMap<String, Count> = BTreeMap::new();
        for (r, v) in rows.iter().zip(&verdicts) {
            let at = r["measured_at"]
                .as_str()
                .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap())
                .filter(|t| (received - *t).num_hours().abs() < 24)
                .unwrap_or(received);
            if at.with_timezone(&tz).date_naive() != day {
                continue;
            }
            let market = r["market"].as_str().unwrap().to_string();
            let c = want.entry(market.clone()).or_default();
            c.tests += 1;
            c.failures += u64::from(v == "fail");
            if v == "pass" || v == "fail" {
                let key = match r["sample_id"].as_str() {
                    Some(id) => format!("id:{id}"),
                    None => {
                        let t = r["measured_at"]
                            .as_str()
                            .map(|t| {
                                chrono::DateTime::parse_from_rfc3339(t)
                                    .unwrap()
                                    .with_timezone(&Utc)
                            })
                            .unwrap_or(received.with_timezone(&Utc));
                        format!(
                            "{}|{}|{}",
                            r["stall"],
                            r["sample_name"],
                            t.format("%Y-%m-%dT%H")
                        )
                    }
                };
                c.samples.insert(key);
            }
        }
        let date = day.format("%Y-%m-%d").to_string();
        let cov = app
            .get(&format!("/api/v1/coverage?date={date}"), Some("regulator"))
            .await
            .json();
        let markets = cov["markets"].as_array().unwrap();
        assert_eq!(markets.len(), 484);
        assert_eq!(cov["summary"]["markets"], 484);
        let mut tested = 0;
        for m in markets {
            let code = m["market"].as_str().unwrap();
            let (tests, failures, samples) = want
                .get(code)
                .map_or((0, 0, 0), |c| (c.tests, c.failures, c.samples.len() as u64));
            assert_eq!(m["tests"], tests, "{code} {date}");
            assert_eq!(m["failures"], failures, "{code} {date}");
            assert_eq!(m["samples"], samples, "{code} {date}");
            assert_eq!(m["met"], samples >= 10, "{code}");
            assert_eq!(m["quota"], 10);
            tested += u64::from(tests > 0);
        }
        assert_eq!(cov["summary"]["markets_tested"], tested);
        assert_eq!(
            cov["summary"]["tests"],
            want.values().map(|c| c.tests).sum::<u64>()
        );
        let csv = app
            .get(
                &format!("/api/v1/coverage?date={date}&format=csv"),
                Some("admin"),
            )
            .await;
        assert!(csv.headers.contains("text/csv"));
        assert!(
            csv.headers
                .contains("attachment; filename=\"foodgate-coverage-"),
            "{}",
            csv.headers
        );
        let text = String::from_utf8(csv.body).unwrap();
        assert_eq!(text.lines().count(), 485);
        // Excel on Chinese Windows reads UTF-8 by its byte-order mark; Chinese headers first.
        assert!(text.starts_with(
            "\u{feff}市场编号,市场名称,区县,类型,抽检样品,检测项次,不合格,每日任务,是否达标,最后结果时间,计划抽检,计划完成\n"
        ));
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1..]
                .iter()
                .all(|l| l.contains(",是,") || l.contains(",否,")),
            "{}",
            lines[1]
        );
        let csv = app
            .get(
                &format!("/api/v1/coverage?date={date}&format=csv&lang=en"),
                Some("admin"),
            )
            .await;
        let text = String::from_utf8(csv.body).unwrap();
        assert!(text.starts_with(
            "\u{feff}market,name,district,type,samples,tests,failures,quota,met,last_result_at,plan_total,plan_done\n"
        ));
        // Times are local (server.utc_offset), as Excel shows them: `2025-03-04 09:30:00`.
        let times: Vec<&str> = text
            .lines()
            .skip(1)
            .filter_map(|l| l.split(',').nth(9))
            .filter(|t| !t.is_empty())
            .collect();
        assert!(!times.is_empty());
        for t in &times {
            assert!(
                t.len() == 19 && t.as_bytes()[10] == b' ' && !t.contains('+'),
                "{t}"
            );
        }
    }
}

fn outbox_types(app: &App, hold: &str) -> Vec<String> {
    app.db()
        .prepare("SELECT type FROM outbox WHERE hold = ?1 ORDER BY id")
        .unwrap()
        .query_map([hold], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retests_confirm_release_or_only_record() {
    let app = start("api-retest").await;
    let retest = |id: &str, value: &str, instrument: &str, method: &str| {
        json!({"id": id, "analyte": "chlorpyrifos", "category": "leafy_vegetable", "method": method,
               "instrument": instrument, "value": value, "unit": "mg/kg",
               "measured_at": "2025-03-04T11:00:00+08:00"})
    };
    // Same instrument and method passing: recorded, the hold stays.
    let h1 = make_hold(&app, "r1", "0.5").await;
    let path = format!("/api/v1/holds/{h1}/retest");
    let r = app
        .post_json(
            &path,
            Some("station"),
            &retest("rt1", "0.01", "IN-1", "spectrophotometric"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["status"], "held");
    assert!(
        v["outcome"]
            .as_str()
            .unwrap()
            .contains("same instrument and method"),
        "{v}"
    );
    assert_eq!(v["retest"]["verdict"], "pass");
    assert_eq!(outbox_types(&app, &h1), ["sample.failed"]);
    // A failure confirms it: hold.confirmed after sample.failed, and no second hold.
    let v = app
        .post_json(
            &path,
            Some("station"),
            &retest("rt2", "0.7", "IN-1", "spectrophotometric"),
        )
        .await
        .json();
    assert_eq!(v["status"], "confirmed", "{v}");
    let hist: Vec<&str> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(hist, ["held", "held", "confirmed"]);
    assert_eq!(v["history"][2]["by"], "st1");
    assert_eq!(outbox_types(&app, &h1), ["sample.failed", "hold.confirmed"]);
    let holds: i64 = app
        .db()
        .query_row("SELECT count(*) FROM holds", [], |r| r.get(0))
        .unwrap();
    assert_eq!(holds, 1);
    let body: Vec<u8> = app
        .db()
        .query_row(
            "SELECT body FROM outbox WHERE type = 'hold.confirmed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let ev: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(ev["hold"]["id"], h1.as_str());
    assert_eq!(ev["hold"]["status"], "confirmed");
    assert_eq!(ev["market"], "ZB-0001");
    assert_eq!(ev["sample"]["id"], "S-r1");
    assert_eq!(ev["reading"]["verdict"], "fail");
    // The same retest again changes nothing.
    let v = app
        .post_json(
            &path,
            Some("station"),
            &retest("rt2", "0.7", "IN-1", "spectrophotometric"),
        )
        .await
        .json();
    assert_eq!(v["retest"]["status"], "duplicate");
    assert_eq!(outbox_types(&app, &h1), ["sample.failed", "hold.confirmed"]);

    // A pass by another instrument releases a held hold.
    let h2 = make_hold(&app, "r2", "0.5").await;
    let path2 = format!("/api/v1/holds/{h2}/retest");
    let v = app
        .post_json(
            &path2,
            Some("station"),
            &retest("rt3", "0.01", "IN-2", "spectrophotometric"),
        )
        .await
        .json();
    assert_eq!(v["status"], "released", "{v}");
    assert_eq!(outbox_types(&app, &h2), ["sample.failed", "hold.released"]);
    // A failure after release needs a person.
    let v = app
        .post_json(
            &path2,
            Some("station"),
            &retest("rt4", "0.9", "IN-2", "spectrophotometric"),
        )
        .await
        .json();
    assert_eq!(v["status"], "review");
    assert_eq!(
        outbox_types(&app, &h2),
        ["sample.failed", "hold.released", "hold.review"]
    );
    // A pass by another method releases too; a retest for another market is refused.
    let h3 = make_hold(&app, "r3", "0.5").await;
    let path3 = format!("/api/v1/holds/{h3}/retest");
    let mut wrong = retest("rt5", "0.01", "IN-1", "chromatography");
    wrong["market"] = json!("ZB-0002");
    let r = app.post_json(&path3, Some("station"), &wrong).await;
    assert_eq!(r.status, 422);
    assert!(r.json()["message"].as_str().unwrap().starts_with("market"));
    let v = app
        .post_json(
            &path3,
            Some("station"),
            &retest("rt5", "0.01", "IN-1", "chromatography"),
        )
        .await
        .json();
    assert_eq!(v["retest"]["verdict"], "pass", "{v}");
    assert_eq!(v["status"], "released");
    let r = app
        .post_json(
            "/api/v1/holds/no-such/retest",
            Some("station"),
            &retest("rt6", "0.01", "IN-2", "x"),
        )
        .await;
    assert_eq!(r.status, 404);
}

#[test]
fn token_and_markets_commands() {
    use std::process::Command;
    let dir = temp_dir("api-cli");
    let cfg = dir.join("foodgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
            dir.join("data")
        ),
    )
    .unwrap();
    crate::support::import_builtin_markets_with(&cfg);
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_foodgate"))
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .output()
            .expect("run foodgate");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = run(&[
        "token",
        "create",
        "--role",
        "station",
        "--market",
        "ZB-0007",
        "--name",
        "stall-app",
        "--expires-days",
        "30",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let token = out.lines().last().unwrap().to_string();
    assert!(token.starts_with("fg_") && token.len() == 67, "{token}");
    let (code, _, err) = run(&["token", "create", "--role", "station"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--market"), "{err}");
    let (code, _, _) = run(&[
        "token",
        "create",
        "--role",
        "station",
        "--market",
        "ZB-0007",
        "--name",
        "stall-app",
    ]);
    assert_eq!(code, Some(2));
    let (code, list, _) = run(&["token", "list"]);
    assert_eq!(code, Some(0));
    assert!(
        list.contains("\"name\":\"stall-app\"") && list.contains("ZB-0007"),
        "{list}"
    );
    assert!(!list.contains(&token) && !list.contains(&auth::hash_token(&token)));
    let conn = rusqlite::Connection::open(dir.join("data").join("foodgate.db")).unwrap();
    let header = format!("Bearer {token}");
    let p = auth::authenticate(&conn, Some(&header), chrono::Utc::now()).expect("valid");
    assert_eq!(
        (p.name.as_str(), p.role, p.markets.as_slice()),
        ("stall-app", Role::Station, &["ZB-0007".to_string()][..])
    );
    assert_eq!(run(&["token", "revoke", "stall-app"]).0, Some(0));
    assert!(matches!(
        auth::authenticate(&conn, Some(&header), chrono::Utc::now()),
        Err(auth::AuthError::Revoked(_))
    ));
    assert_eq!(run(&["token", "revoke", "nobody"]).0, Some(1));

    let csv = dir.join("markets.csv");
    let (gbk, _, _) = encoding_rs::GBK.encode("code,name,district,type,quota\nZB-0001,东门市场,罗湖区,farmers,15\nNEW-1,新市场,南山区,convenience,5\nNEW-2,x,y,z,-3\n");
    std::fs::write(&csv, &gbk).unwrap();
    let (code, out, err) = run(&["markets", "import", csv.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("line 4") && err.contains("quota"), "{err}");
    assert!(out.contains("1 markets added, 1 updated"), "{out}");
    let (name, quota): (String, i64) = conn
        .query_row(
            "SELECT name, quota FROM markets WHERE code = 'ZB-0001'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((name.as_str(), quota), ("东门市场", 15));
    let n: i64 = conn
        .query_row("SELECT count(*) FROM markets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 485);
}

/// `serve` writes each link's status into `instruments`; the API shows it, scoped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instruments_show_the_status_serve_records() {
    let app = start("api-instruments").await;
    app.store
        .write_async(|tx| {
            tx.connection().execute_batch(
                "INSERT INTO instruments (id, market, protocol, serial_number, firmware, last_seen,
                                          online, readings, duplicates, decode_errors, reconnects,
                                          last_error)
                 VALUES ('ZB-0002-GC1', 'ZB-0002', 'gold-card', 'GC2024-0007', '2.1.0',
                         '2026-11-28T09:30:00+08:00', 1, 42, 3, 2, 1, 'bad_crc at offset 10'),
                        ('ZB-0001-OP1', 'ZB-0001', 'enzyme-print', NULL, NULL, NULL,
                         0, 0, 0, 0, 0, NULL);",
            )?;
            Ok(())
        })
        .await
        .expect("write");
    let all = app
        .get("/api/v1/instruments", Some("regulator"))
        .await
        .json();
    let list = all["instruments"].as_array().expect("list");
    assert_eq!(list.len(), 2);
    let gc = list
        .iter()
        .find(|i| i["id"] == "ZB-0002-GC1")
        .expect("gold-card reader");
    assert_eq!(gc["online"], true);
    assert_eq!(
        (
            &gc["readings"],
            &gc["duplicates"],
            &gc["decode_errors"],
            &gc["reconnects"]
        ),
        (
            &Value::from(42),
            &Value::from(3),
            &Value::from(2),
            &Value::from(1)
        )
    );
    assert_eq!(gc["serial_number"], "GC2024-0007");
    assert_eq!(gc["last_error"], "bad_crc at offset 10");
    // A contractor of ZB-0002/ZB-0003 sees only its market's instrument.
    let scoped = app
        .get("/api/v1/instruments", Some("contractor"))
        .await
        .json();
    let ids: Vec<&Value> = scoped["instruments"]
        .as_array()
        .expect("list")
        .iter()
        .map(|i| &i["id"])
        .collect();
    assert_eq!(ids, [&Value::from("ZB-0002-GC1")]);
}

/// The outbox for admins: events with their attempts and answers; a dead one put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_is_listed_and_a_dead_event_retried_by_an_admin() {
    let app = start("api-outbox").await;
    // A failing upload row makes a hold and its `sample.failed` for the configured upstream.
    let rows = serde_json::json!([{
        "id": "ob-1", "market": "ZB-0001", "stall": "A1", "sample_name": "菠菜",
        "analyte": "OPI", "value": 74.5, "unit": "%",
        "measured_at": "2026-11-28T09:00:00+08:00"
    }]);
    let r = app
        .post_json("/api/v1/results", Some("station"), &rows)
        .await;
    assert_eq!(r.json()["results"][0]["verdict"], "fail", "{}", r.json());
    let listed = app.get("/api/v1/outbox", Some("admin")).await;
    assert_eq!(listed.status, 200);
    let events = listed.json()["events"].as_array().expect("events").clone();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (
            &events[0]["type"],
            &events[0]["status"],
            &events[0]["upstream"]
        ),
        (
            &Value::from("sample.failed"),
            &Value::from("pending"),
            &Value::from("block")
        )
    );
    assert!(events[0]["next_attempt_at"].is_string());
    let id = events[0]["id"].as_i64().expect("id");
    // Only admins; a bad status is a 400 that says what is allowed.
    for who in ["station", "contractor", "regulator"] {
        assert_eq!(
            app.get("/api/v1/outbox", Some(who)).await.status,
            403,
            "{who}"
        );
        let path = format!("/api/v1/outbox/{id}/retry");
        assert_eq!(
            app.req("POST", &path, Some(who), "", b"").await.status,
            403,
            "{who}"
        );
    }
    assert_eq!(app.get("/api/v1/outbox", None).await.status, 401);
    let bad = app.get("/api/v1/outbox?status=lost", Some("admin")).await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["message"]
        .as_str()
        .is_some_and(|m| m.contains("pending")));
    // A pending event is not retried (409); an unknown one is 404.
    let path = format!("/api/v1/outbox/{id}/retry");
    let r = app.req("POST", &path, Some("admin"), "", b"").await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (409, Some("not_dead"))
    );
    let r = app
        .req(
            "POST",
            "/api/v1/outbox/999999/retry",
            Some("admin"),
            "",
            b"",
        )
        .await;
    assert_eq!(r.status, 404);
    // The upstream refused it for good (a 4xx): dead, with its answer; then retried.
    app.store
        .write_async(move |tx| {
            tx.connection().execute(
                "UPDATE outbox SET status = 'dead', last_answer = 'HTTP 422: unknown stall' WHERE id = ?1",
                [id],
            )?;
            Ok(())
        })
        .await
        .expect("write");
    let dead = app
        .get("/api/v1/outbox?status=dead", Some("admin"))
        .await
        .json();
    assert_eq!(dead["events"][0]["last_answer"], "HTTP 422: unknown stall");
    assert_eq!(dead["events"][0]["next_attempt_at"], Value::Null);
    let r = app.req("POST", &path, Some("admin"), "", b"").await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["status"], "pending");
    assert_eq!(
        app.get("/api/v1/outbox?status=dead", Some("admin"))
            .await
            .json()["events"],
        Value::Array(vec![])
    );
    // Audited with the admin token's name.
    let conn = app.store.inspect().expect("reader");
    let actor: String = conn
        .query_row(
            "SELECT actor FROM audit_log WHERE action = 'outbox.retry'",
            [],
            |r| r.get(0),
        )
        .expect("audit row");
    assert_eq!(actor, "adm");
}

/// `$ref` `#/components/schemas/X` of `doc`, followed until a schema that is not a reference.
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..32 {
        let Some(r) = schema.get("$ref").and_then(Value::as_str) else {
            return schema;
        };
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("a reference outside the components: {r}"));
        schema = doc["components"]["schemas"]
            .get(name)
            .unwrap_or_else(|| panic!("{r} names no schema"));
    }
    panic!("a cycle of references");
}

/// The non-null JSON types a property schema allows, through references and `oneOf`,
/// `anyOf` and `allOf`.
fn types_of(doc: &Value, schema: &Value, out: &mut BTreeSet<String>) {
    let schema = resolve(doc, schema);
    match &schema["type"] {
        Value::String(t) => {
            out.insert(t.clone());
        }
        Value::Array(ts) => out.extend(ts.iter().filter_map(Value::as_str).map(String::from)),
        _ => {}
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for s in schema[key].as_array().into_iter().flatten() {
            types_of(doc, s, out);
        }
    }
    out.remove("null");
}

/// The properties of an object schema, its `allOf` members' included.
fn properties_of<'a>(doc: &'a Value, schema: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    let schema = resolve(doc, schema);
    for (k, v) in schema["properties"].as_object().into_iter().flatten() {
        out.push((k.clone(), v));
    }
    for s in schema["allOf"].as_array().into_iter().flatten() {
        properties_of(doc, s, out);
    }
}

/// Every media type of `content` has a schema.
fn every_content_has_a_schema(content: &Value, what: &str) {
    let content = content
        .as_object()
        .unwrap_or_else(|| panic!("{what}: no content"));
    assert!(!content.is_empty(), "{what}: no content");
    for (media, c) in content {
        assert!(
            c.get("schema").is_some_and(Value::is_object),
            "{what} {media}: no schema"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_3_1_with_a_typed_schema_for_every_body() {
    use std::collections::BTreeSet as Set;
    let app = start("api-openapi").await;
    let r = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers.to_ascii_lowercase().contains("application/json"),
        "{}",
        r.headers
    );
    let doc = r.json();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "openapi {}",
        doc["openapi"]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer"})
    );
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    let error_ref = json!({"$ref": "#/components/schemas/Error"});
    let error = resolve(&doc, &error_ref);
    assert_eq!(error["required"], json!(["error", "message"]));

    // Operations whose success is a redirect (the sign-in forms) answer no 200 or 201.
    let redirects: Set<(&str, &str)> = [
        ("post", "/login"),
        ("post", "/logout"),
        ("post", "/station/samples"),
        ("post", "/station/holds/{id}/actions"),
    ]
    .into();
    let mut operation_ids = Set::new();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let what = format!("{} {path}", method.to_uppercase());
            operations += 1;
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                operation_ids.insert(id.to_string()),
                "{what}: operationId {id:?} again"
            );
            let responses = op["responses"].as_object().expect("responses");
            match ["200", "201"].iter().find_map(|c| responses.get(*c)) {
                Some(ok) => every_content_has_a_schema(&ok["content"], &what),
                None => {
                    assert!(
                        redirects.contains(&(method.as_str(), path.as_str()))
                            && responses.contains_key("303"),
                        "{what}: no 200 or 201 response"
                    );
                }
            }
            if let Some(body) = op.get("requestBody") {
                every_content_has_a_schema(&body["content"], &format!("{what} request"));
            }
            // Public operations say so; every other one may answer the token's errors.
            if op["security"] != json!([]) {
                for code in ["401", "403", "429"] {
                    assert!(responses.contains_key(code), "{what}: no {code}");
                }
            }
        }
    }
    assert!(operations >= 18, "{operations} operations");

    // Every property of every component has one type (null aside): a number is a number.
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        let mut props = Vec::new();
        properties_of(&doc, schema, &mut props);
        for (prop, s) in props {
            let mut types = Set::new();
            types_of(&doc, s, &mut types);
            assert_eq!(types.len(), 1, "{name}.{prop}: types {types:?} in {s}");
        }
    }
    let one_type = |schema: &str, prop: &str| {
        let mut props = Vec::new();
        properties_of(&doc, &doc["components"]["schemas"][schema], &mut props);
        let (_, s) = props
            .into_iter()
            .find(|(p, _)| p == prop)
            .unwrap_or_else(|| panic!("{schema}.{prop} missing"));
        let mut types = Set::new();
        types_of(&doc, s, &mut types);
        types.into_iter().next().unwrap_or_default()
    };
    assert_eq!(one_type("ResultRow", "value"), "number");
    assert_eq!(one_type("ResultView", "value"), "number");
    assert_eq!(one_type("ResultRow", "t_line"), "integer");

    // The upload row's schema has exactly the columns the API reads.
    let mut props = Vec::new();
    properties_of(&doc, &doc["components"]["schemas"]["ResultRow"], &mut props);
    let documented: Set<String> = props.into_iter().map(|(p, _)| p).collect();
    let read: Set<String> = foodgate::api::rows::FIELDS
        .iter()
        .chain(foodgate::api::rows::LATER_FIELDS)
        .map(|f| f.to_string())
        .collect();
    assert_eq!(documented, read);
    let upload = &doc["paths"]["/api/v1/results"]["post"]["requestBody"]["content"];
    assert_eq!(
        resolve(&doc, &upload["application/json"]["schema"])["maxItems"],
        10_000
    );
    assert_eq!(upload["text/csv"]["schema"]["type"], "string");
}

/// The document against a real OpenAPI 3.1 validator, when one is installed: Python's
/// `openapi-spec-validator` (`pip install openapi-spec-validator`). Skipped, and says so,
/// when Python or the package is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_passes_openapi_spec_validator() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&python)
        .args(["-c", "import openapi_spec_validator"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        _ => {
            eprintln!(
                "skipped: {python} with openapi-spec-validator is not installed \
                 (pip install openapi-spec-validator)"
            );
            return;
        }
    }
    let app = start("api-openapi-validator").await;
    let r = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(r.status, 200);
    let dir = temp_dir("openapi-validator");
    let file = dir.join("openapi.json");
    std::fs::write(&file, &r.body).expect("write the document");
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            "import json, sys\n\
             from openapi_spec_validator import OpenAPIV31SpecValidator, validate\n\
             doc = json.load(open(sys.argv[1]))\n\
             validate(doc, cls=OpenAPIV31SpecValidator)\n\
             print('valid OpenAPI 3.1')",
        ])
        .arg(&file)
        .output()
        .expect("run the validator");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
