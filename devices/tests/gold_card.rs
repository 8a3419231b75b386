//! gold-card over a pty pair: the simulator on the master, the link on the slave path.

use crate::harness::*;
use foodgate_devices::transport::Pty;
use foodgate_devices::MemorySink;
use foodgate_parsers::gold_card::encode_ack;
use foodgate_parsers::Protocol;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_acknowledged_after_commit_over_a_serial_line() {
    let sink = Arc::new(MemorySink::new());
    let link = link(Protocol::GoldCard, &sink);
    let pty = Pty::open().unwrap();
    let (_task, _stop) = serial_link(Arc::clone(&link), pty.path());
    let stream = plugged(pty).await;
    let report = run_sim(&sim_config(Protocol::GoldCard, 3), stream).await;
    // Device info is sequence 1, results 2, 3, 4.
    assert_eq!(
        report.received,
        [encode_ack(2), encode_ack(3), encode_ack(4)].concat()
    );
    assert_eq!(sample_ids(&sink), ["S0001", "S0002", "S0003"]);
    let st = link.status.snapshot();
    assert_eq!(st.serial_number.as_deref(), Some("SIM-GOLD-0001"));
    assert_eq!(st.firmware.as_deref(), Some("2.3.1"));
    assert!(st.online);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_ack_retransmission_acknowledged_again_not_committed_twice() {
    let sink = Arc::new(MemorySink::new());
    let link = link(Protocol::GoldCard, &sink);
    let pty = Pty::open().unwrap();
    let (_task, _stop) = serial_link(Arc::clone(&link), pty.path());
    let mut cfg = sim_config(Protocol::GoldCard, 2);
    cfg.faults.lose_first_ack = vec![0];
    let report = run_sim(&cfg, plugged(pty).await).await;
    assert_eq!(
        report.received,
        [encode_ack(2), encode_ack(2), encode_ack(3)].concat()
    );
    assert_eq!(sample_ids(&sink), ["S0001", "S0002"]);
    assert_eq!(link.status.snapshot().retransmissions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_commit_is_not_acknowledged_and_the_resent_frame_is_stored_once() {
    let sink = Arc::new(MemorySink::new());
    sink.refuse_next(1);
    let link = link(Protocol::GoldCard, &sink);
    let pty = Pty::open().unwrap();
    let (_task, _stop) = serial_link(Arc::clone(&link), pty.path());
    let report = run_sim(&sim_config(Protocol::GoldCard, 2), plugged(pty).await).await;
    assert_eq!(report.received, [encode_ack(2), encode_ack(3)].concat());
    // Acknowledged only once the refused batch was committed on a retry.
    assert_eq!(sink.refused(), 1);
    assert_eq!(sample_ids(&sink), ["S0001", "S0002"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_frame_is_dropped_and_the_resend_taken() {
    let sink = Arc::new(MemorySink::new());
    let link = link(Protocol::GoldCard, &sink);
    let pty = Pty::open().unwrap();
    let (_task, _stop) = serial_link(Arc::clone(&link), pty.path());
    let mut cfg = sim_config(Protocol::GoldCard, 2);
    cfg.faults.corrupt_first_send = vec![1];
    let report = run_sim(&cfg, plugged(pty).await).await;
    assert_eq!(report.received, [encode_ack(2), encode_ack(3)].concat());
    assert_eq!(sample_ids(&sink), ["S0001", "S0002"]);
    assert_eq!(link.status.snapshot().decode_errors, 1);
}
