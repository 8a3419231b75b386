//! Nothing lost between a station and its hub: every reading a station can store from any
//! instrument stream reaches the hub as the same reading, and a correction made at the station
//! (a stall set by hand on a reading without a sample id) reaches the hub's reading and hold.

use crate::support::{temp_dir, wait_progress, TestApp, PATIENT, SECRET};
use foodgate::auth::{NewToken, Role};
use foodgate::ingest::{ingest, IngestTarget};
use foodgate::judge::Judge;
use foodgate::store::Store;
use foodgate_parsers::{new_decoder, DecoderConfig, Protocol};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

const MARKET: &str = "ZB-0003";

async fn node(name: &str, upstreams: &str) -> TestApp {
    let dir = temp_dir(name);
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nutc_offset = \"+08:00\"\n{upstreams}",
        dir.join("data")
    );
    let config = foodgate::config::Config::parse(&text, "node.toml").expect("config");
    TestApp::builder(config).builtin_markets().start().await
}

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

fn results_upstream(hub: SocketAddr, token: &str) -> String {
    format!(
        "[[upstream]]\nname = \"hub\"\nurl = \"http://{hub}/api/v1/results\"\nformat = \"results\"\n\
         send = \"all\"\nsecret = {SECRET:?}\ntoken = {token:?}\ntimeout_s = 5\n\
         retry_initial_ms = 50\nretry_max_ms = 200\n"
    )
}

/// Outbox rows of the station by status.
fn outbox_statuses(store: &Store) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in foodgate::store::outbox::list(&store.reader().expect("reader"), None, 1_000_000)
        .expect("outbox")
    {
        *m.entry(e.status).or_insert(0) += 1;
    }
    m
}

/// Wait until the station's outbox has nothing pending; its statuses then.
async fn drained(store: &Store) -> BTreeMap<String, usize> {
    wait_progress("the station's outbox delivered", PATIENT, || {
        outbox_statuses(store).get("pending").copied().unwrap_or(0) as u64
    })
    .await;
    outbox_statuses(store)
}

/// Ingest one stream into the station as instrument `instrument`.
fn ingest_file(store: &Store, protocol: Protocol, path: &Path, instrument: String) {
    let mut config = DecoderConfig::default();
    if let Ok(enc) = std::fs::read_to_string(path.with_extension("encoding")) {
        config.encoding = Some(enc.trim().parse().expect("encoding"));
    }
    config.instrument = Some(instrument.as_str().into());
    let mut decoder = new_decoder(protocol, config);
    let target = IngestTarget {
        market: MARKET.into(),
        stall: None,
        instrument: Some(instrument),
        source: path.display().to_string(),
    };
    let file = std::fs::File::open(path).expect("stream");
    ingest(store, decoder.as_mut(), &Judge::builtin(), &target, file)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn files_in(dir: &Path, keep: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    names.retain(|p: &PathBuf| keep(p));
    names.sort();
    names
}

/// Ingest every fixture of every protocol into the station, each as its own instrument, and
/// the real instrument captures of the shared contract folder when it is there.
fn ingest_fixtures(store: &Store) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = 0;
    for protocol in Protocol::ALL {
        let dir = root.join("fixtures").join(protocol.as_str());
        for path in files_in(&dir, |p| p.extension().is_some_and(|x| x == "bin")) {
            let stem = path.file_stem().and_then(|s| s.to_str()).expect("name");
            ingest_file(store, protocol, &path, format!("FX-{protocol}-{stem}"));
            files += 1;
        }
    }
    let captures = root.join("../shared/captures/astm");
    let real = files_in(&captures, |p| {
        p.extension().is_some_and(|x| x == "txt" || x == "bin")
    });
    if real.is_empty() {
        eprintln!(
            "skipped: {} is absent (the shared captures are not here)",
            captures.display()
        );
    }
    for path in real {
        let stem = path.file_stem().and_then(|s| s.to_str()).expect("name");
        ingest_file(store, Protocol::Astm, &path, format!("CAP-{stem}"));
        files += 1;
    }
    files
}

type Key = (String, Option<f64>, Option<String>, String, i64);

/// ("row id|analyte", value, stall, verdict, superseded) of the readings `sql` selects, in
/// that column order and ordered by row id.
fn keyed_readings(store: &Store, sql: &str, params: &[&str]) -> Vec<Key> {
    let conn = store.inspect().expect("inspect");
    let mut stmt = conn.prepare(sql).expect("prepare");
    stmt.query_map(rusqlite::params_from_iter(params), |r| {
        Ok((
            format!("{}|{}", r.get::<_, String>(0)?, r.get::<_, String>(1)?),
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// The station's readings, keyed by their identity.
fn station_readings(store: &Store) -> Vec<Key> {
    keyed_readings(
        store,
        "SELECT identity, analyte, value, stall, verdict, superseded FROM readings
         ORDER BY identity",
        &[],
    )
}

/// The hub's readings from `uploader`, keyed by the row id the station sent (its identity).
fn hub_readings(store: &Store, uploader: &str) -> Vec<Key> {
    keyed_readings(
        store,
        "SELECT u.row_id, r.analyte, r.value, r.stall, r.verdict, r.superseded
         FROM uploads u JOIN readings r ON r.id = u.reading
         WHERE u.uploader = ?1 ORDER BY u.row_id",
        &[uploader],
    )
}

fn text_of(store: &Store, sql: &str) -> String {
    store
        .inspect()
        .expect("inspect")
        .query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn count(store: &Store, sql: &str) -> i64 {
    store
        .inspect()
        .expect("inspect")
        .query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_through_a_station_leaves_the_same_readings_in_the_hub() {
    let hub = node("fed-hub", "").await;
    let station_token = token(hub.store(), "station-3", Role::Station).await;
    let station = node("fed-station", &results_upstream(hub.addr(), &station_token)).await;

    let store = station.store().clone();
    let files = tokio::task::spawn_blocking(move || ingest_fixtures(&store))
        .await
        .expect("ingest");
    assert!(files >= 50, "only {files} fixtures found");
    let statuses = drained(station.store()).await;
    let dead: Vec<_> = foodgate::store::outbox::list(
        &station.store().reader().expect("reader"),
        Some("dead"),
        1000,
    )
    .expect("outbox")
    .into_iter()
    .map(|e| e.last_answer.unwrap_or_default())
    .collect();
    assert!(
        dead.is_empty(),
        "rows the hub refused ({statuses:?}): {dead:#?}"
    );

    let at_station = station_readings(station.store());
    let at_hub = hub_readings(hub.store(), "station-3");
    assert!(at_station.len() >= 100, "{} readings", at_station.len());
    // Readings whose analyte the station does not know are among them, and arrive too.
    let unknown = |rs: &[Key]| rs.iter().filter(|k| k.0.contains("|unknown:")).count();
    assert!(
        unknown(&at_station) > 0,
        "no unknown: analyte in the fixtures"
    );
    assert_eq!(unknown(&at_hub), unknown(&at_station));
    let missing: Vec<_> = at_station.iter().filter(|k| !at_hub.contains(k)).collect();
    let extra: Vec<_> = at_hub.iter().filter(|k| !at_station.contains(k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "station readings not at the hub as stored: {missing:#?}\nhub readings not at the station: {extra:#?}"
    );
    // Never judged against a limit: `unknown`, or `invalid` when the instrument said so.
    assert_eq!(
        count(
            hub.store(),
            "SELECT count(*) FROM readings WHERE analyte LIKE 'unknown:%'
               AND verdict NOT IN ('unknown', 'invalid')"
        ),
        0
    );
    // The code as the instrument sent it is kept at the hub.
    assert_eq!(
        count(
            hub.store(),
            "SELECT count(*) FROM readings WHERE analyte LIKE 'unknown:%'
               AND analyte = 'unknown:' || analyte_code"
        ),
        count(
            hub.store(),
            "SELECT count(*) FROM readings WHERE analyte LIKE 'unknown:%'"
        ),
    );
    station.shutdown().await;
    hub.shutdown().await;
}

/// A failing reading without a sample id, from an instrument at the station.
fn failing_reading_without_sample() -> foodgate::store::NewReading {
    let mut r = foodgate_parsers::Reading::new(Protocol::Astm, "chlorpyrifos");
    r.instrument = Some("IN-1".into());
    r.sample_name = Some("菠菜".into());
    r.category = Some("leafy_vegetable".into());
    r.analyte_code = Some("CPF".into());
    r.value_text = Some("0.5".into());
    r.value = Some(0.5);
    r.unit = Some("mg/kg".into());
    r.measured_at = chrono::DateTime::parse_from_rfc3339("2025-03-04T09:30:00+08:00").ok();
    foodgate::store::NewReading {
        reading: Judge::builtin().judged(r),
        market: MARKET.into(),
        stall: None,
        origin: foodgate::store::Origin::Instrument("IN-1".into()),
        received_at: chrono::Utc::now(),
        frame: None,
    }
}

fn holds(body: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["holds"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_set_at_the_station_on_a_reading_without_sample_id_reaches_the_hubs_hold() {
    let hub = node("fed-stall-hub", "").await;
    let station_token = token(hub.store(), "station-3", Role::Station).await;
    let hub_regulator = token(hub.store(), "city", Role::Regulator).await;
    let station = node(
        "fed-stall-station",
        &results_upstream(hub.addr(), &station_token),
    )
    .await;
    let tester = token(station.store(), "tester", Role::Station).await;

    let batch = foodgate::store::Batch {
        frames: Vec::new(),
        readings: vec![failing_reading_without_sample()],
    };
    station.store().submit_async(batch).await.expect("submit");
    drained(station.store()).await;

    let (status, body) = station.get("/api/v1/holds", Some(&tester)).await;
    assert_eq!(status, 200, "{body}");
    let station_holds = holds(&body);
    assert_eq!(station_holds.len(), 1, "{body}");
    assert!(station_holds[0]["sample"]["id"].is_null(), "{body}");
    let (_, body) = hub.get("/api/v1/holds", Some(&hub_regulator)).await;
    let hub_holds = holds(&body);
    assert_eq!(hub_holds.len(), 1, "the hub holds the same sample: {body}");
    assert!(hub_holds[0]["stall"].is_null(), "{body}");

    let id = station_holds[0]["id"]
        .as_str()
        .expect("hold id")
        .to_string();
    let (status, body) = crate::support::http(
        station.addr(),
        "PATCH",
        &format!("/api/v1/holds/{id}"),
        Some(&tester),
        Some("application/json"),
        br#"{"stall":"A-17"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let statuses = drained(station.store()).await;
    assert_eq!(statuses.get("dead"), None, "{statuses:?}");

    let (_, body) = hub.get("/api/v1/holds", Some(&hub_regulator)).await;
    let hub_holds = holds(&body);
    assert_eq!(hub_holds.len(), 1, "{body}");
    assert_eq!(
        hub_holds[0]["stall"], "A-17",
        "the hub's hold names the stall: {body}"
    );
    let history = hub_holds[0]["history"].as_array().expect("history");
    assert!(
        history
            .iter()
            .any(|h| h["reason"].as_str().is_some_and(|r| r.contains("A-17"))),
        "the change is in the hub hold's history: {body}"
    );
    assert_eq!(
        count(
            hub.store(),
            "SELECT count(*) FROM readings WHERE stall = 'A-17'"
        ),
        1
    );
    // Sent again (a retry after a lost answer), the correction changes nothing more; a row
    // this uploader never sent, or another uploader's row, is refused with its reason.
    let row_id = text_of(
        hub.store(),
        "SELECT row_id FROM uploads WHERE uploader = 'station-3'",
    );
    let other = token(hub.store(), "station-9", Role::Station).await;
    let again = format!(
        r#"[{{"id":"{row_id}","market":"{MARKET}","stall":"A-17"}},{{"id":"nope","market":"{MARKET}","stall":"A-18"}},{{"id":"{row_id}","market":"ZB-0004","stall":"A-18"}},{{"id":"{row_id}","market":"{MARKET}"}}]"#
    );
    let (status, body) = hub
        .post(
            "/api/v1/results/stalls",
            Some(&station_token),
            "application/json",
            again.as_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    let statuses: Vec<&str> = v["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        statuses,
        ["duplicate", "rejected", "rejected", "rejected"],
        "{body}"
    );
    assert_eq!(v["results"][1]["errors"][0]["field"], "id", "{body}");
    assert_eq!(v["results"][2]["errors"][0]["field"], "market", "{body}");
    assert_eq!(v["results"][3]["errors"][0]["field"], "stall", "{body}");
    let (_, body) = hub
        .post(
            "/api/v1/results/stalls",
            Some(&other),
            "application/json",
            format!(r#"[{{"id":"{row_id}","market":"{MARKET}","stall":"B-1"}}]"#).as_bytes(),
        )
        .await;
    assert!(body.contains(r#""status":"rejected""#), "{body}");
    assert_eq!(
        count(
            hub.store(),
            "SELECT count(*) FROM readings WHERE stall = 'A-17'"
        ),
        1
    );
    let (status, body) = hub
        .post(
            "/api/v1/results/stalls",
            Some(&station_token),
            "application/json",
            b"{}",
        )
        .await;
    assert_eq!(status, 400, "{body}");
    station.shutdown().await;
    hub.shutdown().await;
}
