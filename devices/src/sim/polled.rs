//! The instruments that answer only when asked: LZ-4000T, TL310, DY-723PC.
//!
//! The device holds records over several days (new ones appear every `interval` while it
//! runs) and answers the host's requests as its protocol says: LZ-4000T comm test, count
//! and read by date; TL310 comm test (firmware byte configurable), read by date (nothing
//! at all for a day without records), read all, read last; DY-723PC `D<start>D<end>` with
//! the records of those days and `FINISH`. On options it misbehaves as real devices do: a
//! bad CRC on some record frames (DY-723PC, which has none: a garbled record), a request
//! never answered, a reply cut short, or no answer at all while told to be silent.

use super::kit::{china, verdict_word, Kind, Samples, Wire};
use super::setup::{SimConfig, SimReport};
use chrono::{Days, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use foodgate_parsers::dy723pc::{self, Dy723pcRecord};
use foodgate_parsers::lz4000t::{self, Lz4000tRecord};
use foodgate_parsers::polled_frame::{crc8, END, FLAG, HEADER, MAX_FRAME};
use foodgate_parsers::tl310::{self, Tl310Record};
use foodgate_parsers::Protocol;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// A running polled simulator, seen and steered from outside (tests, demos): what it was
/// asked, what it holds, whether it answers.
#[derive(Debug, Clone, Default)]
pub struct PolledControl(Arc<Mutex<ControlState>>);

#[derive(Debug, Default)]
struct ControlState {
    silent: bool,
    requests: Vec<Vec<u8>>,
    days: Vec<NaiveDate>,
    add: usize,
}

impl PolledControl {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut ControlState) -> R) -> R {
        match self.0.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Answer nothing at all (switched off, cable loose) until told otherwise.
    pub fn set_silent(&self, silent: bool) {
        self.with(|s| s.silent = silent);
    }

    /// Every request received so far, as its bytes.
    pub fn requests(&self) -> Vec<Vec<u8>> {
        self.with(|s| s.requests.clone())
    }

    /// Records held for `day`.
    pub fn held_on(&self, day: NaiveDate) -> usize {
        self.with(|s| s.days.iter().filter(|d| **d == day).count())
    }

    /// Records held.
    pub fn held(&self) -> usize {
        self.with(|s| s.days.len())
    }

    /// Test `n` more samples now (they are held from the next request on).
    pub fn add_records(&self, n: usize) {
        self.with(|s| s.add += n);
    }
}

/// What the host asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    CommTest,
    Count(NaiveDate),
    Read(NaiveDate),
    ReadAll,
    ReadLast,
    Range(NaiveDate, NaiveDate),
    Unknown,
}

/// One record as the device holds it.
#[derive(Debug, Clone)]
struct HeldRecord {
    at: NaiveDateTime,
    number: u16,
    channel: u8,
    name: &'static str,
    kind: Kind,
    positive: bool,
    /// Inhibition rate (%), or the item's value.
    value: f64,
    standard: u8,
    /// Sent at least once.
    sent: bool,
}

struct Device<'a> {
    cfg: &'a SimConfig,
    samples: Samples,
    records: Vec<HeldRecord>,
    control: &'a PolledControl,
    frames_sent: usize,
    answers: usize,
}

fn today() -> NaiveDate {
    Utc::now().with_timezone(&china()).date_naive()
}

fn now_local() -> NaiveDateTime {
    let t = Utc::now().with_timezone(&china()).naive_local();
    t.with_nanosecond(0).unwrap_or(t)
}

/// Test hooks are kept bounded for a simulator that runs for days.
const MAX_WIRE_LOG: usize = 1024 * 1024;

/// Serve the host's requests on `io` until the host closes the line.
pub async fn serve<T>(
    cfg: &SimConfig,
    io: T,
    control: &PolledControl,
    log: &mut (dyn FnMut(String) + Send),
) -> io::Result<SimReport>
where
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut wire = Wire {
        io,
        report: SimReport::default(),
        buf: Vec::new(),
    };
    let mut dev = Device {
        cfg,
        samples: Samples::new(cfg),
        records: Vec::new(),
        control,
        frames_sent: 0,
        answers: 0,
    };
    for line in dev.fill_history() {
        log(line);
    }
    let mut next_new = (!cfg.interval.is_zero()).then(|| Instant::now() + cfg.interval);
    loop {
        let pending = control.with(|s| std::mem::take(&mut s.add));
        for _ in 0..pending {
            let line = dev.add(now_local());
            log(line);
        }
        let wait = next_new
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(200))
            .min(Duration::from_millis(200));
        let protocol = cfg.protocol;
        let asked = match wire.answer(wait, |b| take_request(protocol, b)).await {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        };
        if let Some(t) = next_new.filter(|t| Instant::now() >= *t) {
            let line = dev.add(now_local());
            log(line);
            next_new = Some(t + cfg.interval);
        }
        let Some((raw, asked)) = asked else {
            continue;
        };
        let ordinal = control.with(|s| {
            s.requests.push(raw);
            s.requests.len() - 1
        });
        let line = dev.answer(&mut wire, ordinal, asked).await?;
        log(line);
        for v in [&mut wire.report.sent, &mut wire.report.received] {
            if v.len() > MAX_WIRE_LOG {
                let cut = v.len() - MAX_WIRE_LOG;
                v.drain(..cut);
            }
        }
    }
    Ok(wire.report)
}

/// The first whole request in `buf` (what comes before it, or does not parse, is dropped).
fn take_request(protocol: Protocol, buf: &mut Vec<u8>) -> Option<(Vec<u8>, Asked)> {
    match protocol {
        Protocol::Dy723pc => take_text_request(buf),
        _ => take_frame_request(protocol, buf),
    }
}

fn take_frame_request(protocol: Protocol, buf: &mut Vec<u8>) -> Option<(Vec<u8>, Asked)> {
    loop {
        let p = buf.iter().position(|&b| b == FLAG)?;
        buf.drain(..p);
        if buf.len() < HEADER {
            return None;
        }
        let total = HEADER + usize::from(u16::from_le_bytes([buf[2], buf[3]])) + 2;
        if total > MAX_FRAME {
            buf.drain(..1);
            continue;
        }
        if buf.len() < total {
            return None;
        }
        let f: Vec<u8> = buf[..total].to_vec();
        if f[total - 1] != END || crc8(&f[1..total - 2]) != f[total - 2] {
            // A device drops a request it cannot read; the host asks again.
            buf.drain(..1);
            continue;
        }
        buf.drain(..total);
        let data = &f[HEADER..total - 2];
        let date = |b: &[u8]| lz4000t::date_of(b);
        let asked = match (protocol, f[1]) {
            (Protocol::Lz4000t, lz4000t::CMD_COMM_TEST) => Asked::CommTest,
            (Protocol::Lz4000t, lz4000t::CMD_COUNT) => {
                date(data).map_or(Asked::Unknown, Asked::Count)
            }
            (Protocol::Lz4000t, lz4000t::CMD_READ) => {
                date(data).map_or(Asked::Unknown, Asked::Read)
            }
            (Protocol::Tl310, tl310::CMD_COMM_TEST) => Asked::CommTest,
            (Protocol::Tl310, tl310::CMD_READ) => match data {
                [_, 0xFF, 0xFF, 0xFF] => Asked::ReadAll,
                [_, 0, 0, 0] => Asked::ReadLast,
                [_, d @ ..] => date(d).map_or(Asked::Unknown, Asked::Read),
                [] => Asked::Unknown,
            },
            _ => Asked::Unknown,
        };
        return Some((f, asked));
    }
}

/// `D<yyyy-MM-dd>D<yyyy-MM-dd>`.
fn take_text_request(buf: &mut Vec<u8>) -> Option<(Vec<u8>, Asked)> {
    const LEN: usize = 22;
    loop {
        let p = buf.iter().position(|&b| b == b'D')?;
        buf.drain(..p);
        if buf.len() < LEN {
            return None;
        }
        let text = String::from_utf8_lossy(&buf[..LEN]).into_owned();
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        let parsed = match (text.get(1..11), text.get(11..12), text.get(12..22)) {
            (Some(a), Some("D"), Some(b)) => day(a).zip(day(b)),
            _ => None,
        };
        match parsed {
            Some((a, b)) => {
                let raw = buf.drain(..LEN).collect();
                return Some((raw, Asked::Range(a, b)));
            }
            None => {
                buf.drain(..1);
            }
        }
    }
}

fn every(n: usize, k: usize) -> bool {
    n > 0 && (k + 1) % n == 0
}

impl Device<'_> {
    fn name(&self) -> &'static str {
        self.cfg.protocol.as_str()
    }

    /// The records held at start, spread over the history days, a few minutes apart; their
    /// log lines.
    fn fill_history(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        let days = self.cfg.polled.history_days.max(1) as usize;
        let first = today()
            .checked_sub_days(Days::new(days as u64 - 1))
            .unwrap_or_else(today);
        let per_day = self.cfg.count.div_ceil(days).max(1);
        for i in 0..self.cfg.count {
            let day = first
                .checked_add_days(Days::new((i / per_day) as u64))
                .unwrap_or_else(today);
            let k = (i % per_day) as u32;
            // The seed shifts the times: two simulated devices do not hold the same records.
            let seed = (self.cfg.seed % 60) as u32;
            let secs = 8 * 3600 + k * 7 * 60 + seed * 60 + (i as u32 * 13 + seed) % 60;
            let time =
                NaiveTime::from_num_seconds_from_midnight_opt(secs % 86_400, 0).unwrap_or_default();
            lines.push(self.add(day.and_time(time)));
        }
        lines
    }

    /// A sample tested at `at`; its log line.
    fn add(&mut self, at: NaiveDateTime) -> String {
        let kinds: &[Kind] = match self.cfg.protocol {
            Protocol::Dy723pc => &[Kind::Vegetable, Kind::Meat, Kind::Fish, Kind::Processed],
            _ => &[Kind::Vegetable],
        };
        let s = self.samples.next(kinds);
        let n = self.records.len();
        let standard = u8::from(self.cfg.protocol == Protocol::Tl310 && n % 5 == 4);
        let threshold = if standard == 1 { 70.0 } else { 50.0 };
        let value = if self.cfg.protocol == Protocol::Dy723pc {
            let (_, _, pos, neg, decimals) = dy_item(s.kind, s.name);
            let (lo, hi) = if s.positive { pos } else { neg };
            self.samples.decimal(lo, hi, decimals)
        } else if s.positive {
            self.samples.decimal(threshold + 2.0, 95.0, 1)
        } else {
            self.samples.decimal(2.0, 45.0, 1)
        };
        let r = HeldRecord {
            at,
            number: (n % usize::from(u16::MAX)) as u16 + 1,
            channel: (n % 12) as u8 + 1,
            name: s.name,
            kind: s.kind,
            positive: s.positive,
            value,
            standard,
            sent: false,
        };
        let line = format!(
            "{} holds record {:04} of {}: {} {} ({})",
            self.name(),
            r.number,
            r.at.format("%Y-%m-%d %H:%M:%S"),
            r.name,
            (r.value * 100.0).round() / 100.0,
            verdict_word(r.positive)
        );
        self.control.with(|c| c.days.push(at.date()));
        self.records.push(r);
        line
    }

    fn indices(&self, from: NaiveDate, to: NaiveDate) -> Vec<usize> {
        (0..self.records.len())
            .filter(|&i| {
                let d = self.records[i].at.date();
                from <= d && d <= to
            })
            .collect()
    }

    /// Whether this record's frame goes out broken.
    fn corrupt(&mut self, i: usize) -> bool {
        let k = self.frames_sent;
        self.frames_sent += 1;
        let first = !self.records[i].sent;
        (first && self.cfg.faults.corrupt_first_send.contains(&i))
            || every(self.cfg.polled.bad_crc_every, k)
    }

    /// Record frames (or lines) of `indices`, with the faults due.
    fn frames(&mut self, indices: &[usize], report: &mut SimReport) -> (Vec<u8>, usize) {
        let total = indices.len().min(usize::from(u16::MAX)) as u16;
        let mut out = Vec::new();
        let mut broken = 0;
        for (k, &i) in indices.iter().enumerate() {
            let bad = self.corrupt(i);
            broken += usize::from(bad);
            let r = &self.records[i];
            let index = (k + 1).min(usize::from(u16::MAX)) as u16;
            let mut bytes = match self.cfg.protocol {
                Protocol::Lz4000t => lz4000t::record_frame(
                    &Lz4000tRecord {
                        number: r.number,
                        name: r.name.into(),
                        tested_at: r.at,
                        rate_x100: (r.value * 100.0).round() as u16,
                    },
                    index,
                    total,
                    self.cfg.encoding,
                ),
                Protocol::Tl310 => {
                    let threshold = if r.standard == 1 { 70.0 } else { 50.0 };
                    tl310::record_frame(
                        &Tl310Record {
                            channel: r.channel,
                            standard: r.standard,
                            tested_at: r.at,
                            number: r.number,
                            rate_x10: (r.value * 10.0).round() as u16,
                            conclusion: if r.value < threshold { 0x02 } else { 0x01 },
                        },
                        index,
                        total,
                    )
                }
                _ => dy_line(r, self.cfg),
            };
            if bad {
                garble(self.cfg.protocol, &mut bytes);
            }
            out.extend_from_slice(&bytes);
            if self.records[i].sent {
                report.retransmissions += 1;
            } else {
                report.readings += 1;
                report.acknowledged += 1;
            }
            self.records[i].sent = true;
        }
        (out, broken)
    }

    /// Answer one request; the log line.
    async fn answer<T: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        wire: &mut Wire<T>,
        ordinal: usize,
        asked: Asked,
    ) -> io::Result<String> {
        let name = self.name();
        let faults = &self.cfg.polled;
        if self.control.with(|s| s.silent)
            || faults.silent_requests.contains(&ordinal)
            || every(faults.silent_every, ordinal)
        {
            return Ok(format!("{name} request {ordinal} {asked:?}: no answer"));
        }
        let today = today();
        let p = self.cfg.protocol;
        let (mut reply, what, broken) = match asked {
            Asked::CommTest if p == Protocol::Tl310 => (
                tl310::comm_reply(faults.firmware),
                "comm test".to_string(),
                0,
            ),
            Asked::CommTest => (lz4000t::comm_reply(), "comm test".to_string(), 0),
            Asked::Count(d) => {
                let n = self.indices(d, d).len().min(usize::from(u16::MAX)) as u16;
                (lz4000t::count_reply(d, n), format!("{n} record(s)"), 0)
            }
            Asked::Read(_) | Asked::Range(..) | Asked::ReadLast | Asked::ReadAll => {
                let (from, to) = match asked {
                    Asked::Read(d) => (d, d),
                    Asked::Range(a, b) => (a, b),
                    Asked::ReadLast => (today, today),
                    _ => (NaiveDate::MIN, NaiveDate::MAX),
                };
                let indices = self.indices(from, to);
                let (mut bytes, broken) = self.frames(&indices, &mut wire.report);
                if p == Protocol::Dy723pc {
                    bytes.extend_from_slice(dy723pc::finish());
                }
                (bytes, format!("{} record(s)", indices.len()), broken)
            }
            Asked::Unknown => (Vec::new(), "not understood".to_string(), 0),
        };
        let k = self.answers;
        self.answers += 1;
        let faults = &self.cfg.polled;
        let mut note = String::new();
        if broken > 0 {
            note.push_str(&format!(", {broken} with a bad CRC"));
        }
        if !reply.is_empty()
            && (faults.cut_requests.contains(&ordinal) || every(faults.cut_every, k))
        {
            reply.truncate((reply.len() / 2).max(1));
            note.push_str(", cut short");
        }
        if !reply.is_empty() {
            wire.send(&reply).await?;
        }
        Ok(format!("{name} request {ordinal} {asked:?}: {what}{note}"))
    }
}

/// A record that went wrong on the line: a bad CRC, or for DY-723PC (no CRC) a date-time
/// that cannot be read.
fn garble(protocol: Protocol, bytes: &mut [u8]) {
    match protocol {
        Protocol::Dy723pc => {
            // The date-time is the 8th field: its digits become letters.
            let mut commas = 0;
            for b in bytes.iter_mut() {
                if *b == b',' {
                    commas += 1;
                } else if commas == 8 && b.is_ascii_digit() {
                    *b = b'x';
                }
            }
        }
        _ => {
            let n = bytes.len();
            if n >= 2 {
                bytes[n - 2] ^= 0xFF;
            }
        }
    }
}

/// DY-723PC item, unit, value range when positive and when not, and decimals, by sample.
type DyItem = (&'static str, &'static str, (f64, f64), (f64, f64), i32);

fn dy_item(kind: Kind, name: &str) -> DyItem {
    match (kind, name) {
        (Kind::Vegetable, _) => ("有机磷", "%", (52.0, 95.0), (2.0, 45.0), 1),
        (_, "银耳") => ("二氧化硫", "g/kg", (0.15, 0.4), (0.01, 0.08), 3),
        (_, "手工面条") => ("硼砂", "", (1.0, 1.0), (0.0, 0.0), 0),
        (Kind::Fish, _) | (_, "水发鱿鱼") => ("甲醛", "mg/kg", (12.0, 40.0), (0.5, 6.0), 1),
        _ => ("亚硝酸盐", "mg/kg", (35.0, 90.0), (1.0, 20.0), 1),
    }
}

fn dy_line(r: &HeldRecord, cfg: &SimConfig) -> Vec<u8> {
    let (item, unit, _, _, decimals) = dy_item(r.kind, r.name);
    let value = if unit.is_empty() {
        // A qualitative item: the device prints its finding.
        if r.positive { "阳性" } else { "阴性" }.to_string()
    } else {
        format!("{:.*}", decimals.max(0) as usize, r.value)
    };
    let check = format!("{:02X}", r.number % 256);
    dy723pc::record_line(
        &Dy723pcRecord {
            sample: format!("{:04}", r.number),
            channel: u32::from(r.channel % 8) + 1,
            item: item.into(),
            absorbance: format!("{:.3}", 0.05 + (f64::from(r.number % 100)) / 100.0),
            value,
            unit: unit.into(),
            conclusion: if r.positive { "不合格" } else { "合格" }.into(),
            tested_at: r.at,
            check,
        },
        cfg.encoding,
    )
}
