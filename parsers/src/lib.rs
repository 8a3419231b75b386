//! Pure decoders for the instruments foodgate attaches to: bytes in, events out.
//!
//! No I/O, no async, no clock: a decoder is a state machine fed with whatever chunks the
//! transport happens to read, and its output depends only on the bytes, never on how they
//! were cut.
//!
//! # Layout
//!
//! - [`reading`]: the normalized [`Reading`] every decoder emits, and its small value types.
//! - [`event`]: what a decoder emits: readings, diagnostics (error/warning with byte offset),
//!   device info, heartbeats, and link-level events the live link acknowledges on.
//! - [`decoder`]: the streaming [`Decoder`] trait and its configuration; [`new_decoder`]
//!   (here) builds the decoder for a [`Protocol`].
//! - [`text`]: character encodings (Latin-1, UTF-8, GBK, GB 18030).
//! - [`datetime`]: instrument local date-times to RFC 3339 with an offset.
//! - [`analytes`]: the alias table mapping instrument test codes to canonical analytes.
//! - [`value`]: shared interpretation of result values (`<x`, `ND`, `POS`, …) and flags.
//! - [`delim`]: delimiter splitting that is safe for double-byte encodings.
//! - [`astm`]: ASTM E1381 framing and E1394 records.
//! - [`hl7`]: HL7 v2 ORU messages over MLLP.
//! - [`gold_card`]: colloidal gold card readers, binary frames with CRC-16/MODBUS.
//! - [`spectro`]: multi-item spectrophotometric analyzers, `$FSA…*CS` sentences.
//! - [`categories`]: instrument food-category codes to canonical categories.
//! - [`enzyme_print`]: enzyme-inhibition analyzers' printed reports (ESC/POS text).
//! - [`polled_frame`]: the `7E … AA` binary framing with CRC-8 of the polled devices.
//! - [`lz4000t`], [`tl310`], [`dy723pc`]: the polled vendor analyzers (the host asks for a
//!   day's records): their replies decoded, their requests built.
//! - [`synth`]: deterministic synthetic captures for benchmarks, tests and simulators.
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations, unreachable_pub)]

pub mod analytes;
pub mod astm;
pub mod categories;
pub mod datetime;
pub mod decoder;
pub mod delim;
pub mod dy723pc;
pub mod enzyme_print;
pub mod event;
pub mod gold_card;
pub mod hl7;
pub mod lz4000t;
mod noise;
pub mod polled_frame;
pub mod reading;
pub mod spectro;
pub mod synth;
pub mod text;
pub mod tl310;
pub mod value;

pub use analytes::AliasTable;
pub use decoder::{decode_all, Decoder, DecoderConfig};
pub use event::{Diagnostic, Event, Level, LinkEvent};
pub use reading::{DeviceVerdict, Protocol, Qualifier, Reading};
pub use text::Encoding;

/// Build the decoder for `protocol`.
pub fn new_decoder(protocol: Protocol, config: DecoderConfig) -> Box<dyn Decoder> {
    match protocol {
        Protocol::Astm => Box::new(crate::astm::AstmDecoder::new(config)),
        Protocol::Hl7 => Box::new(crate::hl7::Hl7Decoder::new(config)),
        Protocol::GoldCard => Box::new(crate::gold_card::GoldCardDecoder::new(config)),
        Protocol::Spectro => Box::new(crate::spectro::SpectroDecoder::new(config)),
        Protocol::EnzymePrint => Box::new(crate::enzyme_print::EnzymePrintDecoder::new(config)),
        Protocol::Lz4000t => Box::new(crate::lz4000t::Lz4000tDecoder::new(config)),
        Protocol::Tl310 => Box::new(crate::tl310::Tl310Decoder::new(config)),
        Protocol::Dy723pc => Box::new(crate::dy723pc::Dy723pcDecoder::new(config)),
    }
}
