//! The payloads of good frames: result → reading, heartbeat, device info.

use super::wire::{item_analyte, item_code_text};
use crate::analytes::AliasTable;
use crate::event::{DeviceInfo, Diagnostic, Heartbeat};
use crate::reading::{DeviceVerdict, Protocol, Reading, Text};
use crate::text::Encoding;
use chrono::{DateTime, FixedOffset};

/// Fixed part of a result payload, up to and including the name length byte.
const RESULT_FIXED: usize = 43;
const DEVICE_INFO_LEN: usize = 24;

/// A payload that does not have the layout its frame type says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("result payload of {got} bytes is shorter than its fields ({need} bytes)")]
    ShortResult { need: usize, got: usize },
    #[error("heartbeat payload of {0} bytes: expected 0 or 4")]
    Heartbeat(usize),
    #[error("device-info payload of {0} bytes: expected 24")]
    DeviceInfo(usize),
}

fn u16_at(p: &[u8], at: usize) -> u16 {
    p.get(at..at + 2)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u16::from_le_bytes)
}

fn u32_at(p: &[u8], at: usize) -> u32 {
    p.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// A NUL-padded text field: up to the first NUL, surrounding spaces trimmed; empty → `None`.
fn padded_text(field: &[u8], encoding: Encoding) -> Option<Text> {
    let end = memchr::memchr(0, field).unwrap_or(field.len());
    let text = field[..end].trim_ascii();
    (!text.is_empty()).then(|| Text::from(encoding.decode(text)))
}

/// T ÷ C rounded half up to 3 decimals, in integers so that `x.xxx5` always rounds up;
/// `None` when C is 0.
pub(crate) fn ratio(t: u16, c: u16) -> Option<f64> {
    if c == 0 {
        return None;
    }
    let (t, c) = (u64::from(t), u64::from(c));
    let thousandths = (2000 * t + c) / (2 * c);
    Some(thousandths as f64 / 1000.0)
}

/// What decoding a result payload needs besides the bytes.
pub(crate) struct ResultContext<'a> {
    pub(crate) offset: u64,
    pub(crate) seq: u16,
    pub(crate) instrument: Option<&'a str>,
    pub(crate) encoding: Encoding,
    pub(crate) utc_offset: FixedOffset,
    pub(crate) aliases: &'a AliasTable,
}

/// A result payload to a reading; warnings for what was kept as unknown.
pub(crate) fn result(
    p: &[u8],
    cx: &ResultContext<'_>,
    warnings: &mut Vec<Diagnostic>,
) -> Result<Reading, PayloadError> {
    let name_len = match p.get(RESULT_FIXED - 1) {
        Some(&l) => usize::from(l),
        None => {
            return Err(PayloadError::ShortResult {
                need: RESULT_FIXED,
                got: p.len(),
            })
        }
    };
    let need = RESULT_FIXED + name_len;
    let Some(name) = p.get(RESULT_FIXED..need) else {
        return Err(PayloadError::ShortResult { need, got: p.len() });
    };
    if p.len() > need {
        warnings.push(Diagnostic::warning(
            "trailing_bytes",
            cx.offset,
            format!(
                "result payload has {} byte(s) after the sample name: ignored",
                p.len() - need
            ),
        ));
    }
    let item = u16_at(p, 16);
    let code = item_code_text(item);
    let analyte = match item_analyte(item) {
        Some(a) => Text::from(a),
        // An instrument's configuration may name items the document does not list.
        None => cx.aliases.canonical(&code),
    };
    let mut r = Reading::new(Protocol::GoldCard, analyte);
    r.analyte_code = Some(code);
    r.offset = Some(cx.offset);
    r.sequence = Some(u64::from(cx.seq));
    r.instrument = cx.instrument.map(Text::from);
    r.method = Some(Text::const_new("colloidal_gold"));
    r.sample_id = padded_text(&p[..16], Encoding::Latin1);
    r.sample_name = padded_text(name, cx.encoding);
    r.lot = padded_text(&p[30..42], Encoding::Latin1);
    r.assay_format = match p[18] {
        0 => Some(Text::const_new("competitive")),
        1 => Some(Text::const_new("sandwich")),
        other => {
            warnings.push(Diagnostic::warning(
                "unknown_assay_format",
                cx.offset,
                format!("assay format byte 0x{other:02X} is neither 00 nor 01: kept as null"),
            ));
            None
        }
    };
    r.device_verdict = match p[19] {
        0 => Some(DeviceVerdict::Negative),
        1 => Some(DeviceVerdict::Positive),
        2 => Some(DeviceVerdict::Invalid),
        other => {
            warnings.push(Diagnostic::warning(
                "unknown_verdict",
                cx.offset,
                format!("reader verdict byte 0x{other:02X} is not 00, 01 or 02: kept as null"),
            ));
            None
        }
    };
    let (t, c) = (u16_at(p, 20), u16_at(p, 22));
    r.t_line = Some(u32::from(t));
    r.c_line = Some(u32::from(c));
    r.cutoff = Some(u32::from(u16_at(p, 24)));
    r.value = ratio(t, c);
    r.unit = Some(Text::const_new("T/C"));
    r.measured_at = DateTime::from_timestamp(i64::from(u32_at(p, 26)), 0)
        .map(|utc| utc.with_timezone(&cx.utc_offset));
    Ok(r)
}

pub(crate) fn heartbeat(p: &[u8], offset: u64) -> Result<Heartbeat, PayloadError> {
    match p.len() {
        0 => Ok(Heartbeat {
            offset,
            uptime_s: None,
        }),
        4 => Ok(Heartbeat {
            offset,
            uptime_s: Some(u64::from(u32_at(p, 0))),
        }),
        n => Err(PayloadError::Heartbeat(n)),
    }
}

pub(crate) fn device_info(p: &[u8], offset: u64) -> Result<DeviceInfo, PayloadError> {
    if p.len() != DEVICE_INFO_LEN {
        return Err(PayloadError::DeviceInfo(p.len()));
    }
    Ok(DeviceInfo {
        offset,
        serial_number: padded_text(&p[..16], Encoding::Latin1),
        model: None,
        firmware: padded_text(&p[16..24], Encoding::Latin1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_rounds_half_up() {
        assert_eq!(ratio(1, 3), Some(0.333));
        assert_eq!(ratio(2, 3), Some(0.667));
        // 1/8 = 0.125 exactly; 1/16 = 0.0625 → 0.063 (half up, not to even).
        assert_eq!(ratio(1, 16), Some(0.063));
        assert_eq!(ratio(5, 8000), Some(0.001));
        assert_eq!(ratio(4, 8000), Some(0.001));
        assert_eq!(ratio(3, 8000), Some(0.0));
        assert_eq!(ratio(65535, 1), Some(65535.0));
        assert_eq!(ratio(7, 0), None);
    }

    #[test]
    fn padded_fields() {
        assert_eq!(
            padded_text(b"AB12\0\0\0", Encoding::Latin1).as_deref(),
            Some("AB12")
        );
        assert_eq!(padded_text(b"\0\0", Encoding::Latin1), None);
        assert_eq!(padded_text(b"  \0x", Encoding::Latin1), None);
    }
}
