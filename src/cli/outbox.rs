//! `foodgate outbox list|retry`: see why events wait, put dead events back in the queue.

use crate::config::Config;
use crate::store::outbox::{self, OutboxRow};
use crate::store::{Store, StoreSettings};
use anyhow::Context;
use chrono::{TimeZone, Utc};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct OutboxArgs {
    #[command(subcommand)]
    command: OutboxCommand,
}

#[derive(Debug, Subcommand)]
enum OutboxCommand {
    /// Events waiting or dead: id, upstream, type, status, attempts, next attempt, last answer.
    List(ListArgs),
    /// Put a dead event (by id) or every dead event back in the queue.
    Retry(RetryArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Status {
    Pending,
    Dead,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Dead => "dead",
        }
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Configuration file (default: the embedded configuration).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Only events of this status (default: pending and dead).
    #[arg(long)]
    status: Option<Status>,
    /// At most this many events of each status, oldest first.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "dead"])))]
pub struct RetryArgs {
    /// Configuration file (default: the embedded configuration).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The event's id (the first column of `outbox list`).
    id: Option<i64>,
    /// Every dead event.
    #[arg(long)]
    dead: bool,
}

pub fn run(args: OutboxArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        OutboxCommand::List(a) => list(a),
        OutboxCommand::Retry(a) => retry(a),
    }
}

fn open(config: Option<&std::path::Path>) -> anyhow::Result<Result<Store, ExitCode>> {
    let config = match Config::load_or_default(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("foodgate: {e}");
            return Ok(Err(ExitCode::from(2)));
        }
    };
    let path = config.database_path();
    let store = Store::open(&path, StoreSettings::from_config(&config))
        .with_context(|| format!("cannot open the store {}", path.display()))?;
    Ok(Ok(store))
}

fn time(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map_or_else(|| ms.to_string(), crate::store::insert::rfc3339)
}

/// One line per event, tab-separated; the last answer on one line.
fn line(r: &OutboxRow) -> String {
    let next = if r.status == "pending" {
        time(r.next_attempt_ms)
    } else {
        "-".into()
    };
    let answer = r
        .last_answer
        .as_deref()
        .unwrap_or("-")
        .replace(['\n', '\r', '\t'], " ");
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        r.id, r.upstream, r.kind, r.status, r.attempts, next, r.event_id, answer
    )
}

fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let store = match open(args.config.as_deref())? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let conn = store.reader()?;
    let statuses = match args.status {
        Some(s) => vec![s],
        None => vec![Status::Pending, Status::Dead],
    };
    let mut rows = Vec::new();
    let mut cut = false;
    for s in statuses {
        let found = outbox::list(&conn, Some(s.as_str()), args.limit.saturating_add(1))?;
        cut |= found.len() > args.limit;
        rows.extend(found.into_iter().take(args.limit));
    }
    rows.sort_by_key(|r| r.id);
    drop(conn);
    store.close();
    println!("id\tupstream\ttype\tstatus\tattempts\tnext_attempt\tevent_id\tlast_answer");
    for r in &rows {
        println!("{}", line(r));
    }
    if cut {
        eprintln!(
            "foodgate: more than {} events of a status; showing the oldest (--limit)",
            args.limit
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn retry(args: RetryArgs) -> anyhow::Result<ExitCode> {
    let store = match open(args.config.as_deref())? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let id = if args.dead { None } else { args.id };
    let now = crate::uplink::now_ms();
    let result = store.write(move |tx| match id {
        None => outbox::retry_dead(tx, None, now).map(Ok),
        Some(id) => match outbox::retry_if_dead(tx, id, now)? {
            Some(s) if s == "dead" => Ok(Ok(1)),
            other => Ok(Err(other)),
        },
    });
    store.close();
    match (result?, id) {
        (Ok(n), _) => {
            println!("{n} event(s) put back in the queue");
            Ok(ExitCode::SUCCESS)
        }
        (Err(None), Some(id)) => {
            eprintln!("foodgate: no outbox event with id {id}");
            Ok(ExitCode::from(1))
        }
        (Err(Some(status)), Some(id)) => {
            eprintln!("foodgate: event {id} is {status}, not dead: only dead events are retried");
            Ok(ExitCode::from(1))
        }
        (Err(_), None) => Ok(ExitCode::from(1)),
    }
}
