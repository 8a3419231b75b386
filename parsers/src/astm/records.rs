//! E1394 records: H/P/O/R/C/L into readings.

use super::wire::MAX_RESULTS_PER_MESSAGE;
use crate::datetime::parse_compact;
use crate::decoder::DecoderConfig;
use crate::delim::Delim;
use crate::event::{Diagnostic, Event, LinkEvent};
use crate::reading::{trimmed, DeviceVerdict, Protocol, Reading, Text};
use crate::text::Encoding;
use crate::value::{flag_verdict, interpret};
use chrono::{DateTime, FixedOffset};

/// A record, and the same bytes as text when the whole record is ASCII without the escape
/// byte (nearly every record): its fields then need no decoding, no unescaping and no UTF-8
/// check of their own.
#[derive(Clone, Copy)]
struct Plain<'r> {
    rec: &'r [u8],
    text: Option<&'r str>,
}

impl<'r> Plain<'r> {
    /// `plain`: the record is all ASCII without the escape byte.
    fn new(rec: &'r [u8], plain: bool) -> Self {
        let text = if plain {
            std::str::from_utf8(rec).ok()
        } else {
            None
        };
        Plain { rec, text }
    }

    /// `piece`, a part of the record, as text when the record is plain.
    fn get(self, piece: &[u8]) -> Option<&'r str> {
        let text = self.text?;
        let whole = self.rec.as_ptr_range();
        let part = piece.as_ptr_range();
        if part.start < whole.start || part.end > whole.end {
            return None;
        }
        let start = part.start as usize - whole.start as usize;
        text.get(start..start + piece.len())
    }
}

/// Fields of a record looked at (R uses up to field 14).
const FIELDS: usize = 17;

#[derive(Debug, Clone, Copy)]
struct RecordDelims {
    field: Delim,
    repeat: Delim,
    component: Delim,
    escape: u8,
}

impl RecordDelims {
    fn new(field: u8, repeat: u8, component: u8, escape: u8, dbcs: bool) -> Self {
        RecordDelims {
            field: Delim::new(field, dbcs),
            repeat: Delim::new(repeat, dbcs),
            component: Delim::new(component, dbcs),
            escape,
        }
    }
}

#[derive(Debug, Default, Clone)]
struct OrderRecord {
    sample_id: Option<Text>,
    sample_name: Option<Text>,
    collected_at: Option<DateTime<FixedOffset>>,
    comments: Vec<Text>,
}

#[derive(Debug, Default, Clone)]
struct PatientRecord {
    id: Option<Text>,
    vendor: Option<Text>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Other,
    OrderRecord,
    Result,
}

/// The message being assembled from records.
#[derive(Debug)]
pub(super) struct Records {
    config: DecoderConfig,
    encoding: Encoding,
    delims: RecordDelims,
    active: bool,
    /// A message was discarded: its remaining records are dropped without more errors.
    discarding: bool,
    /// Records outside a message were already reported since the last `H`.
    orphans_reported: bool,
    header_instrument: Option<Text>,
    header_time: Option<DateTime<FixedOffset>>,
    source: PatientRecord,
    order: OrderRecord,
    last: Last,
    /// Boxed as they are built: each goes out as `Event::Reading(Box<_>)` unmoved.
    #[allow(clippy::vec_box)]
    readings: Vec<Box<Reading>>,
}

impl Records {
    pub(super) fn new(config: DecoderConfig, encoding: Encoding) -> Self {
        let dbcs = encoding.is_double_byte();
        Records {
            config,
            encoding,
            delims: RecordDelims::new(b'|', b'\\', b'^', b'&', dbcs),
            active: false,
            discarding: false,
            orphans_reported: false,
            header_instrument: None,
            header_time: None,
            source: PatientRecord::default(),
            order: OrderRecord::default(),
            last: Last::Other,
            readings: Vec::new(),
        }
    }

    pub(super) fn in_message(&self) -> bool {
        self.active
    }

    /// A transfer ended (EOT, ENQ, end of input): nothing carries over into the next one.
    pub(super) fn end_transfer(&mut self) {
        self.discarding = false;
        self.orphans_reported = false;
    }

    /// Discard the message in progress with an error. `partial` says data was lost even if
    /// no message had started (a record cut in the middle).
    pub(super) fn cut(&mut self, offset: u64, why: &str, partial: bool, out: &mut Vec<Event>) {
        if self.active || partial {
            let n = self.readings.len();
            out.push(Event::Diagnostic(Diagnostic::error(
                "message_discarded",
                offset,
                format!("{why}; unfinished message discarded ({n} result(s) not kept)"),
            )));
        }
        self.readings.clear();
        self.active = false;
        self.discarding = true;
    }

    /// Unescape a field piece, decode it and trim it; `None` when nothing is left.
    fn text(&self, p: Plain<'_>, raw: &[u8]) -> Option<Text> {
        let raw = raw.trim_ascii();
        if raw.is_empty() {
            return None;
        }
        if let Some(t) = p.get(raw) {
            // VT is a Unicode space `trim_ascii` leaves.
            if !t.starts_with('\x0B') && !t.ends_with('\x0B') {
                return Some(Text::from(t));
            }
        }
        let esc = self.delims.escape;
        if Delim::new(esc, self.encoding.is_double_byte()).contains(raw) {
            return trimmed(Text::from(self.encoding.decode(&self.unescape(raw))));
        }
        let t = Text::from(self.encoding.decode(raw));
        // ASCII blanks are gone already; only other Unicode spaces (U+3000…) remain to trim.
        if t.starts_with(char::is_whitespace) || t.ends_with(char::is_whitespace) {
            trimmed(t)
        } else {
            Some(t)
        }
    }

    fn unescape(&self, raw: &[u8]) -> Vec<u8> {
        let d = &self.delims;
        let esc = Delim::new(d.escape, self.encoding.is_double_byte());
        let mut out = Vec::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(p) = esc.find(rest) {
            out.extend_from_slice(&rest[..p]);
            let seq = &rest[p..];
            let replacement = match seq {
                [_, b'F', e, ..] if *e == d.escape => Some(d.field.byte()),
                [_, b'S', e, ..] if *e == d.escape => Some(d.component.byte()),
                [_, b'R', e, ..] if *e == d.escape => Some(d.repeat.byte()),
                [_, b'E', e, ..] if *e == d.escape => Some(d.escape),
                _ => None,
            };
            match replacement {
                Some(b) => {
                    out.push(b);
                    rest = &seq[3..];
                }
                None => {
                    out.push(d.escape);
                    rest = &seq[1..];
                }
            }
        }
        out.extend_from_slice(rest);
        out
    }

    /// First repeat, first non-empty component from index `from` on, as trimmed text.
    fn component_text(&self, p: Plain<'_>, field: &[u8], from: usize) -> Option<Text> {
        let first = self.delims.repeat.split(field).next().unwrap_or(&[]);
        self.delims
            .component
            .split(first)
            .skip(from)
            .find(|c| !c.trim_ascii().is_empty())
            .and_then(|c| self.text(p, c))
    }

    /// The whole field (first repeat) as trimmed text, or `None` when empty.
    fn field_text(&self, p: Plain<'_>, field: &[u8]) -> Option<Text> {
        let first = self.delims.repeat.split(field).next().unwrap_or(&[]);
        if first.trim_ascii().is_empty() {
            return None;
        }
        self.text(p, first)
    }

    fn datetime(
        &self,
        field: &[u8],
        what: &str,
        offset: u64,
        out: &mut Vec<Event>,
    ) -> Option<DateTime<FixedOffset>> {
        let first = self.delims.component.split(field).next().unwrap_or(&[]);
        if first.trim_ascii().is_empty() {
            return None;
        }
        let dt = parse_compact(first, self.config.utc_offset);
        if dt.is_none() {
            out.push(Event::Diagnostic(Diagnostic::warning(
                "bad_datetime",
                offset,
                format!(
                    "{what} {:?} is not a date-time YYYYMMDDHHMM[SS]",
                    String::from_utf8_lossy(first)
                ),
            )));
        }
        dt
    }

    /// One complete record (without its CR).
    pub(super) fn record(&mut self, rec: &[u8], offset: u64, out: &mut Vec<Event>) {
        // Bare captures may end lines with CR LF: the LF starts the next piece.
        let rec = match rec.iter().position(|&b| b != b'\n') {
            Some(p) => &rec[p..],
            None => return,
        };
        let kind = rec[0];
        if kind == b'H' {
            self.header(rec, offset, out);
            return;
        }
        if !self.active {
            if kind == b'L' && self.discarding {
                self.discarding = false;
            } else if !self.discarding && !self.orphans_reported {
                self.orphans_reported = true;
                let shown: String = String::from_utf8_lossy(&rec[..rec.len().min(20)]).into_owned();
                out.push(Event::Diagnostic(Diagnostic::error(
                    "orphan_records",
                    offset,
                    format!("record(s) outside an H…L message dropped, starting with {shown:?}"),
                )));
            }
            return;
        }
        let mut f: [&[u8]; FIELDS] = [&[]; FIELDS];
        let p = Plain::new(rec, self.fields(rec, &mut f));
        match kind {
            b'P' => {
                self.source = PatientRecord {
                    id: self.component_text(p, f[2], 0),
                    vendor: self.person_name(p, f[5]),
                };
                self.order = OrderRecord::default();
                self.last = Last::Other;
            }
            b'O' => {
                let collected_at = self.datetime(f[7], "collection date-time (O.8)", offset, out);
                self.order = OrderRecord {
                    sample_id: self.component_text(p, f[2], 0),
                    sample_name: self.component_text(p, f[15], 0),
                    collected_at,
                    comments: Vec::new(),
                };
                self.last = Last::OrderRecord;
            }
            b'R' => {
                self.result(p, &f, offset, out);
            }
            b'C' => {
                if let Some(text) = self.field_text(p, f[3]) {
                    match self.last {
                        Last::Result => {
                            if let Some(r) = self.readings.last_mut() {
                                r.comments.push(text);
                            }
                        }
                        Last::OrderRecord => self.order.comments.push(text),
                        Last::Other => {}
                    }
                }
            }
            b'Q' | b'M' => {
                let what = if kind == b'Q' {
                    "Q (query)"
                } else {
                    "M (manufacturer)"
                };
                out.push(Event::Diagnostic(Diagnostic::warning(
                    "skipped_record",
                    offset,
                    format!("{what} record skipped"),
                )));
                self.last = Last::Other;
            }
            b'L' => self.end(offset, out),
            other => {
                out.push(Event::Diagnostic(Diagnostic::warning(
                    "unknown_record",
                    offset,
                    format!(
                        "record type {:?} is not one of H P O R C Q M L: skipped",
                        other as char
                    ),
                )));
            }
        }
    }

    /// Split a record into its first `N` fields (the rest are left empty); whether the
    /// record is all ASCII without the escape byte.
    fn fields<'r, const N: usize>(&self, rec: &'r [u8], f: &mut [&'r [u8]; N]) -> bool {
        self.delims.field.split_scan(rec, f, self.delims.escape).1
    }

    fn person_name(&self, p: Plain<'_>, field: &[u8]) -> Option<Text> {
        let first = self.delims.repeat.split(field).next().unwrap_or(&[]);
        let mut name = Text::default();
        for part in self
            .delims
            .component
            .split(first)
            .filter_map(|c| self.text(p, c))
        {
            if !name.is_empty() {
                name.push(' ');
            }
            name.push_str(&part);
        }
        (!name.is_empty()).then_some(name)
    }

    fn header(&mut self, rec: &[u8], offset: u64, out: &mut Vec<Event>) {
        if self.active {
            let n = self.readings.len();
            out.push(Event::Diagnostic(Diagnostic::error(
                "message_discarded",
                offset,
                format!("H record before the L of the message in progress; that message discarded ({n} result(s) not kept)"),
            )));
            self.readings.clear();
        }
        let dbcs = self.encoding.is_double_byte();
        let field = rec.get(1).copied().unwrap_or(b'|');
        let def: &[u8] = rec.get(2..).map_or(&[], |r| {
            let end = r.iter().position(|&b| b == field).unwrap_or(r.len());
            &r[..end]
        });
        let usable = |b: u8| b.is_ascii_punctuation() && b != field;
        self.delims = match *def {
            [r, c, e]
                if usable(r)
                    && usable(c)
                    && usable(e)
                    && r != c
                    && c != e
                    && r != e
                    && field.is_ascii_punctuation() =>
            {
                RecordDelims::new(field, r, c, e, dbcs)
            }
            _ => {
                out.push(Event::Diagnostic(Diagnostic::warning(
                    "bad_delimiters",
                    offset,
                    format!(
                        "header delimiters {:?} are not four distinct punctuation characters: using |\\^&",
                        String::from_utf8_lossy(&rec[1..(2 + def.len()).min(rec.len())])
                    ),
                )));
                RecordDelims::new(b'|', b'\\', b'^', b'&', dbcs)
            }
        };
        let mut f: [&[u8]; 15] = [&[]; 15];
        let p = Plain::new(rec, self.fields(rec, &mut f));
        let sender = self.delims.repeat.split(f[4]).next().unwrap_or(&[]);
        let serial = self.delims.component.nth(sender, 2);
        self.header_instrument = if serial.trim_ascii().is_empty() {
            None
        } else {
            self.text(p, serial)
        };
        self.header_time = self.datetime(f[13], "message date-time (H.14)", offset, out);
        self.active = true;
        self.discarding = false;
        self.orphans_reported = false;
        self.source = PatientRecord::default();
        self.order = OrderRecord::default();
        self.last = Last::Other;
    }

    fn result(&mut self, p: Plain<'_>, f: &[&[u8]; FIELDS], offset: u64, out: &mut Vec<Event>) {
        self.last = Last::Result;
        if self.readings.len() >= MAX_RESULTS_PER_MESSAGE {
            self.cut(
                offset,
                &format!("more than {MAX_RESULTS_PER_MESSAGE} results in one message"),
                false,
                out,
            );
            return;
        }
        // Test code: first non-empty component from the 4th on, or the field itself.
        let test = self.delims.repeat.split(f[2]).next().unwrap_or(&[]);
        let code = if self.delims.component.contains(test) {
            self.component_text(p, test, 3)
                .or_else(|| self.component_text(p, test, 0))
        } else {
            self.text(p, test)
        };
        let code = code.unwrap_or_default();
        let mut r = Box::new(Reading::new(
            Protocol::Astm,
            self.config.aliases.canonical(&code),
        ));
        r.analyte_code = Some(code);
        r.offset = Some(offset);

        let value_text = self.component_text(p, f[3], 0);
        let status = self.field_text(p, f[8]);
        let v = interpret(value_text.as_deref().unwrap_or(""));
        let flag = self.field_text(p, f[6]);
        if status.as_deref() == Some("X") {
            r.device_verdict = Some(DeviceVerdict::Invalid);
        } else {
            r.value = v.value;
            r.qualifier = v.qualifier;
            r.device_verdict = v
                .device_verdict
                .or_else(|| flag.as_deref().and_then(flag_verdict));
        }
        r.value_text = value_text;
        r.unit = self.field_text(p, f[4]);
        r.reference_range = self.field_text(p, f[5]);
        r.abnormal_flag = flag;
        r.result_status = status;
        r.measured_at = self
            .datetime(f[12], "completed date-time (R.13)", offset, out)
            .or(self.order.collected_at)
            .or(self.header_time);
        r.instrument = self
            .component_text(p, f[13], 0)
            .or_else(|| self.header_instrument.clone())
            .or_else(|| self.config.instrument.clone());
        r.sample_id = self.order.sample_id.clone();
        r.sample_name = self.order.sample_name.clone();
        r.source = self.source.id.clone();
        r.vendor = self.source.vendor.clone();
        r.comments = self.order.comments.clone();
        self.readings.push(r);
    }

    fn end(&mut self, offset: u64, out: &mut Vec<Event>) {
        let n = self.readings.len();
        out.extend(self.readings.drain(..).map(Event::Reading));
        out.push(Event::Link(LinkEvent::MessageEnd {
            offset,
            control_id: None,
            sending_application: None,
            sending_facility: None,
            readings: n,
            rejected: None,
        }));
        self.active = false;
        self.last = Last::Other;
        self.order = OrderRecord::default();
        self.source = PatientRecord::default();
    }
}
