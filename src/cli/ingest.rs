//! `foodgate ingest`: decode, judge and store a capture file; safe to run twice.

use crate::config::Config;
use crate::ingest::{ingest, IngestTarget};
use crate::judge::{Judge, Reference};
use crate::store::{Store, StoreSettings};
use anyhow::Context;
use clap::Args;
use foodgate_parsers::{new_decoder, DecoderConfig, Encoding, Protocol};
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Configuration file (default: the embedded configuration).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Protocol of the capture: astm, hl7, enzyme-print, gold-card, spectro.
    #[arg(long)]
    protocol: Protocol,
    /// Market code the readings belong to, e.g. ZB-0003.
    #[arg(long)]
    market: String,
    /// Stall code for every reading (instruments that send none).
    #[arg(long)]
    stall: Option<String>,
    /// Instrument id: a configured instrument lends its encoding, clock offset and aliases.
    #[arg(long)]
    instrument: Option<String>,
    /// Text encoding: latin-1, utf-8, gbk, gb18030 (default: the instrument's, else the protocol's).
    #[arg(long)]
    encoding: Option<Encoding>,
    /// Reference data (analytes, limits, categories) replacing the configured or built-in one.
    #[arg(long)]
    limits: Option<PathBuf>,
    /// The capture file, or `-` for standard input.
    file: PathBuf,
}

pub fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let config = match Config::load_or_default(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("foodgate: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let reference = match args.limits.as_ref().or(config.limits.as_ref()) {
        None => Reference::builtin(),
        Some(path) => match Reference::load(path) {
            Ok(r) => Arc::new(r),
            Err(e) => {
                eprintln!("foodgate: {e}");
                return Ok(ExitCode::from(2));
            }
        },
    };
    let configured = args
        .instrument
        .as_deref()
        .and_then(|id| config.instrument(id));
    let mut decoder_config = DecoderConfig {
        encoding: args.encoding.or(configured.and_then(|i| i.encoding)),
        utc_offset: configured.map_or(config.utc_offset, |i| i.utc_offset),
        instrument: args.instrument.as_deref().map(Into::into),
        ..DecoderConfig::default()
    };
    // The reference's analytes decide alias matching; an instrument's own codes go on top.
    let mut table = reference.alias_table();
    if let Some(i) = configured {
        for (code, canonical) in &i.aliases {
            table.insert(code, canonical);
        }
    }
    decoder_config.aliases = Arc::new(table);
    let judge = Judge::new(reference);
    let settings = StoreSettings::from_config(&config).with_judge(judge.clone());
    let store = Store::open(&config.database_path(), settings)
        .with_context(|| format!("cannot open the store {}", config.database_path().display()))?;
    let conn = store.reader()?;
    let known = crate::store::markets::exists(&conn, &args.market)?;
    drop(conn);
    if !known {
        eprintln!(
            "foodgate: --market: unknown market {:?} (import it with `foodgate markets import`)",
            args.market
        );
        store.close();
        return Ok(ExitCode::from(2));
    }
    let input: Box<dyn Read> = if args.file.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(
            File::open(&args.file)
                .with_context(|| format!("cannot open {}", args.file.display()))?,
        )
    };
    let target = IngestTarget {
        market: args.market.clone(),
        stall: args.stall.clone(),
        instrument: args.instrument.clone(),
        source: match &args.instrument {
            Some(i) => i.clone(),
            None => format!("ingest:{}", args.market),
        },
    };
    let mut decoder = new_decoder(args.protocol, decoder_config);
    let judge_one = |r: &mut foodgate_parsers::Reading| judge.judge(r);
    let result = ingest(&store, decoder.as_mut(), &judge_one, &target, input);
    store.close();
    let summary = result.with_context(|| format!("ingest of {}", args.file.display()))?;
    println!(
        "{}: {} readings, {} stored, {} duplicates, {} failures, {} errors",
        args.file.display(),
        summary.readings,
        summary.stored,
        summary.duplicates,
        summary.failures,
        summary.errors
    );
    println!("{}", serde_json::to_string(&summary)?);
    Ok(ExitCode::SUCCESS)
}
