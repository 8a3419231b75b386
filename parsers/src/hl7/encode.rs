//! HL7 encoders: ORU^R01 messages (simulators, tests), MLLP blocks and acknowledgements
//! (the live link).

use super::wire::{CR, FS, VT};
use crate::text::Encoding;

/// Escape text for one component with the standard delimiters `|^~\&`; line ends become
/// hex escapes so they cannot end the segment.
pub fn escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => s.push_str("\\F\\"),
            '^' => s.push_str("\\S\\"),
            '&' => s.push_str("\\T\\"),
            '~' => s.push_str("\\R\\"),
            '\\' => s.push_str("\\E\\"),
            '\r' => s.push_str("\\X0D\\"),
            '\n' => s.push_str("\\X0A\\"),
            c => s.push(c),
        }
    }
    s
}

/// `VT message FS CR`.
pub fn mllp_wrap(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(VT);
    out.extend_from_slice(message);
    out.extend_from_slice(&[FS, CR]);
    out
}

/// One `OBX` row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Obx {
    /// OBX-2: `NM`, `ST`, `CE`, `CWE`, `SN`.
    pub value_type: String,
    /// OBX-3 component 1, the analyte code.
    pub code: String,
    /// OBX-3 component 2.
    pub name: String,
    /// OBX-5 as text (escaped on output).
    pub value: String,
    pub unit: String,
    pub reference_range: String,
    /// OBX-8.
    pub flag: String,
    /// OBX-11; empty sends `F`.
    pub status: String,
    /// OBX-14 `YYYYMMDDHHMM[SS]`.
    pub observed_at: String,
    /// OBX-18.
    pub equipment: String,
    /// One `NTE` each, after the OBX.
    pub comments: Vec<String>,
}

/// One `OBR` group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Obr {
    /// OBR-3, the sample id.
    pub sample_id: String,
    /// OBR-4 component 1.
    pub service: String,
    /// OBR-7.
    pub observed_at: String,
    /// OBR-15 component 1, the commodity.
    pub sample_name: String,
    pub results: Vec<Obx>,
}

/// An ORU^R01 message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Oru {
    pub sending_application: String,
    pub sending_facility: String,
    pub receiving_application: String,
    pub receiving_facility: String,
    /// MSH-7.
    pub timestamp: String,
    /// MSH-10.
    pub control_id: String,
    /// MSH-12; empty sends `2.5`.
    pub version: String,
    /// MSH-18, e.g. `UNICODE UTF-8`, `GB 18030-2000`; sent as is.
    pub charset: Option<String>,
    /// PID-3, the stall code.
    pub source_id: String,
    /// PID-5 components (family, given).
    pub vendor: Vec<String>,
    pub orders: Vec<Obr>,
}

fn or<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() {
        default
    } else {
        s
    }
}

impl Oru {
    /// The message text, segments ended by CR.
    pub fn to_text(&self) -> String {
        let e = escape;
        let mut s = String::new();
        s.push_str(&format!(
            "MSH|^~\\&|{}|{}|{}|{}|{}||ORU^R01|{}|P|{}",
            e(&self.sending_application),
            e(&self.sending_facility),
            e(&self.receiving_application),
            e(&self.receiving_facility),
            e(&self.timestamp),
            e(&self.control_id),
            e(or(&self.version, "2.5")),
        ));
        if let Some(cs) = &self.charset {
            s.push_str(&format!("||||||{}", e(cs)));
        }
        s.push('\r');
        let vendor: Vec<String> = self.vendor.iter().map(|v| e(v)).collect();
        s.push_str(&format!(
            "PID|1||{}||{}\r",
            e(&self.source_id),
            vendor.join("^")
        ));
        for (k, o) in self.orders.iter().enumerate() {
            s.push_str(&format!(
                "OBR|{}||{}|{}|||{}||||||||{}\r",
                k + 1,
                e(&o.sample_id),
                e(&o.service),
                e(&o.observed_at),
                e(&o.sample_name),
            ));
            for (j, x) in o.results.iter().enumerate() {
                s.push_str(&format!(
                    "OBX|{}|{}|{}^{}||{}|{}|{}|{}|||{}|||{}||||{}\r",
                    j + 1,
                    e(or(&x.value_type, "ST")),
                    e(&x.code),
                    e(&x.name),
                    e(&x.value),
                    e(&x.unit),
                    e(&x.reference_range),
                    e(&x.flag),
                    e(or(&x.status, "F")),
                    e(&x.observed_at),
                    e(&x.equipment),
                ));
                for (n, c) in x.comments.iter().enumerate() {
                    s.push_str(&format!("NTE|{}||{}\r", n + 1, e(c)));
                }
            }
        }
        s
    }

    /// The message in `encoding` (which MSH-18 should name), MLLP-wrapped.
    pub fn to_mllp(&self, encoding: Encoding) -> Vec<u8> {
        mllp_wrap(&encoding.encode(&self.to_text()))
    }
}

/// MSA-1 acknowledgement codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    /// Every reading of the message is durably stored.
    Accept,
    /// The message is malformed: resending it will not help.
    Error,
    /// Cannot store now: the sender should retry.
    Reject,
}

impl AckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::Accept => "AA",
            AckCode::Error => "AE",
            AckCode::Reject => "AR",
        }
    }
}

/// The MSH of an acknowledgement. `sending_*` are ours; `receiving_*` are the sender's
/// MSH-3/MSH-4 (from [`LinkEvent::MessageEnd`]), already in `^`-separated form.
///
/// [`LinkEvent::MessageEnd`]: crate::event::LinkEvent::MessageEnd
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckHeader<'a> {
    pub sending_application: &'a str,
    pub sending_facility: &'a str,
    pub receiving_application: &'a str,
    pub receiving_facility: &'a str,
    /// MSH-7, `YYYYMMDDHHMMSS`: decoders have no clock.
    pub timestamp: &'a str,
    /// Our own MSH-10 for the acknowledgement.
    pub control_id: &'a str,
    /// MSH-12; empty sends `2.5`.
    pub version: &'a str,
}

/// Escape an HD field whose components are already `^`-separated.
fn escape_hd(text: &str) -> String {
    text.split('^').map(escape).collect::<Vec<_>>().join("^")
}

/// The MLLP-wrapped acknowledgement of message `control_id`: `MSH` (type `ACK^R01`) and
/// `MSA|code|control id[|text]`, UTF-8, ready to go out in one write.
pub fn ack(control_id: &str, code: AckCode, text: Option<&str>, h: &AckHeader<'_>) -> Vec<u8> {
    let mut s = format!(
        "MSH|^~\\&|{}|{}|{}|{}|{}||ACK^R01|{}|P|{}\r",
        escape_hd(h.sending_application),
        escape_hd(h.sending_facility),
        escape_hd(h.receiving_application),
        escape_hd(h.receiving_facility),
        escape(h.timestamp),
        escape(h.control_id),
        escape(or(h.version, "2.5")),
    );
    s.push_str(&format!("MSA|{}|{}", code.as_str(), escape(control_id)));
    if let Some(t) = text {
        s.push_str(&format!("|{}", escape(t)));
    }
    s.push('\r');
    mllp_wrap(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_bytes() {
        let h = AckHeader {
            sending_application: "FOODGATE",
            sending_facility: "M01",
            receiving_application: "LIS^1.2.3^ISO",
            receiving_facility: "LAB",
            timestamp: "20261128093500",
            control_id: "FG1",
            version: "",
        };
        assert_eq!(
            ack("C42", AckCode::Error, Some("bad|msg"), &h),
            b"\x0bMSH|^~\\&|FOODGATE|M01|LIS^1.2.3^ISO|LAB|20261128093500||ACK^R01|FG1|P|2.5\rMSA|AE|C42|bad\\F\\msg\r\x1c\r"
                .to_vec()
        );
    }

    #[test]
    fn escape_all() {
        assert_eq!(
            escape("a|b^c&d~e\\f\r"),
            "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\X0D\\"
        );
    }
}
