//! `foodgate serve`: the service: the instrument links, the uplink worker and the HTTP API.

use crate::config::Config;
use crate::judge::Reference;
use crate::links;
use crate::store::{Store, StoreSettings};
use crate::uplink;
use anyhow::Context;
use clap::Args;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the instruments' status is written to the store (and at shutdown).
const STATUS_EVERY: Duration = Duration::from_secs(5);

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
    let reference = match config.limits.as_ref() {
        None => Reference::builtin(),
        Some(path) => match Reference::load(path) {
            Ok(r) => Arc::new(r),
            Err(e) => {
                eprintln!("foodgate: {e}");
                return Ok(ExitCode::from(2));
            }
        },
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
        let path = config.database_path();
        let settings = StoreSettings::from_config(&config)
            .with_judge(crate::judge::Judge::new(reference.clone()));
        let store = Store::open(&path, settings)
            .with_context(|| format!("cannot open the store {}", path.display()))?;
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

/// What a started service tells its caller: where the API and each TCP instrument link
/// listen (port 0 in the config picks a free port).
#[derive(Debug, Clone)]
pub(crate) struct Ready {
    pub api: SocketAddr,
    /// `(instrument id, address bound)` of every TCP link.
    pub instruments: Vec<(String, SocketAddr)>,
}

/// The service body shared by `serve` and `demo`: links, uplink workers and the API on
/// `listener` around `store` (opened with the config's settings), until `shutdown` completes
/// (or a part fails: exit 1); closes the store. `on_ready` is called once everything
/// listens, after the `foodgate: API on` line.
pub(crate) async fn run_service(
    config: Config,
    store: Store,
    reference: Arc<Reference>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(Ready),
) -> anyhow::Result<ExitCode> {
    let path = config.database_path();
    warn_unknown_markets(&config, &store);
    crate::markets::warn_if_registry_empty(&store);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut links = match links::start(&config, &store, reference.clone(), stop_rx.clone()).await {
        Ok(l) => l,
        Err(e) => {
            let _ = stop_tx.send(true);
            store.close_async().await;
            eprintln!("foodgate: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Err(e) = links.persist(&store).await {
        tracing::warn!("cannot write the instruments' status: {e}");
    }
    let (uplink_handle, mut workers) =
        uplink::spawn(store.clone(), config.upstreams.clone(), stop_rx.clone());
    let pruner = crate::store::retention::spawn(
        store.clone(),
        config
            .raw_retention_days
            .unwrap_or(crate::store::retention::DEFAULT_DAYS),
        Some(config.data_dir.join("raw")),
        stop_rx,
    );

    // --- HTTP API (src/api): beside the uplink, stopped by the same signal. ---
    let api_state = crate::api::AppState::new(store.clone(), crate::judge::Judge::new(reference))
        .with_instruments(
            config
                .instruments
                .iter()
                .map(|i| crate::api::ConfiguredInstrument {
                    id: i.id.clone(),
                    market: i.market.clone(),
                    protocol: i.protocol.as_str().to_string(),
                })
                .collect(),
        );
    api_state.set_uplink(uplink_handle);
    let bound = listener.local_addr().unwrap_or(config.listen);
    eprintln!("foodgate: API on http://{bound}");
    let mut api_stop = stop_tx.subscribe();
    let mut api_task = tokio::spawn(crate::api::serve(listener, api_state, async move {
        let _ = api_stop.wait_for(|s| *s).await;
    }));
    // --- end of the HTTP API block. ---
    eprintln!(
        "foodgate: serving {} (store {}, {} instrument(s), {} upstream(s))",
        config.source,
        path.display(),
        config.instruments.len(),
        config.upstreams.len()
    );
    on_ready(Ready {
        api: bound,
        instruments: links
            .links
            .iter()
            .filter_map(|l| l.bound.map(|a| (l.id.clone(), a)))
            .collect(),
    });
    let watcher = {
        let links = &links;
        let store = store.clone();
        let rx = stop_tx.subscribe();
        async move { links.watch(&store, STATUS_EVERY, rx).await }
    };
    let mut failed = None;
    tokio::pin!(shutdown);
    tokio::select! {
        () = &mut shutdown => {}
        done = &mut api_task => {
            failed = Some(match done {
                Ok(Ok(())) => "the API server stopped".to_string(),
                Ok(Err(e)) => format!("the API server failed: {e}"),
                Err(e) => format!("the API server panicked: {e}"),
            });
        }
        () = watcher => {}
        Some(done) = workers.join_next(), if !workers.is_empty() => {
            failed = Some(match done {
                Ok(Ok(())) => "an uplink worker stopped".to_string(),
                Ok(Err(e)) => format!("an uplink worker failed: {e}"),
                Err(e) => format!("an uplink worker panicked: {e}"),
            });
        }
    }
    // Stop taking new work, then let the writer commit what it already has.
    let _ = stop_tx.send(true);
    links.join().await;
    let _ = pruner.await;
    while workers.join_next().await.is_some() {}
    if !api_task.is_finished() {
        let _ = api_task.await;
    }
    if let Err(e) = links.persist(&store).await {
        tracing::warn!("cannot write the instruments' status: {e}");
    }
    store.close_async().await;
    match failed {
        Some(why) => {
            eprintln!("foodgate: {why}");
            Ok(ExitCode::from(1))
        }
        None => {
            eprintln!("foodgate: stopped");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// An instrument of an unknown market cannot store anything: say so at start.
fn warn_unknown_markets(config: &Config, store: &Store) {
    let Ok(conn) = store.reader() else { return };
    for i in &config.instruments {
        let known = conn
            .prepare_cached("SELECT 1 FROM markets WHERE code = ?1")
            .and_then(|mut s| s.exists([&i.market]))
            .unwrap_or(true);
        if !known {
            tracing::warn!(
                instrument = %i.id,
                "market {:?} is not in the registry: its readings are refused until it is",
                i.market
            );
        }
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
