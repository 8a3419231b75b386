//! `foodgate`: the command line.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("foodgate: {e:#}");
            ExitCode::from(1)
        }
    }
}
