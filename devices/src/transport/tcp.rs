//! A TCP listener for instruments and lab systems that connect to us: each connection is
//! its own session, several at once.

use super::serial::session;
use super::stream::stopped;
use crate::session::{Link, SessionEnd};
use crate::sink::Sink;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Accept connections on `listener` until `shutdown` turns true.
pub async fn run_tcp<S: Sink>(
    listener: TcpListener,
    link: Arc<Link<S>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    let link = Arc::clone(&link);
                    sessions.spawn(async move {
                        if let SessionEnd::Error(e) = session(&link, sock).await {
                            link.status.error(format!("connection from {peer}: {e}"));
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    link.status.error(format!("accept: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            () = stopped(&mut shutdown) => break,
        }
    }
    sessions.abort_all();
    link.status.update(|s| {
        s.online = false;
        s.connections = 0;
    });
}
