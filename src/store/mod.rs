//! The durable store: SQLite with one writer thread.
//!
//! `rusqlite::Connection` is `!Sync`, and SQLite allows one writer at a time anyway, so one
//! OS thread owns the writing connection. Callers send it jobs over a channel; the thread
//! runs every job that is waiting in ONE transaction (group commit, each job in its own
//! savepoint so one failing job does not undo the others), commits, and only then replies.
//! A reply therefore means "committed": a live link acknowledges the instrument after
//! [`Store::submit_async`] returns, never before.
//!
//! Readers (API, uplink) open their own connections with [`Store::reader`]; WAL lets them
//! read while the writer writes.
//!
//! # Layout
//! This module only maps and re-exports; what a job sees and how it runs:
//! - [`writer`]: the [`Store`] handle, the writer thread, group commit, checkpoints.
//! - [`tx`]: the writing transaction a job gets ([`Tx`]); [`reader`]: read connections and
//!   [`Db`], what every read function takes (a reader, or a job's transaction).
//! - [`settings`]: routes and settings from the config; [`error`]: [`StoreError`].
//! - [`outbox_tally`]: the outbox count changes a job makes, written when it ends.
//!
//! One module per table or concern (the seam a second backend will fill in):
//! - [`schema`]: connection pragmas and the `user_version` migrator (SQL in `migrations/`).
//! - [`identity`]: reading identity, event and hold ids.
//! - [`insert`]: storing a [`Batch`]: readings, raw frames, samples, and what a failure opens.
//! - [`codec`]: column codecs (verdicts, times, local day, JSON columns).
//! - [`holds`]: the hold life cycle: opening, status changes, history, retests, reads;
//!   [`hold_status`]: its words ([`HoldStatus`]) and history entries.
//! - [`events`]: outbox event kinds and their typed bodies.
//! - [`queue`]: queueing outbox events for the upstreams that take them.
//! - [`outbox`]: what the uplink reads and writes: due events, delivery results, stats.
//! - [`samples`]: registered samples (the sampling record) and stall corrections, applied to
//!   the readings already stored, with their corrected events.
//! - [`stalls`]: stall corrections of readings without a sample id, from a station to its hub.
//! - [`coverage`]: the per-market-per-day coverage aggregate, kept by every writing job.
//! - [`results`]: stored readings as the API lists them; the upload ledger.
//! - [`instruments`]: the persisted status of the live instrument links;
//!   [`poll_progress`]: the last day each polled instrument was read completely.
//! - [`backup`]: a consistent copy of a live database.
//! - [`retention`]: what is kept how long.
//! - [`stats`]: the operational reads of `/metrics`, `/healthz` and the instrument list.
//! - [`audit`]: the append-only audit log.
//! - [`tokens`], [`sessions`]: API tokens (by hash), page sessions and one-time sign-in codes.
//! - [`markets`]: the market registry.
//! - [`pages`]: the reads only the web pages make (the public board, the dashboard's holds).

pub mod audit;
pub mod backup;
pub mod codec;
pub mod coverage;
pub mod error;
pub mod events;
pub mod exposure;
pub mod hold_actions;
pub mod hold_deadlines;
pub mod hold_mirror;
pub mod hold_status;
pub mod holds;
pub mod identity;
pub mod insert;
pub mod instruments;
pub mod markets;
pub mod monthly;
pub mod outbox;
pub mod outbox_tally;
pub mod pages;
pub mod plan;
pub mod poll_progress;
pub mod queue;
pub mod reader;
pub mod results;
pub mod retention;
pub mod risk;
pub mod samples;
pub mod schema;
pub mod sessions;
pub mod settings;
pub mod stalls;
pub mod stats;
pub mod tokens;
pub mod trace;
pub mod tx;
pub mod writer;

pub use error::StoreError;
pub use events::EventKind;
pub use hold_status::{Handling, HoldStatus};
pub use identity::Origin;
pub use insert::{insert_batch, Batch, Committed, NewReading, Outcome, RawFrame};
pub use reader::{Db, Reader};
pub use settings::{Route, StoreSettings};
pub use tx::Tx;
pub use writer::Store;
