//! Byte streams to the instruments, and starting a configured link.

pub mod pty;
pub mod serial;
pub mod stream;
pub mod tcp;

pub use pty::Pty;
pub use serial::{run_serial, SerialConfig};
pub use stream::{HangUp, PortStream};
pub use tcp::run_tcp;

use crate::session::Link;
use crate::sink::Sink;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where an instrument is attached (`serial = {…}` or `tcp = { listen }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Serial(SerialConfig),
    Tcp { listen: SocketAddr },
}

/// One configured instrument link: what `serve` starts for each `[[instrument]]`.
#[derive(Debug)]
pub struct InstrumentLink<S> {
    pub link: Arc<Link<S>>,
    pub endpoint: Endpoint,
}

/// Start `instrument`'s link as a task that runs until `shutdown` turns true.
///
/// A TCP address that cannot be bound is an error here, at start; a serial port that is
/// absent is not (the link keeps trying to open it). Returns the task and, for TCP, the
/// address actually bound (port 0 picks a free one).
pub async fn run_instrument<S: Sink>(
    instrument: InstrumentLink<S>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<(JoinHandle<()>, Option<SocketAddr>)> {
    let InstrumentLink { link, endpoint } = instrument;
    match endpoint {
        Endpoint::Serial(cfg) => Ok((tokio::spawn(run_serial(cfg, link, shutdown)), None)),
        Endpoint::Tcp { listen } => {
            let listener = TcpListener::bind(listen).await?;
            let addr = listener.local_addr()?;
            Ok((tokio::spawn(run_tcp(listener, link, shutdown)), Some(addr)))
        }
    }
}
