//! Protocol `tl310`: the TL310 multi-channel pesticide-residue reader, polled by the host
//! (`docs/protocols.md`). The host sends a comm test, then a read request by date (or "read
//! all" for firmware `10`); the device answers with one 27-byte record frame per record and
//! sends nothing for a day without records.

use crate::decoder::{Decoder, DecoderConfig};
use crate::event::{Diagnostic, Event, FrameOutcome, LinkEvent, PolledReply};
use crate::lz4000t::{date_bytes, datetime_of, hex};
use crate::polled_frame::{self, by_length, crc_of, FrameScanner, FrameShape, END, MAX_FRAME};
use crate::reading::{DeviceVerdict, Protocol, Reading};
use chrono::{NaiveDate, NaiveDateTime, TimeZone};

pub const CMD_COMM_TEST: u8 = 0x01;
pub const CMD_COMM_REPLY: u8 = 0x02;
pub const CMD_READ: u8 = 0x15;
pub const CMD_RECORD: u8 = 0x16;

const RECORD_LEN: usize = 27;
const RECORD_PREFIX: [u8; 3] = [CMD_RECORD, 0x15, 0x00];
/// The comm-test reply's version byte; the reply ends at the first `AA` after it.
const VERSION_AT: usize = 7;
/// Firmware that only reads everything ("read all").
pub const FIRMWARE_READ_ALL: u8 = 0x10;
/// A value at or above this (or exactly `7F FE`) is NA.
const NA_ABOVE: u16 = 32000;
const NA: u16 = 32766;

/// The comm test: `7E 01 01 00 FF 71 AA`.
pub fn comm_test() -> Vec<u8> {
    polled_frame::frame(CMD_COMM_TEST, &[0xFF])
}

/// Read the records of `day`.
pub fn read_request(day: NaiveDate) -> Vec<u8> {
    let d = date_bytes(day);
    polled_frame::frame(CMD_READ, &[0xFF, d[0], d[1], d[2]])
}

/// Read every stored record.
pub fn read_all_request() -> Vec<u8> {
    polled_frame::frame(CMD_READ, &[0xFF, 0xFF, 0xFF, 0xFF])
}

/// Read the last batch.
pub fn read_last_request() -> Vec<u8> {
    polled_frame::frame(CMD_READ, &[0xFF, 0x00, 0x00, 0x00])
}

fn shape(head: &[u8]) -> FrameShape {
    match head.get(1) {
        None => FrameShape::Need(2),
        Some(&CMD_COMM_REPLY) => {
            // Its end is the first `AA` after the version byte, within the frame bound: the
            // same answer however much of the stream has arrived.
            let from = VERSION_AT + 1;
            let window = &head[..head.len().min(MAX_FRAME)];
            match window.get(from..).and_then(|t| memchr::memchr(END, t)) {
                Some(p) => FrameShape::Total(from + p + 1),
                None if head.len() >= MAX_FRAME => FrameShape::Bad(
                    "frame_too_long",
                    format!("comm-test reply without its end byte within {MAX_FRAME} bytes"),
                ),
                None => FrameShape::Need(head.len().max(from) + 1),
            }
        }
        Some(&CMD_RECORD) => match head.get(1..4) {
            None => FrameShape::Need(4),
            Some(p) if p == RECORD_PREFIX => FrameShape::Total(RECORD_LEN),
            Some(p) => FrameShape::Bad(
                "malformed_frame",
                format!(
                    "record frame with length {:02X} {:02X}, expected 15 00",
                    p[1], p[2]
                ),
            ),
        },
        Some(_) => by_length(head),
    }
}

/// The limit a record's standard byte names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tl310Standard {
    pub threshold_percent: f64,
    pub basis: &'static str,
}

/// `00` → 50 % (GB/T 5009.199-2003), `01` → 70 % (NY/T 448-2001).
pub fn standard(byte: u8) -> Option<Tl310Standard> {
    match byte {
        0x00 => Some(Tl310Standard {
            threshold_percent: 50.0,
            basis: "GB/T 5009.199-2003",
        }),
        0x01 => Some(Tl310Standard {
            threshold_percent: 70.0,
            basis: "NY/T 448-2001",
        }),
        _ => None,
    }
}

/// Streaming decoder of the TL310's replies.
#[derive(Debug)]
pub struct Tl310Decoder {
    scanner: FrameScanner,
    config: DecoderConfig,
}

impl Tl310Decoder {
    pub fn new(config: DecoderConfig) -> Self {
        Tl310Decoder {
            scanner: FrameScanner::default(),
            config,
        }
    }

    fn on_frame(&self, offset: u64, f: &[u8], out: &mut Vec<Event>) {
        match f[1] {
            CMD_COMM_REPLY => {
                let firmware = hex(&f[VERSION_AT..=VERSION_AT]);
                out.push(Event::Link(LinkEvent::Reply {
                    offset,
                    reply: PolledReply::CommTest { firmware },
                }));
            }
            CMD_RECORD => self.record(offset, f, out),
            cmd => out.push(Event::Diagnostic(Diagnostic::warning(
                "unknown_command",
                offset,
                format!("frame of command 0x{cmd:02X} is no reply of this device: skipped"),
            ))),
        }
    }

    fn record(&self, offset: u64, f: &[u8], out: &mut Vec<Event>) {
        let le = |at: usize| u16::from_le_bytes([f[at], f[at + 1]]);
        let (total, index) = (le(5), le(7));
        let answer = |out: &mut Vec<Event>, outcome| {
            out.push(Event::Link(LinkEvent::Reply {
                offset,
                reply: PolledReply::Record {
                    total,
                    index,
                    outcome,
                },
            }))
        };
        if let Some((sent, computed)) = crc_of(f).filter(|(s, c)| s != c) {
            let what =
                format!("record {index} of {total}: CRC {sent:02X} sent, {computed:02X} computed");
            if self.config.check_crc {
                out.push(Event::Diagnostic(Diagnostic::error(
                    "bad_crc",
                    offset,
                    format!("{what}: record dropped"),
                )));
                return answer(out, FrameOutcome::Rejected);
            }
            out.push(Event::Diagnostic(Diagnostic::warning(
                "bad_crc",
                offset,
                format!("{what}: taken (crc = \"ignore\")"),
            )));
        }
        let number = u16::from_be_bytes([f[17], f[18]]);
        let rate = le(21);
        if number == 0 || rate == NA || rate > NA_ABOVE {
            out.push(Event::Diagnostic(Diagnostic::warning(
                "na_record",
                offset,
                format!("record {index} of {total} is NA (test number {number}, value {rate}): no reading"),
            )));
            return answer(out, FrameOutcome::Accepted);
        }
        let mut r = Reading::new(Protocol::Tl310, "op_carbamate");
        r.offset = Some(offset);
        r.instrument.clone_from(&self.config.instrument);
        r.method = Some("enzyme_inhibition".into());
        r.sample_id = Some(compact_str::format_compact!("{number}"));
        r.channel = Some(u32::from(f[9]));
        r.standard = Some(compact_str::format_compact!("{:02X}", f[10]));
        r.value_text = Some(compact_str::format_compact!("{}.{}", rate / 10, rate % 10));
        r.value = Some(f64::from(rate) / 10.0);
        r.unit = Some("%".into());
        r.sequence = Some(u64::from(index));
        r.device_verdict = match f[23] {
            0x02 => Some(DeviceVerdict::Negative),
            0x01 => Some(DeviceVerdict::Positive),
            _ => None,
        };
        match datetime_of(&f[11..17]) {
            Some(t) => r.measured_at = self.config.utc_offset.from_local_datetime(&t).single(),
            None => out.push(Event::Diagnostic(Diagnostic::warning(
                "bad_date",
                offset,
                format!(
                    "record {index}: test time {} is not a date and time: kept without one",
                    hex(&f[11..17])
                ),
            ))),
        }
        out.push(Event::Reading(Box::new(r)));
        answer(out, FrameOutcome::Accepted);
    }
}

impl Decoder for Tl310Decoder {
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

/// A record as the device holds it (simulators, tests).
#[derive(Debug, Clone, PartialEq)]
pub struct Tl310Record {
    pub channel: u8,
    pub standard: u8,
    pub tested_at: NaiveDateTime,
    pub number: u16,
    /// Inhibition rate × 10 (32766: NA).
    pub rate_x10: u16,
    /// `02` pass, `01` exceeds the limit.
    pub conclusion: u8,
}

/// The record frame of `rec`, record `index` of `total`.
pub fn record_frame(rec: &Tl310Record, index: u16, total: u16) -> Vec<u8> {
    use chrono::Timelike;
    let t = rec.tested_at;
    let d = date_bytes(t.date());
    let mut data = vec![0xFF];
    data.extend_from_slice(&total.to_le_bytes());
    data.extend_from_slice(&index.to_le_bytes());
    data.extend_from_slice(&[rec.channel, rec.standard, d[0], d[1], d[2]]);
    data.extend_from_slice(&[t.hour() as u8, t.minute() as u8, t.second() as u8]);
    data.extend_from_slice(&rec.number.to_be_bytes());
    data.extend_from_slice(&[0, 0]);
    data.extend_from_slice(&rec.rate_x10.to_le_bytes());
    data.extend_from_slice(&[rec.conclusion, 0]);
    polled_frame::frame(CMD_RECORD, &data)
}

/// A comm-test reply carrying firmware version `version` at byte 7.
pub fn comm_reply(version: u8) -> Vec<u8> {
    polled_frame::frame(CMD_COMM_REPLY, &[0xFF, 0x00, 0x00, version])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoder::decode_all;

    fn bytes(hex: &str) -> Vec<u8> {
        hex.split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2018, 5, 21).unwrap()
    }

    #[test]
    fn requests_are_the_documented_bytes() {
        assert_eq!(comm_test(), bytes("7E 01 01 00 FF 71 AA"));
        assert_eq!(read_request(day()), bytes("7E 15 04 00 FF 12 05 15 C2 AA"));
        assert_eq!(read_last_request(), bytes("7E 15 04 00 FF 00 00 00 2B AA"));
        assert_eq!(read_all_request(), bytes("7E 15 04 00 FF FF FF FF 4D AA"));
    }

    #[test]
    fn the_worked_records_decode_and_the_na_one_gives_no_reading() {
        let one = bytes(
            "7E 16 15 00 FF 03 00 01 00 04 00 12 05 15 0A 05 1E 00 0C 00 00 C5 01 02 00 A2 AA",
        );
        let na = bytes(
            "7E 16 15 00 FF 03 00 02 00 05 01 12 05 15 0A 06 00 00 0D 00 00 FE 7F 00 00 66 AA",
        );
        let mut stream = comm_reply(0x21);
        stream.extend_from_slice(&one);
        stream.extend_from_slice(&na);
        let events = decode_all(&mut Tl310Decoder::new(DecoderConfig::default()), &stream);
        let readings: Vec<&Reading> = events
            .iter()
            .filter_map(|e| match e {
                Event::Reading(r) => Some(&**r),
                _ => None,
            })
            .collect();
        assert_eq!(readings.len(), 1, "{events:?}");
        let r = readings[0];
        assert_eq!(r.sample_id.as_deref(), Some("12"));
        assert_eq!(r.channel, Some(4));
        assert_eq!(r.standard.as_deref(), Some("00"));
        assert_eq!(r.value_text.as_deref(), Some("45.3"));
        assert_eq!(r.device_verdict, Some(DeviceVerdict::Negative));
        assert_eq!(
            r.measured_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2018-05-21T10:05:30+08:00")
        );
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::Diagnostic(d) if d.error == "na_record")));
        assert!(events.iter().any(|e| matches!(
            e,
            Event::Link(LinkEvent::Reply { reply: PolledReply::CommTest { firmware }, .. }) if firmware == "21"
        )));
        let rec = Tl310Record {
            channel: 4,
            standard: 0,
            tested_at: day().and_hms_opt(10, 5, 30).unwrap(),
            number: 12,
            rate_x10: 453,
            conclusion: 2,
        };
        assert_eq!(record_frame(&rec, 1, 3), one);
    }

    #[test]
    fn a_comm_reply_without_its_end_byte_is_the_same_in_any_chunking() {
        // Found by the fuzzer: the end byte came after the frame bound, which a whole read
        // took as the end and a byte-at-a-time read did not.
        let data = bytes("7E 02 04 00 7E 16 15 00 FF 03 00 1F 00 04 00 FF FF FF FF FF FF FF FF FF FF FF FF FF FF FF 12 05 15 0A 05 1E 00 0C 00 00 C5 03 00 00 00 00 00 00 00 00 FF 03 00 02 00 05 01 12 05 15 0A 06 00 00 0D 00 00 FE 7F 00 00 66 AA 7E 16 15 00 FF 03 00 03 00 06 01 12 05 15 0A 07 2D 00 0E 00 00 C8 02 01 00 45 AA C8 02 01 00 45 AA");
        let whole = decode_all(&mut Tl310Decoder::new(DecoderConfig::default()), &data);
        let mut d = Tl310Decoder::new(DecoderConfig::default());
        let mut out = Vec::new();
        for b in &data {
            d.feed(std::slice::from_ref(b), &mut out);
        }
        d.finish(&mut out);
        assert_eq!(out, whole);
        assert!(matches!(&whole[0], Event::Diagnostic(x) if x.error == "frame_too_long"));
    }

    #[test]
    fn crc_ignore_keeps_a_record_with_a_warning() {
        let mut f = bytes(
            "7E 16 15 00 FF 03 00 01 00 04 00 12 05 15 0A 05 1E 00 0C 00 00 C5 01 02 00 A2 AA",
        );
        f[25] = 0;
        let strict = decode_all(&mut Tl310Decoder::new(DecoderConfig::default()), &f);
        assert!(!strict.iter().any(|e| matches!(e, Event::Reading(_))));
        let lax = DecoderConfig {
            check_crc: false,
            ..DecoderConfig::default()
        };
        let events = decode_all(&mut Tl310Decoder::new(lax), &f);
        assert!(events.iter().any(|e| matches!(e, Event::Reading(_))));
        assert!(events.iter().any(
            |e| matches!(e, Event::Diagnostic(d) if d.error == "bad_crc" && d.level == crate::event::Level::Warning)
        ));
    }
}
