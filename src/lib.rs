//! foodgate: the service around the decoders.
//!
//! # Layout
//!
//! - [`cli`]: command-line arguments and the commands they run.
//! - [`judge`]: verdicts for decoded readings from the reference data (limits, categories,
//!   method rules); knows no decoding and no storage.
#![forbid(unsafe_code)]

pub mod cli;
pub mod judge;
