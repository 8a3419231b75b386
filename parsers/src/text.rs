//! Character encodings instruments send text in.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// The encodings foodgate accepts (`--encoding`, `encoding =`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// ISO-8859-1: every byte is the code point of the same number.
    Latin1,
    Utf8,
    Gbk,
    Gb18030,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Latin1 => "latin-1",
            Encoding::Utf8 => "utf-8",
            Encoding::Gbk => "gbk",
            Encoding::Gb18030 => "gb18030",
        }
    }

    /// Double-byte encodings whose trail bytes can look like ASCII delimiters
    /// (`|`, `\`, `^`, `~` are all valid GBK trail bytes).
    pub fn is_double_byte(self) -> bool {
        matches!(self, Encoding::Gbk | Encoding::Gb18030)
    }

    /// Decode text; malformed sequences become U+FFFD. Borrows when no work is needed.
    pub fn decode(self, bytes: &[u8]) -> Cow<'_, str> {
        match self {
            Encoding::Latin1 => encoding_rs::mem::decode_latin1(bytes),
            Encoding::Utf8 => String::from_utf8_lossy(bytes),
            // encoding_rs's GBK decoder is the GB 18030 decoder (the WHATWG rule), which
            // is what instruments labelled "GBK" actually need.
            Encoding::Gbk => encoding_rs::GBK.decode_without_bom_handling(bytes).0,
            Encoding::Gb18030 => encoding_rs::GB18030.decode_without_bom_handling(bytes).0,
        }
    }

    /// Encode text (encoders, simulators, tests). Unmappable characters become `?`.
    pub fn encode(self, text: &str) -> Cow<'_, [u8]> {
        match self {
            Encoding::Latin1 => {
                if text.is_ascii() {
                    Cow::Borrowed(text.as_bytes())
                } else {
                    Cow::Owned(
                        text.chars()
                            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                            .collect(),
                    )
                }
            }
            Encoding::Utf8 => Cow::Borrowed(text.as_bytes()),
            Encoding::Gbk => encoding_rs::GBK.encode(text).0,
            Encoding::Gb18030 => encoding_rs::GB18030.encode(text).0,
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An encoding name foodgate does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown encoding {0:?}: expected one of latin-1, utf-8, gbk, gb18030")]
pub struct UnknownEncoding(pub String);

impl FromStr for Encoding {
    type Err = UnknownEncoding;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "latin-1" | "latin1" | "iso-8859-1" => Ok(Encoding::Latin1),
            "utf-8" | "utf8" => Ok(Encoding::Utf8),
            "gbk" | "gb2312" => Ok(Encoding::Gbk),
            "gb18030" | "gb-18030" => Ok(Encoding::Gb18030),
            _ => Err(UnknownEncoding(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in [
            Encoding::Latin1,
            Encoding::Utf8,
            Encoding::Gbk,
            Encoding::Gb18030,
        ] {
            assert_eq!(e.as_str().parse::<Encoding>(), Ok(e));
        }
        assert!("koi8-r".parse::<Encoding>().is_err());
    }

    #[test]
    fn latin1_is_byte_for_code_point() {
        assert_eq!(
            Encoding::Latin1.decode(&[0x41, 0xE9, 0x80]),
            "A\u{e9}\u{80}"
        );
    }

    #[test]
    fn gbk_round_trips_chinese() {
        let bytes = Encoding::Gbk.encode("菠菜");
        assert_eq!(&*bytes, &[0xB2, 0xA4, 0xB2, 0xCB]);
        assert_eq!(Encoding::Gbk.decode(&bytes), "菠菜");
    }
}
