//! Polled instruments end to end: `foodgate serve` polls an analyzer on a pty that is not
//! foodgate's own simulator (`tests/peers/polled_device.py`, written from the protocol
//! documents alone), stores each record once however often it is read, sends each failure
//! upstream once, and rides out a bad CRC, a silent device and an unplugged port.

use crate::support::{temp_dir, wait_progress, Action, Receiver, TestApp, PATIENT, SECRET};
use foodgate::store::Store;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const MARKET: &str = "ZB-0003";
const DAYS: u64 = 3;
const PER_DAY: u64 = 2;

/// The device: killed when dropped.
struct Peer {
    child: Child,
    log: PathBuf,
    link: PathBuf,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    /// `None` when python3 is missing (the test says it is skipped).
    fn start(dir: &Path, protocol: &str, faults: &[&str]) -> Option<Peer> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/polled_device.py");
        let link = dir.join("tty");
        let log = dir.join("requests.log");
        let spawned = Command::new("python3")
            .arg(&script)
            .args(["--protocol", protocol, "--days", &DAYS.to_string()])
            .args(["--per-day", &PER_DAY.to_string()])
            .arg("--link")
            .arg(&link)
            .arg("--log")
            .arg(&log)
            .args(faults)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                eprintln!("skipped: python3 is not available ({e})");
                return None;
            }
        };
        // Its first line says the pty is there.
        let mut line = String::new();
        let out = child.stdout.take().expect("stdout");
        BufReader::new(out)
            .read_line(&mut line)
            .expect("peer output");
        assert!(line.starts_with("pty: "), "{line}");
        Some(Peer { child, log, link })
    }

    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn requests(&self) -> usize {
        self.log().iter().filter(|l| l.starts_with("OK ")).count()
    }
}

async fn serve(dir: &Path, protocol: &str, link: &Path, receiver: &Receiver) -> TestApp {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nutc_offset = \"+08:00\"\n\
         [[instrument]]\nid = \"PD-1\"\nmarket = \"{MARKET}\"\nprotocol = \"{protocol}\"\n\
         serial = {{ path = {:?} }}\n\
         poll = {{ every_s = 1, days = {DAYS}, reply_timeout_ms = 400, retries = 2, gap_ms = 10 }}\n\
         [[upstream]]\nname = \"block\"\nurl = {:?}\nsend = \"failures\"\nsecret = {SECRET:?}\n\
         timeout_s = 5\nretry_initial_ms = 50\nretry_max_ms = 200\n",
        dir.join("data"),
        link,
        receiver.url()
    );
    let config = foodgate::config::Config::parse(&text, "polled.toml").expect("config");
    TestApp::builder(config).builtin_markets().start().await
}

fn stored(store: &Store) -> u64 {
    store
        .inspect()
        .expect("inspect")
        .query_row(
            "SELECT count(*) FROM readings WHERE instrument = 'PD-1'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .expect("count") as u64
}

async fn instrument(app: &TestApp, admin: &str) -> serde_json::Value {
    let (status, body) = app.get("/api/v1/instruments", Some(admin)).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["instruments"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["id"] == "PD-1").cloned())
        .unwrap_or_else(|| panic!("PD-1 not listed: {body}"))
}

async fn admin_token(store: &Store) -> String {
    let new = foodgate::auth::NewToken {
        name: "admin".into(),
        role: foodgate::auth::Role::Admin,
        markets: Vec::new(),
        expires_days: None,
    };
    store
        .write_async(move |tx| Ok(foodgate::auth::create(tx, &new, "test")))
        .await
        .expect("write")
        .expect("token")
}

/// Read every day, then keep polling: the records are stored once and each failure (one a
/// day) is sent upstream once, however many polls read them again.
async fn reads_everything_once(protocol: &str, faults: &[&str]) -> Option<(TestApp, Peer)> {
    let dir = temp_dir(&format!("polled-{protocol}"));
    let peer = Peer::start(&dir, protocol, faults)?;
    let rx = Receiver::start(|_, _| Action::Status(200)).await;
    let app = serve(&dir, protocol, &peer.link, &rx).await;
    let store = app.store().clone();
    wait_progress("every record stored", PATIENT, || {
        (DAYS * PER_DAY).saturating_sub(stored(&store))
    })
    .await;
    // Three more polls' worth of requests: every day read again.
    let seen = peer.requests();
    wait_progress("more polls", PATIENT, || {
        (seen + 3 * DAYS as usize).saturating_sub(peer.requests()) as u64
    })
    .await;
    assert_eq!(
        stored(&store),
        DAYS * PER_DAY,
        "re-read records are duplicates"
    );
    wait_progress("failures delivered", PATIENT, || {
        DAYS.saturating_sub(rx.accepted().len() as u64)
    })
    .await;
    let failed: Vec<_> = rx
        .log()
        .into_iter()
        .filter(|r| r.kind == "sample.failed")
        .collect();
    assert_eq!(
        failed.len() as u64,
        DAYS,
        "one sample.failed per failing record"
    );
    let bad: Vec<_> = peer
        .log()
        .into_iter()
        .filter(|l| l.starts_with("BAD"))
        .collect();
    assert!(
        bad.is_empty(),
        "requests the device found malformed: {bad:?}"
    );
    Some((app, peer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lz4000t_is_polled_and_each_record_stored_once() {
    if let Some((app, peer)) = reads_everything_once("lz4000t", &[]).await {
        let log = peer.log();
        // The comm test first, as the document writes it.
        assert_eq!(log.first().map(String::as_str), Some("OK 7e000200000007aa"));
        assert!(
            log.iter().any(|l| l.starts_with("OK 7e1203")),
            "count requests"
        );
        assert!(
            log.iter().any(|l| l.starts_with("OK 7e1003")),
            "read requests"
        );
        app.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tl310_is_polled_and_each_record_stored_once() {
    if let Some((app, peer)) = reads_everything_once("tl310", &[]).await {
        let log = peer.log();
        assert_eq!(log.first().map(String::as_str), Some("OK 7e010100ff71aa"));
        assert!(
            log.iter().any(|l| l.starts_with("OK 7e150400ff")),
            "read by date"
        );
        app.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dy723pc_is_polled_and_each_record_stored_once() {
    if let Some((app, peer)) = reads_everything_once("dy723pc", &[]).await {
        // `D<day>D<day>` in ASCII.
        assert!(peer.log().iter().any(|l| l.starts_with("OK 44323032")));
        app.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_crc_is_asked_again_and_the_record_stored() {
    if let Some((app, peer)) = reads_everything_once("lz4000t", &["--bad-crc-once"]).await {
        let log = peer.log();
        let reads_of = |day_hex: &str| {
            log.iter()
                .filter(|l| l.starts_with(&format!("OK 7e100300{day_hex}")))
                .count()
        };
        // The first read request got the broken frame: its day was read again at once.
        let first_read = log
            .iter()
            .find(|l| l.starts_with("OK 7e100300"))
            .expect("a read request")
            .clone();
        assert!(reads_of(&first_read[11..17]) >= 2, "{log:#?}");
        app.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_shows_offline_then_is_read_completely() {
    let dir = temp_dir("polled-silent");
    let Some(peer) = Peer::start(&dir, "lz4000t", &["--silent-polls", "6"]) else {
        return;
    };
    let rx = Receiver::start(|_, _| Action::Status(200)).await;
    let app = serve(&dir, "lz4000t", &peer.link, &rx).await;
    let admin = admin_token(app.store()).await;
    // Six comm tests unanswered: two polls of three tries.
    wait_progress("unanswered comm tests", PATIENT, || {
        6usize.saturating_sub(peer.requests()) as u64
    })
    .await;
    let status = instrument(&app, &admin).await;
    assert_eq!(status["online"], false, "{status}");
    assert_eq!(stored(app.store()), 0);
    let store = app.store().clone();
    wait_progress("every day read once it answers", PATIENT, || {
        (DAYS * PER_DAY).saturating_sub(stored(&store))
    })
    .await;
    let status = instrument(&app, &admin).await;
    assert_eq!(status["online"], true, "{status}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplugged_port_is_opened_again() {
    let dir = temp_dir("polled-unplug");
    let Some(peer) = Peer::start(&dir, "tl310", &["--unplug-after", "4"]) else {
        return;
    };
    let rx = Receiver::start(|_, _| Action::Status(200)).await;
    let app = serve(&dir, "tl310", &peer.link, &rx).await;
    let store = app.store().clone();
    wait_progress("every record stored", PATIENT, || {
        (DAYS * PER_DAY).saturating_sub(stored(&store))
    })
    .await;
    // Requests reach the new pty after the old one went away.
    wait_progress("requests after the unplug", PATIENT, || {
        let log = peer.log();
        let after = log
            .iter()
            .skip_while(|l| *l != "UNPLUGGED")
            .filter(|l| l.starts_with("OK "))
            .count();
        3usize.saturating_sub(after) as u64
    })
    .await;
    app.shutdown().await;
}
