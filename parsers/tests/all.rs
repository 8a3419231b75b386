//! One test binary for the parsers crate (one link step instead of many).

mod harness;

mod astm;
mod captures;
mod hl7;
