//! `foodgate serve`: [`crate::service`] started from the command line, stopped by SIGTERM
//! or SIGINT, with its log on stderr.

use crate::config::Config;
use crate::judge::Reference;
use crate::service::{self, ServiceError, Stopped};
use crate::store::Store;
use anyhow::Context;
use clap::Args;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

pub(crate) use crate::service::Ready;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (default: the embedded configuration).
    #[arg(long)]
    config: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = match Config::load_or_default(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("foodgate: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    init_logging();
    let reference = match service::reference(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("foodgate: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("foodgate: cannot listen on {}: {e}", config.listen);
                return Ok(ExitCode::from(1));
            }
        };
        let store = service::open_store(&config, &reference)?;
        run_service(
            config,
            store,
            reference,
            listener,
            shutdown_signal(),
            |_| {},
        )
        .await
    })
}

/// Log lines on stderr; `RUST_LOG` = a level (`debug`, `warn`…) sets how much, `info` else.
pub(crate) fn init_logging() {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.trim().parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}

/// [`service::run`] with the lines `serve` and `demo` print: where the API listens and
/// what is served once ready, how it stopped at the end; exit 2 when an instrument link
/// cannot start, 1 when a part failed.
pub(crate) async fn run_service(
    config: Config,
    store: Store,
    reference: Arc<Reference>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(Ready),
) -> anyhow::Result<ExitCode> {
    let serving = format!(
        "foodgate: serving {} (store {}, {} instrument(s), {} upstream(s))",
        config.source,
        config.database_path().display(),
        config.instruments.len(),
        config.upstreams.len()
    );
    let ran = service::run(config, store, reference, listener, shutdown, |ready| {
        eprintln!("foodgate: API on http://{}", ready.api);
        eprintln!("{serving}");
        on_ready(ready);
    })
    .await;
    match ran {
        Ok(Stopped::Clean) => {
            eprintln!("foodgate: stopped");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Stopped::Failed(why)) => {
            eprintln!("foodgate: {why}");
            Ok(ExitCode::from(1))
        }
        Err(e @ ServiceError::Links(_)) => {
            eprintln!("foodgate: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}

/// SIGTERM or SIGINT (Ctrl-C).
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
