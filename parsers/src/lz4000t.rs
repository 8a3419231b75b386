//! Protocol `lz4000t`: the LZ-4000T pesticide-residue analyzer, polled by the host
//! (`docs/protocols.md`). The host sends a comm test, then for each day a count request and,
//! when the day has records, a read request; the device answers with one 26-byte record
//! frame per record. This module decodes the device's replies and builds the host's requests.

use crate::decoder::{Decoder, DecoderConfig};
use crate::event::{Diagnostic, Event, FrameOutcome, LinkEvent, PolledReply};
use crate::polled_frame::{self, by_length, crc_of, FrameScanner, FrameShape};
use crate::reading::{Protocol, Reading, Text};
use crate::text::Encoding;
use chrono::{NaiveDate, NaiveDateTime, TimeZone};

pub const CMD_COMM_TEST: u8 = 0x00;
pub const CMD_COMM_REPLY: u8 = 0x01;
pub const CMD_READ: u8 = 0x10;
pub const CMD_RECORD: u8 = 0x11;
pub const CMD_COUNT: u8 = 0x12;
pub const CMD_COUNT_REPLY: u8 = 0x13;

const COMM_REPLY_LEN: usize = 9;
const COUNT_REPLY_LEN: usize = 11;
const RECORD_LEN: usize = 26;
/// LEN of a record frame: 20 data bytes.
const RECORD_DATA: [u8; 2] = [0x14, 0x00];

/// The comm test: `7E 00 02 00 00 00 07 AA`.
pub fn comm_test() -> Vec<u8> {
    polled_frame::frame(CMD_COMM_TEST, &[0, 0])
}

/// The count request for `day`.
pub fn count_request(day: NaiveDate) -> Vec<u8> {
    polled_frame::frame(CMD_COUNT, &date_bytes(day))
}

/// The read request for `day`.
pub fn read_request(day: NaiveDate) -> Vec<u8> {
    polled_frame::frame(CMD_READ, &date_bytes(day))
}

/// Year − 2000, month, day, in plain binary (not BCD). Years outside 2000–2255 clamp.
pub fn date_bytes(day: NaiveDate) -> [u8; 3] {
    use chrono::Datelike;
    let y = (day.year() - 2000).clamp(0, 255) as u8;
    [y, day.month() as u8, day.day() as u8]
}

/// The date of three binary bytes (year − 2000), if it is a calendar date.
pub fn date_of(b: &[u8]) -> Option<NaiveDate> {
    match b {
        [y, m, d, ..] => {
            NaiveDate::from_ymd_opt(2000 + i32::from(*y), u32::from(*m), u32::from(*d))
        }
        _ => None,
    }
}

/// A record frame's test time (six binary bytes), if it is a real date and time.
pub(crate) fn datetime_of(b: &[u8]) -> Option<NaiveDateTime> {
    let date = date_of(b)?;
    match b.get(3..6)? {
        [h, mi, s] => date.and_hms_opt(u32::from(*h), u32::from(*mi), u32::from(*s)),
        _ => None,
    }
}

fn shape(head: &[u8]) -> FrameShape {
    match head.get(1) {
        None => FrameShape::Need(2),
        Some(&CMD_COMM_REPLY) => FrameShape::Total(COMM_REPLY_LEN),
        Some(&CMD_COUNT_REPLY) => FrameShape::Total(COUNT_REPLY_LEN),
        Some(&CMD_RECORD) => match head.get(2..4) {
            None => FrameShape::Need(4),
            Some(l) if l == RECORD_DATA => FrameShape::Total(RECORD_LEN),
            Some(l) => FrameShape::Bad(
                "malformed_frame",
                format!(
                    "record frame with length {:02X} {:02X}, expected 14 00",
                    l[0], l[1]
                ),
            ),
        },
        Some(_) => by_length(head),
    }
}

/// Streaming decoder of the LZ-4000T's replies.
#[derive(Debug)]
pub struct Lz4000tDecoder {
    scanner: FrameScanner,
    config: DecoderConfig,
    encoding: Encoding,
}

impl Lz4000tDecoder {
    pub fn new(config: DecoderConfig) -> Self {
        Lz4000tDecoder {
            scanner: FrameScanner::default(),
            encoding: config.encoding.unwrap_or(Encoding::Gbk),
            config,
        }
    }
}

fn reply(out: &mut Vec<Event>, offset: u64, reply: PolledReply) {
    out.push(Event::Link(LinkEvent::Reply { offset, reply }));
}

fn u16_le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

impl Lz4000tDecoder {
    fn on_frame(&self, offset: u64, f: &[u8], out: &mut Vec<Event>) {
        match f[1] {
            CMD_COMM_REPLY => reply(
                out,
                offset,
                PolledReply::CommTest {
                    firmware: hex(&f[2..f.len() - 1]),
                },
            ),
            CMD_COUNT_REPLY => self.count(offset, f, out),
            CMD_RECORD => self.record(offset, f, out),
            cmd => out.push(Event::Diagnostic(Diagnostic::warning(
                "unknown_command",
                offset,
                format!("frame of command 0x{cmd:02X} is no reply of this device: skipped"),
            ))),
        }
    }

    fn count(&self, offset: u64, f: &[u8], out: &mut Vec<Event>) {
        if let Some((sent, computed)) = crc_of(f).filter(|(s, c)| s != c) {
            out.push(Event::Diagnostic(Diagnostic::error(
                "bad_crc",
                offset,
                format!("count reply: CRC {sent:02X} sent, {computed:02X} computed: reply dropped"),
            )));
            return;
        }
        let Some(date) = date_of(&f[4..7]) else {
            out.push(Event::Diagnostic(Diagnostic::error(
                "bad_date",
                offset,
                format!(
                    "count reply for {:02X} {:02X} {:02X}, not a date: reply dropped",
                    f[4], f[5], f[6]
                ),
            )));
            return;
        };
        let records = u16_le(f, 7);
        reply(out, offset, PolledReply::Count { date, records });
    }

    fn record(&self, offset: u64, f: &[u8], out: &mut Vec<Event>) {
        let (total, index) = (u16_le(f, 4), u16_le(f, 6));
        let dropped = |out: &mut Vec<Event>| {
            reply(
                out,
                offset,
                PolledReply::Record {
                    total,
                    index,
                    outcome: FrameOutcome::Rejected,
                },
            )
        };
        if let Some((sent, computed)) = crc_of(f).filter(|(s, c)| s != c) {
            out.push(Event::Diagnostic(Diagnostic::error(
                "bad_crc",
                offset,
                format!(
                    "record {index} of {total}: CRC {sent:02X} sent, {computed:02X} computed: record dropped"
                ),
            )));
            return dropped(out);
        }
        let mut r = Reading::new(Protocol::Lz4000t, "op_carbamate");
        r.offset = Some(offset);
        r.instrument.clone_from(&self.config.instrument);
        r.method = Some("enzyme_inhibition".into());
        r.sample_id = Some(compact_str::format_compact!("{:04}", u16_le(f, 8)));
        let name: Vec<u8> = f[10..16].iter().copied().filter(|&b| b != 0).collect();
        r.sample_name = crate::reading::trimmed(Text::from(self.encoding.decode(&name)));
        let rate = u16_le(f, 22);
        r.value_text = Some(compact_str::format_compact!(
            "{}.{:02}",
            rate / 100,
            rate % 100
        ));
        r.value = Some(f64::from(rate) / 100.0);
        r.unit = Some("%".into());
        r.sequence = Some(u64::from(index));
        match datetime_of(&f[16..22]) {
            Some(t) => {
                r.measured_at = self.config.utc_offset.from_local_datetime(&t).single();
            }
            None => out.push(Event::Diagnostic(Diagnostic::warning(
                "bad_date",
                offset,
                format!(
                    "record {index}: test time {} is not a date and time: kept without one",
                    hex(&f[16..22])
                ),
            ))),
        }
        out.push(Event::Reading(Box::new(r)));
        reply(
            out,
            offset,
            PolledReply::Record {
                total,
                index,
                outcome: FrameOutcome::Accepted,
            },
        );
    }
}

/// Bytes as uppercase hex, space separated.
pub(crate) fn hex(b: &[u8]) -> Text {
    let mut t = Text::default();
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            t.push(' ');
        }
        t.push_str(&format!("{x:02X}"));
    }
    t
}

impl Decoder for Lz4000tDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) {
        let mut scanner = std::mem::take(&mut self.scanner);
        scanner.feed(chunk, shape, out, |offset, f, out| {
            self.on_frame(offset, f, out)
        });
        self.scanner = scanner;
    }

    fn finish(&mut self, out: &mut Vec<Event>) {
        self.scanner.finish(out);
    }
}

/// A record frame as the device sends it (simulators, tests).
#[derive(Debug, Clone, PartialEq)]
pub struct Lz4000tRecord {
    pub number: u16,
    /// GBK (or the configured encoding), at most 6 bytes: longer names are cut.
    pub name: String,
    pub tested_at: NaiveDateTime,
    /// Inhibition rate × 100.
    pub rate_x100: u16,
}

/// The record frame of `rec`, record `index` of `total`.
pub fn record_frame(rec: &Lz4000tRecord, index: u16, total: u16, encoding: Encoding) -> Vec<u8> {
    use chrono::Timelike;
    let mut data = Vec::with_capacity(20);
    data.extend_from_slice(&total.to_le_bytes());
    data.extend_from_slice(&index.to_le_bytes());
    data.extend_from_slice(&rec.number.to_le_bytes());
    let mut name = [0u8; 6];
    let enc = encoding.encode(&rec.name);
    let n = enc.len().min(6);
    name[..n].copy_from_slice(&enc[..n]);
    data.extend_from_slice(&name);
    let t = rec.tested_at;
    data.extend_from_slice(&date_bytes(t.date()));
    data.extend_from_slice(&[t.hour() as u8, t.minute() as u8, t.second() as u8]);
    data.extend_from_slice(&rec.rate_x100.to_le_bytes());
    polled_frame::frame(CMD_RECORD, &data)
}

/// The count reply for `day` with `records` records.
pub fn count_reply(day: NaiveDate, records: u16) -> Vec<u8> {
    let mut data = date_bytes(day).to_vec();
    data.extend_from_slice(&records.to_le_bytes());
    polled_frame::frame(CMD_COUNT_REPLY, &data)
}

/// A comm-test reply (its content is not documented: three bytes).
pub fn comm_reply() -> Vec<u8> {
    polled_frame::frame(CMD_COMM_REPLY, &[0x01, 0x00, 0x00])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoder::decode_all;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2018, 5, 21).unwrap()
    }

    fn bytes(hex: &str) -> Vec<u8> {
        hex.split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    }

    #[test]
    fn requests_are_the_documented_bytes() {
        assert_eq!(comm_test(), bytes("7E 00 02 00 00 00 07 AA"));
        assert_eq!(count_request(day()), bytes("7E 12 03 00 12 05 15 86 AA"));
        assert_eq!(read_request(day()), bytes("7E 10 03 00 12 05 15 28 AA"));
        assert_eq!(
            count_reply(day(), 2),
            bytes("7E 13 05 00 12 05 15 02 00 FD AA")
        );
    }

    #[test]
    fn the_worked_records_decode_and_encode_back() {
        let one =
            bytes("7E 11 14 00 02 00 01 00 25 00 B0 D7 B2 CB 00 00 12 05 15 09 1E 0F AB 11 B6 AA");
        let two =
            bytes("7E 11 14 00 02 00 02 00 26 00 B2 A4 B2 CB 00 00 12 05 15 09 29 02 42 18 BE AA");
        let mut stream = one.clone();
        stream.extend_from_slice(&two);
        let mut d = Lz4000tDecoder::new(DecoderConfig::default());
        let events = decode_all(&mut d, &stream);
        let readings: Vec<&Reading> = events
            .iter()
            .filter_map(|e| match e {
                Event::Reading(r) => Some(&**r),
                _ => None,
            })
            .collect();
        assert_eq!(readings.len(), 2, "{events:?}");
        let r = readings[0];
        assert_eq!(r.sample_id.as_deref(), Some("0037"));
        assert_eq!(r.sample_name.as_deref(), Some("白菜"));
        assert_eq!(r.value_text.as_deref(), Some("45.23"));
        assert_eq!(r.value, Some(45.23));
        assert_eq!(r.unit.as_deref(), Some("%"));
        assert_eq!(r.analyte, "op_carbamate");
        assert_eq!(
            r.measured_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2018-05-21T09:30:15+08:00")
        );
        assert_eq!(readings[1].sample_name.as_deref(), Some("菠菜"));
        assert_eq!(readings[1].value_text.as_deref(), Some("62.10"));
        let rec = Lz4000tRecord {
            number: 37,
            name: "白菜".into(),
            tested_at: day().and_hms_opt(9, 30, 15).unwrap(),
            rate_x100: 4523,
        };
        assert_eq!(record_frame(&rec, 1, 2, Encoding::Gbk), one);
    }

    #[test]
    fn a_bad_crc_drops_the_record_and_says_so() {
        let mut f =
            bytes("7E 11 14 00 02 00 01 00 25 00 B0 D7 B2 CB 00 00 12 05 15 09 1E 0F AB 11 B6 AA");
        f[24] ^= 1;
        let mut d = Lz4000tDecoder::new(DecoderConfig::default());
        let events = decode_all(&mut d, &f);
        assert!(!events.iter().any(|e| matches!(e, Event::Reading(_))));
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::Diagnostic(x) if x.error == "bad_crc" && x.offset == 0)));
        assert!(events.iter().any(|e| matches!(
            e,
            Event::Link(LinkEvent::Reply {
                reply: PolledReply::Record {
                    outcome: FrameOutcome::Rejected,
                    index: 1,
                    total: 2
                },
                ..
            })
        )));
    }
}
