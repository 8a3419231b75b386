//! The report state machine: title, header, table, footer, closing rules.
//!
//! A report's readings are only known to be good once its closing `=` rule has been
//! read *and* the next non-blank line is not a title: the document gives a `=` rule that
//! is directly followed by a title to the next report, leaving the one before incomplete.
//! So a closed report waits for the next non-blank line (or the end of input) before its
//! readings go out; a paper cut (`GS V`) after the closing rule also ends it, since a
//! printer cuts the paper only after the last line of a report. Without that, a live
//! printer line would hold a finished report until the next one is printed.

use super::row::{parse_row, TableRow};
use crate::decoder::DecoderConfig;
use crate::event::{DeviceInfo, Diagnostic, Event};
use crate::reading::{DeviceVerdict, Metadata, Protocol, Reading, Text};
use crate::value::parse_decimal;
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};

/// Most non-blank lines one report may have before it is refused as runaway.
pub const MAX_REPORT_LINES: usize = 1024;

pub(crate) const ANALYTE: &str = "op_carbamate";
pub(crate) const METHOD: &str = "enzyme_inhibition";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between reports: only a title line matters.
    Outside,
    /// After the title: `key: value` lines until the `-` rule.
    Header,
    /// The table, until the next `-` rule.
    Body,
    /// After the table's `-` rule: `检测员`, then the closing `=` rule.
    Footer,
    /// Closing `=` rule read; waiting to see whether a title follows it.
    Closed,
}

#[derive(Debug)]
struct StoredRow {
    offset: u64,
    sample_id: Text,
    name: Text,
    delta_at: f64,
    rate: f64,
    conclusion: Text,
    verdict: DeviceVerdict,
}

/// The report being read.
#[derive(Debug, Default)]
struct OpenReport {
    offset: u64,
    lines: usize,
    model: Option<Text>,
    serial: Option<Text>,
    measured_at: Option<DateTime<FixedOffset>>,
    delta_a0: Option<f64>,
    tester: Option<Text>,
    metadata: Metadata,
    rows: Vec<StoredRow>,
}

#[derive(Debug)]
pub(crate) struct Reports {
    utc_offset: FixedOffset,
    instrument: Option<Text>,
    phase: Phase,
    cur: OpenReport,
    /// An unknown printer command was already reported for the current report.
    warned_unknown: bool,
    /// Text outside any report was already reported since the last report started.
    warned_outside: bool,
}

/// A line made of one repeated rule character (`=` or `-`), at least three.
fn is_rule(t: &str, c: u8) -> bool {
    t.len() >= 3 && t.bytes().all(|b| b == c)
}

pub(crate) fn is_title(t: &str) -> bool {
    t.contains("农药残留") && t.contains("报告")
}

/// `key: value`, colon already normalized to ASCII.
fn key_value(t: &str) -> Option<(&str, &str)> {
    let (k, v) = t.split_once(':')?;
    let k = k.trim();
    (!k.is_empty()).then(|| (k, v.trim()))
}

/// Header keys the decoder knows, whatever spaces the printer put inside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Model,
    Serial,
    DateTime,
    Method,
    DeltaA0,
    Tester,
    Other,
}

/// Keys compared with the spaces the printer put inside them ignored.
const KEYS: [(&str, Key); 11] = [
    ("仪器型号", Key::Model),
    ("仪器编号", Key::Serial),
    ("检测日期", Key::DateTime),
    ("检测时间", Key::DateTime),
    ("检测方法", Key::Method),
    ("检测员", Key::Tester),
    ("对照值", Key::DeltaA0),
    ("对照ΔA0", Key::DeltaA0),
    // `Δ` is missing from some printers' fonts (`dA0`); `△` is the look-alike many
    // Chinese fonts do have.
    ("对照dA0", Key::DeltaA0),
    ("对照DA0", Key::DeltaA0),
    ("对照△A0", Key::DeltaA0),
];

fn classify_key(key: &str) -> Key {
    let compact = || key.chars().filter(|c| !c.is_whitespace());
    KEYS.iter()
        .find(|(k, _)| compact().eq(k.chars()))
        .map_or(Key::Other, |(_, key)| *key)
}

/// `YYYY-MM-DD HH:MM:SS` or `YYYY/MM/DD HH:MM` (and the two other mixes), local time.
pub(crate) fn parse_datetime(text: &str, offset: FixedOffset) -> Option<DateTime<FixedOffset>> {
    const FORMATS: [&str; 4] = [
        "%Y-%m-%d %H:%M:%S",
        "%Y/%m/%d %H:%M",
        "%Y-%m-%d %H:%M",
        "%Y/%m/%d %H:%M:%S",
    ];
    FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .and_then(|naive| offset.from_local_datetime(&naive).single())
}

/// (ΔA0 − ΔAt) / ΔA0 × 100, to one decimal, as the instrument prints it.
pub(crate) fn recompute_rate(delta_a0: Option<f64>, delta_at: f64) -> Option<f64> {
    let a0 = delta_a0.filter(|a| *a != 0.0)?;
    let rate = ((a0 - delta_at) / a0 * 1000.0).round() / 10.0;
    rate.is_finite().then_some(rate)
}

impl Reports {
    pub(crate) fn new(config: &DecoderConfig) -> Self {
        Reports {
            utc_offset: config.utc_offset,
            instrument: config.instrument.clone(),
            phase: Phase::Outside,
            cur: OpenReport::default(),
            warned_unknown: false,
            warned_outside: false,
        }
    }

    fn in_report(&self) -> bool {
        matches!(self.phase, Phase::Header | Phase::Body | Phase::Footer)
    }

    /// One line of text: trimmed, decoded, full-width spaces and colons made ASCII.
    pub(crate) fn line(&mut self, t: &str, offset: u64, out: &mut Vec<Event>) {
        if is_title(t) {
            match self.phase {
                Phase::Outside => {}
                Phase::Closed => self.discard(
                    "its closing = rule is directly followed by the next report's title, \
                     so the rule belongs to that report",
                    out,
                ),
                _ => self.discard("a new report started before it was complete", out),
            }
            self.cur = OpenReport {
                offset,
                ..OpenReport::default()
            };
            self.phase = Phase::Header;
            self.warned_unknown = false;
            self.warned_outside = false;
            return;
        }
        if t.is_empty() {
            return;
        }
        if self.in_report() {
            self.cur.lines += 1;
            if self.cur.lines > MAX_REPORT_LINES {
                out.push(Event::Diagnostic(Diagnostic::error(
                    "report_too_long",
                    offset,
                    format!("report has more than {MAX_REPORT_LINES} lines"),
                )));
                self.discard("it ran past the line limit", out);
                return;
            }
        }
        match self.phase {
            Phase::Outside => self.outside(t, offset, out),
            Phase::Header => {
                if is_rule(t, b'-') {
                    self.phase = Phase::Body;
                } else if is_rule(t, b'=') {
                    // The rule under the title.
                } else if let Some((k, v)) = key_value(t) {
                    self.header(k, v, offset, out);
                } else {
                    unexpected(t, offset, "header", out);
                }
            }
            Phase::Body => {
                if is_rule(t, b'-') {
                    self.phase = Phase::Footer;
                } else if is_rule(t, b'=') || t.starts_with("通道") {
                    // A `=` here may be the next report's top rule; the title will tell.
                } else {
                    self.row(t, offset, out);
                }
            }
            Phase::Footer => {
                if is_rule(t, b'=') {
                    self.phase = Phase::Closed;
                } else if is_rule(t, b'-') {
                } else if let Some((k, v)) = key_value(t) {
                    self.header(k, v, offset, out);
                } else {
                    unexpected(t, offset, "footer", out);
                }
            }
            Phase::Closed => {
                self.complete(out);
                self.outside(t, offset, out);
            }
        }
    }

    fn outside(&mut self, t: &str, offset: u64, out: &mut Vec<Event>) {
        if is_rule(t, b'=') || is_rule(t, b'-') || self.warned_outside {
            return;
        }
        self.warned_outside = true;
        out.push(Event::Diagnostic(Diagnostic::warning(
            "text_outside_report",
            offset,
            "text outside any report ignored (reported once until the next report)",
        )));
    }

    fn header(&mut self, key: &str, value: &str, offset: u64, out: &mut Vec<Event>) {
        let some = |v: &str| (!v.is_empty()).then(|| Text::from(v));
        match classify_key(key) {
            // The model travels on the report's `Device` event, not on every reading.
            Key::Model => self.cur.model = some(value),
            Key::Serial => self.cur.serial = some(value),
            Key::Method => {
                if let Some(m) = some(value) {
                    self.cur.metadata.insert("method", m);
                }
            }
            Key::Tester => self.cur.tester = some(value),
            Key::DateTime => {
                self.cur.measured_at = parse_datetime(value, self.utc_offset);
                if self.cur.measured_at.is_none() {
                    out.push(Event::Diagnostic(Diagnostic::warning(
                        "bad_datetime",
                        offset,
                        format!("{key} {value:?} is not YYYY-MM-DD HH:MM:SS or YYYY/MM/DD HH:MM"),
                    )));
                }
            }
            Key::DeltaA0 => {
                self.cur.delta_a0 = parse_decimal(value);
                if self.cur.delta_a0.is_none() {
                    out.push(Event::Diagnostic(Diagnostic::warning(
                        "bad_delta_a0",
                        offset,
                        format!("control ΔA0 {value:?} is not a decimal"),
                    )));
                }
            }
            Key::Other => {
                self.cur.metadata.insert(key, value);
            }
        }
    }

    fn row(&mut self, t: &str, offset: u64, out: &mut Vec<Event>) {
        match parse_row(t) {
            Ok(TableRow::Unused) => {}
            Ok(TableRow::Used(r)) => self.cur.rows.push(StoredRow {
                offset,
                sample_id: r.sample_id.into(),
                name: r.name.into(),
                delta_at: r.delta_at,
                rate: r.rate,
                conclusion: r.conclusion.into(),
                verdict: r.verdict,
            }),
            Err(e) => out.push(Event::Diagnostic(Diagnostic::error(
                "bad_row",
                offset,
                format!("table row dropped: {e}"),
            ))),
        }
    }

    /// An unknown printer command in a line just read: one warning per report.
    pub(crate) fn unknown_command(&mut self, offset: u64, out: &mut Vec<Event>) {
        if !self.warned_unknown {
            self.warned_unknown = true;
            out.push(Event::Diagnostic(Diagnostic::warning(
                "unknown_printer_command",
                offset,
                "unknown ESC/GS/FS printer command skipped with the byte after it \
                 (reported once per report)",
            )));
        }
    }

    /// A line was dropped for being too long: the report it stood in cannot be trusted.
    pub(crate) fn line_dropped(&mut self, out: &mut Vec<Event>) {
        match self.phase {
            Phase::Closed => self.complete(out),
            Phase::Outside => {}
            _ => self.discard("one of its lines was too long and was dropped", out),
        }
    }

    /// The printer cut the paper.
    pub(crate) fn paper_cut(&mut self, out: &mut Vec<Event>) {
        if self.phase == Phase::Closed {
            self.complete(out);
        }
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<Event>) {
        match self.phase {
            Phase::Closed => self.complete(out),
            Phase::Outside => {}
            _ => self.discard("the input ended before its closing - and = rules", out),
        }
    }

    fn discard(&mut self, why: &str, out: &mut Vec<Event>) {
        let cur = std::mem::take(&mut self.cur);
        self.phase = Phase::Outside;
        out.push(Event::Diagnostic(Diagnostic::error(
            "incomplete_report",
            cur.offset,
            format!("report discarded with its {} row(s): {why}", cur.rows.len()),
        )));
    }

    fn complete(&mut self, out: &mut Vec<Event>) {
        let cur = std::mem::take(&mut self.cur);
        self.phase = Phase::Outside;
        if cur.model.is_some() || cur.serial.is_some() {
            out.push(Event::Device(DeviceInfo {
                offset: cur.offset,
                serial_number: cur.serial.clone(),
                model: cur.model.clone(),
                firmware: None,
            }));
        }
        let instrument = cur.serial.or_else(|| self.instrument.clone());
        for row in cur.rows {
            let mut r = Reading::new(Protocol::EnzymePrint, ANALYTE);
            r.instrument = instrument.clone();
            r.sample_id = Some(row.sample_id);
            r.sample_name = (!row.name.is_empty()).then_some(row.name);
            r.method = Some(Text::const_new(METHOD));
            r.value = Some(row.rate);
            r.unit = Some(Text::const_new("%"));
            r.device_verdict = Some(row.verdict);
            r.measured_at = cur.measured_at;
            r.offset = Some(row.offset);
            r.delta_a0 = cur.delta_a0;
            r.delta_at = Some(row.delta_at);
            r.recomputed_rate = recompute_rate(cur.delta_a0, row.delta_at);
            r.conclusion = Some(row.conclusion);
            r.tester = cur.tester.clone();
            r.metadata = cur.metadata.clone();
            out.push(Event::Reading(Box::new(r)));
        }
    }
}

fn unexpected(t: &str, offset: u64, part: &str, out: &mut Vec<Event>) {
    let shown: String = t.chars().take(40).collect();
    out.push(Event::Diagnostic(Diagnostic::warning(
        "unexpected_line",
        offset,
        format!("line in the report {part} ignored: {shown:?}"),
    )));
}
