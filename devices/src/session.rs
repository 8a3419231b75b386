//! A link session: one byte stream from one instrument, decoded, committed, acknowledged.
//!
//! The rule every protocol follows: readings are committed to the [`Sink`] *before* the
//! acknowledgement that tells the sender it may forget them; when the sink refuses, the
//! sender is told so (ASTM `NAK`, HL7 `AR`, no gold-card ack) and keeps the data.
//!
//! The session is generic over the byte stream (`AsyncRead + AsyncWrite`), so serial ports,
//! TCP connections, pty pairs and in-memory pipes all run the same code.

use crate::archive::RawArchive;
use crate::sink::{LinkBatch, Sink, SinkError};
use crate::status::StatusHandle;
use chrono::Utc;
use foodgate_parsers::event::{FrameOutcome, LinkEvent};
use foodgate_parsers::hl7::{ack, AckCode, AckHeader};
use foodgate_parsers::{
    new_decoder, Decoder, DecoderConfig, Diagnostic, Event, Level, Protocol, Reading,
};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const ACK: u8 = 0x06;
const NAK: u8 = 0x15;
const FS: u8 = 0x1C;
const CR: u8 = 0x0D;

/// Raw bytes kept for one batch; older bytes of a longer span stay in the archive only.
const MAX_BATCH_RAW: usize = 1024 * 1024;
/// Diagnostics kept for one batch.
const MAX_BATCH_DIAGNOSTICS: usize = 256;
/// Refused batches kept for a retry (gold-card, receive-only protocols).
const MAX_BACKLOG: usize = 1024;
const READ_CHUNK: usize = 8192;

/// Timeouts of a session; tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkTiming {
    /// ASTM: no byte for this long inside a transfer (ENQ … EOT) discards the unfinished
    /// message; HL7: an MLLP block left open this long is discarded. 30 s by the documents.
    pub transfer_idle: Duration,
    /// How often refused batches are offered to the sink again (gold-card, receive-only).
    pub commit_retry: Duration,
}

impl Default for LinkTiming {
    fn default() -> Self {
        LinkTiming {
            transfer_idle: Duration::from_secs(30),
            commit_retry: Duration::from_secs(1),
        }
    }
}

/// `poll = { every_s, days, reply_timeout_ms, retries, gap_ms }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSettings {
    /// Time from the start of one poll to the start of the next.
    pub every: Duration,
    /// Local days, ending today, each poll reads.
    pub days: u32,
    /// How long a reply (or the next record of a reply) is waited for.
    pub reply_timeout: Duration,
    /// Times a request is made again after a missing or broken reply.
    pub retries: u32,
    /// Pause before each request.
    pub gap: Duration,
}

impl Default for PollSettings {
    fn default() -> Self {
        PollSettings {
            every: Duration::from_secs(300),
            days: 2,
            reply_timeout: Duration::from_millis(3000),
            retries: 3,
            gap: Duration::from_millis(50),
        }
    }
}

/// Everything a session of one instrument needs; shared by all its connections.
#[derive(Debug)]
pub struct Link<S> {
    /// Configured instrument id.
    pub instrument: String,
    pub protocol: Protocol,
    pub decoder: DecoderConfig,
    pub sink: Arc<S>,
    pub status: StatusHandle,
    pub archive: Option<Arc<RawArchive>>,
    pub timing: LinkTiming,
    /// Our MSH-3 and MSH-4 in HL7 acknowledgements.
    pub hl7_application: String,
    pub hl7_facility: String,
    /// Polled instruments (`lz4000t`, `tl310`, `dy723pc`): schedule, timeouts, retries.
    pub poll: PollSettings,
}

impl<S: Sink> Link<S> {
    /// A link with the document defaults, no archive, and a fresh status.
    pub fn new(instrument: &str, protocol: Protocol, sink: Arc<S>) -> Self {
        Link {
            instrument: instrument.into(),
            protocol,
            decoder: DecoderConfig {
                instrument: Some(instrument.into()),
                ..DecoderConfig::default()
            },
            sink,
            status: StatusHandle::new(instrument, protocol.as_str()),
            archive: None,
            timing: LinkTiming::default(),
            hl7_application: "FOODGATE".into(),
            hl7_facility: String::new(),
            poll: PollSettings::default(),
        }
    }
}

impl<S> Link<S> {
    /// Bytes came in on the line: into the raw archive, and counted in the status.
    pub(crate) fn took_bytes(&self, chunk: &[u8]) {
        if let Some(archive) = &self.archive {
            if let Err(e) = archive.append(chunk) {
                self.status.error(format!("raw archive: {e}"));
            }
        }
        let now = Utc::now();
        self.status.update(|st| {
            st.bytes += chunk.len() as u64;
            st.last_byte_at = Some(now);
        });
    }
}

/// Why a session ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// The peer closed the stream.
    Eof,
    /// Reading or writing failed: the port or connection is gone.
    Error(io::Error),
}

static STREAMS: AtomicU64 = AtomicU64::new(1);

/// A new stream id (one per opened port or accepted connection).
pub(crate) fn next_stream() -> u64 {
    STREAMS.fetch_add(1, Ordering::Relaxed)
}

/// Run one session until the stream ends. Whatever is unfinished at the end is discarded
/// (and logged), never half-stored.
pub async fn run_session<S, T>(link: &Link<S>, mut io: T) -> SessionEnd
where
    S: Sink,
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut s = Session::new(link);
    let mut buf = vec![0u8; READ_CHUNK];
    let end = loop {
        let wait = if s.in_transfer {
            Some(link.timing.transfer_idle)
        } else if !s.backlog.is_empty() || !s.unacked.is_empty() {
            Some(link.timing.commit_retry)
        } else {
            None
        };
        let read = match wait {
            Some(d) => tokio::time::timeout(d, io.read(&mut buf)).await.ok(),
            None => Some(io.read(&mut buf).await),
        };
        let result = match read {
            None => s.idle(&mut io).await,
            Some(Ok(0)) => break SessionEnd::Eof,
            Some(Ok(n)) => s.received(&buf[..n], &mut io).await,
            Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Some(Err(e)) => break SessionEnd::Error(e),
        };
        if let Err(e) = result {
            break SessionEnd::Error(e);
        }
    };
    s.close(&mut io).await;
    end
}

struct Session<'a, S> {
    link: &'a Link<S>,
    stream: u64,
    decoder: Box<dyn Decoder>,
    events: Vec<Event>,
    /// Readings decoded since the last link event that closed them.
    pending: Vec<Reading>,
    diagnostics: Vec<Diagnostic>,
    raw: Vec<u8>,
    raw_offset: u64,
    /// Bytes received so far: the stream offset of the next byte.
    received: u64,
    /// ASTM between `ENQ` and `EOT`; HL7 inside an MLLP block.
    in_transfer: bool,
    /// Last two bytes of the stream (HL7 block end detection).
    tail: [u8; 2],
    /// ASTM: the frame number NAKed for being out of sequence; its retransmissions are
    /// NAKed as well, so that the sender gives up rather than continue a broken chain.
    sequence_nak: Option<u32>,
    /// ASTM: `message_discarded` offsets seen since the last frame event.
    discarded_at: Vec<u64>,
    /// ASTM: offsets of frames dropped since the last accepted one.
    dropped_at: Vec<u64>,
    /// Frames whose readings the sink refused, by frame/sequence number, not acknowledged.
    unacked: Vec<(u32, LinkBatch)>,
    /// Receive-only protocols: refused batches, retried in order.
    backlog: Vec<LinkBatch>,
    /// Replies are no longer attempted once a write failed.
    writable: bool,
}

impl<'a, S: Sink> Session<'a, S> {
    fn new(link: &'a Link<S>) -> Self {
        link.status.update(|st| st.connections += 1);
        link.status.update(|st| st.online = st.connections > 0);
        Session {
            link,
            stream: next_stream(),
            decoder: new_decoder(link.protocol, link.decoder.clone()),
            events: Vec::new(),
            pending: Vec::new(),
            diagnostics: Vec::new(),
            raw: Vec::new(),
            raw_offset: 0,
            received: 0,
            in_transfer: false,
            tail: [0; 2],
            sequence_nak: None,
            discarded_at: Vec::new(),
            dropped_at: Vec::new(),
            unacked: Vec::new(),
            backlog: Vec::new(),
            writable: true,
        }
    }

    async fn received<T>(&mut self, chunk: &[u8], io: &mut T) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.link.took_bytes(chunk);
        self.raw.extend_from_slice(chunk);
        if self.raw.len() > MAX_BATCH_RAW {
            let cut = self.raw.len() - MAX_BATCH_RAW;
            self.raw.drain(..cut);
            self.raw_offset += cut as u64;
        }
        self.received += chunk.len() as u64;
        match chunk {
            [.., a, b] => self.tail = [*a, *b],
            [b] => self.tail = [self.tail[1], *b],
            [] => {}
        }
        self.decoder.feed(chunk, &mut self.events);
        self.dispatch(io).await?;
        if self.link.protocol == Protocol::Hl7 {
            self.in_transfer = self.tail != [FS, CR];
        }
        self.commit_unacknowledged().await;
        Ok(())
    }

    /// No byte for a while: a transfer timed out, or it is time to retry refused batches.
    async fn idle<T>(&mut self, io: &mut T) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        if self.in_transfer {
            self.in_transfer = false;
            self.link.status.error(format!(
                "no byte for {:?} inside a transfer: unfinished data discarded",
                self.link.timing.transfer_idle
            ));
            self.decoder.finish(&mut self.events);
            self.dispatch(io).await?;
            self.unacked.clear();
            self.sequence_nak = None;
        }
        self.retry_unacked(io).await?;
        self.commit_unacknowledged().await;
        Ok(())
    }

    async fn close<T>(&mut self, io: &mut T)
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.decoder.finish(&mut self.events);
        // The peer is gone or leaving: nothing more is said to it.
        self.writable = false;
        let _ = self.dispatch(io).await;
        self.commit_unacknowledged().await;
        let lost: usize = self.backlog.iter().map(|b| b.readings.len()).sum::<usize>()
            + self
                .unacked
                .iter()
                .map(|(_, b)| b.readings.len())
                .sum::<usize>();
        if lost > 0 {
            self.link.status.error(format!(
                "link closed with {lost} reading(s) the store refused: not stored (the raw archive has them)"
            ));
        }
        self.link.status.update(|st| {
            st.connections = st.connections.saturating_sub(1);
            st.online = st.connections > 0;
        });
    }

    async fn reply<T>(&mut self, io: &mut T, bytes: &[u8]) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        if !self.writable {
            return Ok(());
        }
        // One write call per reply: MLLP clients take a single recv as the whole ack.
        let r = async {
            io.write_all(bytes).await?;
            io.flush().await
        }
        .await;
        if r.is_err() {
            self.writable = false;
        }
        r
    }

    async fn dispatch<T>(&mut self, io: &mut T) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let mut events = std::mem::take(&mut self.events);
        let mut result = Ok(());
        for ev in events.drain(..) {
            if let Err(e) = self.event(ev, io).await {
                result = Err(e);
            }
        }
        self.events = events;
        result
    }

    async fn event<T>(&mut self, ev: Event, io: &mut T) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let status = &self.link.status;
        match ev {
            Event::Reading(r) => self.pending.push(*r),
            Event::Device(info) => status.device(&info),
            Event::Heartbeat(h) => {
                let now = Utc::now();
                status.update(|st| {
                    st.last_heartbeat_at = Some(now);
                    if h.uptime_s.is_some() {
                        st.uptime_s = h.uptime_s;
                    }
                });
            }
            Event::Diagnostic(d) => {
                let astm = self.link.protocol == Protocol::Astm;
                if d.level == Level::Error {
                    let text = format!("{} at offset {}: {}", d.error, d.offset, d.message);
                    status.update(|st| {
                        st.decode_errors += 1;
                        st.last_error = Some(text);
                    });
                    if astm {
                        match d.error {
                            "message_discarded" => self.discarded_at.push(d.offset),
                            "bad_checksum" | "truncated_frame" => self.dropped_at.push(d.offset),
                            // A frame the sender waits an answer for but that never reached
                            // a checksum check: answer it here.
                            "malformed_frame" | "frame_too_long" => {
                                self.dropped_at.push(d.offset);
                                if self.in_transfer {
                                    self.reply(io, &[NAK]).await?;
                                }
                            }
                            _ => {}
                        }
                    }
                }
                if self.diagnostics.len() < MAX_BATCH_DIAGNOSTICS {
                    self.diagnostics.push(d);
                }
            }
            Event::Link(l) => match self.link.protocol {
                Protocol::Astm => self.astm(l, io).await?,
                Protocol::Hl7 => self.hl7(l, io).await?,
                Protocol::GoldCard => self.gold_card(l, io).await?,
                Protocol::EnzymePrint | Protocol::Spectro => {}
                // Polled devices answer requests; they are never run by this push session.
                Protocol::Lz4000t | Protocol::Tl310 | Protocol::Dy723pc => {}
            },
        }
        Ok(())
    }

    fn batch(&mut self) -> LinkBatch {
        let batch = LinkBatch {
            instrument: self.link.instrument.clone(),
            protocol: self.link.protocol,
            stream: self.stream,
            readings: std::mem::take(&mut self.pending),
            raw: std::mem::take(&mut self.raw),
            raw_offset: self.raw_offset,
            diagnostics: std::mem::take(&mut self.diagnostics),
            received_at: Utc::now(),
        };
        self.raw_offset = self.received;
        batch
    }

    /// Commit, counting; the batch comes back when the sink refused it.
    async fn commit(&mut self, batch: LinkBatch) -> Result<(), (LinkBatch, SinkError)> {
        match self.link.sink.commit(batch.clone()).await {
            Ok(report) => {
                let now = Utc::now();
                self.link.status.update(|st| {
                    st.readings += report.stored as u64;
                    st.duplicates += report.duplicates as u64;
                    if report.stored + report.duplicates > 0 {
                        st.last_reading_at = Some(now);
                    }
                });
                Ok(())
            }
            Err(e) => {
                let text = e.to_string();
                self.link.status.update(|st| {
                    st.refused_commits += 1;
                    st.last_error = Some(text);
                });
                Err((batch, e))
            }
        }
    }

    /// Receive-only protocols: nobody waits for an answer, so readings are committed as
    /// they come and refused ones are kept (bounded) and offered again.
    async fn commit_unacknowledged(&mut self) {
        if !matches!(
            self.link.protocol,
            Protocol::EnzymePrint | Protocol::Spectro
        ) {
            return;
        }
        if !self.pending.is_empty() {
            let b = self.batch();
            self.backlog.push(b);
        }
        while !self.backlog.is_empty() {
            let b = self.backlog.remove(0);
            if let Err((b, _)) = self.commit(b).await {
                self.backlog.insert(0, b);
                break;
            }
        }
        if self.backlog.len() > MAX_BACKLOG {
            let dropped = self.backlog.remove(0);
            self.link.status.error(format!(
                "store refused for too long: {} reading(s) dropped from memory (the raw archive has them)",
                dropped.readings.len()
            ));
        }
    }

    /// Gold-card: refused result frames are offered to the sink again, and acknowledged
    /// once stored (the reader may still be retrying them).
    async fn retry_unacked<T>(&mut self, io: &mut T) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        if self.link.protocol != Protocol::GoldCard {
            return Ok(());
        }
        while !self.unacked.is_empty() {
            let (number, b) = self.unacked.remove(0);
            match self.commit(b).await {
                Ok(()) => {
                    let ack = foodgate_parsers::gold_card::encode_ack(number as u16);
                    self.reply(io, &ack).await?;
                }
                Err((b, _)) => {
                    self.unacked.insert(0, (number, b));
                    break;
                }
            }
        }
        Ok(())
    }

    async fn astm<T>(&mut self, l: LinkEvent, io: &mut T) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match l {
            LinkEvent::Enq { .. } => {
                self.pending.clear();
                self.unacked.clear();
                self.sequence_nak = None;
                self.dropped_at.clear();
                self.discarded_at.clear();
                self.in_transfer = self.link.sink.ready();
                if self.in_transfer {
                    self.reply(io, &[ACK]).await?;
                } else {
                    self.link
                        .status
                        .error("store not ready: ENQ answered with NAK");
                    self.reply(io, &[NAK]).await?;
                }
            }
            LinkEvent::Eot { .. } => {
                self.in_transfer = false;
                self.pending.clear();
                self.sequence_nak = None;
                self.dropped_at.clear();
                self.discarded_at.clear();
                let lost: usize = self.unacked.drain(..).map(|(_, b)| b.readings.len()).sum();
                if lost > 0 {
                    self.link.status.error(format!(
                        "sender ended the transfer with {lost} reading(s) the store refused: it must send them again"
                    ));
                }
            }
            LinkEvent::MessageEnd { .. } | LinkEvent::Reply { .. } => {}
            LinkEvent::Frame {
                offset,
                number,
                outcome,
            } => {
                let discarded = std::mem::take(&mut self.discarded_at);
                match outcome {
                    FrameOutcome::Rejected => {
                        self.pending.clear();
                        self.reply(io, &[NAK]).await?;
                    }
                    FrameOutcome::Retransmission => {
                        self.link.status.update(|st| st.retransmissions += 1);
                        self.pending.clear();
                        if self.sequence_nak == Some(number) {
                            return self.reply(io, &[NAK]).await;
                        }
                        let answer = match self.unacked.iter().position(|(n, _)| *n == number) {
                            Some(i) => {
                                let (_, b) = self.unacked.remove(i);
                                match self.commit(b).await {
                                    Ok(()) => ACK,
                                    Err((b, _)) => {
                                        self.unacked.push((number, b));
                                        NAK
                                    }
                                }
                            }
                            None => ACK,
                        };
                        self.reply(io, &[answer]).await?;
                    }
                    FrameOutcome::Accepted => {
                        // The decoder discards the message at this very frame (or at the
                        // frame dropped before it) when its number breaks the chain.
                        let out_of_sequence = discarded
                            .iter()
                            .any(|o| *o == offset || self.dropped_at.contains(o));
                        self.dropped_at.clear();
                        if out_of_sequence {
                            self.sequence_nak = Some(number);
                            self.pending.clear();
                            return self.reply(io, &[NAK]).await;
                        }
                        self.sequence_nak = None;
                        self.unacked.clear();
                        let answer = if self.pending.is_empty() {
                            ACK
                        } else {
                            let b = self.batch();
                            match self.commit(b).await {
                                Ok(()) => ACK,
                                Err((b, _)) => {
                                    self.unacked.push((number, b));
                                    NAK
                                }
                            }
                        };
                        self.reply(io, &[answer]).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn hl7<T>(&mut self, l: LinkEvent, io: &mut T) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let LinkEvent::MessageEnd {
            control_id,
            sending_application,
            sending_facility,
            rejected,
            ..
        } = l
        else {
            return Ok(());
        };
        let (code, text) = if let Some(why) = rejected {
            self.pending.clear();
            (AckCode::Error, Some(why))
        } else if self.pending.is_empty() {
            (AckCode::Accept, None)
        } else {
            let b = self.batch();
            match self.commit(b).await {
                Ok(()) => (AckCode::Accept, None),
                Err((_, e)) => (AckCode::Reject, Some(e.to_string())),
            }
        };
        let now = Utc::now().with_timezone(&self.link.decoder.utc_offset);
        let ours = format!("FG{}", ACK_IDS.fetch_add(1, Ordering::Relaxed));
        let stamp = now.format("%Y%m%d%H%M%S").to_string();
        let header = AckHeader {
            sending_application: &self.link.hl7_application,
            sending_facility: &self.link.hl7_facility,
            receiving_application: sending_application.as_deref().unwrap_or(""),
            receiving_facility: sending_facility.as_deref().unwrap_or(""),
            timestamp: &stamp,
            control_id: &ours,
            version: "",
        };
        let block = ack(
            control_id.as_deref().unwrap_or(""),
            code,
            text.as_deref(),
            &header,
        );
        self.reply(io, &block).await
    }

    async fn gold_card<T>(&mut self, l: LinkEvent, io: &mut T) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let LinkEvent::Frame {
            number, outcome, ..
        } = l
        else {
            return Ok(());
        };
        // The sequence number is a u16 on the wire.
        let seq = number as u16;
        match outcome {
            FrameOutcome::Accepted => {
                self.retry_unacked(io).await?;
                if self.pending.is_empty() {
                    return Ok(());
                }
                let b = self.batch();
                match self.commit(b).await {
                    Ok(()) => {
                        let ack = foodgate_parsers::gold_card::encode_ack(seq);
                        self.reply(io, &ack).await?;
                    }
                    Err((b, _)) => {
                        self.unacked.push((number, b));
                        if self.unacked.len() > MAX_BACKLOG {
                            let (_, dropped) = self.unacked.remove(0);
                            self.link.status.error(format!(
                                "store refused for too long: {} reading(s) dropped from memory (the raw archive has them)",
                                dropped.readings.len()
                            ));
                        }
                    }
                }
            }
            FrameOutcome::Retransmission => {
                self.link.status.update(|st| st.retransmissions += 1);
                self.pending.clear();
                if let Some(i) = self.unacked.iter().position(|(n, _)| *n == number) {
                    let (_, b) = self.unacked.remove(i);
                    if let Err((b, _)) = self.commit(b).await {
                        self.unacked.insert(i, (number, b));
                        return Ok(());
                    }
                }
                let ack = foodgate_parsers::gold_card::encode_ack(seq);
                self.reply(io, &ack).await?;
            }
            FrameOutcome::Rejected => {}
        }
        Ok(())
    }
}

static ACK_IDS: AtomicU64 = AtomicU64::new(1);
