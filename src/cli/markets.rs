//! `foodgate markets import FILE.csv`.

use crate::config::Config;
use crate::store::{Store, StoreSettings};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct MarketsArgs {
    /// Configuration file (default: the embedded configuration).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: MarketsCommand,
}

#[derive(Debug, Subcommand)]
enum MarketsCommand {
    /// Load or update the registry from CSV (header code,name,district,type,quota; UTF-8 or
    /// GBK): good lines are upserted, bad ones reported by line number (exit 1 if any).
    Import {
        /// The CSV file.
        file: PathBuf,
    },
}

pub fn run(args: MarketsArgs) -> anyhow::Result<ExitCode> {
    let config = match Config::load_or_default(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("foodgate: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let MarketsCommand::Import { file } = args.command;
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let (good, bad) = match crate::markets::parse(&bytes) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("foodgate: {}: {e}", file.display());
            return Ok(ExitCode::from(1));
        }
    };
    for e in &bad {
        eprintln!(
            "foodgate: {}: line {}: {}",
            file.display(),
            e.line,
            e.message
        );
    }
    let store = Store::open(&config.database_path(), StoreSettings::from_config(&config))
        .with_context(|| format!("cannot open the store {}", config.database_path().display()))?;
    let result = store.write(move |tx| crate::markets::upsert(tx, &good, "cli"));
    store.close();
    let (inserted, updated) = result?;
    println!(
        "{}: {inserted} markets added, {updated} updated, {} bad lines",
        file.display(),
        bad.len()
    );
    Ok(if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
