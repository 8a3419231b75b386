//! Crash test: the real binary, SIGKILLed at random moments during ingest and delivery.
//!
//! After every trial and a final clean run: every stored reading has its event delivered,
//! no event id ever arrived with two different bodies, every ingest that finished kept all
//! its readings, and the database is intact.

use crate::support::{temp_dir, Action, Receiver};
use foodgate_parsers::synth::{astm_capture_counted, Rng};
use rusqlite::Connection;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TRIALS: usize = 24;

fn foodgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_foodgate"))
}

fn kill(child: &mut Child) {
    // SIGKILL: no chance to finish anything.
    let _ = child.kill();
    let _ = child.wait();
}

/// A `serve` process that is killed when the test ends, also when an assertion fails:
/// a server left behind would keep a core busy for the rest of the run.
struct Server(Child);

impl std::ops::Deref for Server {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(cfg: &Path) -> Server {
    Server(
        foodgate()
            .args(["serve", "--config"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve"),
    )
}

fn ingest(cfg: &Path, market: &str, file: &Path) -> Child {
    foodgate()
        .args(["ingest", "--config"])
        .arg(cfg)
        .args(["--protocol", "astm", "--market", market])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ingest")
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn sigkill_during_ingest_and_delivery_loses_and_doubles_nothing() {
    // The receiver lives on its own runtime; this thread drives the processes.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // A fifth of the events are refused once (503): retries happen around the kills too.
    let rx = rt.block_on(Receiver::start(|r, seen| {
        if seen == 0 && r.event_id.as_bytes().last().is_some_and(|b| b % 5 == 0) {
            Action::Status(503)
        } else {
            Action::Status(200)
        }
    }));
    let dir = temp_dir("crash");
    let cfg = dir.join("foodgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n[[upstream]]\nname = \"up\"\nurl = {:?}\nsend = \"all\"\n\
             secret = \"s3cret\"\ntimeout_s = 2\nretry_initial_ms = 20\nretry_max_ms = 100\n",
            dir.join("data"),
            rx.url()
        ),
    )
    .unwrap();
    crate::support::import_builtin_markets_with(&cfg);
    // One capture per trial, each for its own market so its readings can be counted.
    let mut expected = Vec::new();
    for t in 0..TRIALS {
        let cap = astm_capture_counted(40_000, 1000 + t as u64);
        let file = dir.join(format!("cap{t}.bin"));
        std::fs::write(&file, &cap.bytes).unwrap();
        expected.push((format!("ZB-{:04}", t + 1), file, cap.results as i64));
    }

    let mut rng = Rng::new(42);
    let mut finished = Vec::new();
    let mut server = serve(&cfg);
    for (t, (market, file, _)) in expected.iter().enumerate() {
        let mut child = ingest(&cfg, market, file);
        let deadline = Instant::now() + Duration::from_millis(rng.range(20, 600));
        let mut done = None;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                done = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        match done {
            Some(status) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                assert!(status.success(), "ingest {t} failed: {status}: {err}");
                finished.push(t);
            }
            None => kill(&mut child),
        }
        // Kill the server too, in most trials, at its own random moment.
        if rng.chance(2, 3) {
            std::thread::sleep(Duration::from_millis(rng.range(0, 100)));
            kill(&mut server);
            server = serve(&cfg);
        }
    }

    // Every ingest that said it finished kept all its readings, before any re-run.
    {
        let conn = Connection::open(dir.join("data/foodgate.db")).unwrap();
        for &t in &finished {
            let (market, _, n) = &expected[t];
            let stored: i64 = conn
                .query_row(
                    "SELECT count(*) FROM readings WHERE market = ?1",
                    [market],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(stored, *n, "finished ingest {t} kept everything");
        }
    }
    // Re-run every capture to the end: only what is missing is stored.
    for (market, file, _) in &expected {
        let out = ingest(&cfg, market, file).wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let conn = Connection::open(dir.join("data/foodgate.db")).unwrap();
    let total: i64 = expected.iter().map(|e| e.2).sum();
    assert_eq!(count(&conn, "SELECT count(*) FROM readings"), total);
    // Judged readings fail too: each failure has one hold and one `sample.failed` beside the
    // `result.recorded` every reading makes with `send = "all"`.
    let holds = count(&conn, "SELECT count(*) FROM holds");
    assert!(holds > 0, "the generated captures hold failures");
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM readings WHERE verdict = 'fail'"
        ),
        holds,
        "one hold per failed reading"
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM outbox"),
        total + holds,
        "one result.recorded per reading and one sample.failed per failure, none twice"
    );
    // Delivery goes on at the machine's pace: fail only when it stops moving.
    crate::support::wait_progress_blocking("events delivered", crate::support::PATIENT, || {
        count(
            &conn,
            "SELECT count(*) FROM outbox WHERE status = 'pending'",
        ) as u64
    });
    let dead = count(&conn, "SELECT count(*) FROM outbox WHERE status = 'dead'");
    assert_eq!(dead, 0, "no event dead");
    // A clean stop on SIGTERM.
    let pid = server.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let status = server.wait().unwrap();
    assert!(status.success(), "serve stops cleanly on SIGTERM: {status}");

    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    // Every delivered event was accepted by the receiver, and no id came with two bodies.
    let mut bodies: HashMap<String, Vec<u8>> = HashMap::new();
    for r in rx.log() {
        assert!(r.signature_ok);
        if let Some(b) = bodies.get(&r.event_id) {
            assert_eq!(
                b, &r.body,
                "event {} arrived with different content",
                r.event_id
            );
        } else {
            bodies.insert(r.event_id.clone(), r.body.clone());
        }
    }
    let accepted: std::collections::HashSet<String> =
        rx.accepted().into_iter().map(|r| r.event_id).collect();
    let ids: Vec<String> = conn
        .prepare("SELECT event_id FROM outbox")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for id in &ids {
        assert!(
            accepted.contains(id),
            "event {id} delivered but never accepted"
        );
    }
    assert!(
        finished.len() < TRIALS,
        "some ingests were killed midway ({} of {TRIALS} finished)",
        finished.len()
    );
}
