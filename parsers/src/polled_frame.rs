//! The binary framing of the polled vendor devices `lz4000t` and `tl310`:
//! `7E | CMD | LEN_lo LEN_hi | DATA[LEN] | CRC-8 | AA` (`docs/protocols.md`).
//!
//! There is no byte stuffing: a `7E` or `AA` inside DATA is data, so a frame is found by its
//! start flag and the length its command has, never by searching for the end byte. What each
//! command's frame looks like is the protocol's own ([`FrameShape`]); finding frames in a stream of
//! any chunking, skipping noise and resynchronising after a broken frame is shared here
//! ([`FrameScanner`]).

use crate::event::{Diagnostic, Event};
use crate::noise::Noise;
use crc::{Algorithm, Crc};

pub const FLAG: u8 = 0x7E;
pub const END: u8 = 0xAA;
/// Flag, command and the two length bytes.
pub const HEADER: usize = 4;
/// The longest frame any command of these devices has; a length beyond it is a broken frame.
pub const MAX_FRAME: usize = 64;

/// CRC-8 with polynomial 0x31, init 0, MSB first, no reflection, no xorout (check value of
/// "123456789": 0xA2). Not CRC-8/MAXIM, which reflects the same polynomial.
const CRC8_31: Algorithm<u8> = Algorithm {
    width: 8,
    poly: 0x31,
    init: 0x00,
    refin: false,
    refout: false,
    xorout: 0x00,
    check: 0xA2,
    residue: 0x00,
};
const CRC8: Crc<u8> = Crc::<u8>::new(&CRC8_31);

/// The CRC-8 of `bytes` (a frame's CMD, LEN and DATA).
pub fn crc8(bytes: &[u8]) -> u8 {
    CRC8.checksum(bytes)
}

/// A frame of command `cmd` carrying `data`.
pub fn frame(cmd: u8, data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(HEADER + data.len() + 2);
    out.push(FLAG);
    out.push(cmd);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(data);
    out.push(crc8(&out[1..]));
    out.push(END);
    out
}

/// The sent and the computed CRC of a whole frame (`7E … crc AA`), when it is long enough to
/// have one.
pub fn crc_of(frame: &[u8]) -> Option<(u8, u8)> {
    let n = frame.len();
    (n >= HEADER + 2).then(|| (frame[n - 2], crc8(&frame[1..n - 2])))
}

/// How long the frame that starts at a flag is, as far as its first bytes tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameShape {
    /// At least this many bytes are needed to tell.
    Need(usize),
    /// The frame is this many bytes, end byte included.
    Total(usize),
    /// Not a frame of this protocol: the flag is dropped and the search goes on after it.
    Bad(&'static str, String),
}

/// The usual rule: the length bytes say it (`HEADER + LEN + 2`), within [`MAX_FRAME`].
pub fn by_length(head: &[u8]) -> FrameShape {
    let Some(l) = head.get(2..4) else {
        return FrameShape::Need(HEADER);
    };
    let total = HEADER + usize::from(u16::from_le_bytes([l[0], l[1]])) + 2;
    if total > MAX_FRAME {
        FrameShape::Bad(
            "frame_too_long",
            format!("length {} exceeds {MAX_FRAME} bytes", total - HEADER - 2),
        )
    } else {
        FrameShape::Total(total)
    }
}

/// Finds frames in a byte stream fed in chunks of any size.
#[derive(Debug, Default)]
pub struct FrameScanner {
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: u64,
    noise: Noise,
    /// A frame was just dropped: what follows up to the next flag is its rest, not noise.
    resync: bool,
}

impl FrameScanner {
    /// Take `chunk`; call `on_frame(offset, frame)` for every frame now complete (end byte
    /// checked). `shape` says how long a frame is from its first bytes (flag first).
    pub fn feed(
        &mut self,
        chunk: &[u8],
        shape: impl Fn(&[u8]) -> FrameShape,
        out: &mut Vec<Event>,
        mut on_frame: impl FnMut(u64, &[u8], &mut Vec<Event>),
    ) {
        self.buf.extend_from_slice(chunk);
        let mut at = 0;
        loop {
            let rest = &self.buf[at..];
            let Some(p) = memchr::memchr(FLAG, rest) else {
                self.skip(at, rest.len());
                at = self.buf.len();
                break;
            };
            self.skip(at, p);
            at += p;
            // A repeated flag: the last one starts the frame.
            if self.buf.get(at + 1) == Some(&FLAG) {
                self.skip(at, 1);
                at += 1;
                continue;
            }
            let offset = self.base + at as u64;
            let head = &self.buf[at..];
            let total = match shape(head) {
                FrameShape::Need(n) if n > MAX_FRAME => {
                    self.bad(
                        offset,
                        "frame_too_long",
                        "no end within the frame bound",
                        out,
                    );
                    at += 1;
                    continue;
                }
                FrameShape::Need(_) => break,
                FrameShape::Bad(code, why) => {
                    self.bad(offset, code, &why, out);
                    at += 1;
                    continue;
                }
                FrameShape::Total(n) if n > MAX_FRAME => {
                    self.bad(offset, "frame_too_long", "longer than the frame bound", out);
                    at += 1;
                    continue;
                }
                FrameShape::Total(n) => n,
            };
            if head.len() < total {
                break;
            }
            if head[total - 1] != END {
                let why = format!(
                    "byte {total} of the frame is 0x{:02X}, not the end byte AA",
                    head[total - 1]
                );
                self.bad(offset, "malformed_frame", &why, out);
                at += 1;
                continue;
            }
            self.noise.flush("frame", out);
            self.resync = false;
            on_frame(offset, &head[..total], out);
            at += total;
        }
        self.buf.drain(..at);
        self.base += at as u64;
    }

    /// End of input: a frame still incomplete is lost.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        if !self.buf.is_empty() {
            if self.buf[0] == FLAG {
                self.noise.flush("frame", out);
                out.push(Event::Diagnostic(Diagnostic::error(
                    "truncated_frame",
                    self.base,
                    format!("input ends {} byte(s) into a frame", self.buf.len()),
                )));
            } else {
                self.skip(0, self.buf.len());
            }
            self.base += self.buf.len() as u64;
            self.buf.clear();
        }
        self.noise.flush("frame", out);
    }

    fn skip(&mut self, at: usize, n: usize) {
        if n > 0 && !self.resync {
            self.noise.add(self.base + at as u64, n as u64);
        }
    }

    fn bad(&mut self, offset: u64, code: &'static str, why: &str, out: &mut Vec<Event>) {
        self.noise.flush("frame", out);
        out.push(Event::Diagnostic(Diagnostic::error(
            code,
            offset,
            format!("{why}: frame dropped"),
        )));
        self.resync = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_documented_check_value_and_worked_frames() {
        assert_eq!(crc8(b"123456789"), 0xA2);
        // Two request frames written out by hand in the vendor's own source.
        assert_eq!(crc8(&[0x15, 0x04, 0x00, 0xFF, 0x00, 0x00, 0x00]), 0x2B);
        assert_eq!(crc8(&[0x15, 0x04, 0x00, 0xFF, 0xFF, 0xFF, 0xFF]), 0x4D);
        assert_eq!(
            frame(0x00, &[0, 0]),
            [0x7E, 0x00, 0x02, 0x00, 0x00, 0x00, 0x07, 0xAA]
        );
    }

    fn scan(bytes: &[u8], sizes: &[usize]) -> (Vec<(u64, Vec<u8>)>, Vec<Event>) {
        let mut s = FrameScanner::default();
        let (mut frames, mut out) = (Vec::new(), Vec::new());
        let mut rest = bytes;
        let mut k = 0;
        while !rest.is_empty() {
            let n = sizes[k % sizes.len()].clamp(1, rest.len());
            s.feed(&rest[..n], by_length, &mut out, |o, f, _| {
                frames.push((o, f.to_vec()))
            });
            rest = &rest[n..];
            k += 1;
        }
        s.finish(&mut out);
        (frames, out)
    }

    #[test]
    fn frames_are_found_by_length_in_any_chunking_after_noise_and_broken_frames() {
        let good = frame(0x13, &[0x12, 0x05, 0x15, 0x02, 0x00]);
        let mut bytes = b"xx".to_vec();
        // 7E and AA inside the data are data.
        let inner = frame(0x11, &[0x7E, 0xAA, 0x7E]);
        bytes.extend_from_slice(&inner);
        // A frame whose end byte is wrong: dropped, the scan resumes after its flag.
        let mut broken = good.clone();
        *broken.last_mut().unwrap() = 0x00;
        bytes.extend_from_slice(&broken);
        bytes.extend_from_slice(&good);
        bytes.extend_from_slice(&good[..5]);
        let whole = scan(&bytes, &[bytes.len()]);
        for split in 1..bytes.len() {
            assert_eq!(scan(&bytes, &[split]), whole, "chunks of {split}");
        }
        let (frames, out) = whole;
        assert_eq!(frames, [(2, inner.clone()), (2 + 9 + 11, good.clone())]);
        let codes: Vec<&str> = out
            .iter()
            .filter_map(|e| match e {
                Event::Diagnostic(d) => Some(d.error),
                _ => None,
            })
            .collect();
        assert_eq!(codes, ["noise", "malformed_frame", "truncated_frame"]);
    }
}
