//! One test binary for the parsers crate (one link step instead of many).

mod harness;

mod astm;
mod captures;
mod enzyme_print;
mod gold_card;
mod hl7;
mod polled;
mod spectro;
