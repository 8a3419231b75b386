//! The uplink against a real HTTP receiver: 2xx, 4xx, 503, hangs, refused connections,
//! restarts, hold ordering, no head-of-line blocking.

use crate::support::{config, open, reading, temp_dir, wait_until, Action, Receiver};
use chrono::Utc;
use foodgate::config::Config;
use foodgate::judge::{JudgedReading, Verdict};
use foodgate::store::{Batch, NewReading, Origin, Store};
use foodgate::uplink;
use std::time::Duration;
use tokio::sync::watch;

fn new(r: JudgedReading) -> NewReading {
    NewReading {
        origin: Origin::Instrument("IN-1".into()),
        reading: r,
        market: "ZB-0007".into(),
        stall: Some("B3".into()),
        received_at: Utc::now(),
        frame: None,
    }
}

async fn submit(store: &Store, readings: Vec<JudgedReading>) {
    store
        .submit_async(Batch {
            frames: Vec::new(),
            readings: readings.into_iter().map(new).collect(),
        })
        .await
        .expect("submit");
}

fn failures(n: usize) -> Vec<JudgedReading> {
    (0..n)
        .map(|i| reading(&format!("S{i}"), "0.9", Verdict::Fail))
        .collect()
}

struct Running {
    stop: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<Result<(), foodgate::store::StoreError>>,
}

fn start(store: &Store, cfg: &Config) -> Running {
    let (stop, rx) = watch::channel(false);
    let (_h, tasks) = uplink::spawn(store.clone(), cfg.upstreams.clone(), rx);
    Running { stop, tasks }
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

fn outbox(store: &Store) -> Vec<(String, String, u32, Option<String>)> {
    let conn = store.inspect().unwrap();
    let mut stmt = conn
        .prepare("SELECT type, status, attempts, last_answer FROM outbox ORDER BY id")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

fn statuses(store: &Store) -> Vec<String> {
    outbox(store).into_iter().map(|r| r.1).collect()
}

const LONG: Duration = crate::support::PATIENT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_signed_bodies_with_length_and_idempotency_key() {
    let rx = Receiver::start(|_, _| Action::Status(200)).await;
    let dir = temp_dir("ok");
    let cfg = config(&dir, &[("up", &rx.url(), "all")]);
    let store = open(&cfg);
    let run = start(&store, &cfg);
    submit(
        &store,
        vec![
            reading("S1", "0.9", Verdict::Fail),
            reading("S2", "0.1", Verdict::Pass),
        ],
    )
    .await;
    wait_until("3 events delivered", LONG, || rx.accepted().len() == 3).await;
    for r in rx.log() {
        assert!(r.signature_ok, "signature of {}", r.event_id);
        assert_eq!(r.content_length, Some(r.body.len()));
        assert!(!r.chunked);
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        assert_eq!(r.idempotency_key.as_deref(), Some(r.event_id.as_str()));
        assert_eq!(r.authorization.as_deref(), Some("Bearer tok"));
    }
    let mut kinds: Vec<String> = rx.log().into_iter().map(|r| r.kind).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["result.recorded", "result.recorded", "sample.failed"]
    );
    wait_until("delivered in the store", LONG, || {
        statuses(&store).iter().all(|s| s == "delivered")
    })
    .await;
    let conn = store.inspect().unwrap();
    let stats = run_stats(&store, &cfg);
    assert_eq!((stats.delivered, stats.pending, stats.dead), (3, 0, 0));
    drop(conn);
    run.stop().await;
    store.close_async().await;
}

fn run_stats(store: &Store, cfg: &Config) -> foodgate::store::outbox::OutboxCounts {
    let reader = store.reader().unwrap();
    foodgate::store::outbox::counts(&reader)
        .unwrap()
        .into_iter()
        .find(|c| c.upstream == cfg.upstreams[0].name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_is_dead_with_its_answer_kept_and_not_retried() {
    let rx = Receiver::start(|_, _| Action::Status(422)).await;
    let dir = temp_dir("dead");
    let cfg = config(&dir, &[("up", &rx.url(), "failures")]);
    let store = open(&cfg);
    let run = start(&store, &cfg);
    submit(&store, failures(1)).await;
    wait_until("dead", LONG, || statuses(&store) == ["dead"]).await;
    tokio::time::sleep(Duration::from_millis(400)).await; // several backoffs' worth
    assert_eq!(rx.log().len(), 1, "a dead event is never retried by itself");
    let (_, _, attempts, answer) = outbox(&store).remove(0);
    assert_eq!(attempts, 1);
    assert_eq!(answer.as_deref(), Some("HTTP 422: answer 422"));
    assert_eq!(run_stats(&store, &cfg).dead, 1);
    // Put back by hand: tried again.
    store
        .write_async(|tx| foodgate::store::outbox::retry_dead(tx, None, uplink::now_ms()))
        .await
        .unwrap();
    wait_until("retried after retry_dead", LONG, || rx.log().len() == 2).await;
    run.stop().await;
    store.close_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_then_200_is_delivered_once_by_id_with_the_same_bytes() {
    let rx = Receiver::start(|_, seen| {
        if seen < 2 {
            Action::Status(503)
        } else {
            Action::Status(200)
        }
    })
    .await;
    let dir = temp_dir("retry");
    let cfg = config(&dir, &[("up", &rx.url(), "failures")]);
    let store = open(&cfg);
    let run = start(&store, &cfg);
    submit(&store, failures(1)).await;
    wait_until("delivered", LONG, || statuses(&store) == ["delivered"]).await;
    let log = rx.log();
    assert_eq!(log.len(), 3);
    assert_eq!(rx.accepted().len(), 1);
    assert!(log
        .iter()
        .all(|r| r.body == log[0].body && r.event_id == log[0].event_id));
    assert_eq!(outbox(&store)[0].2, 3);
    run.stop().await;
    store.close_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_times_out_and_is_retried() {
    let rx = Receiver::start(|_, seen| {
        if seen == 0 {
            Action::Hang
        } else {
            Action::Status(200)
        }
    })
    .await;
    let dir = temp_dir("hang");
    let cfg = config(&dir, &[("up", &rx.url(), "failures")]);
    let store = open(&cfg);
    let run = start(&store, &cfg);
    submit(&store, failures(1)).await;
    wait_until("delivered after a timeout", LONG, || {
        statuses(&store) == ["delivered"]
    })
    .await;
    let (_, _, attempts, answer) = outbox(&store).remove(0);
    assert_eq!(attempts, 2);
    assert!(answer.unwrap().starts_with("HTTP 200"));
    assert_eq!(rx.log()[0].answered, Action::Hang);
    run.stop().await;
    store.close_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_retries_and_a_restart_keeps_the_state() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/events", closed.local_addr().unwrap());
    drop(closed);
    let dir = temp_dir("refused");
    let cfg = config(&dir, &[("up", &url, "failures")]);
    let store = open(&cfg);
    let run = start(&store, &cfg);
    submit(&store, failures(2)).await;
    wait_until("several attempts", LONG, || {
        outbox(&store).iter().all(|r| r.2 >= 2)
    })
    .await;
    run.stop().await;
    let before = outbox(&store);
    assert!(before.iter().all(|r| r.1 == "pending"));
    assert!(
        before[0].3.as_deref().unwrap().contains("onnect"),
        "{:?}",
        before[0].3
    );
    store.close_async().await;

    // Restart the store and the worker, now towards a receiver that answers.
    let rx = Receiver::start(|_, _| Action::Status(200)).await;
    let mut cfg2 = config(&dir, &[("up", &rx.url(), "failures")]);
    cfg2.data_dir = cfg.data_dir.clone();
    let store = open(&cfg2);
    let kept = outbox(&store);
    assert_eq!(kept, before, "attempts and answers survive the restart");
    let run = start(&store, &cfg2);
    wait_until("delivered after restart", LONG, || {
        statuses(&store).iter().all(|s| s == "delivered")
    })
    .await;
    assert_eq!(rx.accepted().len(), 2);
    assert!(outbox(&store).iter().all(|r| r.2 > before[0].2));
    run.stop().await;
    store.close_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_one_hold_go_in_order_and_others_do_not_wait() {
    // sample.failed of S1 is refused twice; its hold.review must wait for it. S2's events
    // (another hold) go meanwhile.
    let rx = Receiver::start(|r, seen| {
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        if r.kind == "sample.failed" && body["sample"]["id"] == "S1" && seen < 2 {
            Action::Status(503)
        } else {
            Action::Status(200)
        }
    })
    .await;
    let dir = temp_dir("order");
    let cfg = config(&dir, &[("up", &rx.url(), "failures")]);
    let store = open(&cfg);
    let mut fix = reading("S1", "0.01", Verdict::Pass);
    fix.reading.result_status = Some("C".into());
    submit(&store, vec![reading("S1", "0.9", Verdict::Fail)]).await;
    submit(&store, vec![fix]).await;
    submit(&store, vec![reading("S2", "0.8", Verdict::Fail)]).await;
    let run = start(&store, &cfg);
    wait_until("all delivered", LONG, || rx.accepted().len() == 3).await;
    let log = rx.log();
    let pos = |pred: &dyn Fn(&crate::support::Received) -> bool| log.iter().position(pred).unwrap();
    let s1_ok = pos(&|r| {
        r.kind == "sample.failed"
            && r.answered == Action::Status(200)
            && r.body.windows(4).any(|w| w == b"\"S1\"")
    });
    let review = pos(&|r| r.kind == "hold.review");
    let s2 = pos(&|r| r.kind == "sample.failed" && r.body.windows(4).any(|w| w == b"\"S2\""));
    assert!(
        s1_ok < review,
        "hold.review after its sample.failed: {log:?}"
    );
    assert!(
        s2 < s1_ok,
        "another hold's event did not wait for S1's retries"
    );
    assert_eq!(log.iter().filter(|r| r.kind == "hold.review").count(), 1);
    run.stop().await;
    store.close_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_event_does_not_block_the_others() {
    let rx = Receiver::start(|r, _| {
        if r.body.windows(5).any(|w| w == b"\"S0\",") {
            Action::Hang
        } else {
            Action::Status(200)
        }
    })
    .await;
    let dir = temp_dir("hol");
    let mut cfg = config(&dir, &[("up", &rx.url(), "failures")]);
    // S0 hangs for longer than the test waits for the others.
    cfg.upstreams[0].timeout = Duration::from_secs(600);
    let store = open(&cfg);
    let run = start(&store, &cfg);
    submit(&store, failures(1)).await; // S0: hangs
    tokio::time::sleep(Duration::from_millis(100)).await;
    submit(&store, failures(6)).await; // S0 again (duplicate) and S1..S5
    wait_until(
        "S1..S5 delivered while S0 hangs",
        // Generous: a loaded CI machine must not turn scheduling delay into a failure.
        LONG,
        || rx.accepted().len() == 5,
    )
    .await;
    assert_eq!(rx.log()[0].answered, Action::Hang);
    // The receiver answers before the worker commits the delivery: wait for the commit.
    wait_until("S1..S5 marked delivered", LONG, || {
        statuses(&store)[1..].iter().all(|s| s == "delivered")
    })
    .await;
    assert_eq!(statuses(&store)[0], "pending");
    run.stop().await;
    store.close_async().await;
}
