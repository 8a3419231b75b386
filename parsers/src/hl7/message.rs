//! One HL7 message: segments into readings and the `MessageEnd` the link answers on.

use super::text::{charset, decodable, DelimError, Hl7Delims};
use super::wire::{CR, LF};
use crate::datetime::parse_compact;
use crate::decoder::DecoderConfig;
use crate::event::{Diagnostic, Event, LinkEvent};
use crate::reading::{trimmed, DeviceVerdict, Protocol, Reading, Text};
use crate::text::Encoding;
use crate::value::{flag_verdict, interpret};
use chrono::{DateTime, FixedOffset};
use memchr::memchr2;

/// Turns whole messages into events; holds nothing between messages.
#[derive(Debug)]
pub(super) struct Messages {
    config: DecoderConfig,
    /// The listener's encoding, used when MSH-18 names none (or one not known).
    encoding: Encoding,
}

/// Segments of a message with their stream offsets; CR, CR LF and LF all end a segment.
struct Segments<'a> {
    rest: &'a [u8],
    offset: u64,
}

impl<'a> Iterator for Segments<'a> {
    type Item = (&'a [u8], u64);
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let end = memchr2(CR, LF, self.rest).unwrap_or(self.rest.len());
            let seg = &self.rest[..end];
            let offset = self.offset;
            let used = (end + 1).min(self.rest.len());
            self.rest = &self.rest[used..];
            self.offset += used as u64;
            if !seg.is_empty() {
                return Some((seg, offset));
            }
        }
    }
}

/// Non-empty parts joined by `sep`, or `None`.
fn join(parts: impl Iterator<Item = Text>, sep: &str) -> Option<Text> {
    let mut out = Text::default();
    for (i, p) in parts.enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(&p);
    }
    (!out.is_empty()).then_some(out)
}

/// Delimiters and charset of the message being read.
#[derive(Clone, Copy)]
struct MessageCtx<'c> {
    d: Hl7Delims,
    encoding: Encoding,
    offset_tz: FixedOffset,
    config: &'c DecoderConfig,
}

impl MessageCtx<'_> {
    /// Unescape and decode one leaf.
    fn text(&self, raw: &[u8]) -> Text {
        Text::from(self.encoding.decode(&self.d.unescape(raw)))
    }

    fn leaf(&self, raw: &[u8]) -> Option<Text> {
        let t = raw.trim_ascii();
        if t.is_empty() {
            return None;
        }
        // Plain ASCII without escapes (the usual leaf) is the same text in every encoding.
        // VT is a Unicode space that `trim_ascii` leaves.
        let vt = |b: Option<&u8>| b == Some(&0x0B);
        if !vt(t.first()) && !vt(t.last()) && t.is_ascii() && !self.d.escape.contains(t) {
            if let Ok(s) = std::str::from_utf8(t) {
                return Some(Text::from(s));
            }
        }
        trimmed(self.text(raw))
    }

    /// Component `n` (0-based) of the first repetition, trimmed text.
    fn comp(&self, field: &[u8], n: usize) -> Option<Text> {
        self.leaf(self.d.component(field, n))
    }

    /// The first repetition as text (component separators kept as sent).
    fn rep(&self, field: &[u8]) -> Option<Text> {
        self.leaf(self.d.first_rep(field))
    }

    /// Every non-empty component of the first repetition, joined by `sep`.
    fn joined(&self, field: &[u8], sep: &str) -> Option<Text> {
        join(
            self.d
                .component
                .split(self.d.first_rep(field))
                .filter_map(|c| self.leaf(c)),
            sep,
        )
    }

    /// An HD field (MSH-3/4) with its components, in the standard delimiters, for the ack.
    fn hd(&self, field: &[u8]) -> Option<Text> {
        let first = self.d.first_rep(field);
        if first.trim_ascii().is_empty() {
            return None;
        }
        let mut joined = Text::default();
        for (i, c) in self.d.component.split(first).enumerate() {
            if i > 0 {
                joined.push('^');
            }
            joined.push_str(self.text(c).trim());
        }
        trimmed(joined)
    }

    fn datetime(
        &self,
        field: &[u8],
        what: &str,
        offset: u64,
        out: &mut Vec<Event>,
    ) -> Option<DateTime<FixedOffset>> {
        let raw = self.d.component(field, 0);
        if raw.trim_ascii().is_empty() {
            return None;
        }
        let dt = parse_compact(raw, self.offset_tz);
        if dt.is_none() {
            out.push(Event::Diagnostic(Diagnostic::warning(
                "bad_datetime",
                offset,
                format!(
                    "{what} {:?} is not a date-time YYYYMMDDHHMM[SS]: fallback used",
                    self.encoding.decode(raw)
                ),
            )));
        }
        dt
    }
}

/// What MSH says about the message.
#[derive(Default)]
struct Header {
    control_id: Option<Text>,
    sending_application: Option<Text>,
    sending_facility: Option<Text>,
    /// MSH-3 first component: the instrument when OBX-18 is empty.
    instrument: Option<Text>,
    time: Option<DateTime<FixedOffset>>,
}

#[derive(Default, Clone)]
struct ObrGroup {
    id: Option<Text>,
    name: Option<Text>,
    time: Option<DateTime<FixedOffset>>,
}

#[derive(Default, Clone)]
struct PidSource {
    id: Option<Text>,
    vendor: Option<Text>,
}

fn end(out: &mut Vec<Event>, offset: u64, h: Header, readings: usize, rejected: Option<String>) {
    out.push(Event::Link(LinkEvent::MessageEnd {
        offset,
        control_id: h.control_id,
        sending_application: h.sending_application,
        sending_facility: h.sending_facility,
        readings,
        rejected,
    }));
}

fn reject(
    out: &mut Vec<Event>,
    code: &'static str,
    offset: u64,
    why: String,
    control_id: Option<Text>,
) {
    out.push(Event::Diagnostic(Diagnostic::error(
        code,
        offset,
        format!("message rejected: {why}"),
    )));
    let h = Header {
        control_id,
        ..Header::default()
    };
    end(out, offset, h, 0, Some(why));
}

impl Messages {
    pub(super) fn new(config: DecoderConfig) -> Self {
        let encoding = config.encoding.unwrap_or(Encoding::Utf8);
        Messages { config, encoding }
    }

    fn canonical(&self, code: &str) -> Text {
        self.config.aliases.canonical(code)
    }

    /// Read MSH-18 with delimiters scanned for `d`'s encoding.
    fn declared(&self, d: Hl7Delims, msh: &[u8]) -> Option<Vec<u8>> {
        let f = d.fields(msh);
        let name = d.component(f[17], 0).trim_ascii();
        (!name.is_empty()).then(|| name.to_vec())
    }

    /// One whole message (MLLP block content or bare export), `offset` its first byte.
    pub(super) fn message(&self, bytes: &[u8], offset: u64, out: &mut Vec<Event>) {
        let lead = bytes
            .iter()
            .position(|&b| !matches!(b, CR | LF | b' ' | b'\t'))
            .unwrap_or(bytes.len());
        let bytes = &bytes[lead..];
        let offset = offset + lead as u64;
        let msh_end = memchr2(CR, LF, bytes).unwrap_or(bytes.len());
        let msh = &bytes[..msh_end];
        if !msh.starts_with(b"MSH") {
            let why = if bytes.is_empty() {
                "empty message".to_string()
            } else {
                format!(
                    "does not start with an MSH segment (starts with {:?})",
                    String::from_utf8_lossy(&msh[..msh.len().min(3)])
                )
            };
            reject(out, "missing_msh", offset, why, None);
            return;
        }
        let configured = self.encoding;
        let d = match Hl7Delims::from_msh(msh, configured.is_double_byte()) {
            Ok(d) => d,
            Err(e) => {
                let code = match e {
                    DelimError::TooShort => "short_msh",
                    DelimError::Unusable(_) => "bad_delimiters",
                };
                reject(out, code, offset, e.to_string(), None);
                return;
            }
        };
        // MSH-18 decides how to split, and splitting decides where MSH-18 is: read it with
        // the configured encoding's scan, and again if it names one that scans differently.
        // A GBK character in MSH-3/4 whose trail byte is `|` shifts a plain split, so a
        // name not found or not known by the first scan is looked for by the other one.
        let named = |n: &Option<Vec<u8>>| {
            n.as_deref()
                .and_then(|n| charset(&String::from_utf8_lossy(n)))
        };
        let mut name = self.declared(d, msh);
        let mut encoding = named(&name).unwrap_or(configured);
        let dbcs = configured.is_double_byte();
        if encoding.is_double_byte() != dbcs || named(&name).is_none() {
            let other = !dbcs;
            let again = self.declared(d.with_double_byte(other), msh);
            if let Some(e) = named(&again).filter(|e| e.is_double_byte() == other) {
                encoding = e;
                name = again;
            }
        }
        let d = d.with_double_byte(encoding.is_double_byte());
        let f = d.fields(msh);
        if !decodable(encoding, bytes) {
            let raw_id = d.component(f[9], 0).trim_ascii();
            let control_id = (!raw_id.is_empty() && raw_id.is_ascii())
                .then(|| Text::from(String::from_utf8_lossy(raw_id)));
            reject(
                out,
                "undecodable",
                offset,
                format!("not valid {encoding} text"),
                control_id,
            );
            return;
        }
        if let Some(n) = &name {
            if charset(&String::from_utf8_lossy(n)).is_none() {
                out.push(Event::Diagnostic(Diagnostic::warning(
                    "unknown_charset",
                    offset,
                    format!(
                        "MSH-18 character set {:?} is not known: read as {configured}",
                        encoding.decode(n)
                    ),
                )));
            }
        }
        let cx = MessageCtx {
            d,
            encoding,
            offset_tz: self.config.utc_offset,
            config: &self.config,
        };
        let header = Header {
            control_id: cx.comp(f[9], 0),
            sending_application: cx.hd(f[2]),
            sending_facility: cx.hd(f[3]),
            instrument: cx.comp(f[2], 0),
            time: cx.datetime(f[6], "message date-time (MSH-7)", offset, out),
        };
        let kind = cx.comp(f[8], 0).unwrap_or_default();
        if !kind.eq_ignore_ascii_case("ORU") {
            let shown = cx.rep(f[8]).unwrap_or_default();
            out.push(Event::Diagnostic(Diagnostic::warning(
                "not_oru",
                offset,
                format!("message type {shown:?} is not ORU: no readings taken"),
            )));
            end(out, offset, header, 0, None);
            return;
        }
        let rest = &bytes[msh_end..];
        let readings = self.segments(&cx, &header, rest, offset + msh_end as u64, out);
        let n = readings.len();
        out.extend(readings.into_iter().map(Event::Reading));
        end(out, offset, header, n, None);
    }

    // Readings are boxed once, as `Event::Reading` carries them, instead of being moved
    // whole into a box later.
    #[allow(clippy::vec_box)]
    fn segments(
        &self,
        cx: &MessageCtx<'_>,
        header: &Header,
        rest: &[u8],
        offset: u64,
        out: &mut Vec<Event>,
    ) -> Vec<Box<Reading>> {
        let mut readings: Vec<Box<Reading>> = Vec::new();
        let mut source = PidSource::default();
        let mut sample = ObrGroup::default();
        // An NTE belongs to the segment right before it: only an OBX's is kept.
        let mut after_obx = false;
        let segments = Segments { rest, offset };
        for (seg, at) in segments {
            let f = cx.d.fields(seg);
            let id = f[0].trim_ascii();
            match id {
                b"PID" => {
                    source = PidSource {
                        id: cx.comp(f[3], 0),
                        vendor: cx.joined(f[5], " "),
                    };
                    sample = ObrGroup::default();
                    after_obx = false;
                }
                b"OBR" => {
                    sample = ObrGroup {
                        id: cx.comp(f[3], 0),
                        name: cx.comp(f[15], 0),
                        time: cx.datetime(f[7], "observation date-time (OBR-7)", at, out),
                    };
                    after_obx = false;
                }
                b"OBX" => {
                    let r = self.obx(cx, header, &source, &sample, &f, at, out);
                    readings.push(r);
                    after_obx = true;
                }
                b"NTE" => {
                    if after_obx {
                        let comment = join(
                            cx.d.repetition.split(f[3]).filter_map(|rep| cx.leaf(rep)),
                            " ",
                        );
                        if let (Some(r), Some(c)) = (readings.last_mut(), comment) {
                            r.comments.push(c);
                        }
                    }
                }
                b"MSH" => {
                    out.push(Event::Diagnostic(Diagnostic::warning(
                        "unexpected_segment",
                        at,
                        "a second MSH inside one message: ignored",
                    )));
                    after_obx = false;
                }
                _ => after_obx = false,
            }
        }
        readings
    }

    #[allow(clippy::too_many_arguments)]
    fn obx(
        &self,
        cx: &MessageCtx<'_>,
        header: &Header,
        source: &PidSource,
        sample: &ObrGroup,
        f: &[&[u8]; super::text::FIELDS],
        at: u64,
        out: &mut Vec<Event>,
    ) -> Box<Reading> {
        let code = cx.comp(f[3], 0).unwrap_or_default();
        let mut r = Box::new(Reading::new(Protocol::Hl7, self.canonical(&code)));
        r.analyte_code = (!code.is_empty()).then_some(code);
        r.offset = Some(at);
        let value_type = cx.comp(f[2], 0).unwrap_or_default();
        // SN (structured numeric) sends the comparator apart: `<^0.05`.
        let value_text = if value_type.eq_ignore_ascii_case("SN") {
            let cmp = cx.comp(f[5], 0).unwrap_or_default();
            let num = cx.comp(f[5], 1).unwrap_or_default();
            trimmed(compact_str::format_compact!("{cmp}{num}"))
        } else {
            cx.comp(f[5], 0)
        };
        let status = cx.rep(f[11]);
        let flag = cx.rep(f[8]);
        if status
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("X"))
        {
            r.device_verdict = Some(DeviceVerdict::Invalid);
        } else {
            let v = interpret(value_text.as_deref().unwrap_or(""));
            r.value = v.value;
            r.qualifier = v.qualifier;
            r.device_verdict = v
                .device_verdict
                .or_else(|| flag.as_deref().and_then(flag_verdict));
        }
        r.value_text = value_text;
        r.unit = cx.comp(f[6], 0).or_else(|| cx.comp(f[6], 1));
        r.reference_range = cx.rep(f[7]);
        r.abnormal_flag = flag;
        r.result_status = status;
        r.measured_at = cx
            .datetime(f[14], "observation date-time (OBX-14)", at, out)
            .or(sample.time)
            .or(header.time);
        r.instrument = cx
            .comp(f[18], 0)
            .or_else(|| header.instrument.clone())
            .or_else(|| cx.config.instrument.clone());
        r.sample_id = sample.id.clone();
        r.sample_name = sample.name.clone();
        r.source = source.id.clone();
        r.vendor = source.vendor.clone();
        r.message_id = header.control_id.clone();
        r
    }
}
