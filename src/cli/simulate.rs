//! `foodgate simulate`: a virtual instrument speaking a protocol with its link level.

use anyhow::Context;
use clap::{ArgGroup, Args};
use foodgate_devices::line::LineSettings;
use foodgate_devices::sim::{self, SimConfig};
use foodgate_devices::transport::serial::{open_port, SerialConfig};
use foodgate_devices::transport::{HangUp, PortStream, Pty};
use foodgate_parsers::{Encoding, Protocol};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("port").required(true).args(["serial", "pty", "tcp"])))]
pub struct SimulateArgs {
    /// Protocol to speak: astm, hl7, enzyme-print, gold-card, spectro, or a device that
    /// answers only when asked: lz4000t, tl310, dy723pc (it runs until the line closes).
    #[arg(long)]
    protocol: Protocol,
    /// Serial port to send on (the other end of a null-modem cable).
    #[arg(long, value_name = "PATH")]
    serial: Option<PathBuf>,
    /// Create a pseudo-terminal pair; the first line printed is `pty: <path>`, the port
    /// to configure for the instrument.
    #[arg(long)]
    pty: bool,
    /// Connect to a TCP listener (ADDR as host:port).
    #[arg(long, value_name = "ADDR")]
    tcp: Option<String>,
    /// Readings to send (lz4000t, tl310, dy723pc: records held at start).
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// Milliseconds between samples (lz4000t, tl310, dy723pc: between new records; 0: none).
    #[arg(long, default_value_t = 1000)]
    interval: u64,
    /// Share of positive samples, 0 to 1.
    #[arg(long, default_value_t = 0.1, value_parser = rate)]
    positive_rate: f64,
    /// Seed of the sample generator (same seed, same samples).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Text encoding sent (default: gbk; hl7 utf-8).
    #[arg(long)]
    encoding: Option<Encoding>,
    /// Line settings for --serial, e.g. 9600-8N1 (default: the protocol's).
    #[arg(long)]
    line: Option<LineSettings>,
    /// lz4000t, tl310, dy723pc: days, ending today, the records held at start spread over.
    #[arg(long, default_value_t = 3, value_name = "DAYS")]
    history_days: u32,
    /// tl310: firmware version byte of the comm-test reply, in hex (10: the host reads all).
    #[arg(long, default_value = "21", value_parser = hex_byte, value_name = "HEX")]
    firmware: u8,
    /// lz4000t, tl310, dy723pc fault: every N-th record frame has a bad CRC (dy723pc: a
    /// garbled record); 0 never.
    #[arg(long, default_value_t = 0, value_name = "N")]
    bad_crc_every: usize,
    /// lz4000t, tl310, dy723pc fault: every N-th request gets no answer; 0 never.
    #[arg(long, default_value_t = 0, value_name = "N")]
    silent_every: usize,
    /// lz4000t, tl310, dy723pc fault: every N-th answer is cut short; 0 never. (The port
    /// going away: stop the simulator and start another, with the instrument's port a
    /// symlink moved to the new pty.)
    #[arg(long, default_value_t = 0, value_name = "N")]
    cut_every: usize,
}

fn hex_byte(s: &str) -> Result<u8, String> {
    u8::from_str_radix(s, 16).map_err(|_| format!("{s:?} is not a hex byte"))
}

fn rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{s:?} is not a share between 0 and 1")),
    }
}

pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(simulate(args))
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = SimConfig::new(args.protocol);
    cfg.count = args.count;
    cfg.interval = Duration::from_millis(args.interval);
    cfg.positive_rate = args.positive_rate;
    cfg.seed = args.seed;
    if let Some(e) = args.encoding {
        cfg.encoding = e;
    }
    cfg.polled.history_days = args.history_days;
    cfg.polled.firmware = args.firmware;
    cfg.polled.bad_crc_every = args.bad_crc_every;
    cfg.polled.silent_every = args.silent_every;
    cfg.polled.cut_every = args.cut_every;
    let mut log = |line: String| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    let report = if args.pty {
        let pty = Pty::open().context("cannot create a pty pair")?;
        log(format!("pty: {}", pty.path().display()));
        let mut stream = pty.into_stream()?;
        stream.wait_peer().await;
        let report = sim::run(&cfg, &mut stream, &mut log).await?;
        // Closing the master hangs the line up: give the link time to read the tail.
        tokio::time::sleep(Duration::from_millis(500)).await;
        report
    } else if let Some(path) = args.serial {
        let line = args
            .line
            .unwrap_or_else(|| LineSettings::for_protocol(args.protocol));
        let port = open_port(&SerialConfig::new(&path, line))
            .with_context(|| format!("cannot open {}", path.display()))?;
        sim::run(&cfg, PortStream::spawn(port, HangUp::End)?, &mut log).await?
    } else if let Some(addr) = args.tcp {
        // The listener may still be starting (demo, scripts): try for a few seconds.
        let mut tries = 0;
        let stream = loop {
            match tokio::net::TcpStream::connect(&addr).await {
                Ok(s) => break s,
                Err(e) if tries >= 20 => {
                    return Err(e).with_context(|| format!("cannot connect to {addr}"))
                }
                Err(_) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        };
        sim::run(&cfg, stream, &mut log).await?
    } else {
        anyhow::bail!("one of --serial, --pty, --tcp is required");
    };
    log(format!(
        "{{\"readings\":{},\"acknowledged\":{},\"retransmissions\":{},\"failed\":{}}}",
        report.readings, report.acknowledged, report.retransmissions, report.failed
    ));
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
