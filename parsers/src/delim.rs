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
        self.split_scan(hay, out, self.byte).0
    }

    /// [`Delim::split_into`], also telling whether `hay` is all ASCII without byte `other`
    /// (computed in the same pass).
    pub fn split_scan<'a, const N: usize>(
        self,
        hay: &'a [u8],
        out: &mut [&'a [u8]; N],
        other: u8,
    ) -> (usize, bool) {
        let plain = |h: &[u8]| h.is_ascii() && memchr(other, h).is_none();
        if N == 0 {
            return (0, plain(hay));
        }
        if self.double_byte {
            let mut n = 0;
            for (slot, piece) in out.iter_mut().zip(self.split(hay)) {
                *slot = piece;
                n += 1;
            }
            return (n, plain(hay));
        }
        let (delim, other_byte) = (self.byte, other);
        let mut k = 0;
        let mut start = 0;
        let (d, o) = (splat(delim), splat(other));
        // OR of every byte, and whether `other` was seen: the plain test at the end.
        let (mut all, mut others) = (0u64, 0u64);
        let mut at = 0;
        while let Some(w) = hay.get(at..at + 8) {
            let word = load(w);
            all |= word;
            others |= zero_bytes(word ^ o);
            let mut m = zero_bytes(word ^ d);
            while m != 0 {
                let p = at + (m.trailing_zeros() / 8) as usize;
                out[k] = hay.get(start..p).unwrap_or_default();
                start = p + 1;
                k += 1;
                if k == N {
                    let rest = hay.get(at + 8..).unwrap_or_default();
                    let seen = all & 0x8080_8080_8080_8080 == 0 && others == 0;
                    return (N, seen && plain(rest));
                }
                m &= m - 1;
            }
            at += 8;
        }
        let tail = hay.get(at..).unwrap_or_default();
        for (j, &b) in tail.iter().enumerate() {
            all |= u64::from(b);
            others |= u64::from(b == other_byte);
            if b == delim {
                let p = at + j;
                out[k] = hay.get(start..p).unwrap_or_default();
                start = p + 1;
                k += 1;
                if k == N {
                    let seen = all & 0x8080_8080_8080_8080 == 0 && others == 0;
                    return (N, seen && plain(&tail[j + 1..]));
                }
            }
        }
        out[k] = &hay[start..];
        (k + 1, all & 0x8080_8080_8080_8080 == 0 && others == 0)
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

/// `b` in every byte of a word.
fn splat(b: u8) -> u64 {
    u64::from(b) * 0x0101_0101_0101_0101
}

/// Eight bytes, first byte lowest.
fn load(w: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&w[..8]);
    u64::from_le_bytes(a)
}

/// `0x80` in each byte of `x` that is zero, nothing elsewhere (no carries between bytes).
fn zero_bytes(x: u64) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
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
                for esc in [b'\\', b'^', b'x'] {
                    let plain = hay.is_ascii() && !hay.contains(&esc);
                    assert_eq!(d.split_scan(hay, &mut f, esc).1, plain, "{cut}");
                    assert_eq!(d.split_scan(hay, &mut g, esc).1, plain, "{cut}");
                }
                let mut odd = hay.to_vec();
                if let Some(b) = odd.get_mut(cut / 2) {
                    *b = 0xE9;
                    assert!(!d.split_scan(&odd, &mut g, b'x').1, "{cut}");
                    assert!(!d.split_scan(&odd, &mut f, b'x').1, "{cut}");
                }
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
