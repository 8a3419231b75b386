//! Configuration (`docs/reference.md`, "Configuration"): TOML as written ([`RawConfig`]) → validated
//! [`Config`] in which only valid values exist.
//!
//! Errors name the file, the key (`instrument[2].protocol`) and what was expected, so a
//! misconfigured service says where to look and does not start.

use chrono::FixedOffset;
use foodgate_parsers::{Encoding, Protocol};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The configuration that applies without `--config` (`docs/reference.md`, "Command line").
pub const DEFAULT_CONFIG: &str = r#"
[server]
listen = "127.0.0.1:8080"
data_dir = "./foodgate-data"
utc_offset = "+08:00"
"#;

/// Name of the SQLite database inside `data_dir`.
pub const DATABASE_FILE: &str = "foodgate.db";

// ---------------------------------------------------------------------------------------
// Stage 1: as written.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub instrument: Vec<RawInstrument>,
    #[serde(default)]
    pub upstream: Vec<RawUpstream>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub utc_offset: Option<String>,
    pub limits: Option<PathBuf>,
    pub raw_retention_days: Option<u32>,
    pub resample_days: Option<u32>,
    pub trace_days: Option<u32>,
    pub auth_failures_per_minute: Option<u32>,
    pub api_rate_per_s: Option<f64>,
    pub api_burst: Option<u32>,
    pub header_timeout_s: Option<u64>,
    pub idle_timeout_s: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInstrument {
    pub id: String,
    pub market: String,
    pub protocol: String,
    pub encoding: Option<String>,
    pub utc_offset: Option<String>,
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    pub serial: Option<RawSerial>,
    pub tcp: Option<RawTcp>,
    /// Polled devices: how they are asked (`docs/reference.md`, "Polled instruments").
    pub poll: Option<RawPoll>,
    /// `tl310`: `"check"` (default) or `"ignore"` the CRC of record frames.
    pub crc: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoll {
    pub every_s: Option<u64>,
    pub days: Option<u32>,
    pub reply_timeout_ms: Option<u64>,
    pub retries: Option<u32>,
    pub gap_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSerial {
    pub path: String,
    pub baud: Option<u32>,
    pub data_bits: Option<u8>,
    pub parity: Option<String>,
    pub stop_bits: Option<u8>,
    pub flow_control: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTcp {
    pub listen: String,
}

// ---------------------------------------------------------------------------------------
// Stage 2: validated.

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from (`<default>` for the embedded one), for messages.
    pub source: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub utc_offset: FixedOffset,
    pub limits: Option<PathBuf>,
    pub raw_retention_days: Option<u32>,
    /// Days after a failed test within which a passing re-sample of the same stall and
    /// commodity is due (a confirmed hold without one is overdue).
    pub resample_days: u32,
    /// Days before a failure within which another sample of the same supplier and commodity
    /// is of the same batch (`docs/trace.md`).
    pub trace_days: u32,
    /// How the HTTP server protects itself from abusive clients.
    pub server_limits: ServerLimits,
    pub instruments: Vec<Instrument>,
    pub upstreams: Vec<Upstream>,
}

/// `[server]` limits against abusive clients (`docs/reference.md`, "Configuration").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerLimits {
    /// Failed sign-ins and bad-token requests one client address may make in a minute
    /// before it is answered 429; 0 turns the limit off (behind a proxy every client
    /// shares the proxy's address).
    pub auth_failures_per_minute: u32,
    /// API requests per second one token may make, on average.
    pub api_rate_per_s: f64,
    /// API requests one token may make at once.
    pub api_burst: u32,
    /// Time a connection has to send a complete request header, from when the server
    /// starts waiting for it (on a new connection, or from the first byte of the next
    /// request on a kept-alive one).
    pub header_timeout: std::time::Duration,
    /// Time a kept-alive connection may wait for its next request.
    pub idle_timeout: std::time::Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            auth_failures_per_minute: 10,
            api_rate_per_s: 50.0,
            api_burst: 200,
            header_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Instrument {
    pub id: String,
    pub market: String,
    pub protocol: Protocol,
    /// `None`: the protocol's own default.
    pub encoding: Option<Encoding>,
    pub utc_offset: FixedOffset,
    pub aliases: BTreeMap<String, String>,
    pub transport: Transport,
    /// How a polled device is asked; `None` for the instruments that send by themselves.
    pub poll: Option<PollConfig>,
    /// Check the CRC of record frames (`crc = "ignore"` turns it off, `tl310` only).
    pub check_crc: bool,
}

/// `poll = { … }` of a polled instrument, defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollConfig {
    pub every: Duration,
    /// Local days, ending today, that each poll reads.
    pub days: u32,
    pub reply_timeout: Duration,
    /// Sends of a request after the first, when its reply is missing or broken.
    pub retries: u32,
    /// Pause between two requests.
    pub gap: Duration,
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            every: Duration::from_secs(300),
            days: 2,
            reply_timeout: Duration::from_millis(3000),
            retries: 3,
            gap: Duration::from_millis(50),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Serial(Serial),
    Tcp { listen: SocketAddr },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serial {
    pub path: String,
    pub baud: u32,
    pub data_bits: u8,
    pub parity: Parity,
    pub stop_bits: u8,
    pub flow_control: FlowControl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Odd,
    Even,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowControl {
    None,
    Software,
    Hardware,
}

impl Config {
    /// The embedded default (no `--config`).
    pub fn default_embedded() -> Config {
        Config::parse(DEFAULT_CONFIG, "<default>").expect("the embedded default config is valid")
    }

    /// `--config FILE` when given, else the embedded default.
    pub fn load_or_default(file: Option<&Path>) -> Result<Config, ConfigError> {
        match file {
            Some(f) => Config::load(f),
            None => Ok(Config::default_embedded()),
        }
    }

    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError::Read {
            file: name.clone(),
            message: e.to_string(),
        })?;
        Config::parse(&text, &name)
    }

    /// Parse and validate TOML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        raw.validate(file)
    }

    /// The SQLite database path.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join(DATABASE_FILE)
    }

    pub fn instrument(&self, id: &str) -> Option<&Instrument> {
        self.instruments.iter().find(|i| i.id == id)
    }
}

/// The `poll` settings of a polled instrument (defaults for what is left out); an error for
/// `poll` on an instrument that sends by itself.
fn validate_poll(
    cx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    protocol: Protocol,
    raw: Option<RawPoll>,
) -> Result<Option<PollConfig>, ConfigError> {
    if !protocol.is_polled() {
        return match raw {
            Some(_) => Err(cx.err(
                key("poll"),
                format!("{protocol} sends by itself: poll is for lz4000t, tl310, dy723pc"),
            )),
            None => Ok(None),
        };
    }
    let raw = raw.unwrap_or_default();
    let d = PollConfig::default();
    let ranged = |k: &str, v: Option<u64>, lo: u64, hi: u64, default: u64| match v {
        None => Ok(default),
        Some(x) if (lo..=hi).contains(&x) => Ok(x),
        Some(x) => Err(cx.err(
            key(&format!("poll.{k}")),
            format!("expected {lo} to {hi}, got {x}"),
        )),
    };
    let ms = |x: Duration| x.as_millis() as u64;
    Ok(Some(PollConfig {
        every: Duration::from_secs(ranged(
            "every_s",
            raw.every_s,
            1,
            86_400,
            d.every.as_secs(),
        )?),
        days: ranged("days", raw.days.map(u64::from), 1, 31, u64::from(d.days))? as u32,
        reply_timeout: Duration::from_millis(ranged(
            "reply_timeout_ms",
            raw.reply_timeout_ms,
            10,
            60_000,
            ms(d.reply_timeout),
        )?),
        retries: ranged(
            "retries",
            raw.retries.map(u64::from),
            0,
            10,
            u64::from(d.retries),
        )? as u32,
        gap: Duration::from_millis(ranged("gap_ms", raw.gap_ms, 0, 10_000, ms(d.gap))?),
    }))
}

/// The serial speed of a protocol's document, or `None` for a TCP-only protocol.
pub fn default_baud(protocol: Protocol) -> Option<u32> {
    match protocol {
        Protocol::Astm | Protocol::EnzymePrint | Protocol::Spectro | Protocol::Dy723pc => {
            Some(9600)
        }
        Protocol::GoldCard | Protocol::Lz4000t | Protocol::Tl310 => Some(115_200),
        Protocol::Hl7 => None,
    }
}

/// `+08:00`, `-05:30`, `Z`.
pub fn parse_offset(s: &str) -> Option<FixedOffset> {
    if s == "Z" || s == "z" {
        return FixedOffset::east_opt(0);
    }
    let b = s.as_bytes();
    if b.len() != 6 || b[3] != b':' {
        return None;
    }
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let h: i32 = s.get(1..3)?.parse().ok()?;
    let m: i32 = s.get(4..6)?.parse().ok()?;
    if !s.get(1..3)?.bytes().all(|c| c.is_ascii_digit())
        || !s.get(4..6)?.bytes().all(|c| c.is_ascii_digit())
        || h > 23
        || m > 59
    {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// The default of `server.resample_days`.
pub const DEFAULT_RESAMPLE_DAYS: u32 = 3;

/// The default of `server.trace_days`.
pub const DEFAULT_TRACE_DAYS: u32 = 7;

impl RawConfig {
    pub fn validate(self, file: &str) -> Result<Config, ConfigError> {
        let cx = Ctx { file };
        let s = self.server;
        let server_limits = validate_limits(&cx, &s)?;
        let resample_days = s.resample_days.unwrap_or(DEFAULT_RESAMPLE_DAYS);
        if !(1..=90).contains(&resample_days) {
            return Err(cx.err(
                "server.resample_days",
                format!("expected days between 1 and 90, got {resample_days}"),
            ));
        }
        let trace_days = s.trace_days.unwrap_or(DEFAULT_TRACE_DAYS);
        if !(1..=90).contains(&trace_days) {
            return Err(cx.err(
                "server.trace_days",
                format!("expected days between 1 and 90, got {trace_days}"),
            ));
        }
        let listen = s.listen.as_deref().unwrap_or("127.0.0.1:8080");
        let listen: SocketAddr = listen.parse().map_err(|_| {
            cx.err(
                "server.listen",
                format!("expected an address like \"127.0.0.1:8080\", got {listen:?}"),
            )
        })?;
        let utc_text = s.utc_offset.as_deref().unwrap_or("+08:00");
        let utc_offset = parse_offset(utc_text).ok_or_else(|| {
            cx.err(
                "server.utc_offset",
                format!("expected an offset like \"+08:00\", got {utc_text:?}"),
            )
        })?;
        let data_dir = s
            .data_dir
            .unwrap_or_else(|| PathBuf::from("./foodgate-data"));
        if data_dir.as_os_str().is_empty() {
            return Err(cx.err("server.data_dir", "expected a directory path, got \"\""));
        }

        let mut ids = HashSet::new();
        let mut instruments = Vec::with_capacity(self.instrument.len());
        for (i, raw) in self.instrument.into_iter().enumerate() {
            let key = |k: &str| format!("instrument[{i}].{k}");
            if raw.id.trim().is_empty() {
                return Err(cx.err(key("id"), "expected a non-empty id"));
            }
            if !ids.insert(raw.id.clone()) {
                return Err(cx.err(
                    key("id"),
                    format!("duplicate instrument id {:?}: ids must be unique", raw.id),
                ));
            }
            if raw.market.trim().is_empty() {
                return Err(cx.err(key("market"), "expected a market code like \"ZB-0003\""));
            }
            let protocol: Protocol = raw.protocol.parse().map_err(|_| {
                cx.err(
                    key("protocol"),
                    format!(
                        "expected one of astm, hl7, enzyme-print, gold-card, spectro, lz4000t, tl310, dy723pc, got {:?}",
                        raw.protocol
                    ),
                )
            })?;
            let poll = validate_poll(&cx, &key, protocol, raw.poll)?;
            let check_crc = match raw.crc.as_deref() {
                None | Some("check") => true,
                Some("ignore") if protocol == Protocol::Tl310 => false,
                Some("ignore") => {
                    return Err(cx.err(
                        key("crc"),
                        format!("crc = \"ignore\" is for tl310 only, not {protocol}"),
                    ))
                }
                Some(other) => {
                    return Err(cx.err(
                        key("crc"),
                        format!("expected \"check\" or \"ignore\", got {other:?}"),
                    ))
                }
            };
            let encoding = match &raw.encoding {
                None => None,
                Some(e) => Some(e.parse::<Encoding>().map_err(|_| {
                    cx.err(
                        key("encoding"),
                        format!("expected one of latin-1, utf-8, gbk, gb18030, got {e:?}"),
                    )
                })?),
            };
            let utc = match &raw.utc_offset {
                None => utc_offset,
                Some(t) => parse_offset(t).ok_or_else(|| {
                    cx.err(
                        key("utc_offset"),
                        format!("expected an offset like \"+08:00\", got {t:?}"),
                    )
                })?,
            };
            let transport = match (raw.serial, raw.tcp) {
                (Some(_), Some(_)) => {
                    return Err(cx.err(key("serial"), "expected either serial or tcp, not both"))
                }
                (None, None) => {
                    return Err(cx.err(
                        key("serial"),
                        "expected serial = { path = ... } or tcp = { listen = ... }",
                    ))
                }
                (None, Some(_)) if protocol.is_polled() => {
                    return Err(cx.err(
                        key("tcp"),
                        format!("{protocol} is polled over its serial line: expected serial = {{ path = ... }}"),
                    ))
                }
                (None, Some(tcp)) => Transport::Tcp {
                    listen: tcp.listen.parse().map_err(|_| {
                        cx.err(
                            key("tcp.listen"),
                            format!(
                                "expected an address like \"0.0.0.0:5001\", got {:?}",
                                tcp.listen
                            ),
                        )
                    })?,
                },
                (Some(serial), None) => {
                    let Some(default) = default_baud(protocol) else {
                        return Err(cx.err(
                            key("serial"),
                            format!(
                                "{protocol} runs over TCP (MLLP): expected tcp = {{ listen = ... }}"
                            ),
                        ));
                    };
                    Transport::Serial(validate_serial(&cx, &key, serial, default)?)
                }
            };
            instruments.push(Instrument {
                id: raw.id,
                market: raw.market,
                protocol,
                encoding,
                utc_offset: utc,
                aliases: raw.aliases,
                transport,
                poll,
                check_crc,
            });
        }

        let upstreams = upstream::validate_upstreams(&cx, self.upstream)?;

        Ok(Config {
            source: file.to_string(),
            listen,
            data_dir,
            utc_offset,
            limits: s.limits,
            raw_retention_days: s.raw_retention_days,
            resample_days,
            trace_days,
            server_limits,
            instruments,
            upstreams,
        })
    }
}

/// The `[server]` abuse limits, defaults for the keys not written.
fn validate_limits(cx: &Ctx<'_>, s: &RawServer) -> Result<ServerLimits, ConfigError> {
    let d = ServerLimits::default();
    let failures = s
        .auth_failures_per_minute
        .unwrap_or(d.auth_failures_per_minute);
    if failures > 10_000 {
        return Err(cx.err(
            "server.auth_failures_per_minute",
            format!("expected a count between 0 (no limit) and 10000, got {failures}"),
        ));
    }
    let rate = s.api_rate_per_s.unwrap_or(d.api_rate_per_s);
    if !rate.is_finite() || rate <= 0.0 || rate > 1_000_000.0 {
        return Err(cx.err(
            "server.api_rate_per_s",
            format!("expected requests per second above 0 and at most 1000000, got {rate}"),
        ));
    }
    let burst = s.api_burst.unwrap_or(d.api_burst);
    if burst == 0 || burst > 1_000_000 {
        return Err(cx.err(
            "server.api_burst",
            format!("expected a count between 1 and 1000000, got {burst}"),
        ));
    }
    let seconds = |key: &str, v: Option<u64>, default: std::time::Duration| {
        let v = v.unwrap_or(default.as_secs());
        if v == 0 || v > 3600 {
            return Err(cx.err(key, format!("expected seconds between 1 and 3600, got {v}")));
        }
        Ok(std::time::Duration::from_secs(v))
    };
    Ok(ServerLimits {
        auth_failures_per_minute: failures,
        api_rate_per_s: rate,
        api_burst: burst,
        header_timeout: seconds(
            "server.header_timeout_s",
            s.header_timeout_s,
            d.header_timeout,
        )?,
        idle_timeout: seconds("server.idle_timeout_s", s.idle_timeout_s, d.idle_timeout)?,
    })
}

fn validate_serial(
    cx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: RawSerial,
    default_baud: u32,
) -> Result<Serial, ConfigError> {
    if raw.path.is_empty() {
        return Err(cx.err(
            key("serial.path"),
            "expected a device path like \"/dev/ttyUSB0\"",
        ));
    }
    let baud = raw.baud.unwrap_or(default_baud);
    if baud == 0 {
        return Err(cx.err(key("serial.baud"), "expected a positive speed like 9600"));
    }
    let data_bits = raw.data_bits.unwrap_or(8);
    if !(5..=8).contains(&data_bits) {
        return Err(cx.err(
            key("serial.data_bits"),
            format!("expected 5, 6, 7 or 8, got {data_bits}"),
        ));
    }
    let parity = match raw.parity.as_deref() {
        None | Some("none") => Parity::None,
        Some("odd") => Parity::Odd,
        Some("even") => Parity::Even,
        Some(p) => {
            return Err(cx.err(
                key("serial.parity"),
                format!("expected \"none\", \"odd\" or \"even\", got {p:?}"),
            ))
        }
    };
    let stop_bits = raw.stop_bits.unwrap_or(1);
    if !(1..=2).contains(&stop_bits) {
        return Err(cx.err(
            key("serial.stop_bits"),
            format!("expected 1 or 2, got {stop_bits}"),
        ));
    }
    let flow_control = match raw.flow_control.as_deref() {
        None | Some("none") => FlowControl::None,
        Some("software") => FlowControl::Software,
        Some("hardware") => FlowControl::Hardware,
        Some(f) => {
            return Err(cx.err(
                key("serial.flow_control"),
                format!("expected \"none\", \"software\" or \"hardware\", got {f:?}"),
            ))
        }
    };
    Ok(Serial {
        path: raw.path,
        baud,
        data_bits,
        parity,
        stop_bits,
        flow_control,
    })
}

mod error;
mod template;
#[cfg(test)]
mod tests;
mod upstream;

pub use error::ConfigError;
use error::Ctx;

pub use upstream::{Adapter, Format, PlatformConfig, RawUpstream, Secret, SendMode, Upstream};
