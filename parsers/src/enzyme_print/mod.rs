//! Pesticide residue analyzers' printed reports (enzyme inhibition), protocol `enzyme-print`.
//!
//! The instrument has no data protocol: we read what it sends its thermal printer. The
//! decoder strips ESC/POS commands ([`escpos`]), splits lines (CR LF or LF), decodes them
//! (GBK unless configured otherwise), makes full-width spaces and colons ASCII, and runs
//! the report state machine ([`report`]) over them; table rows are parsed in [`row`].
//! A report's readings go out only once it is known to be complete.
//!
//! Choices the document leaves open:
//! - a table row that does not parse is dropped with a `bad_row` error; the rest of the
//!   report stands;
//! - a line longer than [`MAX_LINE`] bytes is dropped with `line_too_long` and discards the
//!   report in progress (`incomplete_report`);
//! - a report longer than [`MAX_REPORT_LINES`] lines is discarded (`report_too_long`);
//! - the model and serial number go out as a `Device` event before the report's readings;
//! - header facts without a field of their own go to `metadata`: `method` (the printed
//!   method text) and unknown keys as printed;

mod encode;
mod escpos;
mod report;
mod row;

pub use encode::{encode_report, Report, ReportRow};

use crate::decoder::{Decoder, DecoderConfig};
use crate::event::{Diagnostic, Event};
use crate::text::Encoding;
use escpos::{EscPos, Piece};
use memchr::memchr;
use report::Reports;
pub use report::MAX_REPORT_LINES;

/// Longest line accepted, printer commands excluded.
pub const MAX_LINE: usize = 4096;

const LF: u8 = b'\n';

/// Streaming decoder of protocol `enzyme-print`.
#[derive(Debug)]
pub struct EnzymePrintDecoder {
    encoding: Encoding,
    escpos: EscPos,
    /// Stream offset of the next chunk's first byte.
    pos: u64,
    /// The current line's text, printer commands removed.
    line: Vec<u8>,
    /// Stream offset of the current line's first text byte.
    line_start: Option<u64>,
    /// The current line went past [`MAX_LINE`] and is being skipped.
    overlong: bool,
    /// First unknown printer command in the current line.
    unknown: Option<u64>,
    /// Decoded text of the line (reused).
    text: String,
    /// The same, full-width punctuation made ASCII, when it had any (reused).
    normalized: String,
    reports: Reports,
}

/// Full-width spaces, colons and percent signs are the ASCII ones to the report's reader.
fn is_full_width(c: char) -> bool {
    matches!(c, '\u{3000}' | '：' | '％')
}

fn normalize(src: &str, dst: &mut String) {
    dst.clear();
    dst.extend(src.chars().map(|c| match c {
        '\u{3000}' => ' ',
        '：' => ':',
        '％' => '%',
        c => c,
    }));
}

/// Decode into a reused buffer: a line of Chinese text costs no allocation.
fn decode_into(encoding: Encoding, bytes: &[u8], dst: &mut String) {
    dst.clear();
    let enc = match encoding {
        Encoding::Gbk => encoding_rs::GBK,
        Encoding::Gb18030 => encoding_rs::GB18030,
        other => {
            dst.push_str(&other.decode(bytes));
            return;
        }
    };
    let mut decoder = enc.new_decoder_without_bom_handling();
    let need = decoder
        .max_utf8_buffer_length(bytes.len())
        .unwrap_or(bytes.len().saturating_mul(3));
    dst.reserve(need);
    // With room reserved for the worst case the whole input is decoded in one call;
    // malformed sequences become U+FFFD as in `Encoding::decode`.
    let _ = decoder.decode_to_string(bytes, dst, true);
}

impl EnzymePrintDecoder {
    pub fn new(config: DecoderConfig) -> Self {
        EnzymePrintDecoder {
            encoding: config.encoding.unwrap_or(Encoding::Gbk),
            escpos: EscPos::new(),
            pos: 0,
            line: Vec::new(),
            line_start: None,
            overlong: false,
            unknown: None,
            text: String::new(),
            normalized: String::new(),
            reports: Reports::new(&config),
        }
    }

    fn text(&mut self, mut t: &[u8], mut offset: u64, out: &mut Vec<Event>) {
        while !t.is_empty() {
            match memchr(LF, t) {
                Some(p) => {
                    self.append(t.get(..p).unwrap_or_default(), offset, out);
                    self.end_line(offset + p as u64, out);
                    t = t.get(p + 1..).unwrap_or_default();
                    offset += p as u64 + 1;
                }
                None => {
                    self.append(t, offset, out);
                    break;
                }
            }
        }
    }

    fn append(&mut self, seg: &[u8], offset: u64, out: &mut Vec<Event>) {
        if seg.is_empty() {
            return;
        }
        let start = *self.line_start.get_or_insert(offset);
        if self.overlong {
            return;
        }
        if self.line.len() + seg.len() > MAX_LINE {
            self.overlong = true;
            self.line.clear();
            out.push(Event::Diagnostic(Diagnostic::error(
                "line_too_long",
                start,
                format!("line longer than {MAX_LINE} bytes dropped"),
            )));
            self.reports.line_dropped(out);
            return;
        }
        self.line.extend_from_slice(seg);
    }

    fn end_line(&mut self, terminator: u64, out: &mut Vec<Event>) {
        let offset = self.line_start.unwrap_or(terminator);
        if !self.overlong {
            decode_into(self.encoding, &self.line, &mut self.text);
            let text = if self.text.contains(is_full_width) {
                normalize(&self.text, &mut self.normalized);
                &self.normalized
            } else {
                &self.text
            };
            self.reports.line(text.trim(), offset, out);
        }
        if let Some(u) = self.unknown.take() {
            self.reports.unknown_command(u, out);
        }
        self.line.clear();
        self.line_start = None;
        self.overlong = false;
    }
}

impl Decoder for EnzymePrintDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) {
        let base = self.pos;
        let mut i = 0;
        while let Some(piece) = self.escpos.next(chunk, base, &mut i) {
            match piece {
                Piece::Text(t, offset) => self.text(t, offset, out),
                Piece::Unknown(offset) => {
                    self.unknown.get_or_insert(offset);
                }
                // A cut between lines ends a report whose closing rule was printed.
                Piece::Cut(_) if self.line_start.is_none() => self.reports.paper_cut(out),
                Piece::Cut(_) => {}
            }
        }
        self.pos += chunk.len() as u64;
    }

    fn finish(&mut self, out: &mut Vec<Event>) {
        if let Some(offset) = self.escpos.finish() {
            out.push(Event::Diagnostic(Diagnostic::warning(
                "truncated_printer_command",
                offset,
                "input ended inside a printer command",
            )));
        }
        if self.line_start.is_some() || self.unknown.is_some() {
            self.end_line(self.pos, out);
        }
        self.reports.finish(out);
    }
}
