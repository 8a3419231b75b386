//! End-to-end tests of the `foodgate` binary (one test binary: one link step).

mod parse_cli;
