//! Decode → judge → store, for a capture (`foodgate ingest`), through the one
//! [`Pipeline`] a live link and an upload also take; a link, unlike a capture, acknowledges
//! each message after its batch is committed.
//!
//! Each reading keeps the raw bytes it came from: the span from its offset to the next
//! event's offset in the stream (capped at [`MAX_RAW`]). Consecutive spans of one input
//! chunk are one raw frame (up to [`MAX_RAW`]); a reading's bytes start at its `offset`
//! minus the frame's `stream_offset`. A frame the decoder dropped with an error is kept on
//! its own, with the error.

use crate::judge::Verdict;
pub use crate::pipeline::MAX_RAW;
use crate::pipeline::{self, Judging, Pipeline, Place, RawWindow, SentBy};
use crate::store::{Batch, Committed, Outcome, RawFrame, Store, StoreError};
use chrono::{DateTime, Utc};
use foodgate_parsers::{Decoder, Event, Reading};
use std::io::{self, Read};
/// Bytes kept behind the decoder's position so a record that started in an earlier chunk
/// still has its bytes when its reading comes out.
const LOOKBEHIND: usize = 1 << 20;
/// Readings per committed batch. Each commit writes every page it dirtied to the WAL. Measured
/// at 300,000 readings when the identity and outbox indexes were keyed by hashes: 2,000 per
/// batch wrote 19 KB of WAL per reading, 20,000 wrote 8 KB (and took half the time). With
/// time-ordered keys (migration 0013) 50,000 ingest no faster than 20,000 at a million
/// readings. A crash still loses only the batch in flight; running again stores the rest.
pub const BATCH: usize = 20_000;

/// Where the readings of a capture belong.
#[derive(Debug, Clone)]
pub struct IngestTarget {
    pub market: String,
    /// `--stall`: overrides whatever stall the readings name.
    pub stall: Option<String>,
    /// `--instrument`: identity of readings whose stream names no instrument.
    pub instrument: Option<String>,
    /// Name of the byte stream, for the raw frames.
    pub source: String,
}

/// The summary `foodgate ingest` prints last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestSummary {
    /// Readings decoded.
    pub readings: u64,
    /// Stored now (not seen before).
    pub stored: u64,
    /// Seen before: not stored again, no new event.
    pub duplicates: u64,
    /// Readings judged `fail` (stored now or before).
    pub failures: u64,
    /// Decode errors (data dropped) plus readings the store refused.
    pub errors: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot read the input: {0}")]
    Read(#[from] io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

enum Item {
    Reading(Box<Reading>),
    Rejected(String),
}

/// Keeps the bytes pending items will need and cuts their spans.
struct Spans {
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: u64,
    pending: Vec<(u64, Item)>,
}

impl Spans {
    fn end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    fn slice(&self, from: u64, to: u64) -> Vec<u8> {
        RawWindow {
            base: self.base,
            bytes: &self.buf,
        }
        .slice(from, to)
    }

    /// Close every pending item that starts before `boundary`.
    fn close_before(&mut self, boundary: u64, out: &mut Vec<(u64, u64, Item)>) {
        if !self.pending.iter().any(|(o, _)| *o < boundary) {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        for (o, item) in pending {
            if o < boundary {
                out.push((o, boundary, item));
            } else {
                self.pending.push((o, item));
            }
        }
    }

    fn trim(&mut self) {
        let keep_from = self
            .pending
            .iter()
            .map(|(o, _)| *o)
            .min()
            .unwrap_or(u64::MAX)
            .min(self.end().saturating_sub(LOOKBEHIND as u64));
        if keep_from > self.base {
            let cut = ((keep_from - self.base) as usize).min(self.buf.len());
            self.buf.drain(..cut);
            self.base += cut as u64;
        }
    }
}

/// Counts a [`Store`] batch into a summary.
fn tally(summary: &mut IngestSummary, outcomes: &[Outcome]) {
    for o in outcomes {
        match o {
            Outcome::Stored { .. } => summary.stored += 1,
            Outcome::Duplicate { .. } => summary.duplicates += 1,
            Outcome::Rejected { .. } => summary.errors += 1,
        }
    }
}

/// Decode `input` with `decoder`, judge each reading, store them in batches of [`BATCH`].
/// A batch is sent to the store only after the one before it is committed; a crash loses at
/// most the batch in flight (and the one being decoded), and running again stores only what
/// is missing. While a batch commits, the next is decoded and judged beside it: on two
/// cores the writer no longer waits for the decoder, nor the decoder for the writer.
pub fn ingest(
    store: &Store,
    decoder: &mut dyn Decoder,
    judge: &dyn Judging,
    target: &IngestTarget,
    input: impl Read,
) -> Result<IngestSummary, IngestError> {
    let pipeline = Pipeline::new(judge);
    std::thread::scope(|scope| {
        let mut inflight = InFlight {
            store,
            scope,
            handle: None,
        };
        let mut summary = IngestSummary::default();
        let result = decode_and_store(
            &mut inflight,
            decoder,
            pipeline,
            target,
            input,
            &mut summary,
        );
        // Whatever happened, the batch in flight ends (committed or not) before we return.
        let last = inflight.wait(&mut summary);
        result.and(last).map(|()| summary)
    })
}

/// The batch being committed on its own thread, if any.
struct InFlight<'scope, 'env> {
    store: &'env Store,
    scope: &'scope std::thread::Scope<'scope, 'env>,
    handle: Option<std::thread::ScopedJoinHandle<'scope, Result<Committed, StoreError>>>,
}

impl InFlight<'_, '_> {
    /// Wait until the batch in flight is committed and count it.
    fn wait(&mut self, summary: &mut IngestSummary) -> Result<(), IngestError> {
        if let Some(h) = self.handle.take() {
            let committed = h.join().map_err(|_| StoreError::Closed)??;
            tally(summary, &committed.outcomes);
        }
        Ok(())
    }

    /// Send `batch` once the one before it is committed; returns without waiting for it.
    fn send(&mut self, batch: Batch, summary: &mut IngestSummary) -> Result<(), IngestError> {
        self.wait(summary)?;
        let store = self.store;
        self.handle = Some(self.scope.spawn(move || Pipeline::submit(store, batch)));
        Ok(())
    }
}

fn decode_and_store(
    inflight: &mut InFlight<'_, '_>,
    decoder: &mut dyn Decoder,
    pipeline: Pipeline<'_>,
    target: &IngestTarget,
    mut input: impl Read,
    summary: &mut IngestSummary,
) -> Result<(), IngestError> {
    let mut spans = Spans {
        buf: Vec::new(),
        base: 0,
        pending: Vec::new(),
    };
    let mut events = Vec::new();
    let mut closed = Vec::new();
    let mut batch = Batch::default();
    let mut chunk = vec![0u8; 64 * 1024];
    let received_at = Utc::now();
    loop {
        let n = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        let piece = chunk.get(..n).unwrap_or_default();
        spans.buf.extend_from_slice(piece);
        decoder.feed(piece, &mut events);
        absorb(&mut spans, &mut events, &mut closed, summary);
        fill(
            pipeline,
            &spans,
            &mut closed,
            &mut batch,
            target,
            received_at,
            summary,
        );
        if batch.readings.len() >= BATCH {
            inflight.send(std::mem::take(&mut batch), summary)?;
        }
        spans.trim();
    }
    decoder.finish(&mut events);
    absorb(&mut spans, &mut events, &mut closed, summary);
    let end = spans.end();
    spans.close_before(u64::MAX, &mut closed);
    for c in &mut closed {
        c.1 = c.1.min(end);
    }
    fill(
        pipeline,
        &spans,
        &mut closed,
        &mut batch,
        target,
        received_at,
        summary,
    );
    if !batch.readings.is_empty() || !batch.frames.is_empty() {
        inflight.send(batch, summary)?;
    }
    Ok(())
}

fn absorb(
    spans: &mut Spans,
    events: &mut Vec<Event>,
    closed: &mut Vec<(u64, u64, Item)>,
    summary: &mut IngestSummary,
) {
    for ev in events.drain(..) {
        let (offset, item) = match ev {
            Event::Reading(r) => (r.offset.unwrap_or(spans.end()), Some(Item::Reading(r))),
            Event::Diagnostic(d) => {
                let item = pipeline::error_text(&d).map(|e| {
                    summary.errors += 1;
                    Item::Rejected(e)
                });
                (d.offset, item)
            }
            Event::Device(d) => (d.offset, None),
            Event::Heartbeat(h) => (h.offset, None),
            Event::Link(l) => (link_offset(&l), None),
        };
        spans.close_before(offset, closed);
        if let Some(item) = item {
            spans.pending.push((offset, item));
        }
    }
}

fn link_offset(l: &foodgate_parsers::LinkEvent) -> u64 {
    use foodgate_parsers::LinkEvent as L;
    match l {
        L::Enq { offset } | L::Eot { offset } => *offset,
        L::Frame { offset, .. } | L::MessageEnd { offset, .. } | L::Reply { offset, .. } => *offset,
    }
}

/// Turn closed spans into frames and judged readings of the batch; readings of one span,
/// and readings whose spans follow each other, share one frame.
fn fill(
    pipeline: Pipeline<'_>,
    spans: &Spans,
    closed: &mut Vec<(u64, u64, Item)>,
    batch: &mut Batch,
    target: &IngestTarget,
    received_at: DateTime<Utc>,
    summary: &mut IngestSummary,
) {
    let mut last: Option<(u64, usize)> = None;
    let unnamed = target
        .instrument
        .clone()
        .unwrap_or_else(|| format!("unidentified@{}", target.market));
    for (from, to, item) in closed.drain(..) {
        match item {
            Item::Rejected(error) => {
                let merges = batch
                    .frames
                    .last()
                    .is_some_and(|f| f.offset == from && f.error.is_some());
                pipeline::reject(
                    batch,
                    RawFrame {
                        source: target.source.clone(),
                        offset: from,
                        bytes: if merges {
                            Vec::new()
                        } else {
                            spans.slice(from, to)
                        },
                        error: Some(error),
                        received_at,
                    },
                )
            }
            Item::Reading(r) => {
                // Consecutive readings share one frame (a raw row per reading cost as much
                // as the reading); each keeps its own `offset` into the stream, so its
                // bytes start at `offset - frame.stream_offset` in the frame.
                let frame = match last {
                    Some((o, i)) if o == from => i,
                    Some((_, i))
                        if r.offset == Some(from)
                            && batch.frames.get(i).is_some_and(|f| {
                                f.error.is_none()
                                    && f.offset + f.bytes.len() as u64 == from
                                    && (to - f.offset) as usize <= MAX_RAW
                            }) =>
                    {
                        if let Some(f) = batch.frames.get_mut(i) {
                            f.bytes.extend_from_slice(&spans.slice(from, to));
                        }
                        i
                    }
                    _ => {
                        batch.frames.push(RawFrame {
                            source: target.source.clone(),
                            offset: from,
                            bytes: spans.slice(from, to),
                            error: None,
                            received_at,
                        });
                        batch.frames.len() - 1
                    }
                };
                last = Some((from, frame));
                let verdict = pipeline.admit(
                    batch,
                    *r,
                    Place {
                        market: &target.market,
                        stall: target.stall.as_deref(),
                        sender: SentBy::Instrument { unnamed: &unnamed },
                        received_at,
                        frame,
                    },
                );
                summary.readings += 1;
                if verdict == Verdict::Fail {
                    summary.failures += 1;
                }
            }
        }
    }
}
