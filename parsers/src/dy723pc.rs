//! Protocol `dy723pc`: the DY-723PC multi-item food-safety analyzer, polled by the host
//! (`docs/protocols.md`). The host asks `D<start>D<end>` (plain ASCII dates); the device
//! answers with text records `R,<no>,<channel>,<item>,<abs>,<value>,<unit>,<conclusion>,
//! <date-time>,<check>,` and `FINISH`.
//!
//! A record is found by its `R,` at the start of the reply or after the end of the record
//! before it (its last comma, and line ends), never by splitting on every `R`: an `R` inside
//! a field is text. Commas are safe to split on in GB 18030 (no multi-byte sequence holds
//! one), so the bytes are split first and each field decoded on its own.

use crate::decoder::{Decoder, DecoderConfig};
use crate::event::{Diagnostic, Event, LinkEvent, PolledReply};
use crate::noise::Noise;
use crate::reading::{trimmed, DeviceVerdict, Protocol, Reading, Text};
use crate::text::Encoding;
use chrono::{NaiveDate, NaiveDateTime, TimeZone};

const START: &[u8] = b"R,";
const FINISH: &[u8] = b"FINISH";
/// Fields after `R`: the eight the document names, then the check code.
const FIELDS: usize = 8;
/// The longest record accepted (from its `R` to its last comma); a record that has not
/// ended by then is dropped.
pub const MAX_RECORD: usize = 1024;

/// The request for the records from `start` to `end` (inclusive).
pub fn request(start: NaiveDate, end: NaiveDate) -> Vec<u8> {
    format!("D{}D{}", start.format("%Y-%m-%d"), end.format("%Y-%m-%d")).into_bytes()
}

/// Streaming decoder of the DY-723PC's replies.
#[derive(Debug)]
pub struct Dy723pcDecoder {
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: u64,
    noise: Noise,
    /// Records since the last `FINISH`.
    records: u32,
    config: DecoderConfig,
    encoding: Encoding,
}

/// What the bytes at the start of the buffer are.
enum RecordStep {
    NeedMore,
    /// `n` bytes used.
    Used(usize),
}

fn is_line_end(b: u8) -> bool {
    b == b'\r' || b == b'\n'
}

/// Where the next record or `FINISH` may start after `from`: `FINISH` anywhere, `R,` anywhere
/// in noise, but only right after a comma or a line end inside a broken record (where an `R`
/// is more likely a field's text).
fn next_start(buf: &[u8], from: usize, anywhere: bool) -> Option<usize> {
    (from.max(1)..buf.len()).find(|&p| {
        let rest = &buf[p..];
        rest.starts_with(FINISH)
            || (rest.starts_with(START)
                && (anywhere || buf[p - 1] == b',' || is_line_end(buf[p - 1])))
    })
}

impl Dy723pcDecoder {
    pub fn new(config: DecoderConfig) -> Self {
        Dy723pcDecoder {
            buf: Vec::new(),
            base: 0,
            noise: Noise::default(),
            records: 0,
            encoding: config.encoding.unwrap_or(Encoding::Gb18030),
            config,
        }
    }

    fn step(&mut self, at_end: bool, out: &mut Vec<Event>) -> RecordStep {
        let buf = &self.buf;
        let offset = self.base;
        let lead = buf.iter().take_while(|&&b| is_line_end(b)).count();
        if lead > 0 {
            return RecordStep::Used(lead);
        }
        if buf.starts_with(FINISH) {
            self.noise.flush("record", out);
            out.push(Event::Link(LinkEvent::Reply {
                offset,
                reply: PolledReply::End {
                    records: std::mem::take(&mut self.records),
                },
            }));
            return RecordStep::Used(FINISH.len());
        }
        let partial = |p: &[u8]| !p.is_empty() && (START.starts_with(p) || FINISH.starts_with(p));
        if buf.starts_with(START) {
            return self.record(at_end, out);
        }
        if partial(buf) && !at_end {
            return RecordStep::NeedMore;
        }
        // Noise up to where a record or FINISH may start.
        match next_start(buf, 1, true) {
            Some(p) => {
                self.noise.add_except_line_ends(offset, &buf[..p]);
                RecordStep::Used(p)
            }
            // Keep a tail that may be the start of `R,` or `FINISH`.
            None if !at_end => {
                let keep = (1..FINISH.len())
                    .rev()
                    .find(|&k| k <= buf.len() && partial(&buf[buf.len() - k..]))
                    .unwrap_or(0);
                let n = buf.len() - keep;
                if n == 0 {
                    return RecordStep::NeedMore;
                }
                self.noise.add_except_line_ends(offset, &buf[..n]);
                RecordStep::Used(n)
            }
            None => {
                self.noise.add_except_line_ends(offset, buf);
                RecordStep::Used(buf.len())
            }
        }
    }

    /// A record starts at `buf[0]`.
    fn record(&mut self, at_end: bool, out: &mut Vec<Event>) -> RecordStep {
        let buf = &self.buf;
        let line_end = |from: usize| {
            from + buf[from..]
                .iter()
                .position(|&b| is_line_end(b))
                .unwrap_or(0)
        };
        // Byte ranges of the fields, so that nothing borrows the buffer past this scan.
        let mut fields: Vec<(usize, usize)> = Vec::with_capacity(FIELDS);
        let mut pos = START.len();
        let short = |n: usize| format!("record has {n} of its {FIELDS} fields");
        while fields.len() < FIELDS {
            let rest = &buf[pos..];
            let comma = memchr::memchr(b',', rest);
            let line = rest.iter().position(|&b| is_line_end(b));
            match (comma, line) {
                // A line ends inside a field: the record is short.
                (Some(c), Some(l)) if l < c => {
                    let (end, n) = (line_end(pos), fields.len());
                    return self.bad(end, "short_record", short(n), out);
                }
                (None, Some(_)) => {
                    let (end, n) = (line_end(pos), fields.len());
                    return self.bad(end, "short_record", short(n), out);
                }
                (Some(c), _) => {
                    fields.push((pos, pos + c));
                    pos += c + 1;
                }
                (None, None) if at_end => {
                    let (end, n) = (buf.len(), fields.len());
                    return self.bad(
                        end,
                        "truncated_record",
                        format!("input ends after {n} of its {FIELDS} fields"),
                        out,
                    );
                }
                (None, None) if buf.len() > MAX_RECORD => {
                    let end = buf.len();
                    return self.bad(
                        end,
                        "record_too_long",
                        format!("no field end within {MAX_RECORD} bytes"),
                        out,
                    );
                }
                (None, None) => return RecordStep::NeedMore,
            }
        }
        // The check code: a field up to its comma, unless the record ends here.
        let rest = &buf[pos..];
        if rest.is_empty() && !at_end {
            return RecordStep::NeedMore;
        }
        let ends_here = rest.is_empty()
            || is_line_end(rest[0])
            || rest.starts_with(START)
            || rest.starts_with(FINISH);
        let mut check = None;
        if !ends_here {
            match rest.iter().position(|&b| b == b',' || is_line_end(b)) {
                Some(s) => {
                    check = Some((pos, pos + s));
                    pos += s + usize::from(rest[s] == b',');
                }
                None if at_end => {
                    check = Some((pos, buf.len()));
                    pos = buf.len();
                }
                None if buf.len() > MAX_RECORD => {
                    let end = buf.len();
                    return self.bad(
                        end,
                        "record_too_long",
                        "its check code does not end".into(),
                        out,
                    );
                }
                None => return RecordStep::NeedMore,
            }
        }
        let text = |(a, b): (usize, usize)| Text::from(self.encoding.decode(&buf[a..b]).trim());
        let values: Vec<Text> = fields.iter().map(|&f| text(f)).collect();
        let check = check.map(text);
        match self.reading(self.base, &values, check) {
            Ok(r) => {
                self.noise.flush("record", out);
                self.records += 1;
                out.push(Event::Reading(Box::new(r)));
                RecordStep::Used(pos)
            }
            Err(why) => self.bad(pos, "malformed_record", why, out),
        }
    }

    /// Drop the record at the start of the buffer; the next one may start anywhere before
    /// `end` (a short record's fields may hold the next record's start).
    fn bad(
        &mut self,
        end: usize,
        code: &'static str,
        why: String,
        out: &mut Vec<Event>,
    ) -> RecordStep {
        self.noise.flush("record", out);
        out.push(Event::Diagnostic(Diagnostic::error(
            code,
            self.base,
            format!("{why}: record dropped"),
        )));
        let p = next_start(&self.buf, 1, false)
            .filter(|&p| p <= end)
            .unwrap_or(end.max(1));
        RecordStep::Used(p)
    }

    fn reading(&self, offset: u64, f: &[Text], check: Option<Text>) -> Result<Reading, String> {
        let time = NaiveDateTime::parse_from_str(&f[7], "%Y-%m-%d %H:%M:%S")
            .map_err(|_| format!("date-time {:?} is not YYYY-MM-DD HH:MM:SS", f[7].as_str()))?;
        let item = f[2].as_str();
        if item.is_empty() {
            return Err("no item name".into());
        }
        let mut r = Reading::new(Protocol::Dy723pc, self.config.aliases.canonical(item));
        r.offset = Some(offset);
        r.instrument.clone_from(&self.config.instrument);
        r.analyte_code = Some(item.into());
        r.method = Some("spectrophotometric".into());
        r.sample_id = trimmed(f[0].clone());
        r.channel = f[1].parse().ok();
        r.absorbance = crate::value::parse_decimal(&f[3]);
        if !f[4].is_empty() {
            let v = crate::value::interpret(&f[4]);
            r.value = v.value;
            r.qualifier = v.qualifier;
            r.device_verdict = v.device_verdict;
            r.value_text = Some(f[4].clone());
        }
        r.unit = trimmed(f[5].clone());
        let conclusion = f[6].as_str();
        if let Some(v) = conclusion_verdict(conclusion) {
            r.device_verdict = Some(v);
        }
        r.conclusion = trimmed(f[6].clone());
        r.measured_at = self.config.utc_offset.from_local_datetime(&time).single();
        r.check = check.and_then(trimmed);
        Ok(r)
    }
}

/// 合格 / 阴性 pass, 不合格 / 阳性 fail.
fn conclusion_verdict(c: &str) -> Option<DeviceVerdict> {
    match c {
        "合格" | "阴性" => Some(DeviceVerdict::Negative),
        "不合格" | "阳性" => Some(DeviceVerdict::Positive),
        _ => None,
    }
}

impl Decoder for Dy723pcDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) {
        self.buf.extend_from_slice(chunk);
        self.run(false, out);
    }

    fn finish(&mut self, out: &mut Vec<Event>) {
        self.run(true, out);
        self.noise.flush("record", out);
    }
}

impl Dy723pcDecoder {
    fn run(&mut self, at_end: bool, out: &mut Vec<Event>) {
        while !self.buf.is_empty() {
            match self.step(at_end, out) {
                RecordStep::NeedMore => break,
                RecordStep::Used(n) => {
                    self.buf.drain(..n);
                    self.base += n as u64;
                }
            }
        }
    }
}

/// A record as the device sends it (simulators, tests).
#[derive(Debug, Clone, PartialEq)]
pub struct Dy723pcRecord {
    pub sample: String,
    pub channel: u32,
    pub item: String,
    pub absorbance: String,
    pub value: String,
    pub unit: String,
    pub conclusion: String,
    pub tested_at: NaiveDateTime,
    pub check: String,
}

/// `R,…,<check>,\r\n` for `rec`, in `encoding`.
pub fn record_line(rec: &Dy723pcRecord, encoding: Encoding) -> Vec<u8> {
    let text = format!(
        "R,{},{},{},{},{},{},{},{},{},\r\n",
        rec.sample,
        rec.channel,
        rec.item,
        rec.absorbance,
        rec.value,
        rec.unit,
        rec.conclusion,
        rec.tested_at.format("%Y-%m-%d %H:%M:%S"),
        rec.check
    );
    encoding.encode(&text).into_owned()
}

/// The end of a reply.
pub fn finish() -> &'static [u8] {
    FINISH
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoder::decode_all;

    fn decode(bytes: &[u8]) -> Vec<Event> {
        decode_all(&mut Dy723pcDecoder::new(DecoderConfig::default()), bytes)
    }

    fn readings(events: &[Event]) -> Vec<&Reading> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Reading(r) => Some(&**r),
                _ => None,
            })
            .collect()
    }

    fn codes(events: &[Event]) -> Vec<&'static str> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Diagnostic(d) => Some(d.error),
                _ => None,
            })
            .collect()
    }

    fn gb(text: &str) -> Vec<u8> {
        Encoding::Gb18030.encode(text).into_owned()
    }

    #[test]
    fn a_record_that_never_ends_is_dropped_at_its_bound() {
        let mut d = Dy723pcDecoder::new(DecoderConfig::default());
        let mut out = Vec::new();
        d.feed(b"R,0001,", &mut out);
        for _ in 0..MAX_RECORD {
            d.feed(b"x", &mut out);
            assert!(d.buf.len() <= MAX_RECORD + 1, "{}", d.buf.len());
        }
        assert!(out
            .iter()
            .any(|e| matches!(e, Event::Diagnostic(x) if x.error == "record_too_long")));
    }

    #[test]
    fn the_request_is_plain_ascii_dates() {
        let d = |m, d| NaiveDate::from_ymd_opt(2018, m, d).unwrap();
        assert_eq!(request(d(5, 1), d(5, 21)), b"D2018-05-01D2018-05-21");
    }

    #[test]
    fn the_worked_example_decodes() {
        let bytes = gb("R,0001,1,有机磷,0.512,45.3,%,合格,2018-05-21 10:05:30,5A,\r\nFINISH");
        let events = decode(&bytes);
        let r = readings(&events);
        assert_eq!(r.len(), 1, "{events:?}");
        assert_eq!(r[0].sample_id.as_deref(), Some("0001"));
        assert_eq!(r[0].channel, Some(1));
        assert_eq!(r[0].analyte, "op_carbamate");
        assert_eq!(r[0].analyte_code.as_deref(), Some("有机磷"));
        assert_eq!(r[0].value, Some(45.3));
        assert_eq!(r[0].absorbance, Some(0.512));
        assert_eq!(r[0].device_verdict, Some(DeviceVerdict::Negative));
        assert_eq!(r[0].check.as_deref(), Some("5A"));
        assert!(events.iter().any(|e| matches!(
            e,
            Event::Link(LinkEvent::Reply {
                reply: PolledReply::End { records: 1 },
                ..
            })
        )));
        assert!(codes(&events).is_empty(), "{events:?}");
    }

    #[test]
    fn an_r_inside_a_field_a_short_record_and_noise_lose_only_the_broken_record() {
        let bytes = gb(concat!(
            "xyz",
            "R,0001,1,CR-test,0.1,1.0,mg/kg,合格,2018-05-21 10:05:30,5A,\r\n",
            "R,0002,2,甲醛,0.2\r\n",
            "R,0003,3,亚硝酸盐,0.3,3.5,mg/kg,不合格,2018-05-21 10:07:00,7B,",
            "R,0004,4,硼砂,0.4,阴性,,合格,2018-05-21 10:08:00,\r\n",
            "FINISH"
        ));
        let whole = decode(&bytes);
        for split in 1..bytes.len() {
            let mut d = Dy723pcDecoder::new(DecoderConfig::default());
            let mut out = Vec::new();
            d.feed(&bytes[..split], &mut out);
            d.feed(&bytes[split..], &mut out);
            d.finish(&mut out);
            assert_eq!(out, whole, "split at {split}");
        }
        let r = readings(&whole);
        let ids: Vec<_> = r.iter().map(|r| r.sample_id.as_deref().unwrap()).collect();
        assert_eq!(ids, ["0001", "0003", "0004"], "{whole:?}");
        assert_eq!(r[0].analyte_code.as_deref(), Some("CR-test"));
        assert_eq!(r[1].analyte, "nitrite");
        assert_eq!(r[1].device_verdict, Some(DeviceVerdict::Positive));
        assert_eq!(r[2].check, None);
        assert_eq!(codes(&whole), ["noise", "short_record"]);
    }
}
