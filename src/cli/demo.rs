//! `foodgate demo`: the whole system on one machine with nothing attached (see
//! [`crate::demo`]): a fresh store with a month of history, simulated analyzers of every
//! protocol, a contractor uploading, a receiver upstream, and the service of `serve`.

use super::serve::{init_logging, run_service, shutdown_signal, Ready};
use crate::config::Config;
use crate::demo::{self, contractor, history, inspector, instruments, receiver::Receiver};
use crate::judge::{Judge, Reference};
use crate::store::{Store, StoreSettings};
use anyhow::Context;
use chrono::Utc;
use clap::Args;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// Where the API listens unless `--listen` says otherwise.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Days of history before today.
const HISTORY_DAYS: u32 = 30;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address of the HTTP API [default: 127.0.0.1:8080, or a free port when it is taken].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Stop after N minutes (default: run until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    minutes: Option<u64>,
    /// Keep the demo's data directory when it stops (it is removed otherwise).
    #[arg(long)]
    keep_data: bool,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let started = Instant::now();
    let dir = fresh_dir()?;
    eprintln!("foodgate: demo data in {}", dir.display());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let code = runtime.block_on(demo(&args, &dir, started));
    // The pty and link threads end with the runtime; nothing of the demo outlives it.
    runtime.shutdown_timeout(Duration::from_secs(2));
    if args.keep_data {
        eprintln!("foodgate: demo data kept in {}", dir.display());
    } else if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("foodgate: cannot remove {}: {e}", dir.display());
    }
    code
}

/// A new directory under the system's temporary directory.
fn fresh_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "foodgate-demo-{}-{}",
        std::process::id(),
        Utc::now().format("%Y%m%d%H%M%S")
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// The API's listener: `--listen` as given (it must be free), else the default, else any
/// free port of 127.0.0.1 (said on stderr).
async fn listen(asked: Option<SocketAddr>) -> Result<tokio::net::TcpListener, String> {
    if let Some(addr) = asked {
        return tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e} (choose another with --listen)"));
    }
    match tokio::net::TcpListener::bind(DEFAULT_LISTEN).await {
        Ok(l) => Ok(l),
        Err(e) => {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
            let addr = l.local_addr().map_err(|e| e.to_string())?;
            eprintln!("foodgate: {DEFAULT_LISTEN} is taken ({e}): the demo listens on {addr}");
            Ok(l)
        }
    }
}

async fn demo(args: &DemoArgs, dir: &Path, started: Instant) -> anyhow::Result<ExitCode> {
    let listener = match listen(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("foodgate: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let api_addr = listener
        .local_addr()
        .context("the API listener has no address")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    // Signals are taken from the start: a Ctrl-C while the history is written still ends in
    // a clean stop that removes the data directory.
    let minutes = args.minutes;
    let stopper = tokio::spawn(async move {
        let timer = async {
            match minutes {
                Some(m) => tokio::time::sleep(Duration::from_secs(m * 60)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown_signal() => {}
            () = timer => {}
        }
        let _ = stop_tx.send(true);
        stop_tx
    });
    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let secret = crate::auth::generate_token()
        .map_err(|e| anyhow::anyhow!("the OS random number generator failed: {e}"))?;
    let receiver = Receiver::start(&secret, until_stopped(stop_rx.clone()))
        .await
        .context("cannot start the demo receiver")?;
    let analyzers = instruments::prepare().context("cannot create the pty pairs")?;
    let text = demo::config_text(
        &dir.join("data"),
        api_addr,
        &receiver.url(),
        &secret,
        &analyzers,
    );
    let config_path = dir.join("demo.toml");
    std::fs::write(&config_path, &text)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let config = Config::parse(&text, &config_path.display().to_string())
        .context("the demo's own configuration is invalid")?;
    let reference = Reference::builtin();
    let settings = StoreSettings::from_config(&config).with_judge(Judge::new(reference.clone()));
    let store = Store::open(&config.database_path(), settings)
        .with_context(|| format!("cannot open the store {}", config.database_path().display()))?;

    // History and tokens before anything listens, so the first page shown has them.
    let prepared = {
        let store = store.clone();
        let judge = Judge::new(reference.clone());
        let offset = config.utc_offset;
        tokio::task::spawn_blocking(move || {
            // The demo's markets: a new database has none until they are imported.
            store.write(|tx| crate::markets::import_builtin(tx, "demo"))?;
            let t = Instant::now();
            let h = history::generate(&store, &judge, offset, Utc::now(), HISTORY_DAYS, 1)?;
            let tokens = demo::create_tokens(&store)?;
            Ok::<_, crate::store::StoreError>((h, t.elapsed(), tokens))
        })
        .await
        .context("the history task failed")?
    };
    let (h, took, (regulator, contractor_token, inspector_token)) = match prepared {
        Ok(p) => p,
        Err(e) => {
            store.close_async().await;
            return Err(e).context("cannot prepare the demo store");
        }
    };
    if *stop_rx.borrow() {
        store.close_async().await;
        eprintln!("foodgate: stopped");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "foodgate: demo history: {} readings ({} failures) of {} markets over {HISTORY_DAYS} days, stored in {:.1} s",
        h.readings,
        h.failures,
        h.markets,
        took.as_secs_f64()
    );

    let (ready_tx, ready_rx) = oneshot::channel::<Ready>();
    let service = run_service(
        config.clone(),
        store.clone(),
        reference,
        listener,
        until_stopped(stop_rx.clone()),
        move |ready| {
            let _ = ready_tx.send(ready);
        },
    );
    tokio::pin!(service);
    let ready = tokio::select! {
        r = ready_rx => r.ok(),
        code = &mut service => return code,
    };
    let Some(ready) = ready else {
        stopper.abort();
        return service.await;
    };

    let mut tasks = Vec::new();
    for a in analyzers {
        let id = a.plan.id;
        match a.spawn(&ready.instruments, stop_rx.clone()) {
            Ok(t) => tasks.push(t),
            Err(e) => tracing::warn!(instrument = id, "cannot start the simulator: {e}"),
        }
    }
    tasks.push(tokio::spawn(inspector::run(
        demo::reachable(ready.api),
        inspector_token,
        stop_rx.clone(),
    )));
    tasks.push(tokio::spawn(contractor::run(
        demo::reachable(ready.api),
        contractor_token,
        config.utc_offset,
        stop_rx.clone(),
    )));

    let dashboard = demo::dashboard_url(&store, demo::REGULATOR, ready.api).await;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "dashboard: {dashboard}");
        let _ = writeln!(
            out,
            "board: {}",
            demo::board_url(ready.api, demo::BOARD_MARKET)
        );
        let _ = writeln!(out, "token: {regulator}");
        let _ = out.flush();
    }
    eprintln!(
        "foodgate: demo ready in {:.1} s: {} analyzers, contractor {} uploading every {} s, receiver on {}{}",
        started.elapsed().as_secs_f64(),
        instruments::PLAN.len(),
        contractor::TOKEN_NAME,
        contractor::EVERY.as_secs(),
        receiver.url(),
        match args.minutes {
            Some(m) => format!("; stops in {m} min"),
            None => "; Ctrl-C stops it".to_string(),
        }
    );

    let code = service.await;
    // The service may also have stopped by itself (a part failed): stop the rest too.
    stopper.abort();
    let _ = stopper.await;
    for t in tasks {
        t.abort();
        let _ = t.await;
    }
    eprintln!(
        "foodgate: demo receiver got {} event(s), refused {}",
        receiver.accepted(),
        receiver.refused()
    );
    code
}
