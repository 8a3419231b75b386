//! End-to-end tests of the `foodgate` binary and service (one test binary: one link step).

mod abuse;
mod api;
mod browser;
mod coverage;
mod crash;
mod demo;
mod federation;
mod history;
mod hold_mirror;
mod hub;
mod judge;
mod layers;
mod links;
mod ops;
mod parse_cli;
mod platforms;
mod polled;
mod ratelimit;
mod reports;
mod store;
mod support;
mod totals;
mod uplink;
mod web;
mod workflow;
