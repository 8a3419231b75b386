//! End-to-end tests of the `foodgate` binary (one test binary: one link step).

mod judge;
mod parse_cli;
