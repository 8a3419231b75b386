//! `foodgate upstream check NAME`: what a platform upstream would be sent, sent nowhere. The
//! request of the newest record queued for it is made as the uplink makes it (with the codes
//! file as it is now) and printed; a platform with a login logs in, so an operator sees the
//! account work before going live.

use crate::config::{Config, Format};
use crate::store::{Store, StoreSettings};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct UpstreamArgs {
    #[command(subcommand)]
    command: UpstreamCommand,
}

#[derive(Debug, Subcommand)]
enum UpstreamCommand {
    /// Log in (where the platform has a login) and print the request of the newest record
    /// queued for upstream NAME, without sending it.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Configuration file (default: the embedded configuration).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The upstream's `name`.
    name: String,
}

pub fn run(args: UpstreamArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        UpstreamCommand::Check(a) => check(a),
    }
}

/// A token shown in part: enough to recognise, not enough to use.
fn masked(token: &str) -> String {
    let shown: String = token.chars().take(4).collect();
    format!("{shown}… ({} characters)", token.chars().count())
}

fn check(a: CheckArgs) -> anyhow::Result<ExitCode> {
    let config = match Config::load_or_default(a.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("foodgate: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let Some(up) = config.upstreams.iter().find(|u| u.name == a.name) else {
        let names: Vec<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
        eprintln!(
            "foodgate: no upstream {:?} in {} (there are: {})",
            a.name,
            config.source,
            names.join(", ")
        );
        return Ok(ExitCode::from(2));
    };
    let Format::Platform(adapter) = up.format else {
        eprintln!(
            "foodgate: upstream {:?} is not a platform upstream: its signed events need no check",
            up.name
        );
        return Ok(ExitCode::from(2));
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let token = match rt.block_on(crate::uplink::platform_login(up)) {
        Ok(Some(t)) => {
            println!("login: ok, token {}", masked(&t));
            Some(t)
        }
        Ok(None) => None,
        Err(e) => {
            println!("login: failed: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let store = Store::open(&config.database_path(), StoreSettings::from_config(&config))?;
    let last = crate::store::outbox::last_body(
        &store.reader()?,
        &up.name,
        crate::store::EventKind::PlatformRecord.as_str(),
    )?;
    store.close();
    let Some((id, body)) = last else {
        println!(
            "no record is queued for {} yet: nothing to render (a failure will be)",
            up.name
        );
        return Ok(ExitCode::SUCCESS);
    };
    match crate::platform::request(up, &body, config.utc_offset, token.as_deref()) {
        Ok(req) => {
            println!(
                "{} request of outbox event {id} (not sent):",
                adapter.as_str()
            );
            println!("{} {}", req.method, req.url);
            println!("Content-Type: {}", req.content_type);
            for (k, v) in &req.headers {
                let v = if k.eq_ignore_ascii_case("authorization") {
                    "***"
                } else {
                    v
                };
                println!("{k}: {v}");
            }
            println!();
            // The password and what stands for it (jiangsu's key) are not printed.
            let mut text = String::from_utf8_lossy(&req.body).into_owned();
            if let Some(cfg) = &up.platform {
                let pw = cfg.password.expose();
                let encoded = serde_urlencoded::to_string([("p", pw)]).unwrap_or_default();
                let secrets = [
                    crate::platform::jiangsu::key(cfg),
                    encoded.trim_start_matches("p=").to_string(),
                    pw.to_string(),
                ];
                for secret in secrets.iter().filter(|s| !s.is_empty()) {
                    text = text.replace(secret.as_str(), "***");
                }
            }
            println!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("outbox event {id} cannot be sent: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
