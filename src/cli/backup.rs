//! `foodgate backup FILE`: a consistent copy of the live database, safe while `serve` writes
//! (how: [`crate::store::backup`]).

use crate::config::Config;
use crate::store::backup::backup;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Configuration file (default: the embedded configuration).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where to write the copy (replaced atomically if it exists).
    file: PathBuf,
}

pub fn run(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let config = match Config::load_or_default(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("foodgate: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let source = config.database_path();
    if !source.exists() {
        eprintln!("foodgate: no database at {}", source.display());
        return Ok(ExitCode::from(1));
    }
    if same_file(&source, &args.file) {
        eprintln!("foodgate: the backup file must not be the live database itself");
        return Ok(ExitCode::from(2));
    }
    let started = Instant::now();
    let summary = backup(&source, &args.file)?;
    eprintln!(
        "foodgate: backup of {} written to {} in {:.1} s",
        source.display(),
        args.file.display(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "{}",
        serde_json::json!({
            "file": args.file.display().to_string(),
            "bytes": summary.bytes,
            "readings": summary.readings,
            "schema_version": summary.schema_version,
        })
    );
    Ok(ExitCode::SUCCESS)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
