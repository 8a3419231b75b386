//! `foodgate serve`: the service. For now the uplink worker; the API and the instrument links
//! join it here.

use crate::config::Config;
use crate::store::{Store, StoreSettings};
use crate::uplink;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::sync::watch;

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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let path = config.database_path();
    let store = Store::open(&path, StoreSettings::from_config(&config))
        .with_context(|| format!("cannot open the store {}", path.display()))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (_uplink, mut workers) = uplink::spawn(store.clone(), config.upstreams.clone(), stop_rx);

    // --- HTTP API (src/api): beside the uplink, stopped by the same signal. ---
    let api_state = crate::api::AppState::new(store.clone(), api_judge(&config)?).with_instruments(
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
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    eprintln!("foodgate: API on http://{}", config.listen);
    let mut api_stop = stop_tx.subscribe();
    let mut api_task = tokio::spawn(crate::api::serve(listener, api_state, async move {
        let _ = api_stop.wait_for(|s| *s).await;
    }));
    // --- end of the HTTP API block. ---
    eprintln!(
        "foodgate: serving {} (store {}, {} upstream(s))",
        config.source,
        path.display(),
        config.upstreams.len()
    );
    let mut failed = None;
    tokio::select! {
        _ = shutdown_signal() => {}
        done = &mut api_task => {
            failed = Some(match done {
                Ok(Ok(())) => "the API server stopped".to_string(),
                Ok(Err(e)) => format!("the API server failed: {e}"),
                Err(e) => format!("the API server panicked: {e}"),
            });
        }
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
    while workers.join_next().await.is_some() {}
    if !api_task.is_finished() {
        let _ = api_task.await;
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

/// The judge of uploads: the configured reference data, else the built-in one.
fn api_judge(config: &Config) -> anyhow::Result<crate::judge::Judge> {
    Ok(match &config.limits {
        None => crate::judge::Judge::builtin(),
        Some(path) => crate::judge::Judge::new(std::sync::Arc::new(
            crate::judge::Reference::load(path).map_err(|e| anyhow::anyhow!("{e}"))?,
        )),
    })
}

async fn shutdown_signal() {
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
