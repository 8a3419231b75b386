//! `foodgate parse`: decode a capture, judge each reading, readings to stdout, diagnostics
//! to stderr.

use crate::judge::{Judge, Reference};
use anyhow::Context;
use clap::Args;
use foodgate_parsers::event::{LinkEvent, PolledReply};
use foodgate_parsers::{new_decoder, DecoderConfig, Encoding, Event, Protocol};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Protocol of the capture: astm, hl7, enzyme-print, gold-card, spectro.
    #[arg(long)]
    protocol: Protocol,
    /// Text encoding: latin-1, utf-8, gbk, gb18030 (default: the protocol's own).
    #[arg(long)]
    encoding: Option<Encoding>,
    /// Reference data (analytes, limits, categories) replacing the built-in one.
    #[arg(long, value_name = "FILE")]
    limits: Option<PathBuf>,
    /// The capture file, or `-` for standard input.
    file: PathBuf,
}

const CHUNK: usize = 64 * 1024;

pub fn run(args: ParseArgs) -> anyhow::Result<ExitCode> {
    let reference = match &args.limits {
        None => Reference::builtin(),
        Some(path) => match Reference::load(path) {
            Ok(r) => Arc::new(r),
            Err(e) => {
                // A bad reference file is a bad argument: exit 2, saying where.
                eprintln!("foodgate: {e}");
                return Ok(ExitCode::from(2));
            }
        },
    };
    let config = DecoderConfig {
        encoding: args.encoding,
        // The reference's analytes decide alias matching too, so a replaced file changes both.
        aliases: Arc::new(reference.alias_table()),
        ..DecoderConfig::default()
    };
    let judge = Judge::new(reference);
    let mut decoder = new_decoder(args.protocol, config);
    let mut input: Box<dyn Read> = if args.file.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(
            File::open(&args.file)
                .with_context(|| format!("cannot open {}", args.file.display()))?,
        )
    };
    let stdout = io::stdout();
    let stderr = io::stderr();
    let mut printer = Printer {
        judge,
        out: BufWriter::new(stdout.lock()),
        err: BufWriter::new(stderr.lock()),
    };
    let mut buf = vec![0u8; CHUNK];
    let mut events = Vec::new();
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", args.file.display()))
            }
        };
        decoder.feed(&buf[..n], &mut events);
        printer.print(&mut events)?;
    }
    decoder.finish(&mut events);
    printer.print(&mut events)?;
    printer.out.flush()?;
    printer.err.flush()?;
    Ok(ExitCode::SUCCESS)
}

struct Printer<O: Write, E: Write> {
    judge: Judge,
    out: O,
    err: E,
}

impl<O: Write, E: Write> Printer<O, E> {
    fn print(&mut self, events: &mut Vec<Event>) -> io::Result<()> {
        for event in events.drain(..) {
            match event {
                Event::Reading(r) => {
                    let judged = self.judge.judged(*r);
                    serde_json::to_writer(&mut self.out, &judged)?;
                    self.out.write_all(b"\n")?;
                }
                Event::Diagnostic(d) => {
                    serde_json::to_writer(&mut self.err, &d)?;
                    self.err.write_all(b"\n")?;
                }
                Event::Device(d) => {
                    let line = serde_json::json!({
                        "level": "info", "error": "device_info", "offset": d.offset,
                        "message": "instrument identified itself",
                        "serial_number": d.serial_number, "model": d.model, "firmware": d.firmware,
                    });
                    writeln!(self.err, "{line}")?;
                }
                Event::Heartbeat(h) => {
                    let line = serde_json::json!({
                        "level": "info", "error": "heartbeat", "offset": h.offset,
                        "message": "instrument heartbeat", "uptime_s": h.uptime_s,
                    });
                    writeln!(self.err, "{line}")?;
                }
                Event::Link(LinkEvent::Reply {
                    offset,
                    reply: PolledReply::CommTest { firmware },
                }) => {
                    let line = serde_json::json!({
                        "level": "info", "error": "device_info", "offset": offset,
                        "message": "the device answered the comm test", "firmware": firmware,
                    });
                    writeln!(self.err, "{line}")?;
                }
                // Link events matter to a live session, not to a capture.
                Event::Link(LinkEvent::MessageEnd { .. } | LinkEvent::Frame { .. })
                | Event::Link(LinkEvent::Enq { .. } | LinkEvent::Eot { .. })
                | Event::Link(LinkEvent::Reply { .. }) => {}
            }
        }
        Ok(())
    }
}
