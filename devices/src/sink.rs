//! Where committed readings go: the store implements [`Sink`].

use chrono::{DateTime, NaiveDate, Utc};
use foodgate_parsers::{Diagnostic, Protocol, Reading};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Readings completed together on one link, with the bytes they came from.
///
/// A session commits one batch per acknowledgeable unit: an ASTM frame that completed a
/// message, an HL7 message, a gold-card result frame; for the receive-only protocols, the
/// readings one read chunk completed.
#[derive(Debug, Clone)]
pub struct LinkBatch {
    /// Configured instrument id (`[[instrument]] id`).
    pub instrument: String,
    pub protocol: Protocol,
    /// Identifies the byte stream the offsets count in: one per opened port or accepted
    /// connection, unique within the process.
    pub stream: u64,
    /// Decoded readings, each with `offset` in the stream.
    pub readings: Vec<Reading>,
    /// The stream bytes since the end of the previous batch's `raw` through the read chunk
    /// that completed this batch (bounded: when longer, only the tail is kept).
    pub raw: Vec<u8>,
    /// Stream offset of `raw[0]`.
    pub raw_offset: u64,
    /// Decode diagnostics seen since the previous batch (bounded).
    pub diagnostics: Vec<Diagnostic>,
    pub received_at: DateTime<Utc>,
}

/// What the sink did with a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitReport {
    /// Readings newly stored.
    pub stored: usize,
    /// Readings the store already had (same identity): not stored again.
    pub duplicates: usize,
}

/// The batch cannot be stored now (database busy, disk full…): the link refuses the data
/// (NAK, `AR`, no ack) so that the sender keeps it and tries again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot store now: {0}")]
pub struct SinkError(pub String);

/// Durable storage for readings. `commit` must return `Ok` only once every reading of the
/// batch is durably stored (or known already stored): the link acknowledges on it.
pub trait Sink: Send + Sync + 'static {
    fn commit(
        &self,
        batch: LinkBatch,
    ) -> impl Future<Output = Result<CommitReport, SinkError>> + Send;

    /// Whether a new transfer may start (ASTM answers `ENQ` with `NAK` when not).
    fn ready(&self) -> bool {
        true
    }

    /// Polled instruments: the last local day whose records were all read and stored, so
    /// that a poll after downtime (a restart included) reads every day since. `None`: never.
    fn last_complete_day(
        &self,
        instrument: &str,
    ) -> impl Future<Output = Option<NaiveDate>> + Send {
        let _ = instrument;
        std::future::ready(None)
    }

    /// Polled instruments: every record of `day` is stored (called in day order, never for
    /// an earlier day than the last one). An error leaves the day to be read again.
    fn day_complete(
        &self,
        instrument: &str,
        day: NaiveDate,
    ) -> impl Future<Output = Result<(), SinkError>> + Send {
        let _ = (instrument, day);
        std::future::ready(Ok(()))
    }
}

/// Test and demo support, not the store: records every committed batch in memory, and can
/// be told to refuse.
#[derive(Debug, Default)]
pub struct MemorySink {
    batches: Mutex<Vec<LinkBatch>>,
    refusing: AtomicBool,
    refuse_next: AtomicUsize,
    refused: AtomicUsize,
    complete_days: Mutex<HashMap<String, NaiveDate>>,
}

impl MemorySink {
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuse every commit (and `ready`) until told otherwise.
    pub fn set_refusing(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Refuse the next `n` commits, then accept again; `ready` stays true.
    pub fn refuse_next(&self, n: usize) {
        self.refuse_next.store(n, Ordering::SeqCst);
    }

    /// Commits refused so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    pub fn batches(&self) -> Vec<LinkBatch> {
        self.batches.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Every committed reading, in commit order.
    pub fn readings(&self) -> Vec<Reading> {
        self.batches()
            .into_iter()
            .flat_map(|b| b.readings)
            .collect()
    }

    /// Pretend a day was read completely before (a restart after downtime).
    pub fn set_last_complete_day(&self, instrument: &str, day: NaiveDate) {
        if let Ok(mut d) = self.complete_days.lock() {
            d.insert(instrument.into(), day);
        }
    }

    /// What `day_complete` was last told for `instrument`.
    pub fn complete_day(&self, instrument: &str) -> Option<NaiveDate> {
        self.complete_days
            .lock()
            .ok()
            .and_then(|d| d.get(instrument).copied())
    }

    fn refuse_now(&self) -> bool {
        if self.refusing.load(Ordering::SeqCst) {
            return true;
        }
        self.refuse_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl Sink for MemorySink {
    fn commit(
        &self,
        batch: LinkBatch,
    ) -> impl Future<Output = Result<CommitReport, SinkError>> + Send {
        let result = if self.refuse_now() {
            self.refused.fetch_add(1, Ordering::SeqCst);
            Err(SinkError("memory sink told to refuse".into()))
        } else {
            let stored = batch.readings.len();
            match self.batches.lock() {
                Ok(mut b) => {
                    b.push(batch);
                    Ok(CommitReport {
                        stored,
                        duplicates: 0,
                    })
                }
                Err(_) => Err(SinkError("memory sink poisoned".into())),
            }
        };
        std::future::ready(result)
    }

    fn ready(&self) -> bool {
        !self.refusing.load(Ordering::SeqCst)
    }

    fn last_complete_day(
        &self,
        instrument: &str,
    ) -> impl Future<Output = Option<NaiveDate>> + Send {
        std::future::ready(self.complete_day(instrument))
    }

    fn day_complete(
        &self,
        instrument: &str,
        day: NaiveDate,
    ) -> impl Future<Output = Result<(), SinkError>> + Send {
        let result = match self.complete_days.lock() {
            Ok(mut d) => {
                let e = d.entry(instrument.into()).or_insert(day);
                *e = (*e).max(day);
                Ok(())
            }
            Err(_) => Err(SinkError("memory sink poisoned".into())),
        };
        std::future::ready(result)
    }
}
