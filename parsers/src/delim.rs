//! Splitting on one-byte delimiters without cutting double-byte characters.
//!
//! In GBK and GB 18030 the trail byte of a character can be `|`, `\`, `^` or `~`, the very
//! bytes ASTM and HL7 use as delimiters; a naive split would cut such a character in two.
//! For those encodings the scan steps over each lead byte's trail byte.

use memchr::memchr;

/// Finds one delimiter byte, encoding-aware.
#[derive(Debug, Clone, Copy)]
pub struct Delim {
    byte: u8,
    double_byte: bool,
}

impl Delim {
    pub fn new(byte: u8, double_byte: bool) -> Self {
        // Only bytes that can be GBK trail bytes need the careful scan.
        Delim {
            byte,
            double_byte: double_byte && byte >= 0x40,
        }
    }

    pub fn byte(self) -> u8 {
        self.byte
    }

    /// Position of the first delimiter in `hay`.
    pub fn find(self, hay: &[u8]) -> Option<usize> {
        if !self.double_byte {
            // Most fields and components are a few bytes long: a plain scan beats
            // memchr's setup there.
            if hay.len() < 16 {
                return hay.iter().position(|&b| b == self.byte);
            }
            return memchr(self.byte, hay);
        }
        let mut i = 0;
        while i < hay.len() {
            let b = hay[i];
            if b == self.byte {
                return Some(i);
            }
            // 0x81..=0xFE leads a two-byte (or, with a digit next, four-byte) character.
            i += if (0x81..=0xFE).contains(&b) { 2 } else { 1 };
        }
        None
    }

    pub fn contains(self, hay: &[u8]) -> bool {
        self.find(hay).is_some()
    }

    /// Split `hay` into its first `N` pieces, in `out`; returns how many pieces `hay` had,
    /// at most `N` (slots past that are left as they were).
    ///
    /// One pass over `hay` whatever the number of delimiters: records and segments hold a
    /// dozen short fields, where a search call per field costs more than the fields.
    pub fn split_into<'a, const N: usize>(self, hay: &'a [u8], out: &mut [&'a [u8]; N]) -> usize {
        if N == 0 {
            return 0;
        }
        if self.double_byte {
            let mut n = 0;
            for (slot, piece) in out.iter_mut().zip(self.split(hay)) {
                *slot = piece;
                n += 1;
            }
            return n;
        }
        let mut k = 0;
        let mut start = 0;
        let mut base = 0;
        let mut blocks = hay.chunks_exact(16);
        for block in &mut blocks {
            let Ok(block) = <&[u8; 16]>::try_from(block) else {
                break;
            };
            let mut m = mask16(block, self.byte);
            while m != 0 {
                let p = base + m.trailing_zeros() as usize;
                out[k] = &hay[start..p];
                start = p + 1;
                k += 1;
                if k == N {
                    return N;
                }
                m &= m - 1;
            }
            base += 16;
        }
        for (j, &b) in blocks.remainder().iter().enumerate() {
            if b == self.byte {
                let p = base + j;
                out[k] = &hay[start..p];
                start = p + 1;
                k += 1;
                if k == N {
                    return N;
                }
            }
        }
        out[k] = &hay[start..];
        k + 1
    }

    /// Split `hay` at every delimiter.
    pub fn split(self, hay: &[u8]) -> Split<'_> {
        Split {
            rest: Some(hay),
            delim: self,
        }
    }

    /// The `n`-th (0-based) piece of `hay`, or empty when there are fewer.
    pub fn nth(self, hay: &[u8], n: usize) -> &[u8] {
        self.split(hay).nth(n).unwrap_or(&[])
    }
}

/// Bit `j` set where `block[j] == byte`: written so that it compiles to one vector compare
/// and a move-mask.
#[inline]
fn mask16(block: &[u8; 16], byte: u8) -> u32 {
    let mut m = 0u32;
    for (j, &b) in block.iter().enumerate() {
        m |= u32::from(b == byte) << j;
    }
    m
}

/// Iterator over the pieces between delimiters.
#[derive(Debug, Clone)]
pub struct Split<'a> {
    rest: Option<&'a [u8]>,
    delim: Delim,
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match self.delim.find(rest) {
            Some(i) => {
                self.rest = Some(&rest[i + 1..]);
                Some(&rest[..i])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_split() {
        let d = Delim::new(b'|', false);
        let v: Vec<&[u8]> = d.split(b"a||b|").collect();
        assert_eq!(v, vec![&b"a"[..], b"", b"b", b""]);
        assert_eq!(d.nth(b"a|b", 5), b"");
    }

    #[test]
    fn split_into_matches_split() {
        let hay = b"R|1|^^^HCHO|12.5|mg/kg|<10|H||F||||20250301082410|SN1^|||||x";
        for dbcs in [false, true] {
            let d = Delim::new(b'|', dbcs);
            let all: Vec<&[u8]> = d.split(hay).collect();
            for cut in 0..hay.len() {
                let hay = &hay[..cut];
                let want: Vec<&[u8]> = d.split(hay).collect();
                let mut f: [&[u8]; 8] = [b"?"; 8];
                let n = d.split_into(hay, &mut f);
                assert_eq!(n, want.len().min(8), "{cut}");
                assert_eq!(&f[..n], &want[..n], "{cut}");
                let mut g: [&[u8]; 40] = [b"?"; 40];
                let n = d.split_into(hay, &mut g);
                assert_eq!(&g[..n], &want[..], "{cut}");
            }
            assert!(all.len() > 16);
        }
    }

    #[test]
    fn gbk_trail_byte_is_not_a_delimiter() {
        // 0x95 0x7C is one GBK character whose trail byte is '|'.
        let text = [b'a', 0x95, 0x7C, b'|', b'b'];
        let naive: Vec<&[u8]> = Delim::new(b'|', false).split(&text).collect();
        assert_eq!(naive.len(), 3);
        let aware: Vec<&[u8]> = Delim::new(b'|', true).split(&text).collect();
        assert_eq!(aware, vec![&[b'a', 0x95, 0x7C][..], b"b"]);
    }
}
