//! Serial port life: absent at start, unplugged and plugged again.

use crate::harness::*;
use foodgate_devices::transport::Pty;
use foodgate_devices::{LineSettings, MemorySink};
use foodgate_parsers::Protocol;
use std::sync::Arc;
use std::time::Duration;

fn repoint(link_path: &std::path::Path, target: &std::path::Path) {
    let _ = std::fs::remove_file(link_path);
    std::os::unix::fs::symlink(target, link_path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_port_is_offline_then_unplug_and_replug_lose_nothing() {
    let dir = std::env::temp_dir().join(format!("foodgate-serial-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = dir.join("ttyANALYZER");
    let _ = std::fs::remove_file(&port);

    let sink = Arc::new(MemorySink::new());
    let link = link(Protocol::Astm, &sink);
    let (task, stop) = serial_link(Arc::clone(&link), &port);
    // Nothing plugged in: offline, retrying, not an error that stops the link.
    eventually("cannot open reported", || {
        link.status
            .snapshot()
            .last_error
            .is_some_and(|e| e.contains("cannot open"))
    })
    .await;
    assert!(!link.status.snapshot().online);

    let first = Pty::open().unwrap();
    repoint(&port, first.path());
    let report = run_sim(&sim_config(Protocol::Astm, 2), plugged(first).await).await;
    assert_eq!(report.acknowledged, 2);
    // Unplug: the simulator's stream, which owned the pty master, is gone now.
    eventually("offline after unplug", || !link.status.snapshot().online).await;

    let second = Pty::open().unwrap();
    repoint(&port, second.path());
    let mut cfg = sim_config(Protocol::Astm, 2);
    cfg.seed = 9;
    let report = run_sim(&cfg, plugged(second).await).await;
    assert_eq!(report.acknowledged, 2);
    assert_eq!(
        sink.readings().len(),
        4,
        "every result of both sessions, once"
    );
    let st = link.status.snapshot();
    assert_eq!(st.reconnects, 1);
    assert!(st.online);

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .unwrap()
        .unwrap();
    assert!(!link.status.snapshot().online);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn line_defaults_and_names() {
    assert_eq!(LineSettings::for_protocol(Protocol::GoldCard).baud, 115_200);
    for p in [Protocol::Astm, Protocol::EnzymePrint, Protocol::Spectro] {
        assert_eq!(LineSettings::for_protocol(p).baud, 9600);
    }
    let l: LineSettings = "19200-7E2".parse().unwrap();
    assert_eq!(l.baud, 19200);
    assert_eq!(l.parity, foodgate_devices::line::Parity::Even);
    assert!("9600-9N1".parse::<LineSettings>().is_err());
    assert!(foodgate_devices::line::parity("mark").is_err());
}
