//! E1381 framing: frames, checksums, frame numbers, transfers; and the bare-records form.

use super::records::Records;
use super::wire::{CR, ENQ, EOT, ETB, ETX, LF, MAX_FRAME_TEXT, MAX_RECORD, STX};
use crate::decoder::{Decoder, DecoderConfig};
use crate::event::{Diagnostic, Event, FrameOutcome, LinkEvent};
use crate::noise::Noise;
use crate::text::Encoding;
use memchr::{memchr2, memchr3};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamForm {
    /// Nothing but blank lines seen yet.
    Undecided,
    Framed,
    Bare,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Between frames: expecting STX, ENQ, EOT (CR/LF trailers are skipped).
    Between,
    /// After a malformed frame: skip to the next STX, ENQ or EOT.
    Resync,
    /// Bare mode: skipping the rest of an over-long line.
    SkipLine,
}

/// The frame most recently accepted, for sequence and retransmission checks.
#[derive(Debug, Default)]
struct LastFrame {
    number: u8,
    text: Vec<u8>,
}

/// Streaming decoder of protocol `astm`.
#[derive(Debug)]
pub struct AstmDecoder {
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: u64,
    mode: StreamForm,
    scan: Scan,
    /// Bytes of the pending frame or line already searched for its end.
    scanned: usize,
    last: Option<LastFrame>,
    /// The last accepted frame ended with ETB: the next must continue it.
    in_chain: bool,
    /// A frame was dropped; the next one must be its retransmission.
    dropped: Option<u64>,
    /// Start and length of the run of noise bytes being skipped.
    noise: Noise,
    /// Record text carried over from an ETB frame.
    rec: Vec<u8>,
    rec_offset: u64,
    records: Records,
}

enum AstmStep {
    NeedMore,
    Advance(usize),
}

fn is_control(b: u8) -> bool {
    matches!(b, STX | ENQ | EOT)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

impl AstmDecoder {
    pub fn new(config: DecoderConfig) -> Self {
        let encoding = config.encoding.unwrap_or(Encoding::Latin1);
        AstmDecoder {
            buf: Vec::new(),
            base: 0,
            mode: StreamForm::Undecided,
            scan: Scan::Between,
            scanned: 0,
            last: None,
            in_chain: false,
            dropped: None,
            noise: Noise::default(),
            rec: Vec::new(),
            rec_offset: 0,
            records: Records::new(config, encoding),
        }
    }

    fn flush_noise(&mut self, out: &mut Vec<Event>) {
        self.noise.flush("frame", out);
    }

    /// Everything unfinished is lost: a partial record, a message without `L`.
    fn cut(&mut self, offset: u64, why: &str, out: &mut Vec<Event>) {
        let partial = !self.rec.is_empty() || self.in_chain;
        self.rec.clear();
        self.records.cut(offset, why, partial, out);
    }

    fn reset_link(&mut self) {
        self.last = None;
        self.in_chain = false;
        self.dropped = None;
    }

    /// A frame was read but cannot be used.
    fn drop_frame(
        &mut self,
        offset: u64,
        code: &'static str,
        message: String,
        out: &mut Vec<Event>,
    ) {
        out.push(Event::Diagnostic(Diagnostic::error(code, offset, message)));
        if self.dropped.is_none() {
            self.dropped = Some(offset);
        }
    }

    fn frame_link(out: &mut Vec<Event>, offset: u64, number: u8, outcome: FrameOutcome) {
        out.push(Event::Link(LinkEvent::Frame {
            offset,
            number: u32::from(number),
            outcome,
        }));
    }

    /// Try to read a frame starting with STX at `buf[i]`.
    fn frame(&mut self, buf: &[u8], i: usize, out: &mut Vec<Event>) -> AstmStep {
        let offset = self.base + i as u64;
        let Some(&number) = buf.get(i + 1) else {
            return AstmStep::NeedMore;
        };
        if is_control(number) {
            self.drop_frame(
                offset,
                "truncated_frame",
                "frame ends right after STX".into(),
                out,
            );
            return AstmStep::Advance(1);
        }
        if !(b'0'..=b'7').contains(&number) {
            self.drop_frame(
                offset,
                "malformed_frame",
                format!("frame number byte 0x{number:02X} is not a digit 0-7"),
                out,
            );
            self.scan = Scan::Resync;
            return AstmStep::Advance(1);
        }
        let text_start = i + 2;
        let from = text_start + self.scanned;
        let rest = &buf[from.min(buf.len())..];
        let end = match memchr3(ETX, ETB, STX, rest) {
            Some(p) => {
                // An ENQ or EOT before the terminator also ends the frame early.
                let p = memchr2(ENQ, EOT, &rest[..p]).unwrap_or(p);
                Some(from + p)
            }
            None => memchr2(ENQ, EOT, rest).map(|p| from + p),
        };
        let Some(end) = end else {
            self.scanned = buf.len() - text_start;
            if self.scanned > MAX_FRAME_TEXT {
                self.scanned = 0;
                self.drop_frame(
                    offset,
                    "frame_too_long",
                    format!("frame text exceeds {MAX_FRAME_TEXT} bytes without ETX/ETB"),
                    out,
                );
                self.scan = Scan::Resync;
                return AstmStep::Advance(1);
            }
            return AstmStep::NeedMore;
        };
        let text_len = end - text_start;
        if text_len > MAX_FRAME_TEXT {
            self.scanned = 0;
            self.drop_frame(
                offset,
                "frame_too_long",
                format!("frame text exceeds {MAX_FRAME_TEXT} bytes without ETX/ETB"),
                out,
            );
            self.scan = Scan::Resync;
            return AstmStep::Advance(1);
        }
        let term = buf[end];
        if is_control(term) {
            self.scanned = 0;
            self.drop_frame(
                offset,
                "truncated_frame",
                format!(
                    "frame {} cut short: no ETX/ETB before the next control character",
                    number as char
                ),
                out,
            );
            return AstmStep::Advance(end - i);
        }
        if buf.len() < end + 3 {
            self.scanned = end - text_start;
            return AstmStep::NeedMore;
        }
        self.scanned = 0;
        let (c1, c2) = (buf[end + 1], buf[end + 2]);
        let sent = match (hex(c1), hex(c2)) {
            (Some(h), Some(l)) => h << 4 | l,
            _ => {
                self.drop_frame(
                    offset,
                    "malformed_frame",
                    format!(
                        "frame {} has no checksum digits after {}",
                        number as char,
                        if term == ETX { "ETX" } else { "ETB" }
                    ),
                    out,
                );
                // The checksum bytes may be the start of what follows.
                return AstmStep::Advance(end + 1 - i);
            }
        };
        let sum = super::encode::checksum(&buf[i + 1..=end]);
        if sum != sent {
            self.drop_frame(
                offset,
                "bad_checksum",
                format!(
                    "frame {}: checksum {:02X} sent, {sum:02X} computed; frame dropped",
                    number as char, sent
                ),
                out,
            );
            Self::frame_link(out, offset, number - b'0', FrameOutcome::Rejected);
            return AstmStep::Advance(end + 3 - i);
        }
        self.good_frame(
            number - b'0',
            &buf[text_start..end],
            term == ETX,
            offset,
            out,
        );
        AstmStep::Advance(end + 3 - i)
    }

    /// A frame whose checksum is right: apply the frame-number rules, then take its text.
    fn good_frame(
        &mut self,
        number: u8,
        text: &[u8],
        last: bool,
        offset: u64,
        out: &mut Vec<Event>,
    ) {
        if let Some(prev) = &self.last {
            if prev.number == number && prev.text == text {
                out.push(Event::Diagnostic(Diagnostic::warning(
                    "retransmission",
                    offset,
                    format!("frame {number} repeated with the same text: taken once"),
                )));
                Self::frame_link(out, offset, number, FrameOutcome::Retransmission);
                return;
            }
        }
        let expected = self.last.as_ref().map_or(1, |p| (p.number + 1) % 8);
        if let Some(dropped_at) = self.dropped.take() {
            if number != expected && (self.in_chain || self.records.in_message()) {
                self.cut(
                    dropped_at,
                    &format!("a dropped frame was not retransmitted (frame {number} came where {expected} was due)"),
                    out,
                );
            }
        } else if number != expected {
            if self.in_chain {
                self.cut(
                    offset,
                    &format!("frame {number} came where {expected} was due: a frame was lost"),
                    out,
                );
            } else {
                out.push(Event::Diagnostic(Diagnostic::warning(
                    "unexpected_frame_number",
                    offset,
                    format!("frame {number} where {expected} was due; accepted as a new start"),
                )));
            }
        }
        let prev = self.last.get_or_insert_with(LastFrame::default);
        prev.number = number;
        prev.text.clear();
        prev.text.extend_from_slice(text);
        self.in_chain = !last;
        self.take_text(text, offset + 2, last, out);
        Self::frame_link(out, offset, number, FrameOutcome::Accepted);
    }

    /// Split a frame's text into records; a record may continue into the next frame.
    fn take_text(&mut self, text: &[u8], offset: u64, last: bool, out: &mut Vec<Event>) {
        let mut start = 0;
        while let Some(p) = memchr::memchr(CR, &text[start..]) {
            let piece = &text[start..start + p];
            self.complete_record(piece, offset + start as u64, out);
            start += p + 1;
        }
        let tail = &text[start..];
        if last {
            if !tail.is_empty() || !self.rec.is_empty() {
                self.complete_record(tail, offset + start as u64, out);
            }
        } else if !tail.is_empty() {
            if self.rec.is_empty() {
                self.rec_offset = offset + start as u64;
            }
            if self.rec.len() + tail.len() > MAX_RECORD {
                self.rec.clear();
                self.cut(self.rec_offset, "a record grew beyond 1 MiB", out);
            } else {
                self.rec.extend_from_slice(tail);
            }
        }
    }

    fn complete_record(&mut self, piece: &[u8], offset: u64, out: &mut Vec<Event>) {
        if self.rec.is_empty() {
            self.records.record(piece, offset, out);
        } else {
            let mut rec = std::mem::take(&mut self.rec);
            rec.extend_from_slice(piece);
            self.records.record(&rec, self.rec_offset, out);
            rec.clear();
            self.rec = rec;
        }
    }

    fn framed(&mut self, buf: &[u8], out: &mut Vec<Event>) -> usize {
        let mut i = 0;
        while i < buf.len() {
            match self.scan {
                Scan::Resync | Scan::SkipLine => match memchr3(STX, ENQ, EOT, &buf[i..]) {
                    Some(p) => {
                        i += p;
                        self.scan = Scan::Between;
                    }
                    None => return buf.len(),
                },
                Scan::Between => {
                    let b = buf[i];
                    let offset = self.base + i as u64;
                    match b {
                        STX => {
                            self.flush_noise(out);
                            match self.frame(buf, i, out) {
                                AstmStep::NeedMore => return i,
                                AstmStep::Advance(n) => i += n,
                            }
                        }
                        ENQ | EOT => {
                            self.flush_noise(out);
                            if self.records.in_message() || !self.rec.is_empty() || self.in_chain {
                                let why = if b == EOT {
                                    "cut short by EOT"
                                } else {
                                    "cut short by ENQ"
                                };
                                self.cut(offset, why, out);
                            }
                            self.records.end_transfer();
                            self.reset_link();
                            out.push(Event::Link(if b == EOT {
                                LinkEvent::Eot { offset }
                            } else {
                                LinkEvent::Enq { offset }
                            }));
                            i += 1;
                        }
                        CR | LF => i += 1,
                        _ => {
                            self.noise.add(offset, 1);
                            i += 1;
                        }
                    }
                }
            }
        }
        i
    }

    fn bare(&mut self, buf: &[u8], out: &mut Vec<Event>) -> usize {
        let mut i = 0;
        loop {
            let rest = &buf[i..];
            if self.scan == Scan::SkipLine {
                match memchr2(CR, LF, rest) {
                    Some(p) => {
                        i += p + 1;
                        self.scan = Scan::Between;
                        continue;
                    }
                    None => return buf.len(),
                }
            }
            let from = self.scanned.min(rest.len());
            match memchr2(CR, LF, &rest[from..]) {
                Some(p) => {
                    let line = &rest[..from + p];
                    self.scanned = 0;
                    if !line.is_empty() {
                        self.records.record(line, self.base + i as u64, out);
                    }
                    i += from + p + 1;
                }
                None => {
                    if rest.len() > MAX_RECORD {
                        out.push(Event::Diagnostic(Diagnostic::error(
                            "record_too_long",
                            self.base + i as u64,
                            "a line grew beyond 1 MiB without CR/LF: dropped",
                        )));
                        self.records
                            .cut(self.base + i as u64, "a record was dropped", true, out);
                        self.scanned = 0;
                        self.scan = Scan::SkipLine;
                        return buf.len();
                    }
                    self.scanned = rest.len();
                    return i;
                }
            }
        }
    }

    /// Decode what `data` holds (the stream from `self.base` on); returns the bytes used.
    fn run_on(&mut self, data: &[u8], out: &mut Vec<Event>) -> usize {
        let mut skip = 0;
        if self.mode == StreamForm::Undecided {
            // The form is decided by the first byte that is not blank.
            skip = match data
                .iter()
                .position(|&b| !matches!(b, CR | LF | b' ' | b'\t'))
            {
                Some(p) => {
                    self.mode = if data[p] < 0x20 {
                        StreamForm::Framed
                    } else {
                        StreamForm::Bare
                    };
                    p
                }
                None => data.len(),
            };
            self.base += skip as u64;
        }
        let used = match self.mode {
            StreamForm::Undecided => 0,
            StreamForm::Framed => self.framed(&data[skip..], out),
            StreamForm::Bare => self.bare(&data[skip..], out),
        };
        self.base += used as u64;
        skip + used
    }

    fn run(&mut self, out: &mut Vec<Event>) {
        let mut buf = std::mem::take(&mut self.buf);
        let used = self.run_on(&buf, out);
        buf.drain(..used);
        self.buf = buf;
    }
}

impl Decoder for AstmDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) {
        if self.buf.is_empty() {
            // Nothing carried over: decode straight from the caller's chunk and keep only
            // the unfinished tail.
            let used = self.run_on(chunk, out);
            self.buf.extend_from_slice(&chunk[used..]);
        } else {
            self.buf.extend_from_slice(chunk);
            self.run(out);
        }
    }

    fn finish(&mut self, out: &mut Vec<Event>) {
        self.run(out);
        let end = self.base + self.buf.len() as u64;
        match self.mode {
            StreamForm::Framed => {
                if !self.buf.is_empty() && self.scan == Scan::Between {
                    // Only an unterminated frame stays in the buffer.
                    self.drop_frame(
                        self.base,
                        "truncated_frame",
                        "input ends inside a frame".into(),
                        out,
                    );
                }
                self.flush_noise(out);
                if self.records.in_message() || !self.rec.is_empty() || self.in_chain {
                    self.cut(end, "input ended before its L record", out);
                }
            }
            StreamForm::Bare => {
                if !self.buf.is_empty() && self.scan == Scan::Between {
                    let line = std::mem::take(&mut self.buf);
                    self.records.record(&line, self.base, out);
                }
                if self.records.in_message() {
                    self.records
                        .cut(end, "input ended before its L record", false, out);
                }
            }
            StreamForm::Undecided => {}
        }
        self.base = end;
        self.buf.clear();
        self.scanned = 0;
        self.scan = Scan::Between;
        self.mode = StreamForm::Undecided;
        self.reset_link();
        self.records.end_transfer();
    }
}
