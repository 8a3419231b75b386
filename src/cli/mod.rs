//! Command-line arguments and dispatch.

mod backup;
mod demo;
mod ingest;
mod markets;
mod outbox;
mod parse;
mod serve;
mod simulate;
mod token;
mod upstream;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// foodgate: rapid food-testing instrument integration.
#[derive(Debug, Parser)]
#[command(name = "foodgate", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode a capture and print one JSON reading per line (stores nothing).
    Parse(parse::ParseArgs),
    /// A virtual instrument speaking a protocol, for tests and demos.
    Simulate(simulate::SimulateArgs),
    /// Decode, judge and store a capture file (safe to run twice); last line a JSON summary.
    Ingest(ingest::IngestArgs),
    /// The outbox: list events waiting or dead, put dead events back in the queue.
    Outbox(outbox::OutboxArgs),
    /// The whole system on one machine: simulated analyzers, a contractor, an upstream, history.
    Demo(demo::DemoArgs),
    /// Run the service (instrument links, uplink, HTTP API) until SIGINT/SIGTERM.
    Serve(serve::ServeArgs),
    /// A consistent copy of the live database (safe while serving).
    Backup(backup::BackupArgs),
    /// API tokens: create (shown once), list, revoke.
    Token(token::TokenArgs),
    /// The market registry: import a CSV file.
    Markets(markets::MarketsArgs),
    /// Upstreams: check a platform's account and the request it would get, sending nothing.
    Upstream(upstream::UpstreamArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Parse(args) => parse::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Ingest(args) => ingest::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Outbox(args) => outbox::run(args),
        Command::Backup(args) => backup::run(args),
        Command::Token(args) => token::run(args),
        Command::Markets(args) => markets::run(args),
        Command::Upstream(args) => upstream::run(args),
    }
}
