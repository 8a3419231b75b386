//! ASTM E1381 (low-level framing) and E1394 (records), protocol `astm`.
//!
//! The decoder reads a capture or a live stream from the sender's side: it checks every
//! frame's checksum itself, applies the frame-number rules of `docs/protocols.md`, joins
//! `ETB` chains and emits the readings of a message when its `L` record arrives. Streams
//! that do not start with a control character are read as bare records (one per line).

mod encode;
mod frame;
mod records;
mod wire;

pub use encode::{checksum, encode_frame, encode_transfer, escape, Frame};
pub use frame::AstmDecoder;
pub use wire::{ACK, ENQ, EOT, MAX_FRAME_TEXT, MAX_RECORD, MAX_RESULTS_PER_MESSAGE, NAK};
