use crate::harness::*;
use foodgate_devices::{run_session, MemorySink};
use foodgate_parsers::astm::{encode_frame, Frame};
use foodgate_parsers::Protocol;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ACK: u8 = 0x06;
const NAK: u8 = 0x15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_committed_once_each_acknowledged_after_commit() {
    let sink = Arc::new(MemorySink::new());
    let link = link(Protocol::Astm, &sink);
    let (addr, _stop) = tcp_link(Arc::clone(&link)).await;
    let report = run_sim(&sim_config(Protocol::Astm, 3), connect(addr).await).await;
    // ENQ then the one frame of each message: ACK, ACK.
    assert_eq!(report.received, vec![ACK; 6]);
    assert_eq!((report.acknowledged, report.failed), (3, 0));
    assert_eq!(sample_ids(&sink), ["S0001", "S0002", "S0003"]);
    let readings = sink.readings();
    assert!(readings
        .iter()
        .all(|r| r.instrument.as_deref() == Some("SIM-ASTM-0001")));
    // GBK names decoded with the configured encoding.
    assert!(readings
        .iter()
        .all(|r| r.sample_name.as_deref().is_some_and(|n| !n.is_ascii())));
    let batches = sink.batches();
    assert_eq!(batches.len(), 3, "one batch per message");
    // Each batch's raw span holds the frame its reading came from.
    for b in &batches {
        let r = &b.readings[0];
        let off = r.offset.expect("offset");
        assert!(off >= b.raw_offset && off < b.raw_offset + b.raw.len() as u64);
        assert!(b.raw.windows(3).any(|w| w == b"\rR|"));
    }
    let st = link.status.snapshot();
    assert_eq!((st.readings, st.decode_errors), (3, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_frame_is_nakked_then_its_retransmission_taken() {
    let sink = Arc::new(MemorySink::new());
    let link = link(Protocol::Astm, &sink);
    let (addr, _stop) = tcp_link(Arc::clone(&link)).await;
    let mut cfg = sim_config(Protocol::Astm, 3);
    cfg.faults.corrupt_first_send = vec![1];
    let report = run_sim(&cfg, connect(addr).await).await;
    assert_eq!(report.received, [ACK, ACK, ACK, NAK, ACK, ACK, ACK]);
    assert_eq!(report.retransmissions, 1);
    assert_eq!(sample_ids(&sink), ["S0001", "S0002", "S0003"]);
    let st = link.status.snapshot();
    assert_eq!(st.decode_errors, 1);
    assert!(st.last_error.unwrap_or_default().contains("bad_checksum"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_ack_retransmission_is_acknowledged_not_committed_twice() {
    let sink = Arc::new(MemorySink::new());
    let link = link(Protocol::Astm, &sink);
    let (addr, _stop) = tcp_link(Arc::clone(&link)).await;
    let mut cfg = sim_config(Protocol::Astm, 2);
    cfg.faults.lose_first_ack = vec![0];
    let report = run_sim(&cfg, connect(addr).await).await;
    assert_eq!(report.received, [ACK, ACK, ACK, ACK, ACK]);
    assert_eq!(report.retransmissions, 1);
    assert_eq!(sample_ids(&sink), ["S0001", "S0002"]);
    assert_eq!(link.status.snapshot().retransmissions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_sink_gets_nak_never_ack() {
    let sink = Arc::new(MemorySink::new());
    sink.set_refusing(true);
    let link = link(Protocol::Astm, &sink);
    let (addr, _stop) = tcp_link(Arc::clone(&link)).await;
    let mut cfg = sim_config(Protocol::Astm, 1);
    cfg.max_tries = 2;
    let report = run_sim(&cfg, connect(addr).await).await;
    assert_eq!(report.received, [NAK, NAK], "ENQ refused twice");
    assert_eq!((report.acknowledged, report.failed), (0, 1));
    assert!(sink.readings().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_commit_naks_the_frame_and_the_retransmission_is_committed() {
    let sink = Arc::new(MemorySink::new());
    sink.refuse_next(1);
    let link = link(Protocol::Astm, &sink);
    let (addr, _stop) = tcp_link(Arc::clone(&link)).await;
    let report = run_sim(&sim_config(Protocol::Astm, 2), connect(addr).await).await;
    // ENQ ACK, frame NAK (not stored), same frame again ACK (stored now), next message.
    assert_eq!(report.received, [ACK, NAK, ACK, ACK, ACK]);
    assert_eq!(sink.refused(), 1);
    assert_eq!(sample_ids(&sink), ["S0001", "S0002"]);
}

fn frame(number: u8, text: &[u8], last: bool) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(Frame { number, text, last }, &mut out);
    out
}

async fn answer(io: &mut tokio::io::DuplexStream) -> u8 {
    let mut b = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(2), io.read_exact(&mut b))
        .await
        .expect("an answer")
        .expect("read");
    b[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_frame_number_inside_a_chain_is_nakked_each_time() {
    let sink = Arc::new(MemorySink::new());
    let link = link(Protocol::Astm, &sink);
    let (mut ours, theirs) = tokio::io::duplex(4096);
    let l = Arc::clone(&link);
    let session = tokio::spawn(async move { run_session(&l, theirs).await });
    ours.write_all(&[0x05]).await.unwrap();
    assert_eq!(answer(&mut ours).await, ACK);
    ours.write_all(&frame(1, b"H|\\^&|||X\rO|1|S1||^^^OPI\rR|1|^^^", false))
        .await
        .unwrap();
    assert_eq!(answer(&mut ours).await, ACK);
    // Frame 3 where 2 is due: a frame of the chain is missing.
    let bad = frame(3, b"OPI|80|%||POS\rL|1|N\r", true);
    for _ in 0..2 {
        ours.write_all(&bad).await.unwrap();
        assert_eq!(answer(&mut ours).await, NAK);
    }
    ours.write_all(&[0x04]).await.unwrap();
    drop(ours);
    session.await.unwrap();
    assert!(
        sink.readings().is_empty(),
        "nothing of the broken message stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_inside_a_transfer_discards_the_half_message() {
    let sink = Arc::new(MemorySink::new());
    let link = link(Protocol::Astm, &sink);
    let (mut ours, theirs) = tokio::io::duplex(4096);
    let l = Arc::clone(&link);
    let session = tokio::spawn(async move { run_session(&l, theirs).await });
    ours.write_all(&[0x05]).await.unwrap();
    assert_eq!(answer(&mut ours).await, ACK);
    let head = b"H|\\^&|||X\rO|1|S1||^^^OPI\rR|1|^^^OPI|80|%||POS\r";
    ours.write_all(&frame(1, head, false)).await.unwrap();
    assert_eq!(answer(&mut ours).await, ACK);
    // More than the (shortened) 30 s without a byte: the unfinished message is dropped,
    // so its L record arriving late completes nothing.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(link
        .status
        .snapshot()
        .last_error
        .unwrap_or_default()
        .contains("discarded"));
    ours.write_all(&frame(2, b"L|1|N\r", true)).await.unwrap();
    let _ = answer(&mut ours).await;
    // A complete transfer afterwards is taken.
    ours.write_all(&[0x04, 0x05]).await.unwrap();
    assert_eq!(answer(&mut ours).await, ACK);
    let whole = b"H|\\^&|||X\rO|1|S2||^^^OPI\rR|1|^^^OPI|10|%||NEG\rL|1|N\r";
    ours.write_all(&frame(1, whole, true)).await.unwrap();
    assert_eq!(answer(&mut ours).await, ACK);
    ours.write_all(&[0x04]).await.unwrap();
    drop(ours);
    session.await.unwrap();
    assert_eq!(sample_ids(&sink), ["S2"]);
}
