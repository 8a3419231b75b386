//! Sentence bodies to events: `FSA` → reading, `FSI` → device info, `FSH` → heartbeat.

use crate::categories::category_for_code;
use crate::datetime::parse_compact;
use crate::decoder::DecoderConfig;
use crate::event::{DeviceInfo, Diagnostic, Event, Heartbeat};
use crate::reading::{DeviceVerdict, Protocol, Qualifier, Reading, Text};
use crate::text::Encoding;
use crate::value::{interpret, parse_decimal};
use memchr::memchr;

/// `FSA` plus its eleven fields.
const FSA_FIELDS: usize = 12;
const FSI_FIELDS: usize = 4;
const FSH_FIELDS: usize = 2;
/// More pieces than any sentence has; counting stops there.
const MAX_FIELDS: usize = FSA_FIELDS + 1;

/// A sentence whose checksum is right but whose fields cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadField {
    #[error("{kind} sentence has {got} field(s), expected {expected}")]
    FieldCount {
        kind: &'static str,
        expected: usize,
        got: String,
    },
    #[error("{field} {text:?} is not a number")]
    BadNumber { field: &'static str, text: String },
}

/// Up to [`MAX_FIELDS`] comma-separated pieces, without allocating. `,` (0x2C) is never a
/// GBK or GB 18030 trail byte, so a plain byte split is safe for those encodings.
struct Fields<'a> {
    items: [&'a [u8]; MAX_FIELDS],
    len: usize,
    /// More pieces than [`MAX_FIELDS`].
    more: bool,
}

impl<'a> Fields<'a> {
    fn split(body: &'a [u8]) -> Self {
        let mut f = Fields {
            items: [&[]; MAX_FIELDS],
            len: 0,
            more: false,
        };
        let mut rest = body;
        loop {
            if f.len == MAX_FIELDS {
                f.more = true;
                break;
            }
            match memchr(b',', rest) {
                Some(p) => {
                    f.items[f.len] = &rest[..p];
                    f.len += 1;
                    rest = &rest[p + 1..];
                }
                None => {
                    f.items[f.len] = rest;
                    f.len += 1;
                    break;
                }
            }
        }
        f
    }

    fn get(&self, n: usize) -> &'a [u8] {
        self.items.get(n).copied().unwrap_or(&[])
    }

    fn expect(&self, kind: &'static str, expected: usize) -> Result<(), BadField> {
        if self.len == expected && !self.more {
            Ok(())
        } else {
            Err(BadField::FieldCount {
                kind,
                expected,
                got: if self.more {
                    format!("more than {MAX_FIELDS}")
                } else {
                    self.len.to_string()
                },
            })
        }
    }
}

fn bad_number(field: &'static str, raw: &[u8]) -> BadField {
    BadField::BadNumber {
        field,
        text: String::from_utf8_lossy(raw).into_owned(),
    }
}

/// A decimal integer field (digits only).
fn integer(field: &'static str, raw: &[u8]) -> Result<u64, BadField> {
    let t = raw.trim_ascii();
    if t.is_empty() || t.len() > 19 || !t.iter().all(u8::is_ascii_digit) {
        return Err(bad_number(field, raw));
    }
    t.iter()
        .try_fold(0u64, |acc, &b| {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        })
        .ok_or_else(|| bad_number(field, raw))
}

/// An optional decimal field: empty → `None`.
fn decimal(field: &'static str, raw: &[u8]) -> Result<Option<f64>, BadField> {
    let t = raw.trim_ascii();
    if t.is_empty() {
        return Ok(None);
    }
    std::str::from_utf8(t)
        .ok()
        .and_then(parse_decimal)
        .map(Some)
        .ok_or_else(|| bad_number(field, raw))
}

/// Decoded, trimmed text; empty → `None`.
fn text(raw: &[u8], encoding: Encoding) -> Option<Text> {
    // Most fields are ASCII, which reads the same in every supported encoding.
    if raw.is_ascii() {
        let t = std::str::from_utf8(raw.trim_ascii()).ok()?;
        return (!t.is_empty()).then(|| Text::from(t));
    }
    let t = encoding.decode(raw);
    let t = t.trim();
    (!t.is_empty()).then(|| Text::from(t))
}

/// Turns checked sentence bodies into events; remembers the instrument's serial number.
#[derive(Debug)]
pub(crate) struct Sentences {
    config: DecoderConfig,
    encoding: Encoding,
    /// Serial number from the last `FSI`.
    serial: Option<Text>,
    /// The last item code and its canonical analyte: analyzers repeat the same few items.
    last_item: Option<(Text, Text)>,
}

impl Sentences {
    pub(crate) fn new(config: DecoderConfig) -> Self {
        Sentences {
            encoding: config.encoding.unwrap_or(Encoding::Gbk),
            config,
            serial: None,
            last_item: None,
        }
    }

    /// One sentence body (the bytes between `$` and `*`) starting at stream `offset`.
    pub(crate) fn sentence(&mut self, body: &[u8], offset: u64, out: &mut Vec<Event>) {
        let fields = Fields::split(body);
        let result = match fields.get(0) {
            b"FSA" => self.fsa(&fields, offset, out),
            b"FSI" => self.fsi(&fields, offset, out),
            b"FSH" => fsh(&fields, offset, out),
            other => {
                out.push(Event::Diagnostic(Diagnostic::warning(
                    "unknown_sentence",
                    offset,
                    format!(
                        "sentence type {:?} is not FSA, FSI or FSH: ignored",
                        String::from_utf8_lossy(other)
                    ),
                )));
                Ok(())
            }
        };
        if let Err(e) = result {
            let code = match e {
                BadField::FieldCount { .. } => "field_count",
                BadField::BadNumber { .. } => "bad_number",
            };
            out.push(Event::Diagnostic(Diagnostic::error(
                code,
                offset,
                format!("{e}: sentence dropped"),
            )));
        }
    }

    fn fsi(&mut self, f: &Fields<'_>, offset: u64, out: &mut Vec<Event>) -> Result<(), BadField> {
        f.expect("FSI", FSI_FIELDS)?;
        let info = DeviceInfo {
            offset,
            serial_number: text(f.get(1), self.encoding),
            model: text(f.get(2), self.encoding),
            firmware: text(f.get(3), self.encoding),
        };
        if info.serial_number.is_some() {
            self.serial.clone_from(&info.serial_number);
        }
        out.push(Event::Device(info));
        Ok(())
    }

    fn fsa(&mut self, f: &Fields<'_>, offset: u64, out: &mut Vec<Event>) -> Result<(), BadField> {
        f.expect("FSA", FSA_FIELDS)?;
        let seq = integer("seq", f.get(1))?;
        let absorbance = decimal("absorbance", f.get(7))?;
        let dilution = decimal("dilution", f.get(10))?;
        let value_text = text(f.get(8), self.encoding);
        let value = match &value_text {
            None => Default::default(),
            Some(t) => {
                let v = interpret(t);
                // `interpret` also knows POS/NEG words; this protocol sends none.
                if v.value.is_none() && v.qualifier != Some(Qualifier::NotDetected) {
                    return Err(bad_number("value", f.get(8)));
                }
                v
            }
        };
        let mut warnings = Vec::new();
        let time_raw = f.get(2).trim_ascii();
        let measured_at = if time_raw.len() == 14 && time_raw.iter().all(u8::is_ascii_digit) {
            parse_compact(time_raw, self.config.utc_offset)
        } else {
            None
        };
        if measured_at.is_none() {
            warnings.push(Diagnostic::warning(
                "bad_time",
                offset,
                format!(
                    "time {:?} is not a YYYYMMDDHHMMSS date: measured_at left null",
                    String::from_utf8_lossy(time_raw)
                ),
            ));
        }
        let device_verdict = match f.get(11).trim_ascii() {
            b"P" | b"p" => Some(DeviceVerdict::Negative),
            b"F" | b"f" => Some(DeviceVerdict::Positive),
            b"-" | b"" => None,
            other => {
                warnings.push(Diagnostic::warning(
                    "unknown_verdict",
                    offset,
                    format!(
                        "device verdict {:?} is not P, F or -: kept as null",
                        String::from_utf8_lossy(other)
                    ),
                ));
                None
            }
        };
        let item = text(f.get(3), self.encoding).unwrap_or_default();
        let analyte = match &self.last_item {
            Some((code, analyte)) if *code == item => analyte.clone(),
            _ => {
                let analyte = self.config.aliases.canonical(&item);
                self.last_item = Some((item.clone(), analyte.clone()));
                analyte
            }
        };
        let mut r = Reading::new(Protocol::Spectro, analyte);
        r.method = Some(Text::const_new(if r.analyte == "op_carbamate" {
            "enzyme_inhibition"
        } else {
            "spectrophotometric"
        }));
        r.analyte_code = Some(item);
        r.offset = Some(offset);
        r.sequence = Some(seq);
        r.instrument = self
            .serial
            .clone()
            .or_else(|| self.config.instrument.clone());
        r.measured_at = measured_at;
        r.sample_id = text(f.get(4), self.encoding);
        r.sample_name = text(f.get(5), self.encoding);
        r.category_code = text(f.get(6), self.encoding);
        r.category = r
            .category_code
            .as_deref()
            .and_then(category_for_code)
            .map(Text::const_new);
        r.absorbance = absorbance;
        r.value = value.value;
        r.qualifier = value.qualifier;
        r.value_text = value_text;
        r.unit = text(f.get(9), self.encoding);
        r.dilution = dilution;
        r.device_verdict = device_verdict;
        out.extend(warnings.into_iter().map(Event::Diagnostic));
        out.push(Event::Reading(Box::new(r)));
        Ok(())
    }
}

fn fsh(f: &Fields<'_>, offset: u64, out: &mut Vec<Event>) -> Result<(), BadField> {
    f.expect("FSH", FSH_FIELDS)?;
    let raw = f.get(1);
    let uptime_s = if raw.trim_ascii().is_empty() {
        None
    } else {
        Some(integer("uptime", raw)?)
    };
    out.push(Event::Heartbeat(Heartbeat { offset, uptime_s }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_counts_fields() {
        let f = Fields::split(b"FSH,1");
        assert_eq!((f.len, f.more), (2, false));
        let f = Fields::split(b"FSA,,,,,,,,,,,");
        assert_eq!((f.len, f.more), (12, false));
        let f = Fields::split(b"a,b,c,d,e,f,g,h,i,j,k,l,m,n,o");
        assert!(f.more);
        assert!(f.expect("FSA", FSA_FIELDS).is_err());
    }

    #[test]
    fn integers() {
        assert_eq!(integer("seq", b"0042"), Ok(42));
        assert!(integer("seq", b"").is_err());
        assert!(integer("seq", b"-1").is_err());
        assert!(integer("seq", b"99999999999999999999").is_err());
    }
}
