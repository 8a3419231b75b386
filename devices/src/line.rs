//! Serial line settings (`serial = { baud, data_bits, parity, stop_bits, flow_control }`).

use foodgate_parsers::Protocol;
pub use serialport::{DataBits, FlowControl, Parity, StopBits};
use std::str::FromStr;

/// How a serial line is set up; [`LineSettings::for_protocol`] gives the document defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineSettings {
    pub baud: u32,
    pub data_bits: DataBits,
    pub parity: Parity,
    pub stop_bits: StopBits,
    pub flow_control: FlowControl,
}

impl LineSettings {
    /// The protocol document's default: 9600 8N1 (gold-card 115200 8N1), no flow control.
    pub fn for_protocol(protocol: Protocol) -> Self {
        LineSettings {
            baud: default_baud(protocol),
            data_bits: DataBits::Eight,
            parity: Parity::None,
            stop_bits: StopBits::One,
            flow_control: FlowControl::None,
        }
    }
}

pub fn default_baud(protocol: Protocol) -> u32 {
    match protocol {
        Protocol::GoldCard | Protocol::Lz4000t | Protocol::Tl310 => 115_200,
        Protocol::Astm
        | Protocol::Hl7
        | Protocol::EnzymePrint
        | Protocol::Spectro
        | Protocol::Dy723pc => 9600,
    }
}

/// A line setting value that is not one of the accepted names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} = {value:?}: expected {expected}")]
pub struct BadSetting {
    pub key: &'static str,
    pub value: String,
    pub expected: &'static str,
}

fn bad(key: &'static str, value: &str, expected: &'static str) -> BadSetting {
    BadSetting {
        key,
        value: value.into(),
        expected,
    }
}

/// `data_bits` = 5 … 8.
pub fn data_bits(n: u8) -> Result<DataBits, BadSetting> {
    match n {
        5 => Ok(DataBits::Five),
        6 => Ok(DataBits::Six),
        7 => Ok(DataBits::Seven),
        8 => Ok(DataBits::Eight),
        _ => Err(bad("data_bits", &n.to_string(), "5, 6, 7 or 8")),
    }
}

/// `stop_bits` = 1 or 2.
pub fn stop_bits(n: u8) -> Result<StopBits, BadSetting> {
    match n {
        1 => Ok(StopBits::One),
        2 => Ok(StopBits::Two),
        _ => Err(bad("stop_bits", &n.to_string(), "1 or 2")),
    }
}

/// `parity` = `none`, `odd`, `even`.
pub fn parity(s: &str) -> Result<Parity, BadSetting> {
    match s {
        "none" => Ok(Parity::None),
        "odd" => Ok(Parity::Odd),
        "even" => Ok(Parity::Even),
        _ => Err(bad("parity", s, "\"none\", \"odd\" or \"even\"")),
    }
}

/// `flow_control` = `none`, `software` (XON/XOFF), `hardware` (RTS/CTS).
pub fn flow_control(s: &str) -> Result<FlowControl, BadSetting> {
    match s {
        "none" => Ok(FlowControl::None),
        "software" | "xonxoff" => Ok(FlowControl::Software),
        "hardware" | "rtscts" => Ok(FlowControl::Hardware),
        _ => Err(bad(
            "flow_control",
            s,
            "\"none\", \"software\" or \"hardware\"",
        )),
    }
}

impl FromStr for LineSettings {
    type Err = BadSetting;

    /// `9600-8N1`, `115200-7E2`: for command lines.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = "BAUD-<data bits><N|O|E><stop bits>, e.g. 9600-8N1";
        let (baud, frame) = s.split_once('-').ok_or_else(|| bad("line", s, expected))?;
        let baud: u32 = baud.parse().map_err(|_| bad("line", s, expected))?;
        let f = frame.as_bytes();
        if f.len() != 3 {
            return Err(bad("line", s, expected));
        }
        let p = match f[1] {
            b'N' | b'n' => Parity::None,
            b'O' | b'o' => Parity::Odd,
            b'E' | b'e' => Parity::Even,
            _ => return Err(bad("line", s, expected)),
        };
        Ok(LineSettings {
            baud,
            data_bits: data_bits(f[0].wrapping_sub(b'0'))?,
            parity: p,
            stop_bits: stop_bits(f[2].wrapping_sub(b'0'))?,
            flow_control: FlowControl::None,
        })
    }
}
