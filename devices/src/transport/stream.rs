//! A blocking serial port as an async byte stream: one OS thread reads, one writes.
//!
//! The reader thread reads with a short timeout so that it notices when nobody listens any
//! more; `TimedOut` only means the line is idle. Any other error, or end of file, ends the
//! stream: the port is gone (unplugged, hung up).

use serialport::SerialPort;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio::sync::watch;

/// What the reader thread does with a hang-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangUp {
    /// The port is gone: end the stream (a serial port, the service side).
    End,
    /// Nobody on the other side yet: wait (a pty master whose slave is not open).
    Wait,
}

/// Async view of a serial port.
#[derive(Debug)]
pub struct PortStream {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    leftover: Vec<u8>,
    pos: usize,
    tx: Option<std_mpsc::Sender<Vec<u8>>>,
    done: bool,
    peer: Arc<AtomicBool>,
}

impl PortStream {
    /// Start the reader and writer threads of `port`.
    pub fn spawn(port: Box<dyn SerialPort>, hang_up: HangUp) -> io::Result<Self> {
        let mut reader = port.try_clone().map_err(io::Error::from)?;
        let (chunk_tx, rx) = mpsc::channel::<io::Result<Vec<u8>>>(64);
        let peer = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&peer);
        std::thread::Builder::new()
            .name("serial-read".into())
            .spawn(move || {
                let mut buf = vec![0u8; 4096];
                loop {
                    if chunk_tx.is_closed() {
                        return;
                    }
                    let r = reader.read(&mut buf);
                    let up = match &r {
                        Ok(n) => *n > 0,
                        Err(e) => e.kind() == io::ErrorKind::TimedOut,
                    };
                    seen.store(up, Ordering::Relaxed);
                    let msg = match r {
                        Ok(0) if hang_up == HangUp::Wait => {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                        Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "port closed")),
                        Ok(n) => Ok(buf[..n].to_vec()),
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::TimedOut
                                    | io::ErrorKind::Interrupted
                                    | io::ErrorKind::WouldBlock
                            ) =>
                        {
                            continue
                        }
                        Err(_) if hang_up == HangUp::Wait => {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                        Err(e) => Err(e),
                    };
                    let end = msg.is_err();
                    if chunk_tx.blocking_send(msg).is_err() || end {
                        return;
                    }
                }
            })?;
        let (tx, write_rx) = std_mpsc::channel::<Vec<u8>>();
        let mut writer = port;
        std::thread::Builder::new()
            .name("serial-write".into())
            .spawn(move || {
                while let Ok(bytes) = write_rx.recv() {
                    let r = writer.write_all(&bytes).and_then(|()| writer.flush());
                    // With nobody on the line, bytes vanish as on an unplugged cable.
                    if r.is_err() && hang_up == HangUp::End {
                        return;
                    }
                }
            })?;
        Ok(PortStream {
            rx,
            leftover: Vec::new(),
            pos: 0,
            tx: Some(tx),
            done: false,
            peer,
        })
    }

    /// Whether the other side is there (last read did not report a hang-up).
    pub fn peer_present(&self) -> bool {
        self.peer.load(Ordering::Relaxed)
    }

    /// Wait until the other side opens the line (a link opening the pty's slave).
    pub async fn wait_peer(&self) {
        while !self.peer_present() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl AsyncRead for PortStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        if me.pos >= me.leftover.len() {
            if me.done {
                return Poll::Ready(Ok(()));
            }
            match me.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    me.done = true;
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Some(Err(e))) => {
                    me.done = true;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    me.leftover = chunk;
                    me.pos = 0;
                }
            }
        }
        let rest = me.leftover.get(me.pos..).unwrap_or(&[]);
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        me.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for PortStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // The writer thread takes the bytes whole: one port write per reply.
        let sent = self.tx.as_ref().map(|tx| tx.send(buf.to_vec()));
        match sent {
            Some(Ok(())) => Poll::Ready(Ok(buf.len())),
            _ => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "serial writer stopped",
            ))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tx = None;
        Poll::Ready(Ok(()))
    }
}

/// Resolves when `shutdown` turns true; never when its sender is gone without doing so.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
