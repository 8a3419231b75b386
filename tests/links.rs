//! The real `foodgate serve` with live instrument links of all five protocols: serial ones
//! on pty pairs (the test keeps the master and runs the simulator on it, serve opens the
//! slave through a symlink), HL7 and ASTM on TCP. Checked in the SQLite file and at a real
//! HTTP receiver: each reading stored once, judged, acknowledged after commit, failures held
//! and their events delivered; lost acks and retransmissions; a store that cannot take data
//! (its write lock held by another connection) answered NAK / AR, never ACK / AA; a serial
//! port unplugged and plugged again.

use crate::support::{temp_dir, wait_progress, Action, Receiver, ServeProcess, SECRET};
use foodgate::judge::NOT_JUDGED;
use foodgate_devices::sim::{self, Faults, SimConfig, SimReport};
use foodgate_devices::transport::{PortStream, Pty};
use foodgate_parsers::Protocol;
use rusqlite::Connection;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn repoint(link: &Path, target: &Path) {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link).expect("symlink");
}

/// A simulator with short timeouts (the link answers in milliseconds).
fn sim_config(protocol: Protocol, count: usize, seed: u64) -> SimConfig {
    let mut c = SimConfig::new(protocol);
    c.count = count;
    c.interval = Duration::ZERO;
    c.positive_rate = 0.5;
    c.seed = seed;
    c.ack_timeout = Duration::from_millis(1500);
    c.retry_delay = Duration::from_millis(200);
    c
}

async fn run_sim<T>(cfg: SimConfig, io: T) -> SimReport
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    sim::run(&cfg, io, &mut |_| {}).await.expect("simulator")
}

/// The pty's master, once serve has opened the slave.
async fn plugged(pty: Pty) -> PortStream {
    let stream = pty.into_stream().expect("pty stream");
    tokio::time::timeout(Duration::from_secs(10), stream.wait_peer())
        .await
        .expect("serve opens the port");
    stream
}

async fn connect(addr: SocketAddr) -> tokio::net::TcpStream {
    for _ in 0..200 {
        if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("cannot connect to {addr}");
}

fn db(dir: &Path) -> Connection {
    let c = Connection::open(dir.join("data").join("foodgate.db")).expect("open db");
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Readings stored from `instrument`'s link (their raw frame names its stream).
fn stored(conn: &Connection, instrument: &str) -> i64 {
    conn.query_row(
        "SELECT count(*) FROM readings r JOIN raw_frames f ON f.id = r.raw_frame
         WHERE f.source LIKE ?1 || '/%'",
        [instrument],
        |r| r.get(0),
    )
    .unwrap()
}

/// Wait until `instrument`'s link has stored `n` readings.
async fn until_stored(dir: &Path, instrument: &str, n: i64) {
    let conn = db(dir);
    wait_progress(
        &format!("{instrument} stores {n} readings"),
        crate::support::PATIENT,
        || (n - stored(&conn, instrument)).max(0) as u64,
    )
    .await;
}

fn config_text(dir: &Path, instruments: &str, upstream: Option<&str>) -> PathBuf {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nutc_offset = \"+08:00\"\n{instruments}",
        dir.join("data")
    );
    if let Some(url) = upstream {
        text.push_str(&format!(
            "[[upstream]]\nname = \"hub\"\nurl = {url:?}\nsend = \"all\"\nsecret = {SECRET:?}\n\
             timeout_s = 2\nretry_initial_ms = 50\nretry_max_ms = 200\n"
        ));
    }
    let path = dir.join("foodgate.toml");
    std::fs::write(&path, text).unwrap();
    crate::support::import_builtin_markets_with(&path);
    path
}

fn serial(id: &str, protocol: &str, path: &Path) -> String {
    format!(
        "[[instrument]]\nid = {id:?}\nmarket = \"ZB-0003\"\nprotocol = {protocol:?}\nencoding = \"gbk\"\n\
         serial = {{ path = {:?} }}\n",
        path.display().to_string()
    )
}

fn tcp(id: &str, protocol: &str, addr: SocketAddr, encoding: &str) -> String {
    format!(
        "[[instrument]]\nid = {id:?}\nmarket = \"ZB-0003\"\nprotocol = {protocol:?}\nencoding = {encoding:?}\n\
         tcp = {{ listen = \"{addr}\" }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_stores_every_protocol_once_judged_acknowledged_and_delivered() {
    let dir = temp_dir("links");
    let rx = Receiver::start(|_, _| Action::Status(200)).await;
    let ports = ["astm", "gold", "spectro", "enzyme"].map(|n| dir.join(format!("tty-{n}")));
    let hl7_addr = free_port();
    let astm_tcp = free_port();
    let instruments = [
        serial("ASTM-S", "astm", &ports[0]),
        serial("GOLD-S", "gold-card", &ports[1]),
        serial("SPEC-S", "spectro", &ports[2]),
        serial("ENZ-S", "enzyme-print", &ports[3]),
        tcp("HL7-T", "hl7", hl7_addr, "utf-8"),
        tcp("ASTM-T", "astm", astm_tcp, "gbk"),
    ]
    .concat();
    let cfg = config_text(&dir, &instruments, Some(&rx.url()));

    // Every port but the enzyme printer's is there at start.
    let mut ptys: Vec<Pty> = (0..3).map(|_| Pty::open().expect("pty")).collect();
    for (p, link) in ptys.iter().zip(&ports) {
        repoint(link, p.path());
    }
    let serve = ServeProcess::start(&cfg, dir.join("serve.log")).await;
    serve.wait_log("foodgate: serving").await;
    serve.wait_log("cannot open").await;
    // Absent port: shown offline, retried, the service runs.
    let enzyme = Pty::open().expect("pty");
    repoint(&ports[3], enzyme.path());
    ptys.push(enzyme);

    let mut it = ptys.into_iter();
    let (p_astm, p_gold, p_spec, p_enz) = (
        it.next().unwrap(),
        it.next().unwrap(),
        it.next().unwrap(),
        it.next().unwrap(),
    );
    let mut astm = sim_config(Protocol::Astm, 6, 11);
    astm.faults = Faults {
        corrupt_first_send: vec![2],
        lose_first_ack: vec![1],
    };
    let mut gold = sim_config(Protocol::GoldCard, 6, 12);
    gold.faults = Faults {
        corrupt_first_send: vec![3],
        lose_first_ack: vec![0],
    };
    let mut hl7 = sim_config(Protocol::Hl7, 6, 13);
    hl7.faults.lose_first_ack = vec![2];
    let mut astm2 = sim_config(Protocol::Astm, 5, 14);
    astm2.serial = "SIM-ASTM-0002".into();
    let (r_astm, r_gold, r_spec, r_enz, r_hl7, r_astm2) = tokio::join!(
        async { run_sim(astm, plugged(p_astm).await).await },
        async { run_sim(gold, plugged(p_gold).await).await },
        async {
            let mut s = plugged(p_spec).await;
            let r = run_sim(sim_config(Protocol::Spectro, 6, 15), &mut s).await;
            // Receive-only: nothing to wait for on the wire; the master stays open (a hang-up
            // flushes unread input) until the link has stored what was sent.
            until_stored(&dir, "SPEC-S", 6).await;
            drop(s);
            r
        },
        async {
            let mut s = plugged(p_enz).await;
            let r = run_sim(sim_config(Protocol::EnzymePrint, 6, 16), &mut s).await;
            until_stored(&dir, "ENZ-S", 6).await;
            drop(s);
            r
        },
        async { run_sim(hl7, connect(hl7_addr).await).await },
        async { run_sim(astm2, connect(astm_tcp).await).await },
    );
    for (name, r, count) in [
        ("astm serial", &r_astm, 6),
        ("gold-card", &r_gold, 6),
        ("spectro", &r_spec, 6),
        ("enzyme-print", &r_enz, 6),
        ("hl7", &r_hl7, 6),
        ("astm tcp", &r_astm2, 5),
    ] {
        assert_eq!(
            (r.readings, r.acknowledged, r.failed),
            (count, count, 0),
            "{name}"
        );
    }
    assert!(
        r_astm.retransmissions >= 2,
        "lost ack and bad checksum resent"
    );
    assert!(r_gold.retransmissions >= 2);
    assert!(r_hl7.retransmissions >= 1);

    // The other serial instruments are unplugged for good (their links keep retrying their
    // paths, which must not reach a pty number the system hands out again).
    for p in &ports[1..] {
        let _ = std::fs::remove_file(p);
    }
    // Unplug the ASTM analyser (the master closed with the simulator) and plug it into
    // another port behind the same path.
    let again = Pty::open().expect("pty");
    repoint(&ports[0], again.path());
    let r_again = run_sim(sim_config(Protocol::Astm, 3, 17), plugged(again).await).await;
    assert_eq!((r_again.acknowledged, r_again.failed), (3, 0));
    // Acknowledged means committed: the rows are there now.
    let conn = db(&dir);
    for (id, n) in [
        ("ASTM-S", 9),
        ("GOLD-S", 6),
        ("SPEC-S", 6),
        ("ENZ-S", 6),
        ("HL7-T", 6),
        ("ASTM-T", 5),
    ] {
        assert_eq!(
            stored(&conn, id),
            n,
            "{id}: every reading stored exactly once"
        );
    }
    assert_eq!(count(&conn, "SELECT count(*) FROM readings"), 38);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM (SELECT 1 FROM readings
             GROUP BY instrument, sample_id, analyte, measured_at, value_text HAVING count(*) > 1)"
        ),
        0,
        "no reading twice (lost acks, retransmissions, reconnect)"
    );
    let not_judged: i64 = conn
        .query_row(
            "SELECT count(*) FROM readings WHERE reason = ?1",
            [NOT_JUDGED],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(not_judged, 0, "every reading judged");
    assert!(
        count(
            &conn,
            "SELECT count(*) FROM readings WHERE verdict = 'pass'"
        ) > 0
    );
    let failures = count(
        &conn,
        "SELECT count(*) FROM readings WHERE verdict = 'fail'",
    );
    assert!(failures > 0, "half the samples are positive");
    assert_eq!(
        count(&conn, "SELECT count(*) FROM holds WHERE status = 'held'"),
        failures,
        "one hold per failure"
    );
    // Each reading traces to the bytes it came from.
    let mut stmt = conn
        .prepare(
            "SELECT r.sample_id, f.bytes, f.error FROM readings r JOIN raw_frames f ON f.id = r.raw_frame",
        )
        .unwrap();
    let rows: Vec<(String, Vec<u8>, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 38);
    for (sample, bytes, error) in &rows {
        assert!(error.is_none());
        assert!(
            bytes.windows(sample.len()).any(|w| w == sample.as_bytes()),
            "raw frame of {sample} holds its bytes"
        );
    }
    // The corrupted frames were kept with their decode error.
    let rejected: Vec<(String, String)> = conn
        .prepare("SELECT source, error FROM raw_frames WHERE error IS NOT NULL")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for id in ["ASTM-S/", "GOLD-S/"] {
        assert!(
            rejected
                .iter()
                .any(|(s, e)| s.starts_with(id) && !e.is_empty()),
            "{id} rejected frame kept: {rejected:?}"
        );
    }

    // Every event reaches the receiver: one result.recorded per reading (send = "all"),
    // one sample.failed per failure.
    wait_progress("events delivered", crate::support::PATIENT, || {
        (38 + failures - rx.accepted().len() as i64).max(0) as u64
    })
    .await;
    assert_eq!(rx.accepted().len() as i64, 38 + failures);
    let got = rx.accepted();
    assert!(got.iter().all(|r| r.signature_ok));
    assert_eq!(
        got.iter().filter(|r| r.kind == "sample.failed").count() as i64,
        failures
    );
    wait_progress("outbox delivered", crate::support::PATIENT, || {
        count(
            &conn,
            "SELECT count(*) FROM outbox WHERE status <> 'delivered'",
        ) as u64
    })
    .await;

    serve.wait_log("link reconnected").await;
    let status = serve.stop().await;
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap();
    assert!(status.success(), "clean stop on SIGTERM:\n{log}");
    assert!(log.contains("link started"), "{log}");
    // The status written at shutdown.
    let (online, readings, reconnects, last_seen): (bool, i64, i64, Option<String>) = conn
        .query_row(
            "SELECT online, readings, reconnects, last_seen FROM instruments WHERE id = 'ASTM-S'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert!(!online, "stopped: offline");
    assert_eq!(readings, 9);
    assert!(reconnects >= 1);
    assert!(last_seen.is_some());
    let (gold_serial, decode_errors): (Option<String>, i64) = conn
        .query_row(
            "SELECT serial_number, decode_errors FROM instruments WHERE id = 'GOLD-S'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(gold_serial.as_deref(), Some("SIM-GOLD-0001"));
    assert!(decode_errors >= 1);
    assert_eq!(count(&conn, "SELECT count(*) FROM instruments"), 6);
    // Every byte is archived per instrument.
    assert!(dir
        .join("data/raw/HL7-T")
        .read_dir()
        .unwrap()
        .next()
        .is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_that_cannot_write_gets_nak_and_ar_never_ack() {
    let dir = temp_dir("links-locked");
    let hl7_addr = free_port();
    let astm_addr = free_port();
    let cfg = config_text(
        &dir,
        &[
            tcp("HL7-T", "hl7", hl7_addr, "utf-8"),
            tcp("ASTM-T", "astm", astm_addr, "gbk"),
        ]
        .concat(),
        None,
    );
    let serve = ServeProcess::start(&cfg, dir.join("serve.log")).await;
    serve.wait_log("foodgate: serving").await;

    // Another process holds the database's write lock (as a backup tool or a stuck writer
    // would): serve's writer cannot commit. (Running as root, a read-only file mode would not
    // stop it, and the open descriptors keep their write access anyway: the lock is the real
    // refusal here.) The senders keep trying; the lock goes after a few seconds.
    let blocker = db(&dir);
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let patient = |protocol, seed| {
        let mut c = sim_config(protocol, 1, seed);
        c.max_tries = 12;
        c.ack_timeout = Duration::from_secs(3);
        c.retry_delay = Duration::from_millis(400);
        c
    };
    let hl7 = tokio::spawn({
        let c = patient(Protocol::Hl7, 21);
        async move { run_sim(c, connect(hl7_addr).await).await }
    });
    let astm = tokio::spawn({
        let c = patient(Protocol::Astm, 22);
        async move { run_sim(c, connect(astm_addr).await).await }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        count(&blocker, "SELECT count(*) FROM readings"),
        0,
        "nothing committed while locked"
    );
    serve.wait_log("store refused a batch").await;
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    let (r_hl7, r_astm) = (hl7.await.unwrap(), astm.await.unwrap());

    let answers = String::from_utf8_lossy(&r_hl7.received).to_string();
    let first_aa = answers
        .find("MSA|AA|")
        .expect("accepted once the store writes");
    let last_ar = answers.rfind("MSA|AR|").expect("refused while locked");
    assert!(
        last_ar < first_aa,
        "AR while locked, AA only after: {answers}"
    );
    assert_eq!(answers.matches("MSA|AA|").count(), 1, "{answers}");
    assert_eq!((r_hl7.acknowledged, r_hl7.failed), (1, 0));
    assert!(r_hl7.retransmissions >= 1);
    assert_eq!((r_astm.acknowledged, r_astm.failed), (1, 0));
    assert!(r_astm.received.contains(&0x15), "NAK while locked");

    // Whatever the writer committed late (a refused batch that went through once the lock
    // was gone) and the sender sent again is one reading.
    let conn = db(&dir);
    assert_eq!(stored(&conn, "HL7-T"), 1);
    assert_eq!(stored(&conn, "ASTM-T"), 1);
    let status = serve.stop().await;
    assert!(status.success());
    let refused: i64 = count(
        &conn,
        "SELECT sum(refused_commits) FROM instruments WHERE id IN ('HL7-T', 'ASTM-T')",
    );
    assert!(refused >= 2, "refusals counted");
    let _ = std::fs::remove_dir_all(&dir);
}
