//! Regulator platform adapters against strict mocks of the platforms (real HTTP servers on
//! loopback that check each request's exact shape and authentication and answer as
//! `docs/platforms.md` says), through the running service's outbox.

use crate::support::{temp_dir, wait_progress, TestApp, PATIENT};
use crate::web::row;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use foodgate::auth::{NewToken, Role};
use foodgate::store::Store;
use quick_xml::events::Event;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The `key` the mock expects: md5hex("market01#" + md5hex("s3cret-pw")), computed outside
/// foodgate (Python's hashlib) so the adapter is not checked with its own code.
const KEY: &str = "ef673f519ebcc5c6ffd214c6a3a2af13";

/// The parameters of `uploadDetectionData`, in their order.
const PARAMS: [&str; 15] = [
    "key",
    "testItemId",
    "sampleName",
    "testData",
    "testUnit",
    "result",
    "standard",
    "eqModel",
    "createDate",
    "eqNum",
    "foodTypeId",
    "enterpriseId",
    "stallNum",
    "sampleNum",
    "standardData",
];

#[derive(Default)]
struct Mock {
    key: String,
    /// Every request's parameters, in arrival order, with what was answered.
    seen: Mutex<Vec<(BTreeMap<String, String>, String)>>,
    bodies: Mutex<Vec<String>>,
}

fn envelope(inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\" ?><S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\">\
         <S:Body>{inner}</S:Body></S:Envelope>"
    )
}

fn answer(ret: &str) -> String {
    envelope(&format!(
        "<ns2:uploadDetectionDataResponse xmlns:ns2=\"http://service.ws.detection/\">\
         <return>{ret}</return></ns2:uploadDetectionDataResponse>"
    ))
}

/// Parse the envelope strictly: SOAP 1.1 envelope, body, the operation in its namespace, its
/// 15 unqualified parameters in order. The parameters, or what is wrong.
fn parse(body: &str) -> Result<BTreeMap<String, String>, String> {
    let mut reader = quick_xml::Reader::from_str(body);
    let mut path: Vec<String> = Vec::new();
    let mut order = Vec::new();
    let mut params = BTreeMap::new();
    let mut text = String::new();
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let depth = path.len();
                let ok = match depth {
                    0 => name == "soap:Envelope",
                    1 => name == "soap:Body",
                    2 => {
                        let ns = e
                            .attributes()
                            .flatten()
                            .find(|a| a.key.as_ref() == b"xmlns:ns")
                            .map(|a| String::from_utf8_lossy(&a.value).into_owned());
                        name == "ns:uploadDetectionData"
                            && ns.as_deref() == Some("http://service.ws.detection/")
                    }
                    3 => !name.contains(':'),
                    _ => false,
                };
                if !ok {
                    return Err(format!("unexpected element {name} at depth {depth}"));
                }
                text.clear();
                path.push(name);
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => {
                let name = String::from_utf8_lossy(&r).into_owned();
                text.push_str(match name.as_str() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    _ => "'",
                });
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                if path.len() == 3 {
                    order.push(name.clone());
                    params.insert(name, std::mem::take(&mut text));
                }
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                order.push(name.clone());
                params.insert(name, String::new());
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if order != PARAMS {
        return Err(format!("parameters {order:?}"));
    }
    Ok(params)
}

async fn soap(State(mock): State<Arc<Mock>>, headers: HeaderMap, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body).into_owned();
    mock.bodies.lock().unwrap().push(text.clone());
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if ctype != "text/xml; charset=utf-8" || headers.get("soapaction").is_none() {
        return (StatusCode::BAD_REQUEST, format!("not SOAP 1.1: {ctype}")).into_response();
    }
    let params = match parse(&text) {
        Ok(p) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let time_ok =
        chrono::NaiveDateTime::parse_from_str(&params["createDate"], "%Y-%m-%d %H:%M:%S").is_ok();
    let sample = params["sampleNum"].clone();
    let earlier = mock
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p["sampleNum"] == sample)
        .count();
    let (status, reply) = if params["key"] != mock.key {
        (StatusCode::OK, answer("2"))
    } else if params["eqNum"].is_empty()
        || params["stallNum"].is_empty()
        || !time_ok
        || !["合格", "不合格"].contains(&params["result"].as_str())
        || sample == "S-bad"
    {
        // A data error: a required field empty, a bad time or result, or refused data.
        (StatusCode::OK, answer("1"))
    } else if sample == "S-flaky" && earlier == 0 {
        (StatusCode::SERVICE_UNAVAILABLE, "busy".to_string())
    } else if sample == "S-flaky" && earlier == 1 {
        let fault = envelope(
            "<S:Fault><faultcode>S:Server</faultcode><faultstring>database busy</faultstring></S:Fault>",
        );
        (StatusCode::INTERNAL_SERVER_ERROR, fault)
    } else {
        (StatusCode::OK, answer("0"))
    };
    mock.seen.lock().unwrap().push((params, reply.clone()));
    (status, [("content-type", "text/xml; charset=utf-8")], reply).into_response()
}

async fn start_mock(key: &str) -> (std::net::SocketAddr, Arc<Mock>) {
    let mock = Arc::new(Mock {
        key: key.to_string(),
        ..Mock::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new()
        .route("/ws/detection", axum::routing::post(soap))
        .with_state(mock.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, mock)
}

async fn token(store: &Store, name: &str, role: Role) -> String {
    let new = NewToken {
        name: name.into(),
        role,
        markets: match role {
            Role::Admin => Vec::new(),
            _ => vec!["ZB-0001".to_string()],
        },
        expires_days: None,
    };
    store
        .write_async(move |tx| Ok(foodgate::auth::create(tx, &new, "test")))
        .await
        .expect("write")
        .expect("token")
}

const CODES: &str = "[items]\nchlorpyrifos = \"J-0107\"\n[foods]\nleafy_vegetable = \"F-11\"\n\
    [markets]\n\"ZB-0001\" = \"E-320102-0001\"\n[stalls]\n\"ZB-0001/A12\" = \"T-A12\"\n\
    [devices]\n\"IN-1\" = \"DEV-0091\"\n";

fn outbox(store: &Store) -> Vec<(i64, String, String, Option<String>)> {
    let conn = store.inspect().expect("inspect");
    let mut stmt = conn
        .prepare("SELECT id, type, status, last_answer FROM outbox ORDER BY id")
        .expect("prepare");
    let v = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jiangsu_gets_each_failure_once_in_its_soap_shape_and_data_errors_go_dead() {
    let (addr, mock) = start_mock(KEY).await;
    let dir = temp_dir("platform-jiangsu");
    let codes = dir.join("codes.toml");
    std::fs::write(&codes, CODES).expect("codes");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nutc_offset = \"+08:00\"\n\
         [[upstream]]\nname = \"js\"\nurl = \"http://{addr}/ws/detection\"\nformat = \"jiangsu\"\n\
         username = \"market01\"\npassword = \"s3cret-pw\"\ncodes = {codes:?}\ntimeout_s = 5\n\
         retry_initial_ms = 50\nretry_max_ms = 200\n",
        dir.join("data")
    );
    let cfg = foodgate::config::Config::parse(&text, "js.toml").expect("config");
    let app = TestApp::builder(cfg).builtin_markets().start().await;
    let st = token(app.store(), "st1", Role::Station).await;

    // A pass (not sent: send = failures), four failures: plain, a data error, one the
    // platform is busy for, and one at a stall the codes file does not know.
    let mut rows = vec![
        row("p1", "ZB-0001", "0.01", "2026-12-03T09:15:42+08:00"),
        row("ok", "ZB-0001", "0.5", "2026-12-03T09:16:00+08:00"),
        row("bad", "ZB-0001", "0.6", "2026-12-03T09:17:00+08:00"),
        row("flaky", "ZB-0001", "0.7", "2026-12-03T09:18:00+08:00"),
        row("nostall", "ZB-0001", "0.8", "2026-12-03T09:19:00+08:00"),
    ];
    rows[4]["stall"] = json!("B9");
    let (s, v) = app
        .post(
            "/api/v1/results",
            Some(&st),
            "application/json",
            Value::Array(rows).to_string().as_bytes(),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let settled = |store: &Store| {
        outbox(store)
            .iter()
            .filter(|(_, kind, status, _)| kind == "platform.record" && status == "pending")
            .count() as u64
    };
    wait_progress("the platform's outbox settled", PATIENT, || {
        settled(app.store())
    })
    .await;
    let events = outbox(app.store());
    let records: Vec<_> = events
        .iter()
        .filter(|(_, kind, _, _)| kind == "platform.record")
        .collect();
    assert_eq!(
        records.len(),
        4,
        "one record per failure, none for the pass: {events:?}"
    );
    let status_of = |i: usize| records[i].2.as_str();
    assert_eq!(
        [status_of(0), status_of(1), status_of(2), status_of(3)],
        ["delivered", "dead", "delivered", "dead"],
        "{records:?}"
    );
    let bad = records[1].3.clone().unwrap_or_default();
    assert!(
        bad.contains("data error") && bad.contains("<return>1</return>"),
        "{bad}"
    );
    let missing = records[3].3.clone().unwrap_or_default();
    assert!(missing.contains("stalls.\"ZB-0001/B9\""), "{missing}");

    // The exact request of the plain failure.
    let seen = mock.seen.lock().unwrap().clone();
    let (first, _) = seen
        .iter()
        .find(|(p, _)| p["sampleNum"] == "S-ok")
        .expect("the plain failure");
    let want: BTreeMap<String, String> = [
        ("key", KEY),
        ("testItemId", "J-0107"),
        ("sampleName", "菠菜"),
        ("testData", "0.5"),
        ("testUnit", "mg/kg"),
        ("result", "不合格"),
        ("standard", "GB 2763-2021 (verify)"),
        ("eqModel", ""),
        ("createDate", "2026-12-03 09:16:00"),
        ("eqNum", "DEV-0091"),
        ("foodTypeId", "F-11"),
        ("enterpriseId", "E-320102-0001"),
        ("stallNum", "T-A12"),
        ("sampleNum", "S-ok"),
        ("standardData", "0.02mg/kg"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(first, &want);
    // Each delivered once; the busy one answered 503, then a fault, then taken.
    let count = |sample: &str| {
        seen.iter()
            .filter(|(p, _)| p["sampleNum"] == sample)
            .count()
    };
    assert_eq!(count("S-ok"), 1);
    let flaky: Vec<&str> = seen
        .iter()
        .filter(|(p, _)| p["sampleNum"] == "S-flaky")
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(flaky.len(), 3, "a 503, a SOAP fault, then taken: {flaky:?}");
    assert!(flaky[1].contains("faultstring") && flaky[2].contains("<return>0</return>"));
    assert_eq!(
        mock.bodies.lock().unwrap().len(),
        seen.len(),
        "every request well-formed"
    );
    assert_eq!(count("S-bad"), 1, "a data error is not retried");
    assert_eq!(count("S-nostall"), 0, "no request without its codes");

    // Fix the codes file, retry the dead event: delivered, with the stall's code.
    let fixed = CODES.replace(
        "\"ZB-0001/A12\" = \"T-A12\"\n",
        "\"ZB-0001/A12\" = \"T-A12\"\n\"ZB-0001/B9\" = \"T-B9\"\n",
    );
    std::fs::write(&codes, fixed).expect("codes");
    // `foodgate outbox retry ID` on the same database, beside the running service.
    let file = dir.join("js.toml");
    std::fs::write(&file, &text).expect("config file");
    let id = records[3].0.to_string();
    let (list, out) = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| {
            std::process::Command::new(env!("CARGO_BIN_EXE_foodgate"))
                .args(args)
                .arg("--config")
                .arg(&file)
                .output()
                .expect("run foodgate")
        };
        (run(&["outbox", "list"]), run(&["outbox", "retry", &id]))
    })
    .await
    .expect("run");
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains("missing code: stalls.\"ZB-0001/B9\""),
        "the dead record's reason names the key: {listed}"
    );
    assert!(out.status.success(), "{out:?}");
    wait_progress("the retried record delivered", PATIENT, || {
        settled(app.store())
    })
    .await;
    let after = outbox(app.store());
    let retried = after.iter().find(|e| e.0 == records[3].0).expect("event");
    assert_eq!(retried.2, "delivered", "{retried:?}");
    let seen = mock.seen.lock().unwrap().clone();
    let sent: Vec<_> = seen
        .iter()
        .filter(|(p, _)| p["sampleNum"] == "S-nostall")
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0["stallNum"], "T-B9");
    app.shutdown().await;
}

/// One upload the zhejiang mock saw: its token, the record's fields, the answer.
type ZjUpload = (String, Vec<BTreeMap<String, String>>, String);

/// The zhejiang mock: logins hand out `tok-1`, `tok-2`, …; a token is good for `uses`
/// uploads, then answered `{"code":401}`.
#[derive(Default)]
struct Zj {
    logins: Mutex<Vec<(String, String)>>,
    /// (token, fields, answer) of every upload.
    uploads: Mutex<Vec<ZjUpload>>,
    good: Mutex<Option<(String, usize)>>,
}

const ZJ_RECORD: [&str; 10] = [
    "entitycode",
    "booth",
    "sampletime",
    "detectiontime",
    "deviceno",
    "channelno",
    "prodcode",
    "prodamount",
    "useunit",
    "detectItem",
];
const ZJ_ITEM: [&str; 4] = ["itemcode", "result", "extradata", "data"];

/// Each record's fields (item fields prefixed `item.`), checking the exact nesting and order.
fn zj_parse(xml: &str) -> Result<Vec<BTreeMap<String, String>>, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut records = Vec::new();
    let mut fields = BTreeMap::new();
    let (mut record, mut item) = (Vec::new(), Vec::new());
    let mut text = String::new();
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let want = match path.len() {
                    0 => {
                        name == "detectionData"
                            && e.attributes()
                                .flatten()
                                .any(|a| a.key.as_ref() == b"version" && a.value.as_ref() == b"1.0")
                    }
                    1 => name == "detectionRecords",
                    2 => name == "detectionRecord",
                    3 | 4 => true,
                    _ => false,
                };
                if !want {
                    return Err(format!("unexpected <{name}> at depth {}", path.len()));
                }
                match path.len() {
                    3 => record.push(name.clone()),
                    4 => item.push(name.clone()),
                    _ => {}
                }
                text.clear();
                path.push(name);
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                match path.len() {
                    2 => {
                        if record != ZJ_RECORD || item != ZJ_ITEM {
                            return Err(format!("record {record:?}, item {item:?}"));
                        }
                        records.push(std::mem::take(&mut fields));
                        record.clear();
                        item.clear();
                    }
                    3 if name != "detectItem" => {
                        fields.insert(name, std::mem::take(&mut text));
                    }
                    4 => {
                        fields.insert(format!("item.{name}"), std::mem::take(&mut text));
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    match records.len() {
        1..=100 => Ok(records),
        n => Err(format!("{n} records: 1 to 100 per upload")),
    }
}

async fn zj_login(State(zj): State<Arc<Zj>>, body: Bytes) -> Response {
    let form: BTreeMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let (user, pw) = (
        form.get("username").cloned().unwrap_or_default(),
        form.get("password").cloned().unwrap_or_default(),
    );
    zj.logins.lock().unwrap().push((user.clone(), pw.clone()));
    if user != "market01" || pw != "s3cret-pw" {
        return axum::Json(json!({"code": 3, "msg": "wrong account"})).into_response();
    }
    let token = format!("tok-{}", zj.logins.lock().unwrap().len());
    *zj.good.lock().unwrap() = Some((token.clone(), 1));
    axum::Json(json!({"code": 0, "token": token})).into_response()
}

async fn zj_upload(
    State(zj): State<Arc<Zj>>,
    query: axum::extract::Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = query.get("token").cloned().unwrap_or_default();
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let fields = match (ctype, zj_parse(&String::from_utf8_lossy(&body))) {
        ("application/xml; charset=utf-8", Ok(f)) => f,
        (c, r) => return (StatusCode::BAD_REQUEST, format!("{c}: {r:?}")).into_response(),
    };
    let answer = {
        let mut good = zj.good.lock().unwrap();
        match good.as_mut() {
            Some((t, uses)) if *t == token && *uses > 0 => {
                if fields.iter().any(|f| f["booth"] == "T-BAD") {
                    json!({"code": 1, "msg": "booth 不存在"})
                } else {
                    // The first token expires after one upload; later ones stay good.
                    if token == "tok-1" {
                        *uses -= 1;
                    }
                    json!({"code": 0})
                }
            }
            _ => json!({"code": 401, "msg": "token expired"}),
        }
    };
    zj.uploads
        .lock()
        .unwrap()
        .push((token, fields, answer.to_string()));
    axum::Json(answer).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zhejiang_logs_in_once_renews_an_expired_token_and_sends_its_xml() {
    zhejiang_against_its_strict_mock(false).await;
}

/// The same, with the example template of `docs/platforms/` in place of the adapter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zhejiang_template_does_the_same_against_the_same_mock() {
    zhejiang_against_its_strict_mock(true).await;
}

/// The `docs/platforms/` example of `adapter` for upstream `name` at `addr`, with the mocks'
/// account, codes file `codes` and short retries.
fn example_upstream(adapter: &str, name: &str, addr: &str, codes: &std::path::Path) -> String {
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/platforms");
    std::fs::read_to_string(format!("{docs}/{adapter}.toml"))
        .expect("example")
        .replace(
            "/etc/foodgate/platforms/codes.toml",
            &codes.display().to_string(),
        )
        .replace("/etc/foodgate/platforms", docs)
        .replace(
            "http://platform.example.cn/api/login",
            &format!("http://{addr}/login"),
        )
        .replace("http://platform.example.cn", &format!("http://{addr}"))
        .replace(
            &format!("name = \"{adapter}\"\n"),
            &format!(
                "name = \"{name}\"\ntimeout_s = 5\nretry_initial_ms = 50\nretry_max_ms = 200\n"
            ),
        )
        .replace("send = \"failures\"", "send = \"all\"")
        .replace("market-0003", "market01")
        .replace("change-me", "s3cret-pw")
}

async fn zhejiang_against_its_strict_mock(template: bool) {
    let zj = Arc::new(Zj::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = axum::Router::new()
        .route("/login", axum::routing::post(zj_login))
        .route("/api/farm/detect/updata", axum::routing::post(zj_upload))
        .with_state(zj.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let dir = temp_dir("platform-zhejiang");
    let codes = dir.join("codes.toml");
    std::fs::write(
        &codes,
        CODES.replace(
            "\"ZB-0001/A12\" = \"T-A12\"\n",
            "\"ZB-0001/A12\" = \"T-A12\"\n\"ZB-0001/X1\" = \"T-BAD\"\n",
        ),
    )
    .expect("codes");
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nutc_offset = \"+08:00\"\n",
        dir.join("data")
    );
    if template {
        text.push_str(&example_upstream(
            "zhejiang",
            "zj",
            &addr.to_string(),
            &codes,
        ));
    } else {
        text.push_str(&format!(
            "[[upstream]]\nname = \"zj\"\nurl = \"http://{addr}/api/farm/detect/updata\"\n\
             format = \"zhejiang\"\nlogin_url = \"http://{addr}/login\"\nsend = \"all\"\n\
             username = \"market01\"\npassword = \"s3cret-pw\"\ncodes = {codes:?}\ntimeout_s = 5\n\
             retry_initial_ms = 50\nretry_max_ms = 200\n"
        ));
    }
    let cfg = foodgate::config::Config::parse(&text, "zj.toml").expect("config");
    let app = TestApp::builder(cfg).builtin_markets().start().await;
    let st = token(app.store(), "st1", Role::Station).await;
    // One at a time, so the first token's expiry falls between them.
    let mut rows = vec![
        row("z1", "ZB-0001", "0.5", "2026-12-03T10:00:00+08:00"),
        row("z2", "ZB-0001", "0.01", "2026-12-03T10:05:00+08:00"),
        row("z3", "ZB-0001", "0.6", "2026-12-03T10:10:00+08:00"),
    ];
    rows[2]["stall"] = json!("X1");
    let settled = |store: &Store| {
        outbox(store)
            .iter()
            .filter(|(_, kind, status, _)| kind == "platform.record" && status == "pending")
            .count() as u64
    };
    for r in rows {
        let (s, v) = app
            .post(
                "/api/v1/results",
                Some(&st),
                "application/json",
                json!([r]).to_string().as_bytes(),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        wait_progress("the record settled", PATIENT, || settled(app.store())).await;
    }
    let records: Vec<_> = outbox(app.store())
        .into_iter()
        .filter(|(_, kind, _, _)| kind == "platform.record")
        .collect();
    let statuses: Vec<&str> = records.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(
        statuses,
        ["delivered", "delivered", "dead"],
        "send = all: the pass too"
    );
    assert!(
        records[2]
            .3
            .as_deref()
            .unwrap_or_default()
            .contains("booth 不存在"),
        "{records:?}"
    );
    let logins = zj.logins.lock().unwrap().clone();
    assert_eq!(logins.len(), 2, "one login, one renewal: {logins:?}");
    assert!(logins
        .iter()
        .all(|(u, p)| u == "market01" && p == "s3cret-pw"));
    let uploads = zj.uploads.lock().unwrap().clone();
    let tokens: Vec<&str> = uploads.iter().map(|u| u.0.as_str()).collect();
    assert_eq!(
        tokens,
        ["tok-1", "tok-1", "tok-2", "tok-2"],
        "expired, renewed, re-sent"
    );
    assert!(uploads.iter().all(|u| u.1.len() == 1), "one at a time");
    let first = &uploads[0].1[0];
    let want: BTreeMap<String, String> = [
        ("entitycode", "E-320102-0001"),
        ("booth", "T-A12"),
        ("sampletime", "2026-12-03 10:00:00"),
        ("detectiontime", "2026-12-03 10:00:00"),
        ("deviceno", "DEV-0091"),
        ("channelno", ""),
        ("prodcode", "F-11"),
        ("prodamount", ""),
        ("useunit", ""),
        ("item.itemcode", "J-0107"),
        ("item.result", "1"),
        ("item.extradata", ""),
        ("item.data", "0.5"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(first, &want);
    assert_eq!(uploads[2].1[0]["item.result"], "0", "the pass");
    app.shutdown().await;

    // `foodgate upstream check`: logs in, renders the newest record, sends nothing.
    let file = dir.join("zj.toml");
    std::fs::write(&file, &text).expect("config file");
    let run = move |name: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_foodgate"))
            .args(["upstream", "check", name, "--config"])
            .arg(&file)
            .output()
            .expect("run foodgate")
    };
    let out = tokio::task::spawn_blocking(move || (run("zj"), run("nope")))
        .await
        .expect("runs");
    let (ok, missing) = out;
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("login: ok, token tok-"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "POST http://{addr}/api/farm/detect/updata?token=tok-3"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("<booth>T-BAD</booth>"),
        "the newest record: {stdout}"
    );
    assert!(!stdout.contains("s3cret-pw"));
    assert_eq!(zj.logins.lock().unwrap().len(), 3, "it logged in");
    assert_eq!(zj.uploads.lock().unwrap().len(), 4, "and sent nothing");
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no upstream \"nope\""));
}

/// The guangdong mock: every form it got (usr, pwd, the `result` text) and what it answered.
#[derive(Default)]
struct Gd {
    forms: Mutex<Vec<(BTreeMap<String, String>, String)>>,
}

async fn gd_upload(State(gd): State<Arc<Gd>>, headers: HeaderMap, body: Bytes) -> Response {
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let form: BTreeMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let parsed: Option<Value> = form
        .get("result")
        .and_then(|r| serde_json::from_str(r).ok());
    let seen = gd.forms.lock().unwrap().len();
    let answer = match parsed {
        _ if ctype != "application/x-www-form-urlencoded" => {
            json!({"code": 2, "msg": "not a form"})
        }
        _ if form.get("usr").map(String::as_str) != Some("market01")
            || form.get("pwd").map(String::as_str) != Some("s3cret-pw") =>
        {
            json!({"code": 1, "msg": "账号错误"})
        }
        None => json!({"code": 2, "msg": "JSON 错误"}),
        Some(r) if r["totalnum"].as_u64() != r["details"].as_array().map(|d| d.len() as u64) => {
            json!({"code": 1, "msg": "totalnum 与 details 不符"})
        }
        // The platform's first answer of the day: a system error.
        Some(_) if seen == 0 => json!({"code": 3, "msg": "系统错误"}),
        Some(r) if r["deviceid"] == "DEV-BAD" => json!({"code": 1, "msg": "设备未登记"}),
        Some(_) => json!({"code": 0, "msg": "ok"}),
    };
    gd.forms.lock().unwrap().push((form, answer.to_string()));
    axum::Json(answer).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guangdong_gets_its_form_with_the_record_as_json_text() {
    let gd = Arc::new(Gd::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = axum::Router::new()
        .route("/api/upload", axum::routing::post(gd_upload))
        .with_state(gd.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let dir = temp_dir("platform-guangdong");
    let codes = dir.join("codes.toml");
    std::fs::write(&codes, format!("{CODES}\"IN-9\" = \"DEV-BAD\"\n")).expect("codes");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nutc_offset = \"+08:00\"\n\
         [[upstream]]\nname = \"gd\"\nurl = \"http://{addr}/api/upload\"\nformat = \"guangdong\"\n\
         username = \"market01\"\npassword = \"s3cret-pw\"\ncodes = {codes:?}\ntimeout_s = 5\n\
         retry_initial_ms = 50\nretry_max_ms = 200\n",
        dir.join("data")
    );
    let cfg = foodgate::config::Config::parse(&text, "gd.toml").expect("config");
    let app = TestApp::builder(cfg).builtin_markets().start().await;
    let st = token(app.store(), "st1", Role::Station).await;
    let mut bad = row("g2", "ZB-0001", "0.6", "2026-12-03T11:05:00+08:00");
    bad["instrument"] = json!("IN-9");
    for r in [
        row("g1", "ZB-0001", "0.5", "2026-12-03T11:00:00+08:00"),
        bad,
    ] {
        let (s, v) = app
            .post(
                "/api/v1/results",
                Some(&st),
                "application/json",
                json!([r]).to_string().as_bytes(),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        wait_progress("the record settled", PATIENT, || {
            outbox(app.store())
                .iter()
                .filter(|(_, kind, status, _)| kind == "platform.record" && status == "pending")
                .count() as u64
        })
        .await;
    }
    let records: Vec<_> = outbox(app.store())
        .into_iter()
        .filter(|(_, kind, _, _)| kind == "platform.record")
        .collect();
    let statuses: Vec<&str> = records.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(statuses, ["delivered", "dead"]);
    assert!(records[1]
        .3
        .as_deref()
        .unwrap_or_default()
        .contains("设备未登记"));
    let forms = gd.forms.lock().unwrap().clone();
    assert_eq!(
        forms.len(),
        3,
        "a system error retried, then delivered; the data error once"
    );
    assert!(forms[0].1.contains("\"code\":3") && forms[1].1.contains("\"code\":0"));
    // The JSON text exactly, keys in the platform's order.
    assert_eq!(
        forms[1].0["result"],
        "{\"username\":\"market01\",\"itemid\":\"J-0107\",\"deviceid\":\"DEV-0091\",\
         \"totalnum\":1,\"Longitude\":\"\",\"Latitude\":\"\",\"details\":[{\"sampleid\":\"S-g1\",\
         \"doublevalue\":0.5,\"unit\":\"mg/kg\",\"stringvalue\":\"1\",\"time\":\"2026-12-03 11:00:00\"}]}"
    );
    app.shutdown().await;
}

/// The guangdong status endpoint: every heartbeat form it got.
async fn gd_status(State(gd): State<Arc<Gd>>, headers: HeaderMap, body: Bytes) -> Response {
    let form: BTreeMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let ok = headers.get("content-type").and_then(|v| v.to_str().ok())
        == Some("application/x-www-form-urlencoded")
        && form.get("usr").map(String::as_str) == Some("market01")
        && form.get("pwd").map(String::as_str) == Some("s3cret-pw")
        && ["0", "1", "2"].contains(&form.get("status").map(String::as_str).unwrap_or("?"));
    let answer = if ok {
        json!({"code": 0, "msg": "ok"})
    } else {
        json!({"code": 1, "msg": "参数错误"})
    };
    gd.forms.lock().unwrap().push((form, answer.to_string()));
    axum::Json(answer).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guangdong_hears_every_coded_instruments_heartbeat_on_running_or_off() {
    let gd = Arc::new(Gd::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = axum::Router::new()
        .route("/api/status", axum::routing::post(gd_status))
        .with_state(gd.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let dir = temp_dir("platform-guangdong-heartbeat");
    let codes = dir.join("codes.toml");
    std::fs::write(
        &codes,
        format!("{CODES}\"IN-2\" = \"DEV-0002\"\n\"IN-3\" = \"DEV-0003\"\n"),
    )
    .expect("codes");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nutc_offset = \"+08:00\"\n\
         [[upstream]]\nname = \"gd\"\nurl = \"http://{addr}/api/upload\"\nformat = \"guangdong\"\n\
         username = \"market01\"\npassword = \"s3cret-pw\"\ncodes = {codes:?}\n\
         status_url = \"http://{addr}/api/status\"\nheartbeat_s = 1\ntimeout_s = 5\n",
        dir.join("data")
    );
    let cfg = foodgate::config::Config::parse(&text, "gd.toml").expect("config");
    let app = TestApp::builder(cfg).builtin_markets().start().await;
    // Read a minute ago (running), online but idle for two days (on), offline (off), and one
    // the codes file has no device number for (not sent).
    let now = chrono::Utc::now();
    let seen = [
        ("IN-1", true, now - chrono::Duration::seconds(0)),
        ("IN-2", true, now - chrono::Duration::days(2)),
        ("IN-3", false, now - chrono::Duration::days(2)),
        ("IN-4", true, now),
    ];
    app.store()
        .write_async(move |tx| {
            for (id, online, last) in seen {
                let at = last.to_rfc3339();
                foodgate::store::instruments::upsert_status(
                    tx,
                    &foodgate::store::instruments::StatusRow {
                        id,
                        market: "ZB-0001",
                        protocol: "gold-card",
                        serial_number: None,
                        model: None,
                        firmware: None,
                        last_seen: Some(at.clone()),
                        online,
                        counters: Default::default(),
                        last_error: None,
                        status_at: &at,
                    },
                )?;
            }
            Ok(())
        })
        .await
        .expect("instruments");
    // Each round reads the instruments at once: 0 or 3 forms. Two full rounds, then the last.
    wait_progress("two rounds of heartbeats", PATIENT, || {
        6u64.saturating_sub(gd.forms.lock().unwrap().len() as u64)
    })
    .await;
    let forms = gd.forms.lock().unwrap().clone();
    assert!(
        forms.iter().all(|f| f.1.contains("\"code\":0")),
        "{forms:?}"
    );
    let mut round: Vec<(String, String)> = forms[forms.len() - 3..]
        .iter()
        .map(|(f, _)| (f["deviceid"].clone(), f["status"].clone()))
        .collect();
    round.sort();
    assert_eq!(
        round,
        [
            ("DEV-0002".to_string(), "1".to_string()),
            ("DEV-0003".into(), "0".into()),
            ("DEV-0091".into(), "2".into()),
        ]
    );
    assert_eq!(
        forms[0].0.len(),
        4,
        "usr, pwd, deviceid, status: {:?}",
        forms[0].0
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zhejiang_takes_records_stored_together_in_one_upload_and_halves_a_refused_one() {
    let zj = Arc::new(Zj::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = axum::Router::new()
        .route("/login", axum::routing::post(zj_login))
        .route("/api/farm/detect/updata", axum::routing::post(zj_upload))
        .with_state(zj.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let dir = temp_dir("platform-zhejiang-batch");
    let codes = dir.join("codes.toml");
    std::fs::write(
        &codes,
        CODES.replace(
            "\"ZB-0001/A12\" = \"T-A12\"\n",
            "\"ZB-0001/A12\" = \"T-A12\"\n\"ZB-0001/X1\" = \"T-BAD\"\n",
        ),
    )
    .expect("codes");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nutc_offset = \"+08:00\"\n\
         [[upstream]]\nname = \"zj\"\nurl = \"http://{addr}/api/farm/detect/updata\"\n\
         format = \"zhejiang\"\nlogin_url = \"http://{addr}/login\"\nsend = \"all\"\n\
         username = \"market01\"\npassword = \"s3cret-pw\"\ncodes = {codes:?}\ntimeout_s = 5\n\
         retry_initial_ms = 50\nretry_max_ms = 200\n",
        dir.join("data")
    );
    let cfg = foodgate::config::Config::parse(&text, "zj.toml").expect("config");
    let app = TestApp::builder(cfg).builtin_markets().start().await;
    let st = token(app.store(), "st1", Role::Station).await;
    // Five readings in one upload, the fourth of a stall the platform does not know.
    let mut rows: Vec<Value> = (1..=5)
        .map(|i| {
            row(
                &format!("b{i}"),
                "ZB-0001",
                if i % 2 == 0 { "0.01" } else { "0.5" },
                &format!("2026-12-03T10:0{i}:00+08:00"),
            )
        })
        .collect();
    rows[3]["stall"] = json!("X1");
    let (s, v) = app
        .post(
            "/api/v1/results",
            Some(&st),
            "application/json",
            Value::Array(rows).to_string().as_bytes(),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    wait_progress("every record answered", PATIENT, || {
        outbox(app.store())
            .iter()
            .filter(|(_, kind, status, _)| kind == "platform.record" && status == "pending")
            .count() as u64
    })
    .await;
    let records: Vec<_> = outbox(app.store())
        .into_iter()
        .filter(|(_, kind, _, _)| kind == "platform.record")
        .collect();
    let statuses: Vec<&str> = records.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(
        statuses,
        ["delivered", "delivered", "delivered", "dead", "delivered"]
    );
    assert!(records[3]
        .3
        .as_deref()
        .unwrap_or_default()
        .contains("booth 不存在"));
    let uploads = zj.uploads.lock().unwrap().clone();
    let sizes: Vec<usize> = uploads.iter().map(|u| u.1.len()).collect();
    // All five, refused; halves of 2 and 3; the 3 on an expired token (the mock's first
    // token takes one upload), again after a new login, refused; 1 and 2; the 2 refused;
    // 1 and 1.
    assert_eq!(sizes, [5, 2, 3, 3, 1, 2, 1, 1], "{uploads:?}");
    assert_eq!(zj.logins.lock().unwrap().len(), 2);
    let delivered: Vec<&str> = uploads
        .iter()
        .filter(|u| u.2.contains("\"code\":0"))
        .flat_map(|u| u.1.iter().map(|f| f["sampletime"].as_str()))
        .collect();
    assert_eq!(
        delivered,
        [
            "2026-12-03 10:01:00",
            "2026-12-03 10:02:00",
            "2026-12-03 10:03:00",
            "2026-12-03 10:05:00"
        ],
        "each good record delivered once, in order"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guangdong_takes_the_records_of_one_item_and_device_in_one_request() {
    let gd = Arc::new(Gd::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = axum::Router::new()
        .route("/api/upload", axum::routing::post(gd_upload))
        .with_state(gd.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let dir = temp_dir("platform-guangdong-batch");
    let codes = dir.join("codes.toml");
    std::fs::write(&codes, format!("{CODES}\"IN-9\" = \"DEV-BAD\"\n")).expect("codes");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nutc_offset = \"+08:00\"\n\
         [[upstream]]\nname = \"gd\"\nurl = \"http://{addr}/api/upload\"\nformat = \"guangdong\"\n\
         username = \"market01\"\npassword = \"s3cret-pw\"\ncodes = {codes:?}\ntimeout_s = 5\n\
         send = \"all\"\nretry_initial_ms = 50\nretry_max_ms = 200\n",
        dir.join("data")
    );
    let cfg = foodgate::config::Config::parse(&text, "gd.toml").expect("config");
    let app = TestApp::builder(cfg).builtin_markets().start().await;
    let st = token(app.store(), "st1", Role::Station).await;
    // Three readings of one device and one of another, in one upload.
    let mut rows: Vec<Value> = (1..=4)
        .map(|i| {
            row(
                &format!("d{i}"),
                "ZB-0001",
                if i == 2 { "0.01" } else { "0.5" },
                &format!("2026-12-03T11:0{i}:00+08:00"),
            )
        })
        .collect();
    rows[2]["instrument"] = json!("IN-9");
    let (s, v) = app
        .post(
            "/api/v1/results",
            Some(&st),
            "application/json",
            Value::Array(rows).to_string().as_bytes(),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    wait_progress("every record answered", PATIENT, || {
        outbox(app.store())
            .iter()
            .filter(|(_, kind, status, _)| kind == "platform.record" && status == "pending")
            .count() as u64
    })
    .await;
    let statuses: Vec<String> = outbox(app.store())
        .into_iter()
        .filter(|(_, kind, _, _)| kind == "platform.record")
        .map(|r| r.2)
        .collect();
    assert_eq!(statuses, ["delivered", "delivered", "dead", "delivered"]);
    let forms = gd.forms.lock().unwrap().clone();
    let sent: Vec<Value> = forms
        .iter()
        .filter_map(|(f, _)| serde_json::from_str(f.get("result")?).ok())
        .collect();
    assert!(
        sent.iter().all(|r| r["details"]
            .as_array()
            .is_some_and(|d| { d.len() as u64 == r["totalnum"].as_u64().unwrap_or(0) })),
        "{sent:?}"
    );
    let delivered: Vec<&Value> = forms
        .iter()
        .zip(&sent)
        .filter(|((_, answer), _)| answer.contains("\"code\":0"))
        .map(|(_, r)| r)
        .collect();
    assert_eq!(delivered.len(), 1, "one request for the three: {forms:?}");
    let d = delivered[0];
    assert_eq!(
        (d["deviceid"].as_str(), d["totalnum"].as_u64()),
        (Some("DEV-0091"), Some(3))
    );
    let samples: Vec<(&str, &str)> = d["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|x| {
            (
                x["sampleid"].as_str().unwrap_or("?"),
                x["stringvalue"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(samples, [("S-d1", "1"), ("S-d2", "0"), ("S-d4", "1")]);
    assert!(
        sent.iter()
            .all(|r| r["deviceid"] != "DEV-BAD" || r["totalnum"] == 1),
        "the other device alone"
    );
    app.shutdown().await;
}
