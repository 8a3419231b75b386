//! Live links to the instruments inside `serve`: the store as the links' [`Sink`], every
//! configured `[[instrument]]` started, and their status kept in the `instruments` table.
//!
//! The path of a reading: a link session decodes a frame or message, [`StoreSink`] hands its
//! readings to the [`Pipeline`], which judges them and stores them with the bytes they came
//! from (and any frame the decoder rejected, with the error); the store replies after COMMIT,
//! which also queued the outbox events and woke the uplink; only then does the session
//! acknowledge on the wire.

use crate::config::{self, Config, Instrument, Transport};
use crate::judge::{Judge, Reference};
use crate::pipeline::{self, Pipeline, Place, RawWindow, SentBy};
use crate::store::instruments::Counters;
use crate::store::{self, Outcome, RawFrame, Store, StoreError};
use chrono::{DateTime, Utc};
use foodgate_devices::archive::DEFAULT_MAX_FILE;
use foodgate_devices::line::{self, LineSettings};
use foodgate_devices::{
    run_instrument, CommitReport, Endpoint, InstrumentLink, InstrumentStatus, Link, LinkBatch,
    LinkTiming, RawArchive, SerialConfig, Sink, SinkError, StatusHandle,
};
use foodgate_parsers::DecoderConfig;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A commit that takes longer than this is answered as refused: instruments wait 1 s
/// (gold-card) to 15 s (ASTM) for an answer, and a store stuck behind another process's
/// lock (SQLite waits up to 10 s for it) must not hold the link past that.
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a store that refused is tried again (with an empty write transaction) before
/// new transfers are accepted.
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// The store as the instruments' sink: judges, stores, reports after COMMIT.
#[derive(Debug)]
pub struct StoreSink {
    store: Store,
    judge: Judge,
    /// Market of each configured instrument.
    markets: HashMap<String, String>,
    /// Process start (ms): with the session's stream number, names a byte stream uniquely
    /// across restarts in `raw_frames.source`.
    boot: i64,
    commit_timeout: Duration,
    /// False after the store refused, until an empty write transaction commits again.
    healthy: Arc<AtomicBool>,
    probing: Arc<AtomicBool>,
}

impl StoreSink {
    pub fn new(store: Store, judge: Judge, instruments: &[Instrument]) -> Self {
        StoreSink {
            store,
            judge,
            markets: instruments
                .iter()
                .map(|i| (i.id.clone(), i.market.clone()))
                .collect(),
            boot: Utc::now().timestamp_millis(),
            commit_timeout: COMMIT_TIMEOUT,
            healthy: Arc::new(AtomicBool::new(true)),
            probing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Replace [`COMMIT_TIMEOUT`].
    pub fn with_commit_timeout(mut self, timeout: Duration) -> Self {
        self.commit_timeout = timeout;
        self
    }

    /// `raw_frames.source` of a link's byte stream.
    pub fn source(&self, instrument: &str, stream: u64) -> String {
        format!("{instrument}/{}-{stream}", self.boot)
    }

    /// Judge the readings of a link batch and turn it into a store batch: one raw frame with
    /// the batch's bytes that every reading points to, and one rejected frame (with its
    /// decode errors) per offset the decoder dropped data at.
    pub fn store_batch(&self, batch: LinkBatch) -> Result<store::Batch, SinkError> {
        let Some(market) = self.markets.get(&batch.instrument) else {
            return Err(SinkError(format!(
                "instrument {:?} is not configured",
                batch.instrument
            )));
        };
        let source = self.source(&batch.instrument, batch.stream);
        let window = RawWindow {
            base: batch.raw_offset,
            bytes: &batch.raw,
        };
        let end = window.end();
        let mut errors: Vec<(u64, String)> = batch
            .diagnostics
            .iter()
            .filter_map(|d| pipeline::error_text(d).map(|e| (d.offset, e)))
            .collect();
        // Stable: errors about one offset stay in the order the decoder reported them.
        errors.sort_by_key(|(o, _)| *o);
        // A rejected frame's bytes run to the next thing the decoder reported.
        let mut marks: Vec<u64> = errors.iter().map(|(o, _)| *o).collect();
        marks.extend(batch.readings.iter().filter_map(|r| r.offset));
        marks.sort_unstable();
        let mut out = store::Batch {
            frames: Vec::with_capacity(errors.len() + 1),
            readings: Vec::with_capacity(batch.readings.len()),
        };
        for (offset, error) in errors {
            let to = marks.iter().copied().find(|m| *m > offset).unwrap_or(end);
            pipeline::reject(
                &mut out,
                RawFrame {
                    source: source.clone(),
                    offset,
                    bytes: window.slice(offset, to),
                    error: Some(error),
                    received_at: batch.received_at,
                },
            );
        }
        let frame = out.frames.len();
        out.frames.push(RawFrame {
            source,
            offset: batch.raw_offset,
            bytes: batch.raw,
            error: None,
            received_at: batch.received_at,
        });
        let pipeline = Pipeline::new(&self.judge);
        for reading in batch.readings {
            pipeline.admit(
                &mut out,
                reading,
                Place {
                    market,
                    // The reading's `source` (when the instrument sends a stall) is taken.
                    stall: None,
                    sender: SentBy::Instrument {
                        unnamed: &batch.instrument,
                    },
                    received_at: batch.received_at,
                    frame,
                },
            );
        }
        Ok(out)
    }

    fn refused(&self, why: String) -> SinkError {
        self.healthy.store(false, Ordering::SeqCst);
        if !self.probing.swap(true, Ordering::SeqCst) {
            let (store, healthy, probing) = (
                self.store.clone(),
                Arc::clone(&self.healthy),
                Arc::clone(&self.probing),
            );
            let timeout = self.commit_timeout;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(PROBE_EVERY).await;
                    if healthy.load(Ordering::SeqCst) {
                        break;
                    }
                    let probe = store.write_async(|_| Ok(()));
                    match tokio::time::timeout(timeout, probe).await {
                        Ok(Ok(())) => {
                            tracing::info!("store takes data again");
                            healthy.store(true, Ordering::SeqCst);
                            break;
                        }
                        Ok(Err(StoreError::Closed)) => break,
                        _ => {}
                    }
                }
                probing.store(false, Ordering::SeqCst);
            });
        }
        tracing::warn!("store refused a batch: {why}");
        SinkError(why)
    }
}

impl Sink for StoreSink {
    async fn commit(&self, batch: LinkBatch) -> Result<CommitReport, SinkError> {
        let instrument = batch.instrument.clone();
        let batch = self.store_batch(batch)?;
        let committed = match Pipeline::submit_within(&self.store, batch, self.commit_timeout).await
        {
            // A timeout and a store error alike: the link answers "refused".
            Err(e) => return Err(self.refused(e.to_string())),
            Ok(c) => c,
        };
        self.healthy.store(true, Ordering::SeqCst);
        let mut report = CommitReport::default();
        let mut rejected = None;
        for o in &committed.outcomes {
            match o {
                Outcome::Stored { .. } => report.stored += 1,
                Outcome::Duplicate { .. } => report.duplicates += 1,
                Outcome::Rejected { reason } => rejected = Some(reason.clone()),
            }
        }
        // The store itself works; the data does not fit it (an unknown market): the
        // instrument keeps it until the registry knows the market.
        if let Some(reason) = rejected {
            tracing::warn!(instrument, "readings rejected by the store: {reason}");
            return Err(SinkError(format!("rejected: {reason}")));
        }
        Ok(report)
    }

    fn ready(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    async fn last_complete_day(&self, instrument: &str) -> Option<chrono::NaiveDate> {
        let store = self.store.clone();
        let id = instrument.to_string();
        let read = tokio::task::spawn_blocking(move || {
            let reader = store.reader()?;
            Ok::<_, StoreError>(store::poll_progress::last_complete_day(&reader, &id)?)
        })
        .await;
        match read {
            Ok(Ok(day)) => day,
            Ok(Err(e)) => {
                // Without it the poll reads its usual days: nothing is lost, a gap may be.
                tracing::warn!(instrument, "cannot read the last day polled: {e}");
                None
            }
            Err(_) => None,
        }
    }

    async fn day_complete(
        &self,
        instrument: &str,
        day: chrono::NaiveDate,
    ) -> Result<(), SinkError> {
        let id = instrument.to_string();
        self.store
            .write_async(move |tx| store::poll_progress::day_complete(tx, &id, day))
            .await
            .map_err(|e| self.refused(e.to_string()))
    }
}

/// A polled instrument's `poll = { … }` as its link takes it.
fn poll_settings(p: config::PollConfig) -> foodgate_devices::PollSettings {
    foodgate_devices::PollSettings {
        every: p.every,
        days: p.days,
        reply_timeout: p.reply_timeout,
        retries: p.retries,
        gap: p.gap,
    }
}

/// The line settings of a configured serial port.
pub fn line_settings(i: &Instrument, s: &config::Serial) -> LineSettings {
    let mut l = LineSettings::for_protocol(i.protocol);
    l.baud = s.baud;
    if let Ok(d) = line::data_bits(s.data_bits) {
        l.data_bits = d;
    }
    if let Ok(b) = line::stop_bits(s.stop_bits) {
        l.stop_bits = b;
    }
    l.parity = match s.parity {
        config::Parity::None => line::Parity::None,
        config::Parity::Odd => line::Parity::Odd,
        config::Parity::Even => line::Parity::Even,
    };
    l.flow_control = match s.flow_control {
        config::FlowControl::None => line::FlowControl::None,
        config::FlowControl::Software => line::FlowControl::Software,
        config::FlowControl::Hardware => line::FlowControl::Hardware,
    };
    l
}

/// One running instrument link.
#[derive(Debug)]
pub struct RunningLink {
    pub id: String,
    pub market: String,
    pub protocol: &'static str,
    pub status: StatusHandle,
    /// The TCP address bound (port 0 picks one).
    pub bound: Option<SocketAddr>,
    task: JoinHandle<()>,
}

/// Every configured instrument's link, running.
#[derive(Debug)]
pub struct Links {
    pub links: Vec<RunningLink>,
    /// Counters stored by earlier runs, added to this run's.
    baseline: HashMap<String, Counters>,
}

/// Start a link for every `[[instrument]]` of `config`. A serial port that is absent is
/// no error (the link shows offline and keeps trying); a TCP address that cannot be bound is.
pub async fn start(
    config: &Config,
    store: &Store,
    reference: Arc<Reference>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Links> {
    let sink = Arc::new(StoreSink::new(
        store.clone(),
        Judge::new(Arc::clone(&reference)),
        &config.instruments,
    ));
    let baseline = load_baseline(store)?;
    let raw_root = config.data_dir.join("raw");
    let mut links = Vec::with_capacity(config.instruments.len());
    for i in &config.instruments {
        let mut table = reference.alias_table();
        for (code, canonical) in &i.aliases {
            table.insert(code, canonical);
        }
        let status = StatusHandle::new(&i.id, i.protocol.as_str());
        let link = Link {
            instrument: i.id.clone(),
            protocol: i.protocol,
            decoder: DecoderConfig {
                encoding: i.encoding,
                utc_offset: i.utc_offset,
                instrument: Some(i.id.as_str().into()),
                aliases: Arc::new(table),
                check_crc: i.check_crc,
            },
            sink: Arc::clone(&sink),
            status: status.clone(),
            archive: Some(Arc::new(archive(&raw_root, i))),
            timing: LinkTiming::default(),
            hl7_application: "FOODGATE".into(),
            hl7_facility: i.market.clone(),
            poll: i.poll.map(poll_settings).unwrap_or_default(),
        };
        let (endpoint, shown) = match &i.transport {
            Transport::Serial(s) => (
                Endpoint::Serial(SerialConfig::new(&s.path, line_settings(i, s))),
                format!("serial {} {} baud", s.path, s.baud),
            ),
            Transport::Tcp { listen } => {
                (Endpoint::Tcp { listen: *listen }, format!("tcp {listen}"))
            }
        };
        let (task, bound) = run_instrument(
            InstrumentLink {
                link: Arc::new(link),
                endpoint,
            },
            shutdown.clone(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("instrument {:?}: cannot listen on {shown}: {e}", i.id))?;
        match bound {
            Some(addr) => tracing::info!(
                instrument = %i.id, protocol = i.protocol.as_str(), market = %i.market,
                "link started: tcp listening on {addr}"
            ),
            None => tracing::info!(
                instrument = %i.id, protocol = i.protocol.as_str(), market = %i.market,
                "link started: {shown}"
            ),
        }
        links.push(RunningLink {
            id: i.id.clone(),
            market: i.market.clone(),
            protocol: i.protocol.as_str(),
            status,
            bound,
            task,
        });
    }
    Ok(Links { links, baseline })
}

fn archive(root: &Path, i: &Instrument) -> RawArchive {
    RawArchive::new(root, &i.id, i.utc_offset, DEFAULT_MAX_FILE)
}

fn load_baseline(store: &Store) -> Result<HashMap<String, Counters>, StoreError> {
    Ok(store::instruments::counters(&store.reader()?)?)
}

/// One `instruments` row as written.
#[derive(Debug, Clone)]
struct LinkSnapshot {
    id: String,
    market: String,
    protocol: &'static str,
    s: InstrumentStatus,
    base: Counters,
}

fn n(v: u64, base: i64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX).saturating_add(base)
}

fn time(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(store::insert::rfc3339)
}

impl Links {
    /// Write every instrument's status into the `instruments` table (one transaction). An
    /// instrument whose market the registry does not know is skipped.
    pub async fn persist(&self, store: &Store) -> Result<(), StoreError> {
        let rows: Vec<LinkSnapshot> = self
            .links
            .iter()
            .map(|l| LinkSnapshot {
                id: l.id.clone(),
                market: l.market.clone(),
                protocol: l.protocol,
                s: l.status.snapshot(),
                base: self.baseline.get(&l.id).copied().unwrap_or_default(),
            })
            .collect();
        let now = store::insert::rfc3339(Utc::now());
        store
            .write_async(move |tx| {
                for r in &rows {
                    let s = &r.s;
                    let last_seen = time(s.last_seen());
                    store::instruments::upsert_status(
                        tx,
                        &store::instruments::StatusRow {
                            id: &r.id,
                            market: &r.market,
                            protocol: r.protocol,
                            serial_number: s.serial_number.as_deref(),
                            model: s.model.as_deref(),
                            firmware: s.firmware.as_deref(),
                            last_seen,
                            online: s.online,
                            counters: Counters {
                                readings: n(s.readings, r.base.readings),
                                duplicates: n(s.duplicates, r.base.duplicates),
                                decode_errors: n(s.decode_errors, r.base.decode_errors),
                                reconnects: n(s.reconnects, r.base.reconnects),
                                retransmissions: n(s.retransmissions, r.base.retransmissions),
                                refused_commits: n(s.refused_commits, r.base.refused_commits),
                            },
                            last_error: s.last_error.as_deref(),
                            status_at: &now,
                        },
                    )?;
                }
                Ok(())
            })
            .await
    }

    /// Log what changes on each link (online, offline, reconnects, errors) every 250 ms and
    /// write the status table every `every`, until `shutdown` turns true.
    pub async fn watch(&self, store: &Store, every: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut seen: Vec<InstrumentStatus> =
            self.links.iter().map(|l| l.status.snapshot()).collect();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_persist = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
            }
            for (l, before) in self.links.iter().zip(seen.iter_mut()) {
                let now = l.status.snapshot();
                log_change(&l.id, before, &now);
                *before = now;
            }
            if last_persist.elapsed() >= every {
                last_persist = tokio::time::Instant::now();
                if let Err(e) = self.persist(store).await {
                    tracing::warn!("cannot write the instruments' status: {e}");
                }
            }
        }
    }

    /// Wait for every link task to finish (after shutdown).
    pub async fn join(&mut self) {
        for l in &mut self.links {
            let _ = (&mut l.task).await;
        }
        for l in &self.links {
            tracing::info!(instrument = %l.id, "link stopped");
        }
    }
}

fn log_change(id: &str, before: &InstrumentStatus, now: &InstrumentStatus) {
    if now.reconnects > before.reconnects {
        tracing::info!(
            instrument = id,
            reconnects = now.reconnects,
            "link reconnected"
        );
    }
    if now.online != before.online {
        if now.online {
            tracing::info!(
                instrument = id,
                connections = now.connections,
                "link online"
            );
        } else {
            tracing::warn!(
                instrument = id,
                "link offline: {}",
                now.last_error.as_deref().unwrap_or("disconnected")
            );
        }
    } else if now.connections != before.connections {
        tracing::info!(
            instrument = id,
            connections = now.connections,
            "connections changed"
        );
    }
    if now.last_error != before.last_error {
        if let Some(e) = &now.last_error {
            tracing::warn!(instrument = id, "{e}");
        }
    }
}
