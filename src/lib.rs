//! foodgate: the service around the decoders.
//!
//! # Layout
//!
//! - [`cli`]: command-line arguments and the commands they run.
//! - [`judge`]: verdicts for decoded readings from the reference data (limits, categories,
//!   method rules); knows no decoding and no storage.
//! - [`config`]: the TOML configuration, raw → validated.
//! - [`store`]: SQLite: one writer thread, readings, raw frames, holds, outbox.
//! - [`uplink`]: delivers the outbox to each `[[upstream]]`.
//! - [`http`]: what the API and the pages share: their state, the error answer, the rate
//!   limit.
//! - [`api`]: the HTTP API (axum) on the store; [`auth`]: tokens, roles, market scope and the
//!   token checks (their rows live in `store::tokens`, the audit log in `store::audit`).
//! - [`web`]: the dashboard, the market boards and sign-in (HTML pages built with `maud` on the
//!   same router; their reads in `store::pages`, sessions in `store::sessions`).
//! - [`charset`]: uploaded and imported text, UTF-8 or GBK.
//! - [`markets`]: the registry import (CSV) and the built-in registry, which no migration
//!   inserts: `markets import --builtin` and the demo load it.
//! - [`service`]: the router (API and pages) and the service `serve` runs (store, links,
//!   uplink, HTTP), startable in-process on port 0 and stopped gracefully.
//! - [`pipeline`]: decode → judge → store, the one path of every reading into the store.
//! - [`ingest`]: captures through the pipeline (`foodgate ingest`).
//! - [`links`]: the live instrument links inside `serve`: the pipeline as their sink, status.
//! - [`demo`]: the parts of `foodgate demo`: simulated analyzers and contractor, a receiver,
//!   history.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod charset;
pub mod cli;
pub mod config;
pub mod demo;
pub mod http;
pub mod ingest;
pub mod judge;
pub mod links;
pub mod markets;
pub mod pipeline;
pub mod platform;
pub mod service;
pub mod store;
pub mod uplink;
pub mod web;
