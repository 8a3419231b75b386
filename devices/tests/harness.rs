//! Shared set-up: links with short timeouts, simulators with short timeouts.

use foodgate_devices::sim::{self, SimConfig, SimReport};
use foodgate_devices::transport::{run_serial, Pty, SerialConfig};
use foodgate_devices::{LineSettings, Link, LinkTiming, MemorySink};
use foodgate_parsers::{Encoding, Protocol};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub fn link(protocol: Protocol, sink: &Arc<MemorySink>) -> Arc<Link<MemorySink>> {
    let mut link = Link::new("TEST-1", protocol, Arc::clone(sink));
    link.decoder.encoding = Some(match protocol {
        Protocol::Hl7 => Encoding::Utf8,
        _ => Encoding::Gbk,
    });
    link.timing = LinkTiming {
        transfer_idle: Duration::from_millis(400),
        commit_retry: Duration::from_millis(50),
    };
    link.hl7_facility = "ZB-0003".into();
    Arc::new(link)
}

pub fn sim_config(protocol: Protocol, count: usize) -> SimConfig {
    let mut c = SimConfig::new(protocol);
    c.count = count;
    c.interval = Duration::ZERO;
    c.positive_rate = 0.5;
    c.seed = 7;
    // Shorter than the link's transfer timeout, as in the documents (15 s < 30 s).
    c.ack_timeout = Duration::from_millis(200);
    c.retry_delay = Duration::from_millis(50);
    c
}

pub async fn run_sim<T>(cfg: &SimConfig, io: T) -> SimReport
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let mut lines = Vec::new();
    let report = sim::run(cfg, io, &mut |l| lines.push(l))
        .await
        .expect("simulator runs");
    assert_eq!(lines.len(), cfg.count, "one log line per sample: {lines:?}");
    report
}

/// A link session served on a TCP listener; returns the address to connect to.
pub async fn tcp_link(link: Arc<Link<MemorySink>>) -> (std::net::SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = watch::channel(false);
    tokio::spawn(foodgate_devices::transport::run_tcp(listener, link, rx));
    (addr, tx)
}

pub async fn connect(addr: std::net::SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect")
}

/// A serial link on `path` with a fast reopen.
pub fn serial_link(
    link: Arc<Link<MemorySink>>,
    path: &Path,
) -> (tokio::task::JoinHandle<()>, watch::Sender<bool>) {
    let mut cfg = SerialConfig::new(path, LineSettings::for_protocol(link.protocol));
    cfg.backoff_initial = Duration::from_millis(50);
    cfg.backoff_max = Duration::from_millis(200);
    let (tx, rx) = watch::channel(false);
    (tokio::spawn(run_serial(cfg, link, rx)), tx)
}

/// A pty whose master side is ready once the link has opened the slave.
pub async fn plugged(pty: Pty) -> foodgate_devices::transport::PortStream {
    let stream = pty.into_stream().expect("pty stream");
    tokio::time::timeout(Duration::from_secs(5), stream.wait_peer())
        .await
        .expect("the link opens the port");
    stream
}

/// Wait until `f` holds (the link works in other tasks).
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

pub fn sample_ids(sink: &MemorySink) -> Vec<String> {
    sink.readings()
        .iter()
        .map(|r| r.sample_id.as_deref().unwrap_or("").to_string())
        .collect()
}
