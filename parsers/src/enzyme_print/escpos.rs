//! Skipping ESC/POS printer commands in the printer stream.
//!
//! The commands carry no report content and may stand anywhere, also between the two
//! bytes of a line's text and its neighbours, so they are cut out before lines are split
//! and decoded. That is safe for GBK and GB 18030: their trail bytes are 0x30–0x39 and
//! 0x40–0xFE, never ESC (0x1B), FS (0x1C) or GS (0x1D); UTF-8 continuation bytes are all
//! above 0x7F.

use memchr::memchr3;

pub(crate) const ESC: u8 = 0x1B;
pub(crate) const FS: u8 = 0x1C;
pub(crate) const GS: u8 = 0x1D;

/// Where the stripper stands inside a command; commands may be split across chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EscPosState {
    Text,
    /// After ESC.
    Esc,
    /// After GS.
    Gs,
    /// After GS V: `m` decides whether an `n` follows.
    GsV,
    /// After FS.
    Fs,
    /// One argument byte still to skip, whatever its value (it may be LF or ESC).
    Arg,
}

/// What the stripper found next in a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// Report text, starting at the given stream offset.
    Text(&'a [u8], u64),
    /// A command the document does not list started at this offset; it and the byte
    /// after it were skipped.
    Unknown(u64),
    /// A paper cut (`GS V`) started at this offset.
    Cut(u64),
}

/// Streaming ESC/POS command stripper.
#[derive(Debug)]
pub(crate) struct EscPos {
    state: EscPosState,
    /// Stream offset of the command being skipped.
    start: u64,
}

impl EscPos {
    pub(crate) fn new() -> Self {
        EscPos {
            state: EscPosState::Text,
            start: 0,
        }
    }

    /// The next piece of `chunk` from `*i` on (`chunk[0]` is at stream offset `base`);
    /// `None` when the chunk is used up. Text runs stop before each command byte, never
    /// at line ends: the caller splits lines.
    pub(crate) fn next<'a>(
        &mut self,
        chunk: &'a [u8],
        base: u64,
        i: &mut usize,
    ) -> Option<Piece<'a>> {
        while let Some(&b) = chunk.get(*i) {
            let here = base + *i as u64;
            match self.state {
                EscPosState::Text => {
                    let rest = chunk.get(*i..).unwrap_or_default();
                    match memchr3(ESC, GS, FS, rest) {
                        Some(0) => {
                            self.start = here;
                            self.state = match b {
                                ESC => EscPosState::Esc,
                                GS => EscPosState::Gs,
                                _ => EscPosState::Fs,
                            };
                            *i += 1;
                        }
                        Some(p) => {
                            *i += p;
                            return rest.get(..p).map(|t| Piece::Text(t, here));
                        }
                        None => {
                            *i = chunk.len();
                            return Some(Piece::Text(rest, here));
                        }
                    }
                }
                EscPosState::Arg => {
                    *i += 1;
                    self.state = EscPosState::Text;
                }
                EscPosState::Esc => {
                    *i += 1;
                    match b {
                        b'@' | b'2' => self.state = EscPosState::Text,
                        b'!' | b'a' | b'E' | b'd' | b'3' => self.state = EscPosState::Arg,
                        _ => return Some(self.unknown()),
                    }
                }
                EscPosState::Gs => {
                    *i += 1;
                    match b {
                        b'!' => self.state = EscPosState::Arg,
                        b'V' => self.state = EscPosState::GsV,
                        _ => return Some(self.unknown()),
                    }
                }
                EscPosState::GsV => {
                    *i += 1;
                    // Function B cuts (65, 66) take a feed amount; the others do not.
                    self.state = if matches!(b, 0x41 | 0x42) {
                        EscPosState::Arg
                    } else {
                        EscPosState::Text
                    };
                    return Some(Piece::Cut(self.start));
                }
                EscPosState::Fs => {
                    *i += 1;
                    match b {
                        b'&' | b'.' => self.state = EscPosState::Text,
                        _ => return Some(self.unknown()),
                    }
                }
            }
        }
        None
    }

    fn unknown(&mut self) -> Piece<'static> {
        self.state = EscPosState::Text;
        Piece::Unknown(self.start)
    }

    /// End of input: the offset of a command the input stopped in the middle of.
    pub(crate) fn finish(&mut self) -> Option<u64> {
        let cut = (self.state != EscPosState::Text).then_some(self.start);
        self.state = EscPosState::Text;
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(chunks: &[&[u8]]) -> (Vec<u8>, Vec<u64>) {
        let mut e = EscPos::new();
        let (mut text, mut unknown, mut base) = (Vec::new(), Vec::new(), 0u64);
        for c in chunks {
            let mut i = 0;
            while let Some(p) = e.next(c, base, &mut i) {
                match p {
                    Piece::Text(t, _) => text.extend_from_slice(t),
                    Piece::Unknown(o) => unknown.push(o),
                    Piece::Cut(_) => {}
                }
            }
            base += c.len() as u64;
        }
        (text, unknown)
    }

    #[test]
    fn known_commands_vanish_even_split() {
        let input: &[u8] = b"a\x1b@b\x1b!\x0ac\x1ba\x01d\x1bE\x1be\x1bd\x05f\x1b2g\x1b3\x1ch\x1d!\x11i\x1dV\x00j\x1dVA\x03k\x1dVB\x1bl\x1c&m\x1c.n";
        assert_eq!(strip(&[input]), (b"abcdefghijklmn".to_vec(), vec![]));
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(strip(&bytes), (b"abcdefghijklmn".to_vec(), vec![]));
    }

    #[test]
    fn unknown_skips_two_bytes() {
        assert_eq!(
            strip(&[b"ab\x1bt", b"\x01c\x1d", b"Zd\x1cpe"]),
            (b"ab\x01cde".to_vec(), vec![2, 6, 9])
        );
    }
}
