//! Framing: find `AA 55`, check version, length and CRC, dispatch good frames by type.

use super::encode::crc16;
use super::payload::{self, ResultContext};
use super::wire::{
    CRC_LEN, HEADER_LEN, MAGIC, MAX_PAYLOAD, TYPE_ACK, TYPE_DEVICE_INFO, TYPE_HEARTBEAT,
    TYPE_RESULT, VERSION,
};
use crate::decoder::{Decoder, DecoderConfig};
use crate::event::{Diagnostic, Event, FrameOutcome, LinkEvent};
use crate::noise::Noise;
use crate::text::Encoding;
use memchr::memchr;

enum FrameStep {
    NeedMore,
    Advance(usize),
}

/// The last result frame taken, to recognise its retransmission.
#[derive(Debug, Default)]
struct LastResult {
    seq: u16,
    payload: Vec<u8>,
}

/// Streaming decoder of protocol `gold-card`.
#[derive(Debug)]
pub struct GoldCardDecoder {
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// A frame was just dropped: the bytes up to the next magic are its remains, not noise.
    resync: bool,
    /// Start and length of the run of noise bytes being skipped.
    noise: Noise,
    last_result: Option<LastResult>,
    /// Sequence number of the last good reader frame, to notice lost frames.
    last_seq: Option<u16>,
    /// Serial number from the last device-info frame.
    serial: Option<crate::reading::Text>,
    encoding: Encoding,
    config: DecoderConfig,
    warnings: Vec<Diagnostic>,
}

impl GoldCardDecoder {
    pub fn new(config: DecoderConfig) -> Self {
        GoldCardDecoder {
            buf: Vec::new(),
            base: 0,
            resync: false,
            noise: Noise::default(),
            last_result: None,
            last_seq: None,
            serial: None,
            encoding: config.encoding.unwrap_or(Encoding::Gbk),
            config,
            warnings: Vec::new(),
        }
    }

    fn skip(&mut self, offset: u64, n: usize) {
        if n == 0 || self.resync {
            return;
        }
        self.noise.add(offset, n as u64);
    }

    fn flush_noise(&mut self, out: &mut Vec<Event>) {
        self.noise.flush("frame", out);
    }

    /// Drop the frame at `offset`; the search resumes after its magic, since the length
    /// that would say where it ends is not to be trusted.
    fn drop_frame(
        &mut self,
        offset: u64,
        code: &'static str,
        message: String,
        out: &mut Vec<Event>,
    ) -> FrameStep {
        out.push(Event::Diagnostic(Diagnostic::error(code, offset, message)));
        self.resync = true;
        FrameStep::Advance(MAGIC.len())
    }

    /// Try to read the frame whose magic is at `buf[at]`.
    fn frame(&mut self, buf: &[u8], at: usize, at_end: bool, out: &mut Vec<Event>) -> FrameStep {
        let offset = self.base + at as u64;
        let have = &buf[at..];
        let truncated = |me: &mut Self, out: &mut Vec<Event>| {
            if at_end {
                me.drop_frame(
                    offset,
                    "truncated_frame",
                    format!("input ends {} byte(s) into a frame", have.len()),
                    out,
                )
            } else {
                FrameStep::NeedMore
            }
        };
        let Some(&version) = have.get(2) else {
            return truncated(self, out);
        };
        if version != VERSION {
            return self.drop_frame(
                offset,
                "bad_version",
                format!("frame version 0x{version:02X}, expected 0x01: frame dropped"),
                out,
            );
        }
        let Some(len) = have
            .get(4..6)
            .map(|b| usize::from(b[0]) | usize::from(b[1]) << 8)
        else {
            return truncated(self, out);
        };
        if len > MAX_PAYLOAD {
            return self.drop_frame(
                offset,
                "frame_too_long",
                format!("payload length {len} exceeds {MAX_PAYLOAD}: frame dropped"),
                out,
            );
        }
        let total = HEADER_LEN + len + CRC_LEN;
        let Some(frame) = have.get(..total) else {
            return truncated(self, out);
        };
        let body_end = HEADER_LEN + len;
        let sent = u16::from(frame[body_end]) | u16::from(frame[body_end + 1]) << 8;
        let computed = crc16(&frame[2..body_end]);
        if sent != computed {
            return self.drop_frame(
                offset,
                "bad_crc",
                format!("CRC {sent:04X} sent, {computed:04X} computed: frame dropped"),
                out,
            );
        }
        let kind = frame[3];
        let seq = u16::from(frame[6]) | u16::from(frame[7]) << 8;
        self.good_frame(kind, seq, &frame[HEADER_LEN..body_end], offset, out);
        FrameStep::Advance(total)
    }

    fn track_seq(&mut self, seq: u16, offset: u64, out: &mut Vec<Event>) {
        if let Some(last) = self.last_seq {
            let expected = last.wrapping_add(1);
            if seq != expected {
                out.push(Event::Diagnostic(Diagnostic::warning(
                    "sequence_gap",
                    offset,
                    format!("sequence {seq} where {expected} was due: a frame was lost or the reader restarted"),
                )));
            }
        }
        self.last_seq = Some(seq);
    }

    fn link(out: &mut Vec<Event>, offset: u64, seq: u16, outcome: FrameOutcome) {
        out.push(Event::Link(LinkEvent::Frame {
            offset,
            number: u32::from(seq),
            outcome,
        }));
    }

    fn good_frame(&mut self, kind: u8, seq: u16, p: &[u8], offset: u64, out: &mut Vec<Event>) {
        match kind {
            TYPE_RESULT => self.result(seq, p, offset, out),
            TYPE_HEARTBEAT => {
                self.track_seq(seq, offset, out);
                match payload::heartbeat(p, offset) {
                    Ok(h) => out.push(Event::Heartbeat(h)),
                    Err(e) => out.push(Event::Diagnostic(Diagnostic::error(
                        "malformed_payload",
                        offset,
                        format!("{e}: frame dropped"),
                    ))),
                }
            }
            TYPE_DEVICE_INFO => {
                self.track_seq(seq, offset, out);
                match payload::device_info(p, offset) {
                    Ok(info) => {
                        if info.serial_number.is_some() {
                            self.serial.clone_from(&info.serial_number);
                        }
                        out.push(Event::Device(info));
                    }
                    Err(e) => out.push(Event::Diagnostic(Diagnostic::error(
                        "malformed_payload",
                        offset,
                        format!("{e}: frame dropped"),
                    ))),
                }
            }
            // The host's own frames show up when both directions were captured together.
            TYPE_ACK => out.push(Event::Diagnostic(Diagnostic::warning(
                "host_frame",
                offset,
                format!("host acknowledgement (sequence {seq}) in the reader's stream: ignored"),
            ))),
            other => {
                self.track_seq(seq, offset, out);
                out.push(Event::Diagnostic(Diagnostic::warning(
                    "unknown_frame_type",
                    offset,
                    format!("frame type 0x{other:02X} is not one this decoder knows: ignored"),
                )));
            }
        }
    }

    fn result(&mut self, seq: u16, p: &[u8], offset: u64, out: &mut Vec<Event>) {
        if let Some(last) = &self.last_result {
            if last.seq == seq && last.payload == p {
                out.push(Event::Diagnostic(Diagnostic::warning(
                    "retransmission",
                    offset,
                    format!("result frame {seq} repeated with the same content: taken once"),
                )));
                Self::link(out, offset, seq, FrameOutcome::Retransmission);
                return;
            }
        }
        self.track_seq(seq, offset, out);
        let cx = ResultContext {
            offset,
            seq,
            instrument: self.serial.as_deref().or(self.config.instrument.as_deref()),
            encoding: self.encoding,
            utc_offset: self.config.utc_offset,
            aliases: &self.config.aliases,
        };
        let mut warnings = std::mem::take(&mut self.warnings);
        match payload::result(p, &cx, &mut warnings) {
            Ok(reading) => {
                out.extend(warnings.drain(..).map(Event::Diagnostic));
                out.push(Event::Reading(Box::new(reading)));
                Self::link(out, offset, seq, FrameOutcome::Accepted);
                let last = self.last_result.get_or_insert_with(LastResult::default);
                last.seq = seq;
                last.payload.clear();
                last.payload.extend_from_slice(p);
            }
            Err(e) => {
                warnings.clear();
                out.push(Event::Diagnostic(Diagnostic::error(
                    "malformed_payload",
                    offset,
                    format!("{e}: frame dropped"),
                )));
                Self::link(out, offset, seq, FrameOutcome::Rejected);
            }
        }
        self.warnings = warnings;
    }

    fn run(&mut self, at_end: bool, out: &mut Vec<Event>) {
        let buf = std::mem::take(&mut self.buf);
        let mut i = 0;
        while i < buf.len() {
            let Some(p) = memchr(MAGIC[0], &buf[i..]) else {
                self.skip(self.base + i as u64, buf.len() - i);
                i = buf.len();
                break;
            };
            self.skip(self.base + i as u64, p);
            i += p;
            match buf.get(i + 1) {
                None if !at_end => break,
                Some(&b) if b == MAGIC[1] => {
                    self.resync = false;
                    self.flush_noise(out);
                    match self.frame(&buf, i, at_end, out) {
                        FrameStep::NeedMore => break,
                        FrameStep::Advance(n) => i += n,
                    }
                }
                _ => {
                    self.skip(self.base + i as u64, 1);
                    i += 1;
                }
            }
        }
        self.base += i as u64;
        let mut buf = buf;
        buf.drain(..i);
        self.buf = buf;
    }
}

impl Decoder for GoldCardDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) {
        self.buf.extend_from_slice(chunk);
        self.run(false, out);
    }

    fn finish(&mut self, out: &mut Vec<Event>) {
        self.run(true, out);
        self.flush_noise(out);
        self.base += self.buf.len() as u64;
        self.buf.clear();
        self.resync = false;
    }
}
