use crate::harness::*;
use foodgate_devices::MemorySink;
use foodgate_parsers::hl7::mllp_wrap;
use foodgate_parsers::Protocol;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The MSA segments of the acknowledgement blocks in `bytes`, checking the MLLP framing.
fn msas(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8(bytes.to_vec()).expect("utf-8 acks");
    let mut out = Vec::new();
    for block in text.split_terminator("\x1c\r") {
        let body = block.strip_prefix('\x0b').expect("block starts with VT");
        let segs: Vec<&str> = body.split_terminator('\r').collect();
        assert!(segs[0].starts_with("MSH|^~\\&|FOODGATE|ZB-0003|SIM-LIS|LAB|"));
        assert!(segs[0].contains("|ACK^R01|FG"));
        out.push(segs[1].to_string());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_committed_then_aa() {
    let sink = Arc::new(MemorySink::new());
    let link = link(Protocol::Hl7, &sink);
    let (addr, _stop) = tcp_link(Arc::clone(&link)).await;
    let report = run_sim(&sim_config(Protocol::Hl7, 3), connect(addr).await).await;
    assert_eq!(
        msas(&report.received),
        ["MSA|AA|SIM7-1", "MSA|AA|SIM7-2", "MSA|AA|SIM7-3"]
    );
    assert_eq!(sample_ids(&sink), ["S0001", "S0002", "S0003"]);
    assert!(sink
        .readings()
        .iter()
        .all(|r| r.sample_name.as_deref().is_some_and(|n| !n.is_ascii())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_commit_answers_ar_and_the_resent_message_is_stored_once() {
    let sink = Arc::new(MemorySink::new());
    sink.refuse_next(1);
    let link = link(Protocol::Hl7, &sink);
    let (addr, _stop) = tcp_link(Arc::clone(&link)).await;
    let report = run_sim(&sim_config(Protocol::Hl7, 2), connect(addr).await).await;
    let m = msas(&report.received);
    assert_eq!(m.len(), 3);
    assert!(m[0].starts_with("MSA|AR|SIM7-1|cannot store now"));
    assert_eq!(m[1..], ["MSA|AA|SIM7-1", "MSA|AA|SIM7-2"]);
    assert_eq!(sample_ids(&sink), ["S0001", "S0002"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_sink_never_gets_aa() {
    let sink = Arc::new(MemorySink::new());
    sink.set_refusing(true);
    let link = link(Protocol::Hl7, &sink);
    let (addr, _stop) = tcp_link(Arc::clone(&link)).await;
    let mut cfg = sim_config(Protocol::Hl7, 1);
    cfg.max_tries = 2;
    let report = run_sim(&cfg, connect(addr).await).await;
    let m = msas(&report.received);
    assert_eq!(m.len(), 2);
    assert!(m.iter().all(|s| s.starts_with("MSA|AR|SIM7-1|")));
    assert!(sink.readings().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_message_gets_ae_in_one_block() {
    let sink = Arc::new(MemorySink::new());
    let link = link(Protocol::Hl7, &sink);
    let (addr, _stop) = tcp_link(Arc::clone(&link)).await;
    let mut c = connect(addr).await;
    c.write_all(&mllp_wrap(b"PID|1||A01\rOBX|1|NM|OPI^x||80|%\r"))
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    // The whole acknowledgement arrives in one read, as MLLP clients expect.
    let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf))
        .await
        .expect("ack")
        .unwrap();
    let got = &buf[..n];
    assert_eq!(got.first(), Some(&0x0b));
    assert!(got.ends_with(b"\x1c\r"));
    let text = String::from_utf8_lossy(got);
    assert!(text.contains("\rMSA|AE||"), "{text}");
    assert!(sink.readings().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_ack_message_resent_is_committed_again_for_the_store_to_deduplicate() {
    // HL7 has no retransmission marker: the message comes again whole and is committed
    // again; the store recognizes the reading (same identity) as a duplicate.
    let sink = Arc::new(MemorySink::new());
    let link = link(Protocol::Hl7, &sink);
    let (addr, _stop) = tcp_link(Arc::clone(&link)).await;
    let mut cfg = sim_config(Protocol::Hl7, 1);
    cfg.faults.lose_first_ack = vec![0];
    let report = run_sim(&cfg, connect(addr).await).await;
    assert_eq!(msas(&report.received), ["MSA|AA|SIM7-1", "MSA|AA|SIM7-1"]);
    let mut r = sink.readings();
    assert_eq!(r.len(), 2);
    assert!(
        r[0].offset < r[1].offset,
        "the second copy comes later in the stream"
    );
    r.iter_mut().for_each(|r| r.offset = None);
    assert_eq!(
        r[0], r[1],
        "the same reading, for the store's identity check"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_connections_at_once_are_separate_sessions() {
    let sink = Arc::new(MemorySink::new());
    let link = link(Protocol::Hl7, &sink);
    let (addr, _stop) = tcp_link(Arc::clone(&link)).await;
    let a = connect(addr).await;
    let b = connect(addr).await;
    let mut cb = sim_config(Protocol::Hl7, 2);
    cb.seed = 8;
    let ca = sim_config(Protocol::Hl7, 2);
    let (ra, rb) = tokio::join!(run_sim(&ca, a), run_sim(&cb, b));
    assert_eq!(msas(&ra.received), ["MSA|AA|SIM7-1", "MSA|AA|SIM7-2"]);
    assert_eq!(msas(&rb.received), ["MSA|AA|SIM8-1", "MSA|AA|SIM8-2"]);
    assert_eq!(sink.readings().len(), 4);
    let streams: std::collections::BTreeSet<u64> =
        sink.batches().iter().map(|b| b.stream).collect();
    assert_eq!(streams.len(), 2);
}
