//! The polling session against the polled device simulators: the bytes on the wire, retries,
//! catch-up, offline and reopen.

use chrono::{Days, NaiveDate, Utc};
use foodgate_devices::sim::{self, PolledControl, SimConfig};
use foodgate_devices::transport::{run_serial, Pty, SerialConfig};
use foodgate_devices::{run_poll, LineSettings, Link, MemorySink, PollSettings};
use foodgate_parsers::{decoder::default_offset, Protocol};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const ID: &str = "POLL-1";

fn today() -> NaiveDate {
    Utc::now().with_timezone(&default_offset()).date_naive()
}

fn days_ago(n: u64) -> NaiveDate {
    today().checked_sub_days(Days::new(n)).unwrap()
}

fn settings(every_ms: u64) -> PollSettings {
    PollSettings {
        every: Duration::from_millis(every_ms),
        days: 2,
        // Long enough for a busy machine: a reply taken for missing would add a request.
        reply_timeout: Duration::from_millis(400),
        retries: 2,
        gap: Duration::from_millis(5),
    }
}

fn polled_link(
    protocol: Protocol,
    sink: &Arc<MemorySink>,
    poll: PollSettings,
) -> Arc<Link<MemorySink>> {
    let mut link = Link::new(ID, protocol, Arc::clone(sink));
    link.poll = poll;
    Arc::new(link)
}

fn device(protocol: Protocol, records: usize, history_days: u32) -> SimConfig {
    let mut c = SimConfig::new(protocol);
    c.count = records;
    c.interval = Duration::ZERO;
    c.positive_rate = 0.3;
    c.seed = 5;
    c.polled.history_days = history_days;
    c
}

/// The device on one end of an in-memory line, the poll on the other.
fn connect(
    link: &Arc<Link<MemorySink>>,
    cfg: SimConfig,
) -> (PolledControl, JoinHandle<()>, JoinHandle<()>) {
    let (host, dev) = tokio::io::duplex(64 * 1024);
    let control = PolledControl::new();
    let c = control.clone();
    let sim = tokio::spawn(async move {
        let _ = sim::polled::serve(&cfg, dev, &c, &mut |_| {}).await;
    });
    let l = Arc::clone(link);
    let poll = tokio::spawn(async move {
        run_poll(&l, host).await;
    });
    (control, sim, poll)
}

/// Wait until `f` holds, with a generous limit (the machine may be busy).
async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// CRC-8, polynomial 0x31, init 0, MSB first: written out here so that the requests are
/// checked against an implementation of its own.
fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x31
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn frame(cmd: u8, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x7E, cmd, data.len() as u8, 0];
    f.extend_from_slice(data);
    f.push(crc8(&f[1..]));
    f.push(0xAA);
    f
}

fn ymd(d: NaiveDate) -> [u8; 3] {
    use chrono::Datelike;
    [(d.year() - 2000) as u8, d.month() as u8, d.day() as u8]
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect()
}

fn lz_count(d: NaiveDate) -> Vec<u8> {
    frame(0x12, &ymd(d))
}

fn lz_read(d: NaiveDate) -> Vec<u8> {
    frame(0x10, &ymd(d))
}

fn tl_read(d: NaiveDate) -> Vec<u8> {
    let [y, m, dd] = ymd(d);
    frame(0x15, &[0xFF, y, m, dd])
}

fn dy_request(d: NaiveDate) -> Vec<u8> {
    let d = d.format("%Y-%m-%d");
    format!("D{d}D{d}").into_bytes()
}

/// What identifies a record: sample id and test time.
fn identities(sink: &MemorySink) -> Vec<(String, String)> {
    sink.readings()
        .iter()
        .map(|r| {
            (
                r.sample_id.as_deref().unwrap_or("").to_string(),
                r.measured_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            )
        })
        .collect()
}

fn distinct(sink: &MemorySink) -> usize {
    identities(sink).into_iter().collect::<BTreeSet<_>>().len()
}

#[test]
fn the_test_crc_agrees_with_the_documents_worked_frames() {
    assert_eq!(crc8(b"123456789"), 0xA2);
    assert_eq!(
        lz_count(NaiveDate::from_ymd_opt(2018, 5, 21).unwrap()),
        hex("7E 12 03 00 12 05 15 86 AA")
    );
    assert_eq!(
        tl_read(NaiveDate::from_ymd_opt(2018, 5, 21).unwrap()),
        hex("7E 15 04 00 FF 12 05 15 C2 AA")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requests_are_byte_exact_and_every_record_is_committed() {
    let (yesterday, today) = (days_ago(1), today());
    let cases: [(Protocol, Vec<Vec<u8>>); 3] = [
        (
            Protocol::Lz4000t,
            vec![
                hex("7E 00 02 00 00 00 07 AA"),
                lz_count(yesterday),
                lz_read(yesterday),
                lz_count(today),
                lz_read(today),
            ],
        ),
        (
            Protocol::Tl310,
            vec![
                hex("7E 01 01 00 FF 71 AA"),
                hex("7E 01 01 00 FF 71 AA"),
                tl_read(yesterday),
                tl_read(today),
            ],
        ),
        (
            Protocol::Dy723pc,
            vec![dy_request(yesterday), dy_request(today)],
        ),
    ];
    for (protocol, expected) in cases {
        let sink = Arc::new(MemorySink::new());
        let link = polled_link(protocol, &sink, settings(60_000));
        let (control, sim, poll) = connect(&link, device(protocol, 6, 2));
        wait_for("the first poll", || {
            link.status.snapshot().last_poll_at.is_some()
        })
        .await;
        assert_eq!(control.requests(), expected, "{protocol}");
        assert_eq!(sink.readings().len(), 6, "{protocol}");
        assert_eq!(distinct(&sink), 6, "{protocol}");
        let st = link.status.snapshot();
        assert!(st.online, "{protocol}");
        assert_eq!(st.last_complete_day, Some(today), "{protocol}");
        assert_eq!(sink.complete_day(ID), Some(today), "{protocol}");
        assert_eq!(
            (st.last_poll_records, st.last_poll_new),
            (6, 6),
            "{protocol}"
        );
        assert_eq!(st.protocol_errors, 0, "{protocol}");
        assert_eq!(st.decode_errors, 0, "{protocol}");
        if protocol != Protocol::Dy723pc {
            assert!(st.firmware.is_some(), "{protocol}");
        }
        // Each batch carries the bytes its readings came from.
        for b in sink.batches() {
            assert!(!b.raw.is_empty());
            for r in &b.readings {
                assert!(r.offset.unwrap() >= b.raw_offset);
            }
        }
        sim.abort();
        poll.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_re_read_on_every_poll_commits_the_same_records_again() {
    let sink = Arc::new(MemorySink::new());
    let link = polled_link(Protocol::Lz4000t, &sink, settings(200));
    let (control, sim, poll) = connect(&link, device(Protocol::Lz4000t, 4, 2));
    wait_for("two polls", || sink.readings().len() >= 8).await;
    let ids = identities(&sink);
    assert_eq!(
        ids[..4],
        ids[4..8],
        "the second poll reads the same records"
    );
    assert_eq!(distinct(&sink), 4);
    // A sample tested meanwhile is read at the next poll.
    control.add_records(1);
    wait_for("the new record", || distinct(&sink) == 5).await;
    assert_eq!(control.held(), 5);
    sim.abort();
    poll.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_crc_record_and_a_cut_reply_are_asked_again_then_committed() {
    let yesterday = days_ago(1);
    for protocol in [Protocol::Lz4000t, Protocol::Tl310] {
        let sink = Arc::new(MemorySink::new());
        let link = polled_link(protocol, &sink, settings(60_000));
        let mut cfg = device(protocol, 6, 2);
        // Record 1 (yesterday's second) goes out with a bad CRC the first time.
        cfg.faults.corrupt_first_send = vec![1];
        // Today's first read reply is cut short.
        let (read_today, read_yesterday) = match protocol {
            Protocol::Lz4000t => (lz_read(today()), lz_read(yesterday)),
            _ => (tl_read(today()), tl_read(yesterday)),
        };
        cfg.polled.cut_requests = vec![match protocol {
            Protocol::Lz4000t => 5,
            _ => 4,
        }];
        let (control, sim, poll) = connect(&link, cfg);
        wait_for("the poll", || link.status.snapshot().last_poll_at.is_some()).await;
        let requests = control.requests();
        let asked = |r: &Vec<u8>| requests.iter().filter(|q| *q == r).count();
        assert_eq!(asked(&read_yesterday), 2, "{protocol}: {requests:02X?}");
        assert_eq!(asked(&read_today), 2, "{protocol}: {requests:02X?}");
        assert_eq!(distinct(&sink), 6, "{protocol}: every record stored");
        let st = link.status.snapshot();
        assert_eq!(st.protocol_errors, 2, "{protocol}");
        assert!(st.decode_errors >= 2, "{protocol}");
        assert_eq!(st.last_complete_day, Some(today()), "{protocol}");
        let diags: Vec<&str> = sink
            .batches()
            .iter()
            .flat_map(|b| b.diagnostics.iter().map(|d| d.error))
            .collect();
        assert!(diags.contains(&"bad_crc"), "{protocol}: {diags:?}");
        sim.abort();
        poll.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_shows_offline_and_the_missed_days_are_read_once_it_answers() {
    let sink = Arc::new(MemorySink::new());
    // Last read completely four days ago (the service was down).
    sink.set_last_complete_day(ID, days_ago(4));
    let mut poll_settings = settings(300);
    poll_settings.retries = 1;
    poll_settings.reply_timeout = Duration::from_millis(200);
    let link = polled_link(Protocol::Lz4000t, &sink, poll_settings);
    let (host, dev) = tokio::io::duplex(64 * 1024);
    let control = PolledControl::new();
    control.set_silent(true);
    let cfg = device(Protocol::Lz4000t, 10, 5);
    let c = control.clone();
    let sim = tokio::spawn(async move {
        let _ = sim::polled::serve(&cfg, dev, &c, &mut |_| {}).await;
    });
    let l = Arc::clone(&link);
    let poll = tokio::spawn(async move {
        run_poll(&l, host).await;
    });
    let comm = hex("7E 00 02 00 00 00 07 AA");
    // Two polls of two comm tests each, unanswered.
    wait_for("two unanswered polls", || control.requests().len() >= 4).await;
    let st = link.status.snapshot();
    assert!(!st.online);
    assert!(
        st.last_error.as_deref().unwrap_or("").contains("offline"),
        "{st:?}"
    );
    assert!(control.requests().iter().all(|r| *r == comm));
    assert!(sink.readings().is_empty());
    let before = control.requests().len();
    control.set_silent(false);
    wait_for("caught up", || {
        link.status.snapshot().last_complete_day == Some(today())
    })
    .await;
    assert!(link.status.snapshot().online);
    let asked: Vec<Vec<u8>> = control.requests()[before..]
        .iter()
        .filter(|r| r[1] == 0x12)
        .cloned()
        .collect();
    let expected: Vec<Vec<u8>> = (0..=4).rev().map(|n| lz_count(days_ago(n))).collect();
    assert_eq!(
        asked[..5],
        expected[..],
        "every day since the last one read, oldest first"
    );
    assert_eq!(distinct(&sink), 10);
    assert_eq!(sink.complete_day(ID), Some(today()));
    sim.abort();
    poll.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tl310_firmware_10_reads_all_and_empty_days_stay_online() {
    // Firmware 10: one "read all" request.
    let sink = Arc::new(MemorySink::new());
    let link = polled_link(Protocol::Tl310, &sink, settings(60_000));
    let mut cfg = device(Protocol::Tl310, 7, 4);
    cfg.polled.firmware = 0x10;
    let (control, sim, poll) = connect(&link, cfg);
    wait_for("the poll", || link.status.snapshot().last_poll_at.is_some()).await;
    let comm = hex("7E 01 01 00 FF 71 AA");
    assert_eq!(
        control.requests(),
        [
            comm.clone(),
            comm.clone(),
            hex("7E 15 04 00 FF FF FF FF 4D AA")
        ]
    );
    assert_eq!(distinct(&sink), 7);
    let st = link.status.snapshot();
    assert_eq!(st.firmware.as_deref(), Some("10"));
    assert_eq!(st.last_complete_day, Some(today()));
    sim.abort();
    poll.abort();

    // A device without records answers no read: each day is asked again, the comm test
    // still answers, the device is online and the days are read.
    let sink = Arc::new(MemorySink::new());
    let link = polled_link(Protocol::Tl310, &sink, settings(60_000));
    let (control, sim, poll) = connect(&link, device(Protocol::Tl310, 0, 1));
    wait_for("the poll", || link.status.snapshot().last_poll_at.is_some()).await;
    let mut expected = vec![comm.clone(), comm.clone()];
    for d in [days_ago(1), today()] {
        expected.extend(std::iter::repeat_n(tl_read(d), 3));
        expected.extend([comm.clone(), comm.clone()]);
    }
    assert_eq!(control.requests(), expected);
    let st = link.status.snapshot();
    assert!(st.online);
    assert_eq!(st.protocol_errors, 0);
    assert_eq!(st.last_complete_day, Some(today()));
    assert!(sink.readings().is_empty());
    sim.abort();
    poll.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dy723pc_finish_without_records_is_no_data() {
    let sink = Arc::new(MemorySink::new());
    let link = polled_link(Protocol::Dy723pc, &sink, settings(60_000));
    let (control, sim, poll) = connect(&link, device(Protocol::Dy723pc, 0, 1));
    wait_for("the poll", || link.status.snapshot().last_poll_at.is_some()).await;
    assert_eq!(
        control.requests(),
        [dy_request(days_ago(1)), dy_request(today())]
    );
    let st = link.status.snapshot();
    assert!(st.online);
    assert_eq!(st.protocol_errors, 0);
    assert_eq!(st.last_complete_day, Some(today()));
    assert!(sink.batches().is_empty());
    sim.abort();
    poll.abort();
}

fn repoint(link_path: &std::path::Path, target: &std::path::Path) {
    let _ = std::fs::remove_file(link_path);
    std::os::unix::fs::symlink(target, link_path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pty_that_goes_away_and_comes_back_is_reopened() {
    let dir = std::env::temp_dir().join(format!("foodgate-polled-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = dir.join("ttyDY");
    let sink = Arc::new(MemorySink::new());
    let link = polled_link(Protocol::Dy723pc, &sink, settings(200));
    let mut cfg = SerialConfig::new(&port, LineSettings::for_protocol(Protocol::Dy723pc));
    cfg.backoff_initial = Duration::from_millis(50);
    cfg.backoff_max = Duration::from_millis(200);
    let (stop, rx) = watch::channel(false);
    let first = Pty::open().unwrap();
    repoint(&port, first.path());
    let task = tokio::spawn(run_serial(cfg, Arc::clone(&link), rx));

    let start = |pty: Pty, seed: u64| {
        let mut c = device(Protocol::Dy723pc, 4, 2);
        c.seed = seed;
        tokio::spawn(async move {
            let stream = pty.into_stream().unwrap();
            let _ = sim::polled::serve(&c, stream, &PolledControl::new(), &mut |_| {}).await;
        })
    };
    let sim = start(first, 1);
    wait_for("the first device read", || distinct(&sink) == 4).await;
    assert!(link.status.snapshot().online);
    // Unplugged: the simulator and its pty master are gone.
    sim.abort();
    wait_for("offline after unplug", || !link.status.snapshot().online).await;

    let second = Pty::open().unwrap();
    repoint(&port, second.path());
    let sim = start(second, 2);
    wait_for("the second device read", || distinct(&sink) == 8).await;
    let st = link.status.snapshot();
    assert!(st.online);
    assert!(st.reconnects >= 1);

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    sim.abort();
    let _ = std::fs::remove_dir_all(dir);
}
