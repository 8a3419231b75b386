//! The HTTP/1 server loop: each accepted connection served by hyper with a header timeout
//! and an idle timeout, the client's address handed to the handlers as axum's
//! [`ConnectInfo`], and a graceful shutdown that lets requests in flight finish.
//!
//! `axum::serve` has neither timeout, so a client could hold a connection (and a file
//! descriptor) open forever by sending a request line a byte at a time, or nothing at all.
//! Here a connection is closed when:
//!
//! - it is new and has not sent a complete request header within [`Timeouts::header`];
//! - it is kept alive and sends no byte of its next request within [`Timeouts::idle`];
//! - it is kept alive, began its next request, and has not completed its header within
//!   [`Timeouts::header`] of that request's first byte.
//!
//! hyper measures the time a connection takes to send a request header from when it starts
//! waiting for one, which on a kept-alive connection includes the idle time before it; the
//! timer given to hyper ([`HeadTimer`]) tells the two apart by whether any byte arrived.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::rt::{Sleep, Timer};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long a connection may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To send a complete request header.
    pub header: Duration,
    /// To begin its next request, when kept alive.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        }
    }
}

/// Serve `app` on `listener` until `shutdown` completes; then stop accepting, let every
/// connection finish the request it is serving, and return once all are closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    conns.spawn(serve_connection(
                        stream,
                        peer,
                        app.clone(),
                        timeouts,
                        closing_rx.clone(),
                    ));
                }
                // The client gave up before it was accepted: nothing to do.
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    // Out of file descriptors, typically: accepting again at once would
                    // spin, and the connections that close in the meantime free some.
                    tracing::error!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let _ = closing_tx.send(true);
    while conns.join_next().await.is_some() {}
    Ok(())
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    timeouts: Timeouts,
    mut closing: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::default());
    let io = TokioIo::new(Counted {
        inner: stream,
        activity: activity.clone(),
    });
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move {
            use tower_service::Service;
            std::future::poll_fn(|cx| Service::<Request<Body>>::poll_ready(&mut app, cx)).await?;
            app.call(req.map(Body::new)).await
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(HeadTimer { activity, timeouts })
        .header_read_timeout(timeouts.header)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut asked = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, "connection closed: {e}");
                }
                break;
            }
            _ = closing.wait_for(|c| *c), if !asked => {
                asked = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What a connection did, for its [`HeadTimer`].
#[derive(Debug, Default)]
struct Activity {
    /// Bytes received so far.
    bytes_read: AtomicU64,
    /// Request headers waited for so far.
    heads: AtomicU64,
}

/// The connection's socket, counting the bytes it receives.
struct Counted {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            this.activity
                .bytes_read
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// hyper's header-read timer of one connection. hyper asks it for a sleep each time it
/// starts waiting for a request header, with a deadline of [`Timeouts::header`] from then.
/// On a new connection that is the deadline. On a kept-alive one the connection is idle until
/// a byte arrives: the sleep first runs to [`Timeouts::idle`], and from the first byte to
/// [`Timeouts::header`] after it.
struct HeadTimer {
    activity: Arc<Activity>,
    timeouts: Timeouts,
}

impl Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        let start = deadline
            .checked_sub(self.timeouts.header)
            .unwrap_or_else(Instant::now);
        let first = self.activity.heads.fetch_add(1, Ordering::Relaxed) == 0;
        let until = if first {
            deadline
        } else {
            start + self.timeouts.idle
        };
        Box::pin(HeadSleep {
            activity: self.activity.clone(),
            header: self.timeouts.header,
            idle_since: (!first).then(|| self.activity.bytes_read.load(Ordering::Relaxed)),
            sleep: Box::pin(tokio::time::sleep_until(until.into())),
        })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        *sleep = self.sleep_until(new_deadline);
    }
}

struct HeadSleep {
    activity: Arc<Activity>,
    header: Duration,
    /// While idle (kept alive, no byte of the next request yet): the bytes received when the
    /// wait began.
    idle_since: Option<u64>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // hyper polls this each time it has read a part of a header and needs more, so the
        // first byte of the next request is seen here as it arrives.
        if let Some(at) = this.idle_since {
            if this.activity.bytes_read.load(Ordering::Relaxed) != at {
                this.idle_since = None;
                this.sleep
                    .as_mut()
                    .reset(tokio::time::Instant::now() + this.header);
            }
        }
        this.sleep.as_mut().poll(cx)
    }
}

impl Sleep for HeadSleep {}
