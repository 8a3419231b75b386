//! foodgate: the service around the decoders.
//!
//! # Layout
//!
//! - [`cli`]: command-line arguments and the commands they run.
#![forbid(unsafe_code)]

pub mod cli;
