//! Delimiters, escapes and character sets of one HL7 message.

use crate::delim::Delim;
use crate::text::Encoding;
use std::borrow::Cow;

/// Fields of a segment looked at: OBX-18 is the highest used.
pub(super) const FIELDS: usize = 19;

/// The five delimiters MSH-1 and MSH-2 declare.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hl7Delims {
    pub(super) field: Delim,
    pub(super) component: Delim,
    pub(super) repetition: Delim,
    pub(super) escape: Delim,
    pub(super) subcomponent: Delim,
}

/// Why MSH-1/MSH-2 cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum DelimError {
    #[error("MSH is too short to hold its field separator and 4 encoding characters")]
    TooShort,
    #[error("MSH delimiters {0:?} are not 5 distinct punctuation characters")]
    Unusable(String),
}

fn usable(b: u8) -> bool {
    b.is_ascii_punctuation()
}

impl Hl7Delims {
    /// Read MSH-1 (the byte after `MSH`) and MSH-2 (up to the next field separator).
    pub(super) fn from_msh(msh: &[u8], double_byte: bool) -> Result<Self, DelimError> {
        let Some(&field) = msh.get(3) else {
            return Err(DelimError::TooShort);
        };
        let rest = msh.get(4..).unwrap_or(&[]);
        let enc = &rest[..memchr::memchr(field, rest).unwrap_or(rest.len())];
        // v2.7 adds a 5th (truncation) character: only the first four matter here.
        let [c, r, e, s, ..] = *enc else {
            if enc.iter().all(|&b| usable(b)) && usable(field) {
                return Err(DelimError::TooShort);
            }
            return Err(DelimError::Unusable(
                String::from_utf8_lossy(&msh[3..4 + enc.len()]).into_owned(),
            ));
        };
        let all = [field, c, r, e, s];
        let distinct = (0..5).all(|i| (i + 1..5).all(|j| all[i] != all[j]));
        if !all.iter().all(|&b| usable(b)) || !distinct {
            return Err(DelimError::Unusable(
                String::from_utf8_lossy(&all).into_owned(),
            ));
        }
        Ok(Hl7Delims::new(all, double_byte))
    }

    fn new([field, c, r, e, s]: [u8; 5], double_byte: bool) -> Self {
        Hl7Delims {
            field: Delim::new(field, double_byte),
            component: Delim::new(c, double_byte),
            repetition: Delim::new(r, double_byte),
            escape: Delim::new(e, double_byte),
            subcomponent: Delim::new(s, double_byte),
        }
    }

    /// The same delimiters, scanned for another encoding.
    pub(super) fn with_double_byte(self, double_byte: bool) -> Self {
        Hl7Delims::new(
            [
                self.field.byte(),
                self.component.byte(),
                self.repetition.byte(),
                self.escape.byte(),
                self.subcomponent.byte(),
            ],
            double_byte,
        )
    }

    /// Split a segment into fields; for MSH the separator itself is MSH-1, so MSH-n is
    /// at index n-1, while for every other segment SEG-n is at index n.
    pub(super) fn fields<'a>(&self, segment: &'a [u8]) -> [&'a [u8]; FIELDS] {
        let mut f: [&[u8]; FIELDS] = [&[]; FIELDS];
        self.field.split_into(segment, &mut f);
        f
    }

    /// First repetition of a field.
    pub(super) fn first_rep(self, field: &[u8]) -> &[u8] {
        self.repetition.split(field).next().unwrap_or(&[])
    }

    /// Component `n` (0-based) of the first repetition.
    pub(super) fn component(self, field: &[u8], n: usize) -> &[u8] {
        self.component.nth(self.first_rep(field), n)
    }

    /// Resolve escape sequences in one leaf of a field (split first, unescape after).
    pub(super) fn unescape(self, raw: &[u8]) -> Cow<'_, [u8]> {
        let esc = self.escape;
        if !esc.contains(raw) {
            return Cow::Borrowed(raw);
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(p) = esc.find(rest) {
            out.extend_from_slice(&rest[..p]);
            let after = &rest[p + 1..];
            let Some(q) = esc.find(after) else {
                // No closing escape: the rest is text.
                out.extend_from_slice(&rest[p..]);
                return Cow::Owned(out);
            };
            let body = &after[..q];
            let single = match body {
                [b'F'] => Some(self.field.byte()),
                [b'S'] => Some(self.component.byte()),
                [b'T'] => Some(self.subcomponent.byte()),
                [b'R'] => Some(self.repetition.byte()),
                [b'E'] => Some(esc.byte()),
                _ => None,
            };
            match (single, body) {
                (Some(b), _) => out.push(b),
                (None, [b'X', hex @ ..]) if decode_hex(hex, &mut out) => {}
                // Formatting and character-set escapes (\H\, \.br\, \C..\) stay as sent.
                _ => out.extend_from_slice(&rest[p..p + q + 2]),
            }
            rest = &after[q + 1..];
        }
        out.extend_from_slice(rest);
        Cow::Owned(out)
    }
}

/// Append the bytes of an even, non-empty run of hex digits; false (nothing appended)
/// when it is not one.
fn decode_hex(hex: &[u8], out: &mut Vec<u8>) -> bool {
    if hex.is_empty() || hex.len() % 2 != 0 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return false;
    }
    let digit = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
    out.extend(hex.chunks_exact(2).map(|p| digit(p[0]) << 4 | digit(p[1])));
    true
}

/// MSH-18 character set name to an encoding; `None` for a name not known here.
pub(super) fn charset(name: &str) -> Option<Encoding> {
    // Every message names one: normalize the usual short ASCII name on the stack.
    let mut buf = [0u8; 32];
    if name.len() <= buf.len() && name.is_ascii() {
        let mut n = 0;
        for b in name.bytes().filter(|b| !matches!(b, b' ' | b'-' | b'_')) {
            buf[n] = b.to_ascii_uppercase();
            n += 1;
        }
        return std::str::from_utf8(&buf[..n]).ok().and_then(known_charset);
    }
    let n: String = name
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_'))
        .flat_map(char::to_uppercase)
        .collect();
    known_charset(&n)
}

/// A normalized (uppercase, no blanks, dashes or underscores) MSH-18 name to an encoding.
fn known_charset(n: &str) -> Option<Encoding> {
    match n {
        "UNICODEUTF8" | "UTF8" => Some(Encoding::Utf8),
        "GB180302000" | "GB18030" => Some(Encoding::Gb18030),
        "GBK" | "GB2312" | "GB23121980" => Some(Encoding::Gbk),
        // Every ASCII text is Latin-1 text.
        "8859/1" | "ISO8859/1" | "ISO88591" | "ASCII" | "ISOIR6" | "ISOIR100" => {
            Some(Encoding::Latin1)
        }
        _ => None,
    }
}

/// Whether `bytes` are well-formed text in `encoding`.
pub(super) fn decodable(encoding: Encoding, bytes: &[u8]) -> bool {
    match encoding {
        Encoding::Latin1 => true,
        Encoding::Utf8 => std::str::from_utf8(bytes).is_ok(),
        Encoding::Gbk => encoding_rs::GBK
            .decode_without_bom_handling_and_without_replacement(bytes)
            .is_some(),
        Encoding::Gb18030 => encoding_rs::GB18030
            .decode_without_bom_handling_and_without_replacement(bytes)
            .is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn std_delims() -> Hl7Delims {
        Hl7Delims::from_msh(b"MSH|^~\\&|X", false).unwrap()
    }

    #[test]
    fn escapes() {
        let d = std_delims();
        let un = |s: &str| String::from_utf8(d.unescape(s.as_bytes()).into_owned()).unwrap();
        assert_eq!(un(r"a\F\b\S\c\T\d\R\e\E\f"), r"a|b^c&d~e\f");
        assert_eq!(un(r"\X41E4B8AD\"), "A中");
        assert_eq!(un(r"x\H\y\.br\z"), r"x\H\y\.br\z");
        assert_eq!(un(r"\X4\"), r"\X4\");
        assert_eq!(un(r"open\F"), r"open\F");
    }

    #[test]
    fn delimiter_errors() {
        assert_eq!(
            Hl7Delims::from_msh(b"MSH|^~", false).err(),
            Some(DelimError::TooShort)
        );
        assert!(matches!(
            Hl7Delims::from_msh(b"MSH|^^\\&|", false),
            Err(DelimError::Unusable(_))
        ));
        assert!(Hl7Delims::from_msh(b"MSH#$%*@#", false).is_ok());
    }

    #[test]
    fn charsets() {
        assert_eq!(charset("UNICODE UTF-8"), Some(Encoding::Utf8));
        assert_eq!(charset("GB 18030-2000"), Some(Encoding::Gb18030));
        assert_eq!(charset("8859/1"), Some(Encoding::Latin1));
        assert_eq!(charset("KOI8"), None);
    }
}
