//! End-to-end tests of the `foodgate` binary and service (one test binary: one link step).

mod api;
mod coverage;
mod crash;
mod judge;
mod links;
mod parse_cli;
mod ratelimit;
mod store;
mod support;
mod uplink;
