//! A configured serial port: opened, read until it goes away, reopened with backoff.

use super::stream::stopped;
use super::stream::{HangUp, PortStream};
use crate::line::LineSettings;
use crate::poll::run_poll;
use crate::session::{run_session, Link, SessionEnd};
use crate::sink::Sink;
use serialport::SerialPort;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// One instrument's serial port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialConfig {
    pub path: PathBuf,
    pub line: LineSettings,
    /// Read timeout of the port thread: how soon it notices the session has ended.
    pub read_timeout: Duration,
    /// First wait before reopening a port that is absent or went away; doubles each time.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl SerialConfig {
    /// `path` with `line`, a 50 ms read timeout, and reopen backoff 0.5 s doubling to 30 s.
    pub fn new(path: impl Into<PathBuf>, line: LineSettings) -> Self {
        SerialConfig {
            path: path.into(),
            line,
            read_timeout: Duration::from_millis(50),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// Open `cfg.path` with its line settings (blocking).
pub fn open_port(cfg: &SerialConfig) -> io::Result<Box<dyn SerialPort>> {
    serialport::new(cfg.path.to_string_lossy(), cfg.line.baud)
        .data_bits(cfg.line.data_bits)
        .parity(cfg.line.parity)
        .stop_bits(cfg.line.stop_bits)
        .flow_control(cfg.line.flow_control)
        .timeout(cfg.read_timeout)
        .open()
        .map_err(io::Error::from)
}

/// The push session, or for the instruments that answer only when asked, the poll.
pub(crate) async fn session<S: Sink, T>(link: &Link<S>, io: T) -> SessionEnd
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    if link.protocol.is_polled() {
        run_poll(link, io).await
    } else {
        run_session(link, io).await
    }
}

/// A session that lasted this long proves the port works: the backoff starts over.
const STABLE: Duration = Duration::from_secs(2);

/// Keep `cfg`'s port open and a session running on it until `shutdown` turns true.
///
/// A port that cannot be opened (absent at start, unplugged) is not an error: the
/// instrument shows offline with the reason in `last_error`, and the port is tried again
/// after 0.5 s, 1 s, 2 s … up to `backoff_max`.
pub async fn run_serial<S: Sink>(
    cfg: SerialConfig,
    link: Arc<Link<S>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let status = link.status.clone();
    let mut backoff = cfg.backoff_initial;
    let mut opened_before = false;
    let shown = cfg.path.display().to_string();
    loop {
        let c = cfg.clone();
        let opened = tokio::task::spawn_blocking(move || {
            open_port(&c).and_then(|p| PortStream::spawn(p, HangUp::End))
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
        match opened {
            Ok(stream) => {
                if opened_before {
                    status.update(|s| s.reconnects += 1);
                }
                opened_before = true;
                let started = Instant::now();
                let end = tokio::select! {
                    end = session(&link, stream) => end,
                    () = stopped(&mut shutdown) => break,
                };
                let why = match end {
                    SessionEnd::Eof => "closed".to_string(),
                    SessionEnd::Error(e) => e.to_string(),
                };
                status.error(format!("port {shown} lost ({why}): reopening"));
                if started.elapsed() >= STABLE {
                    backoff = cfg.backoff_initial;
                }
            }
            Err(e) => status.error(format!(
                "cannot open {shown}: {e}; offline, retrying in {backoff:?}"
            )),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {},
            () = stopped(&mut shutdown) => break,
        }
        backoff = (backoff * 2).min(cfg.backoff_max);
    }
    status.update(|s| {
        s.online = false;
        s.connections = 0;
    });
}
