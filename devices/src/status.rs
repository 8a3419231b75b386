//! What is known about each instrument's link, shared with `serve` and `/metrics`.

use chrono::{DateTime, NaiveDate, Utc};
use foodgate_parsers::event::DeviceInfo;
use std::sync::{Arc, Mutex};

/// One instrument's link status (`GET /api/v1/instruments`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstrumentStatus {
    pub id: String,
    pub protocol: String,
    /// A port is open, or at least one connection is up.
    pub online: bool,
    /// Open connections (TCP) or 0/1 (serial).
    pub connections: usize,
    pub last_byte_at: Option<DateTime<Utc>>,
    pub last_reading_at: Option<DateTime<Utc>>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub uptime_s: Option<u64>,
    pub last_error: Option<String>,
    pub serial_number: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub bytes: u64,
    /// Readings newly stored.
    pub readings: u64,
    /// Readings the store already had.
    pub duplicates: u64,
    /// Frames or messages sent again after a lost acknowledgement (taken once).
    pub retransmissions: u64,
    /// Error diagnostics (data dropped).
    pub decode_errors: u64,
    /// Times the link came back after being lost (port reopened).
    pub reconnects: u64,
    /// Commits the sink refused.
    pub refused_commits: u64,
    /// Polled instruments: when the last poll that reached the device ended.
    pub last_poll_at: Option<DateTime<Utc>>,
    /// Polled instruments: the last local day whose records were all read and stored.
    pub last_complete_day: Option<NaiveDate>,
    /// Polled instruments, at the last poll: readings read, of them new, and already stored.
    pub last_poll_records: u64,
    pub last_poll_new: u64,
    pub last_poll_duplicates: u64,
    /// Polled instruments: requests whose reply was missing or broken (timeout, wrong length,
    /// bad CRC, a reply for another day, a cut reply).
    pub protocol_errors: u64,
}

impl InstrumentStatus {
    /// `last_byte_at` or `last_heartbeat_at`, whichever is later (the API's `last_seen`).
    pub fn last_seen(&self) -> Option<DateTime<Utc>> {
        self.last_byte_at.max(self.last_heartbeat_at)
    }
}

/// Cheap to clone; never held across an `.await`.
#[derive(Debug, Clone, Default)]
pub struct StatusHandle(Arc<Mutex<InstrumentStatus>>);

impl StatusHandle {
    pub fn new(id: &str, protocol: &str) -> Self {
        StatusHandle(Arc::new(Mutex::new(InstrumentStatus {
            id: id.into(),
            protocol: protocol.into(),
            ..InstrumentStatus::default()
        })))
    }

    pub fn snapshot(&self) -> InstrumentStatus {
        match self.0.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn update(&self, f: impl FnOnce(&mut InstrumentStatus)) {
        let mut guard = match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut guard);
    }

    pub(crate) fn error(&self, message: impl Into<String>) {
        let message = message.into();
        self.update(|s| s.last_error = Some(message));
    }

    pub(crate) fn device(&self, info: &DeviceInfo) {
        self.update(|s| {
            if let Some(v) = &info.serial_number {
                s.serial_number = Some(v.to_string());
            }
            if let Some(v) = &info.model {
                s.model = Some(v.to_string());
            }
            if let Some(v) = &info.firmware {
                s.firmware = Some(v.to_string());
            }
        });
    }
}
