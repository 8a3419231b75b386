//! spectro and enzyme-print: nothing is said back; every reading is committed, and the raw
//! archive holds every byte.

use crate::harness::*;
use foodgate_devices::transport::Pty;
use foodgate_devices::{MemorySink, RawArchive};
use foodgate_parsers::{DeviceVerdict, Protocol};
use std::sync::Arc;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("foodgate-devices-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

async fn run(protocol: Protocol, count: usize) -> (Arc<MemorySink>, Vec<u8>, std::path::PathBuf) {
    let sink = Arc::new(MemorySink::new());
    let mut l = Arc::try_unwrap(link(protocol, &sink)).expect("fresh link");
    let dir = temp_dir(protocol.as_str());
    l.archive = Some(Arc::new(RawArchive::new(
        &dir,
        "ZB-0003/OP1",
        l.decoder.utc_offset,
        1 << 20,
    )));
    let l = Arc::new(l);
    let pty = Pty::open().unwrap();
    let (_task, stop) = serial_link(Arc::clone(&l), pty.path());
    let report = run_sim(&sim_config(protocol, count), plugged(pty).await).await;
    assert!(report.received.is_empty(), "receive only");
    eventually("all readings committed", || sink.readings().len() == count).await;
    stop.send(true).unwrap();
    (sink, report.sent, dir)
}

fn archived(dir: &std::path::Path) -> Vec<u8> {
    let inst = dir.join("ZB-0003_OP1");
    let mut files: Vec<_> = std::fs::read_dir(&inst)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 1);
    assert!(files[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .ends_with(".bin"));
    std::fs::read(&files[0]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spectro_sentences_committed_and_archived() {
    let (sink, sent, dir) = run(Protocol::Spectro, 12).await;
    let r = sink.readings();
    assert_eq!(r.len(), 12);
    assert!(r
        .iter()
        .all(|r| r.instrument.as_deref() == Some("SIM-SPECTRO-0001")));
    let positives = r
        .iter()
        .filter(|r| r.device_verdict == Some(DeviceVerdict::Positive))
        .count();
    assert!(
        positives > 0 && positives < 12,
        "seeded share of positives: {positives}"
    );
    assert_eq!(
        archived(&dir),
        sent,
        "every received byte archived, in order"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enzyme_print_reports_committed_and_archived() {
    let (sink, sent, dir) = run(Protocol::EnzymePrint, 6).await;
    let r = sink.readings();
    assert_eq!(
        sample_ids(&sink),
        ["S0001", "S0002", "S0003", "S0004", "S0005", "S0006"]
    );
    assert!(r.iter().all(|r| r.unit.as_deref() == Some("%")));
    assert_eq!(archived(&dir), sent);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn archive_rotates_at_its_size_bound_and_keeps_every_byte() {
    let dir = temp_dir("rotate");
    let offset = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let a = RawArchive::new(&dir, "../evil id", offset, 10);
    let first = a.append(b"0123456789").unwrap();
    let second = a.append(b"abc").unwrap();
    let third = a.append(b"def").unwrap();
    assert_ne!(first, second, "a full file is not appended to");
    assert_eq!(second, third);
    assert!(first.starts_with(dir.join(".._evil_id")), "{first:?}");
    let day = first.file_name().unwrap().to_string_lossy().into_owned();
    assert!(day.ends_with(".bin") && day.len() == "YYYY-MM-DD.bin".len());
    assert!(second.to_string_lossy().ends_with(".1.bin"));
    assert_eq!(std::fs::read(&first).unwrap(), b"0123456789");
    assert_eq!(std::fs::read(&second).unwrap(), b"abcdef");
    // A restart continues after the full file, not over it.
    let again = RawArchive::new(&dir, "../evil id", offset, 10);
    assert_eq!(again.append(b"g").unwrap(), second);
    let _ = std::fs::remove_dir_all(dir);
}
