//! Decode → judge → store: the one path every reading takes into the store, whether it came
//! from a live link ([`crate::links`]), a capture ([`crate::ingest`]) or an upload row
//! (`POST /api/v1/results`).
//!
//! An entry point decodes (or parses) readings and cuts the raw bytes they came from; the
//! [`Pipeline`] judges each reading, adds it with its place (market, stall, origin, frame) to a
//! store [`Batch`], keeps the frames a decoder rejected with their errors, and hands the batch
//! to the store's writer. Nothing is acknowledged before the writer's COMMIT returns.

use crate::judge::Judge;
use crate::judge::{JudgedReading, Judgement, Verdict};
use crate::store::insert::insert_batch;
use crate::store::{
    Batch, Committed, NewReading, Origin, RawFrame, Store, StoreError, StoreSettings, Tx,
};
use chrono::{DateTime, Utc};
use foodgate_parsers::{Diagnostic, Level, Reading};
use std::time::Duration;

/// Raw bytes kept per reading's frame or rejected frame, at most.
pub const MAX_RAW: usize = 64 * 1024;

/// What judges a reading (returns its judgement, and sets its `category`): the reference
/// [`Judge`], or (in tests and benchmarks) any function that does.
pub trait Judging: Sync {
    fn judge_reading(&self, reading: &mut Reading) -> Judgement;
}

impl Judging for Judge {
    fn judge_reading(&self, reading: &mut Reading) -> Judgement {
        self.judge(reading)
    }
}

impl<F: Fn(&mut Reading) -> Judgement + Sync> Judging for F {
    fn judge_reading(&self, reading: &mut Reading) -> Judgement {
        self(reading)
    }
}

/// Who a reading is stored as.
#[derive(Debug, Clone, Copy)]
pub enum SentBy<'a> {
    /// An instrument: the one the reading names, else `unnamed`.
    Instrument { unnamed: &'a str },
    /// A row of an upload.
    UploadRow { uploader: &'a str, row: &'a str },
}

/// Where a judged reading goes in the store.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub market: &'a str,
    /// `None` takes the reading's own `source`.
    pub stall: Option<&'a str>,
    pub sender: SentBy<'a>,
    pub received_at: DateTime<Utc>,
    /// Index into the batch's frames of the bytes the reading came from.
    pub frame: usize,
}

/// Judges readings into store batches and submits them.
#[derive(Clone, Copy)]
pub struct Pipeline<'j> {
    judge: &'j dyn Judging,
}

impl std::fmt::Debug for Pipeline<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

/// Why a batch was not committed in time.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("not committed within {0:?} (database locked or too slow)")]
    Timeout(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<'j> Pipeline<'j> {
    pub fn new(judge: &'j dyn Judging) -> Self {
        Pipeline { judge }
    }

    /// Judge `reading` (for a caller that must judge before it knows the place, e.g. to
    /// answer a rejected row first); [`Pipeline::admit`] judges on its own.
    pub fn judge(&self, mut reading: Reading) -> JudgedReading {
        let judgement = self.judge.judge_reading(&mut reading);
        JudgedReading::new(reading, judgement)
    }

    /// Judge `reading` and build its store row at `place`.
    pub fn judged(&self, reading: Reading, place: Place<'_>) -> NewReading {
        placed(self.judge(reading), place)
    }

    /// Judge `reading` and add it to `batch` at `place`; returns its verdict.
    pub fn admit(&self, batch: &mut Batch, reading: Reading, place: Place<'_>) -> Verdict {
        let new = self.judged(reading, place);
        let verdict = new.reading.verdict;
        batch.readings.push(new);
        verdict
    }

    /// Submit `batch` to the store's writer and wait for its COMMIT (blocking).
    pub fn submit(store: &Store, batch: Batch) -> Result<Committed, StoreError> {
        store.submit(batch)
    }

    /// Submit `batch` and wait for its COMMIT, at most `timeout`.
    pub async fn submit_within(
        store: &Store,
        batch: Batch,
        timeout: Duration,
    ) -> Result<Committed, SubmitError> {
        match tokio::time::timeout(timeout, store.submit_async(batch)).await {
            Err(_) => Err(SubmitError::Timeout(timeout)),
            Ok(r) => Ok(r?),
        }
    }

    /// Store `batch` inside a write transaction the caller already holds (uploads, which
    /// record each row's upload id in the same transaction).
    pub fn insert(
        tx: &mut Tx<'_>,
        settings: &StoreSettings,
        batch: Batch,
    ) -> rusqlite::Result<Committed> {
        insert_batch(tx, settings, batch)
    }
}

/// A judged reading's store row at `place`.
fn placed(reading: JudgedReading, place: Place<'_>) -> NewReading {
    let origin = match place.sender {
        SentBy::Instrument { unnamed } => Origin::Instrument(
            reading
                .reading
                .instrument
                .as_deref()
                .map_or_else(|| unnamed.to_string(), str::to_string),
        ),
        SentBy::UploadRow { uploader, row } => Origin::UploadRow {
            uploader: uploader.to_string(),
            row: row.to_string(),
        },
    };
    NewReading {
        reading,
        market: place.market.to_string(),
        stall: place.stall.map(str::to_string),
        origin,
        received_at: place.received_at,
        frame: Some(place.frame),
    }
}

/// The text a rejected frame keeps for a decode error.
pub fn error_text(d: &Diagnostic) -> Option<String> {
    (d.level == Level::Error).then(|| format!("{}: {}", d.error, d.message))
}

/// Add a frame the decoder dropped, with its error. Several errors about one spot (a bad
/// checksum, then the message it broke) are one rejected frame.
pub fn reject(batch: &mut Batch, frame: RawFrame) {
    if let Some(last) = batch
        .frames
        .last_mut()
        .filter(|f| f.offset == frame.offset && f.error.is_some())
    {
        if let (Some(e), Some(more)) = (last.error.as_mut(), frame.error) {
            e.push_str("; ");
            e.push_str(&more);
        }
        return;
    }
    batch.frames.push(frame);
}

/// Bytes of a stream held from `base`: what a reading or a rejected frame keeps of them.
#[derive(Debug, Clone, Copy)]
pub struct RawWindow<'a> {
    pub base: u64,
    pub bytes: &'a [u8],
}

impl RawWindow<'_> {
    pub fn end(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }

    /// The bytes from `from` to `to` that are held, at most [`MAX_RAW`].
    pub fn slice(&self, from: u64, to: u64) -> Vec<u8> {
        let from = from.max(self.base);
        let to = to.min(self.end()).min(from.saturating_add(MAX_RAW as u64));
        if to <= from {
            return Vec::new();
        }
        let a = (from - self.base) as usize;
        let b = (to - self.base) as usize;
        self.bytes.get(a..b).map(<[u8]>::to_vec).unwrap_or_default()
    }
}
