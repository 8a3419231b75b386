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
mod wire;

pub use encode::{ack, escape, mllp_wrap, AckCode, AckHeader, Obr, Obx, Oru};
pub use mllp::Hl7Decoder;
pub use wire::{FS, MAX_MESSAGE, VT};
