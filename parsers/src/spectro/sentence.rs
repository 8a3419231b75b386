//! Framing: `$` … `*` CS, checksums, the 512-byte bound, noise between sentences.

use super::encode::checksum;
use super::fields::Sentences;
use super::wire::MAX_SENTENCE;
use crate::decoder::{Decoder, DecoderConfig};
use crate::event::{Diagnostic, Event};
use crate::noise::Noise;
use memchr::{memchr, memchr3};

const CR: u8 = b'\r';
const LF: u8 = b'\n';
/// Furthest index (from `$`) the `*` may be at: `*` and two digits end by byte 512.
const LAST_STAR: usize = MAX_SENTENCE - 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SentenceScan {
    /// Between sentences.
    Outside,
    /// In the rest of an over-long sentence: skip to its line end or the next `$`.
    Skip,
}

enum SentenceStep {
    NeedMore,
    Advance(usize),
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Streaming decoder of protocol `spectro`.
#[derive(Debug)]
pub struct SpectroDecoder {
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: u64,
    state: SentenceScan,
    /// Bytes after the pending sentence's `$` already searched for its end.
    scanned: usize,
    /// Start and length of the run of noise bytes being skipped.
    noise: Noise,
    sentences: Sentences,
}

impl SpectroDecoder {
    pub fn new(config: DecoderConfig) -> Self {
        SpectroDecoder {
            buf: Vec::new(),
            base: 0,
            state: SentenceScan::Outside,
            scanned: 0,
            noise: Noise::default(),
            sentences: Sentences::new(config),
        }
    }

    /// Bytes outside sentences; line ends between sentences are not noise.
    fn skip(&mut self, offset: u64, bytes: &[u8]) {
        self.noise.add_except_line_ends(offset, bytes);
    }

    fn flush_noise(&mut self, out: &mut Vec<Event>) {
        self.noise.flush("sentence", out);
    }

    fn drop_sentence(
        &mut self,
        offset: u64,
        code: &'static str,
        message: String,
        advance: usize,
        out: &mut Vec<Event>,
    ) -> SentenceStep {
        out.push(Event::Diagnostic(Diagnostic::error(code, offset, message)));
        self.scanned = 0;
        SentenceStep::Advance(advance)
    }

    /// Try to read the sentence whose `$` is at `buf[at]`.
    fn sentence(
        &mut self,
        buf: &[u8],
        at: usize,
        at_end: bool,
        out: &mut Vec<Event>,
    ) -> SentenceStep {
        let offset = self.base + at as u64;
        let s = &buf[at..];
        // Never look past where the `*` may stand: the bound holds however long the line.
        let limit = s.len().min(LAST_STAR + 1);
        let from = (1 + self.scanned).min(limit);
        let region = &s[from..limit];
        let end = match memchr3(b'*', b'$', LF, region) {
            Some(p) => Some(from + memchr(CR, &region[..p]).unwrap_or(p)),
            None => memchr(CR, region).map(|p| from + p),
        };
        let Some(end) = end else {
            if limit > LAST_STAR {
                self.state = SentenceScan::Skip;
                return self.drop_sentence(
                    offset,
                    "sentence_too_long",
                    format!("no `*` within {MAX_SENTENCE} bytes: sentence dropped"),
                    limit,
                    out,
                );
            }
            if at_end {
                return self.drop_sentence(
                    offset,
                    "truncated_sentence",
                    "input ends inside a sentence".into(),
                    s.len(),
                    out,
                );
            }
            self.scanned = limit - 1;
            return SentenceStep::NeedMore;
        };
        match s[end] {
            b'$' => self.drop_sentence(
                offset,
                "truncated_sentence",
                "a new `$` came before this sentence's `*`: sentence dropped".into(),
                end,
                out,
            ),
            CR | LF => self.drop_sentence(
                offset,
                "missing_checksum",
                "line ends without `*` and checksum: sentence dropped".into(),
                end,
                out,
            ),
            _ => self.checked(s, end, offset, at_end, out),
        }
    }

    /// The sentence `s` has its `*` at `star`: check the two digits after it.
    fn checked(
        &mut self,
        s: &[u8],
        star: usize,
        offset: u64,
        at_end: bool,
        out: &mut Vec<Event>,
    ) -> SentenceStep {
        let digits = s.get(star + 1..star + 3).unwrap_or(&s[star + 1..]);
        let hi = digits.first().and_then(|&b| hex(b));
        let lo = digits.get(1).and_then(|&b| hex(b));
        match (hi, lo) {
            (Some(h), Some(l)) => {
                self.scanned = 0;
                let body = &s[1..star];
                let sent = h << 4 | l;
                let computed = checksum(body);
                if sent != computed {
                    return self.drop_sentence(
                        offset,
                        "bad_checksum",
                        format!(
                            "checksum {sent:02X} sent, {computed:02X} computed: sentence dropped"
                        ),
                        star + 3,
                        out,
                    );
                }
                self.sentences.sentence(body, offset, out);
                SentenceStep::Advance(star + 3)
            }
            // Wait for the digits unless the input ended or a digit is already wrong.
            (Some(_), None) if digits.len() < 2 && !at_end => {
                self.scanned = star - 1;
                SentenceStep::NeedMore
            }
            (None, _) if digits.is_empty() && !at_end => {
                self.scanned = star - 1;
                SentenceStep::NeedMore
            }
            (hi, _) => {
                // Skip the digit that was there, so the remains are not taken for noise.
                let used = star + 1 + usize::from(hi.is_some());
                self.drop_sentence(
                    offset,
                    "missing_checksum",
                    "`*` is not followed by two hex digits: sentence dropped".into(),
                    used,
                    out,
                )
            }
        }
    }

    fn run(&mut self, at_end: bool, out: &mut Vec<Event>) {
        let buf = std::mem::take(&mut self.buf);
        let mut i = 0;
        while i < buf.len() {
            if self.state == SentenceScan::Skip {
                match memchr3(b'$', CR, LF, &buf[i..]) {
                    Some(p) => {
                        i += p;
                        self.state = SentenceScan::Outside;
                    }
                    None => {
                        i = buf.len();
                        break;
                    }
                }
            }
            let Some(p) = memchr(b'$', &buf[i..]) else {
                self.skip(self.base + i as u64, &buf[i..]);
                i = buf.len();
                break;
            };
            self.skip(self.base + i as u64, &buf[i..i + p]);
            i += p;
            self.flush_noise(out);
            match self.sentence(&buf, i, at_end, out) {
                SentenceStep::NeedMore => break,
                SentenceStep::Advance(n) => i += n,
            }
        }
        self.base += i as u64;
        let mut buf = buf;
        buf.drain(..i);
        self.buf = buf;
    }
}

impl Decoder for SpectroDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) {
        self.buf.extend_from_slice(chunk);
        self.run(false, out);
    }

    fn finish(&mut self, out: &mut Vec<Event>) {
        self.run(true, out);
        self.flush_noise(out);
        self.base += self.buf.len() as u64;
        self.buf.clear();
        self.scanned = 0;
        self.state = SentenceScan::Outside;
    }
}
