//! `foodgate markets import FILE.csv` and `foodgate markets import --builtin`.

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
    /// `--builtin` loads the built-in registry (484 demo markets ZB-0001 … ZB-0484) instead.
    Import {
        /// The CSV file.
        #[arg(required_unless_present = "builtin", conflicts_with = "builtin")]
        file: Option<PathBuf>,
        /// Load the built-in registry instead of a file.
        #[arg(long)]
        builtin: bool,
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
    let MarketsCommand::Import { file, builtin } = args.command;
    let (source, good, bad) = match file {
        Some(file) if !builtin => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let (good, bad) = match crate::markets::parse(&bytes) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("foodgate: {}: {e}", file.display());
                    return Ok(ExitCode::from(1));
                }
            };
            let source = file.display().to_string();
            for e in &bad {
                eprintln!("foodgate: {source}: line {}: {}", e.line, e.message);
            }
            (source, good, bad)
        }
        _ => (
            "built-in registry".to_string(),
            crate::markets::builtin(),
            Vec::new(),
        ),
    };
    let store = Store::open(&config.database_path(), StoreSettings::from_config(&config))
        .with_context(|| format!("cannot open the store {}", config.database_path().display()))?;
    let result = store.write(move |tx| crate::markets::upsert(tx, &good, "cli"));
    store.close();
    let (inserted, updated) = result?;
    println!(
        "{source}: {inserted} markets added, {updated} updated, {} bad lines",
        bad.len()
    );
    Ok(if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
