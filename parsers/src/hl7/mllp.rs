//! MLLP framing (`VT` message `FS CR`) and the bare-export form (messages back to back).

use super::message::Messages;
use super::wire::{CR, FS, LF, MAX_MESSAGE, VT};
use crate::decoder::{Decoder, DecoderConfig};
use crate::event::{Diagnostic, Event};
use crate::noise::Noise;
use memchr::{memchr, memchr2, memmem};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing but whitespace seen yet.
    Undecided,
    Framed,
    Bare,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MllpState {
    /// Framed, between blocks: looking for VT; anything else is noise.
    Between,
    /// Framed, `buf[0]` is the VT of an open block.
    Block,
    /// Framed, after an over-long block: silently skip to the next VT.
    Resync,
    /// Bare, `buf[0]` is the `M` of a message's `MSH`.
    Message,
    /// Bare, after an over-long message: skip to the next line starting `MSH`.
    Skip,
}

/// Streaming decoder of protocol `hl7`.
#[derive(Debug)]
pub struct Hl7Decoder {
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: u64,
    mode: Mode,
    state: MllpState,
    /// Bytes of the open block or message already searched for its end.
    scanned: usize,
    /// Start and length of the run of noise bytes being skipped.
    noise: Noise,
    messages: Messages,
}

/// Where the next bare message starts, as far as `hay` tells.
enum Next {
    /// A line `MSH<sep>` starts at this index.
    At(usize),
    /// None before this index; one may start here once more bytes come.
    NotBefore(usize),
}

/// The first line start `MSH` + punctuation at an index `>= from` (`from >= 1`: the byte
/// before must be CR or LF).
fn next_msh(hay: &[u8], from: usize) -> Next {
    let from = from.clamp(1, hay.len().max(1));
    let mut pos = from - 1;
    while let Some(p) = memmem::find(hay.get(pos..).unwrap_or(&[]), b"MSH") {
        let q = pos + p;
        pos = q + 1;
        if q < from || !matches!(hay[q - 1], CR | LF) {
            continue;
        }
        match hay.get(q + 3) {
            Some(b) if b.is_ascii_punctuation() => return Next::At(q),
            Some(_) => {}
            None => return Next::NotBefore(q),
        }
    }
    // A line start cut inside "MSH" at the end of what we have.
    let tail = hay.len().saturating_sub(2).max(from);
    for q in tail..hay.len() {
        if matches!(hay[q - 1], CR | LF) && b"MSH".starts_with(&hay[q..]) {
            return Next::NotBefore(q);
        }
    }
    Next::NotBefore(hay.len().max(from))
}

impl Hl7Decoder {
    pub fn new(config: DecoderConfig) -> Self {
        Hl7Decoder {
            buf: Vec::new(),
            base: 0,
            mode: Mode::Undecided,
            state: MllpState::Between,
            scanned: 0,
            noise: Noise::default(),
            messages: Messages::new(config),
        }
    }

    fn flush_noise(&mut self, out: &mut Vec<Event>) {
        self.noise.flush("MLLP block", out);
    }

    /// Bytes between blocks; line ends there are usual and not noise.
    fn add_noise(&mut self, bytes: &[u8], offset: u64) {
        self.noise.add_except_line_ends(offset, bytes);
    }

    fn too_long(&mut self, offset: u64, what: &str, out: &mut Vec<Event>) {
        out.push(Event::Diagnostic(Diagnostic::error(
            "message_too_long",
            offset,
            format!("{what} exceeds {MAX_MESSAGE} bytes: discarded"),
        )));
    }

    fn framed(&mut self, buf: &[u8], out: &mut Vec<Event>) -> usize {
        let mut i = 0;
        loop {
            let rest = &buf[i..];
            let at = self.base + i as u64;
            match self.state {
                MllpState::Between => match memchr(VT, rest) {
                    Some(p) => {
                        self.add_noise(&rest[..p], at);
                        self.flush_noise(out);
                        i += p;
                        self.state = MllpState::Block;
                        self.scanned = 0;
                    }
                    None => {
                        self.add_noise(rest, at);
                        return buf.len();
                    }
                },
                MllpState::Resync => match memchr(VT, rest) {
                    Some(p) => {
                        i += p;
                        self.state = MllpState::Between;
                    }
                    None => return buf.len(),
                },
                MllpState::Block => {
                    let content = &rest[1.min(rest.len())..];
                    let from = self.scanned.min(content.len());
                    let Some(p) = memchr2(FS, VT, &content[from..]) else {
                        if content.len() > MAX_MESSAGE {
                            self.too_long(at, "MLLP block with no FS", out);
                            self.state = MllpState::Resync;
                            self.scanned = 0;
                            return buf.len();
                        }
                        self.scanned = content.len();
                        return i;
                    };
                    let end = from + p;
                    if end > MAX_MESSAGE {
                        self.too_long(at, "MLLP block with no FS", out);
                        self.state = MllpState::Resync;
                        self.scanned = 0;
                        i += 1 + end;
                        continue;
                    }
                    if content[end] == VT {
                        out.push(Event::Diagnostic(Diagnostic::error(
                            "unterminated_block",
                            at,
                            "VT inside an open MLLP block: the open block is discarded",
                        )));
                        self.scanned = 0;
                        i += 1 + end;
                        continue;
                    }
                    let trailer = match content.get(end + 1) {
                        None => {
                            self.scanned = end;
                            return i;
                        }
                        Some(&CR) => 2,
                        Some(_) => {
                            out.push(Event::Diagnostic(Diagnostic::warning(
                                "missing_cr",
                                at + 1 + end as u64,
                                "FS not followed by CR: block taken as ended",
                            )));
                            1
                        }
                    };
                    self.messages.message(&content[..end], at + 1, out);
                    self.scanned = 0;
                    self.state = MllpState::Between;
                    i += 1 + end + trailer;
                }
                MllpState::Message | MllpState::Skip => return buf.len(),
            }
        }
    }

    fn bare(&mut self, buf: &[u8], out: &mut Vec<Event>) -> usize {
        let mut i = 0;
        loop {
            let rest = &buf[i..];
            let at = self.base + i as u64;
            match self.state {
                MllpState::Message => match next_msh(rest, self.scanned) {
                    Next::At(q) => {
                        if q > MAX_MESSAGE {
                            self.too_long(at, "bare message", out);
                        } else {
                            self.messages.message(&rest[..q], at, out);
                        }
                        self.scanned = 0;
                        i += q;
                    }
                    Next::NotBefore(q) => {
                        if q > MAX_MESSAGE {
                            self.too_long(at, "bare message", out);
                            self.state = MllpState::Skip;
                            self.scanned = 0;
                            // Keep the line end before a possible next MSH.
                            i += q - 1;
                            continue;
                        }
                        self.scanned = q;
                        return i;
                    }
                },
                MllpState::Skip => match next_msh(rest, 1) {
                    Next::At(q) => {
                        i += q;
                        self.state = MllpState::Message;
                        self.scanned = 0;
                    }
                    Next::NotBefore(q) => return i + q.saturating_sub(1),
                },
                MllpState::Between | MllpState::Block | MllpState::Resync => return buf.len(),
            }
        }
    }

    fn run(&mut self, out: &mut Vec<Event>, last: bool) {
        let buf = std::mem::take(&mut self.buf);
        let mut used = 0;
        if self.mode == Mode::Undecided {
            match buf
                .iter()
                .position(|&b| !matches!(b, CR | LF | b' ' | b'\t'))
            {
                Some(p) => {
                    let head = &buf[p..buf.len().min(p + 3)];
                    if head.len() < 3 && b"MSH".starts_with(head) && !last {
                        // Could still become a bare export.
                        used = p;
                    } else if head == b"MSH" {
                        self.mode = Mode::Bare;
                        self.state = MllpState::Message;
                        used = p;
                    } else {
                        self.mode = Mode::Framed;
                        self.state = MllpState::Between;
                        used = p;
                    }
                }
                None => used = buf.len(),
            }
        }
        // The scanners count offsets from `base`, so it must point at what they are given.
        self.base += used as u64;
        let taken = match self.mode {
            Mode::Undecided => 0,
            Mode::Framed => self.framed(&buf[used..], out),
            Mode::Bare => self.bare(&buf[used..], out),
        };
        self.base += taken as u64;
        used += taken;
        let mut buf = buf;
        buf.drain(..used);
        self.buf = buf;
    }
}

impl Decoder for Hl7Decoder {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) {
        self.buf.extend_from_slice(chunk);
        self.run(out, false);
    }

    fn finish(&mut self, out: &mut Vec<Event>) {
        self.run(out, true);
        let end = self.base + self.buf.len() as u64;
        match (self.mode, self.state) {
            (Mode::Framed, MllpState::Block) => {
                let content = self.buf.get(1..).unwrap_or(&[]);
                if content.len() == self.scanned + 1 && content.last() == Some(&FS) {
                    // FS was the very last byte: the message is whole, only its CR is missing.
                    out.push(Event::Diagnostic(Diagnostic::warning(
                        "missing_cr",
                        end - 1,
                        "FS not followed by CR: block taken as ended",
                    )));
                    let msg = content[..self.scanned].to_vec();
                    self.messages.message(&msg, self.base + 1, out);
                } else {
                    out.push(Event::Diagnostic(Diagnostic::error(
                        "unterminated_block",
                        self.base,
                        "input ends inside an MLLP block: the block is discarded",
                    )));
                }
            }
            (Mode::Framed, _) => self.flush_noise(out),
            (Mode::Bare, MllpState::Message) => {
                if self.buf.len() > MAX_MESSAGE {
                    self.too_long(self.base, "bare message", out);
                } else if !self.buf.is_empty() {
                    let msg = std::mem::take(&mut self.buf);
                    self.messages.message(&msg, self.base, out);
                }
            }
            _ => {}
        }
        self.base = end;
        self.buf.clear();
        self.scanned = 0;
        self.noise.clear();
        self.mode = Mode::Undecided;
        self.state = MllpState::Between;
    }
}
