//! Live links to the instruments: transports, link sessions, raw capture, status, simulators.
//!
//! The way a byte travels: a transport (serial port thread, TCP connection) hands a byte
//! stream to a link session; the session archives the bytes, feeds the protocol's decoder,
//! commits the readings to a [`Sink`] (the store) and only then acknowledges on the wire.
//!
//! # Layout
//!
//! - [`sink`]: [`LinkBatch`], the [`Sink`] trait the store implements, and [`MemorySink`] for
//!   tests and demos.
//! - [`session`]: the per-protocol link session over any `AsyncRead + AsyncWrite` stream
//!   (ASTM ENQ/ACK/NAK, MLLP ACK, gold-card ack, receive-only printers and sentences).
//! - [`poll`]: the session of the instruments that answer only when asked (LZ-4000T, TL310,
//!   DY-723PC): comm test, per-day requests, timeouts, retries, catch-up, status.
//! - [`transport`]: serial ports (one OS thread per port, reopen with backoff), TCP
//!   listeners, pty pairs, and [`run_instrument`] that starts one configured link.
//! - [`line`]: serial line settings and their per-protocol defaults.
//! - [`archive`]: every received byte, per instrument, in rotating day files.
//! - [`status`]: what `serve` and `/metrics` show about each instrument.
//! - [`sim`]: virtual instruments speaking each protocol with its link level.
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations, unreachable_pub)]

pub mod archive;
pub mod line;
pub mod poll;
pub mod session;
pub mod sim;
pub mod sink;
pub mod status;
pub mod transport;

pub use archive::RawArchive;
pub use line::LineSettings;
pub use poll::run_poll;
pub use session::{run_session, Link, LinkTiming, PollSettings, SessionEnd};
pub use sink::{CommitReport, LinkBatch, MemorySink, Sink, SinkError};
pub use status::{InstrumentStatus, StatusHandle};
pub use transport::{run_instrument, Endpoint, InstrumentLink, Pty, SerialConfig};
