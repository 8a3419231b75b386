//! One test binary for the devices crate: real pty pairs as serial cables, real TCP sockets.

mod astm;
mod gold_card;
mod harness;
mod hl7;
mod polled;
mod receive_only;
mod serial;
