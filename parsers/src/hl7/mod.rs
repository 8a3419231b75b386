//! HL7 v2 ORU^R01 over MLLP, protocol `hl7`.
//!
//! [`Hl7Decoder`] reads MLLP blocks (`VT` message `FS CR`) or, when a capture starts with
//! `MSH` and has no `VT`, bare messages one after the other as lab systems export them.
//! Each message gives one reading per `OBX`, then a [`LinkEvent::MessageEnd`] the live link
//! answers with an acknowledgement built by [`ack`].
//!
//! [`LinkEvent::MessageEnd`]: crate::event::LinkEvent::MessageEnd

mod encode;
mod message;
mod mllp;
mod text;

pub use encode::{ack, escape, mllp_wrap, AckCode, AckHeader, Obx, Order, Oru};
pub use mllp::Hl7Decoder;

/// MLLP start block.
pub const VT: u8 = 0x0B;
/// MLLP end block (followed by `CR`).
pub const FS: u8 = 0x1C;
pub(crate) const CR: u8 = 0x0D;
pub(crate) const LF: u8 = 0x0A;

/// Longest message accepted, framed or bare.
pub const MAX_MESSAGE: usize = 1024 * 1024;
