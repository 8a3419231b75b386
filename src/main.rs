//! `foodgate`: the command line.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = foodgate::cli::Cli::parse();
    match foodgate::cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("foodgate: {e:#}");
            ExitCode::from(1)
        }
    }
}
