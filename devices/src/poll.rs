//! The polling session of the instruments that keep their results and answer only when
//! asked (`lz4000t`, `tl310`, `dy723pc`): the host speaks first.
//!
//! One poll: the comm test (the device is there), then each day to read, oldest first, with
//! the protocol's requests. A missing or broken reply makes the same request again, up to
//! `retries` times; then the day is left for the next poll. A day counts as read only once
//! every record of it came in whole and the sink stored them; the first day not read stops
//! the "last day read completely" from moving on, so that the next poll reads it again.
//! Re-reading is safe: a record's identity makes it a duplicate in the store.
//!
//! Every request gets a fresh decoder, and the line is drained for `gap` before it, so that
//! a late answer to an earlier request is not taken for the answer to this one.

use crate::session::{next_stream, Link, SessionEnd};
use crate::sink::{LinkBatch, Sink, SinkError};
use chrono::{Days, NaiveDate, Utc};
use foodgate_parsers::event::{FrameOutcome, LinkEvent, PolledReply};
use foodgate_parsers::{dy723pc, lz4000t, tl310};
use foodgate_parsers::{new_decoder, Diagnostic, Event, Level, Protocol, Reading};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// How far back a poll after downtime reads: today and the 30 days before.
pub const MAX_CATCH_UP_DAYS: u64 = 31;
/// TL310: the comm test is sent twice, this far apart.
const TL310_COMM_REPEAT: Duration = Duration::from_millis(100);
/// Raw bytes kept for one reply's batch.
const MAX_REPLY_RAW: usize = 1024 * 1024;
/// Diagnostics kept for one reply's batch.
const MAX_REPLY_DIAGNOSTICS: usize = 256;
const READ_CHUNK: usize = 4096;

/// The days a poll on `today` reads, oldest first: `days` ending today, or, after downtime,
/// every day since `last_complete` (that day included: records may have been added after
/// it was read), at most [`MAX_CATCH_UP_DAYS`].
pub fn days_to_read(
    today: NaiveDate,
    days: u32,
    last_complete: Option<NaiveDate>,
) -> Vec<NaiveDate> {
    let back = |n: u64| today.checked_sub_days(Days::new(n)).unwrap_or(today);
    let window = back(u64::from(days.max(1)) - 1);
    let oldest = back(MAX_CATCH_UP_DAYS - 1);
    let start = match last_complete {
        Some(l) if l < window => l.max(oldest),
        _ => window.max(oldest),
    };
    start.iter_days().take_while(|d| *d <= today).collect()
}

/// Poll the instrument on `io` every `link.poll.every` until the stream ends (the port
/// is gone); the first poll starts at once.
pub async fn run_poll<S, T>(link: &Link<S>, io: T) -> SessionEnd
where
    S: Sink,
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut p = Poller {
        link,
        io,
        stream: next_stream(),
        received: 0,
    };
    link.status.update(|st| st.connections += 1);
    let end = loop {
        let started = Instant::now();
        if let Err(e) = p.poll().await {
            break end_of(e);
        }
        if let Err(e) = p.discard_until(started + link.poll.every).await {
            break end_of(e);
        }
    };
    link.status.update(|st| {
        st.connections = st.connections.saturating_sub(1);
        st.online &= st.connections > 0;
    });
    end
}

fn end_of(e: io::Error) -> SessionEnd {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        SessionEnd::Eof
    } else {
        SessionEnd::Error(e)
    }
}

/// What a request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    CommTest,
    Count,
    Records,
    Finish,
}

/// What came back to one request.
#[derive(Debug, Default)]
struct Reply {
    raw: Vec<u8>,
    /// Stream offset of `raw[0]`.
    raw_offset: u64,
    readings: Vec<Reading>,
    diagnostics: Vec<Diagnostic>,
    firmware: Option<String>,
    count: Option<(NaiveDate, u16)>,
    /// Records the reply says it holds (the last record frame's total).
    total: Option<u16>,
    /// Record frames seen, and of them dropped (bad CRC, malformed).
    records: u32,
    rejected: u32,
    /// `FINISH` seen, after this many records.
    end: Option<u32>,
    /// Error diagnostics (data lost).
    errors: u32,
    first_error: Option<String>,
}

impl Reply {
    fn done(&self, expect: Expect) -> bool {
        match expect {
            Expect::CommTest => self.firmware.is_some(),
            // A broken count reply is not followed by another: ask again at once.
            Expect::Count => self.count.is_some() || self.errors > 0,
            Expect::Records => self.total.is_some_and(|t| self.records >= u32::from(t)),
            Expect::Finish => self.end.is_some(),
        }
    }

    /// The device answered this request (a stray comm-test reply or noise is no answer).
    fn heard(&self) -> bool {
        self.count.is_some()
            || self.records > 0
            || self.end.is_some()
            || self.errors > 0
            || !self.readings.is_empty()
    }

    /// Why a records reply is not the whole of `day`, if it is not.
    fn broken(
        &self,
        day: Option<NaiveDate>,
        expect: Expect,
        utc: chrono::FixedOffset,
    ) -> Option<String> {
        if let Some(e) = &self.first_error {
            return Some(e.clone());
        }
        if !self.done(expect) {
            return Some(match (expect, self.total) {
                (Expect::Records, Some(t)) => format!(
                    "reply cut short: {} of {t} record(s), then nothing",
                    self.records
                ),
                (Expect::Finish, _) if self.heard() => "reply cut short: no FINISH".to_string(),
                _ => "no reply".to_string(),
            });
        }
        if self.rejected > 0 {
            return Some(format!("{} record(s) dropped", self.rejected));
        }
        let day = day?;
        let other = self.readings.iter().find_map(|r| {
            let d = r.measured_at?.with_timezone(&utc).date_naive();
            (d != day).then_some(d)
        });
        other.map(|d| format!("a record of {d} in the reply for {day}"))
    }
}

/// How reading one day ended.
#[derive(Debug)]
enum DayRead {
    Complete,
    /// Left for the next poll, with why.
    Left(String),
    /// The device stopped answering at all.
    Offline,
}

/// Counts of one poll.
#[derive(Debug, Default, Clone, Copy)]
struct PollTotals {
    records: u64,
    new: u64,
    duplicates: u64,
}

struct Poller<'a, S, T> {
    link: &'a Link<S>,
    io: T,
    stream: u64,
    /// Bytes received on this stream so far.
    received: u64,
}

impl<S: Sink, T: AsyncRead + AsyncWrite + Unpin + Send> Poller<'_, S, T> {
    fn protocol(&self) -> Protocol {
        self.link.protocol
    }

    /// Bytes came in: archive and count them.
    fn took(&mut self, chunk: &[u8]) {
        self.link.took_bytes(chunk);
        self.received += chunk.len() as u64;
    }

    /// Read and drop whatever comes until `until` (late answers, idle line); an ended
    /// stream is an error.
    async fn discard_until(&mut self, until: Instant) -> io::Result<()> {
        let mut buf = [0u8; READ_CHUNK];
        loop {
            match tokio::time::timeout_at(until, self.io.read(&mut buf)).await {
                Err(_) => return Ok(()),
                Ok(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(Ok(n)) => self.took(&buf[..n]),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await
    }

    /// `gap`, then `request`, then its reply until `expect` is met or no progress for
    /// `reply_timeout`.
    async fn exchange(&mut self, request: &[u8], expect: Expect) -> io::Result<Reply> {
        let poll = self.link.poll;
        self.discard_until(Instant::now() + poll.gap).await?;
        self.send(request).await?;
        if expect == Expect::CommTest && self.protocol() == Protocol::Tl310 {
            // The vendor's host sends it twice; the replies wait in the line meanwhile.
            tokio::time::sleep(TL310_COMM_REPEAT).await;
            self.send(request).await?;
        }
        let mut decoder = new_decoder(self.protocol(), self.link.decoder.clone());
        let mut reply = Reply {
            raw_offset: self.received,
            ..Reply::default()
        };
        let mut events = Vec::new();
        let mut deadline = Instant::now() + poll.reply_timeout;
        let mut buf = [0u8; READ_CHUNK];
        while !reply.done(expect) {
            let n = match tokio::time::timeout_at(deadline, self.io.read(&mut buf)).await {
                Err(_) => break,
                Ok(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(Ok(n)) => n,
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
            };
            let chunk = &buf[..n];
            self.took(chunk);
            if reply.raw.len() + n <= MAX_REPLY_RAW {
                reply.raw.extend_from_slice(chunk);
            }
            decoder.feed(chunk, &mut events);
            if self.absorb(&mut reply, &mut events) {
                deadline = Instant::now() + poll.reply_timeout;
            }
        }
        if !reply.done(expect) {
            // What is left of a cut frame or record becomes its diagnostic.
            decoder.finish(&mut events);
            self.absorb(&mut reply, &mut events);
        }
        Ok(reply)
    }

    /// Take decoded events into `reply`; whether a reply or reading came (progress).
    fn absorb(&self, reply: &mut Reply, events: &mut Vec<Event>) -> bool {
        let base = reply.raw_offset;
        let mut progress = false;
        for ev in events.drain(..) {
            match ev {
                Event::Reading(r) => {
                    let mut r = *r;
                    r.offset = r.offset.map(|o| o + base);
                    reply.readings.push(r);
                    progress = true;
                }
                Event::Diagnostic(mut d) => {
                    d.offset += base;
                    if d.level == Level::Error {
                        let text = format!("{} at offset {}: {}", d.error, d.offset, d.message);
                        self.link.status.update(|st| {
                            st.decode_errors += 1;
                            st.last_error = Some(text.clone());
                        });
                        reply.errors += 1;
                        reply.first_error.get_or_insert(text);
                    }
                    if reply.diagnostics.len() < MAX_REPLY_DIAGNOSTICS {
                        reply.diagnostics.push(d);
                    }
                }
                Event::Link(LinkEvent::Reply { reply: r, .. }) => {
                    progress = true;
                    match r {
                        PolledReply::CommTest { firmware } => {
                            reply.firmware = Some(firmware.to_string());
                        }
                        PolledReply::Count { date, records } => {
                            reply.count = Some((date, records));
                        }
                        PolledReply::Record { total, outcome, .. } => {
                            reply.total = Some(total);
                            reply.records += 1;
                            if outcome == FrameOutcome::Rejected {
                                reply.rejected += 1;
                            }
                        }
                        PolledReply::End { records } => reply.end = Some(records),
                    }
                }
                Event::Link(_) | Event::Device(_) | Event::Heartbeat(_) => {}
            }
        }
        progress
    }

    /// A request failed (its reply missing or broken).
    fn protocol_error(&self, what: &str, why: &str) {
        let text = format!("{what}: {why}");
        tracing::debug!(instrument = %self.link.instrument, "{text}");
        self.link.status.update(|st| {
            st.protocol_errors += 1;
            st.last_error = Some(text);
        });
    }

    /// Commit the readings of `reply` (one batch with its raw bytes).
    async fn commit(&self, reply: &mut Reply, totals: &mut PollTotals) -> Result<(), SinkError> {
        if reply.readings.is_empty() {
            return Ok(());
        }
        let batch = LinkBatch {
            instrument: self.link.instrument.clone(),
            protocol: self.protocol(),
            stream: self.stream,
            readings: std::mem::take(&mut reply.readings),
            raw: std::mem::take(&mut reply.raw),
            raw_offset: reply.raw_offset,
            diagnostics: std::mem::take(&mut reply.diagnostics),
            received_at: Utc::now(),
        };
        let read = batch.readings.len() as u64;
        match self.link.sink.commit(batch).await {
            Ok(report) => {
                totals.records += read;
                totals.new += report.stored as u64;
                totals.duplicates += report.duplicates as u64;
                let now = Utc::now();
                self.link.status.update(|st| {
                    st.readings += report.stored as u64;
                    st.duplicates += report.duplicates as u64;
                    st.last_reading_at = Some(now);
                });
                Ok(())
            }
            Err(e) => {
                let text = e.to_string();
                self.link.status.update(|st| {
                    st.refused_commits += 1;
                    st.last_error = Some(text);
                });
                Err(e)
            }
        }
    }

    /// The comm test, sent again after no reply up to `retries` times; the firmware when
    /// the device answered. DY-723PC has none: its first request tells.
    async fn comm_test(&mut self) -> io::Result<Option<String>> {
        let request = match self.protocol() {
            Protocol::Lz4000t => lz4000t::comm_test(),
            Protocol::Tl310 => tl310::comm_test(),
            _ => return Ok(Some(String::new())),
        };
        for _ in 0..=self.link.poll.retries {
            let reply = self.exchange(&request, Expect::CommTest).await?;
            if let Some(f) = reply.firmware {
                return Ok(Some(f));
            }
        }
        Ok(None)
    }

    fn offline(&self, why: &str) {
        let text = format!("{why}: offline until the next poll");
        tracing::info!(instrument = %self.link.instrument, "{text}");
        self.link.status.update(|st| {
            st.online = false;
            st.last_error = Some(text);
        });
    }

    fn online(&self, firmware: Option<&str>) {
        self.link.status.update(|st| {
            st.online = true;
            if let Some(f) = firmware.filter(|f| !f.is_empty()) {
                st.firmware = Some(f.to_string());
            }
        });
    }

    /// One poll.
    async fn poll(&mut self) -> io::Result<()> {
        let Some(firmware) = self.comm_test().await? else {
            self.offline("no answer to the comm test");
            return Ok(());
        };
        if self.protocol() != Protocol::Dy723pc {
            self.online(Some(&firmware));
        }
        let link = self.link;
        let today = Utc::now()
            .with_timezone(&link.decoder.utc_offset)
            .date_naive();
        let stored = link.sink.last_complete_day(&link.instrument).await;
        let last = stored.max(link.status.snapshot().last_complete_day);
        let days = days_to_read(today, link.poll.days, last);
        let mut totals = PollTotals::default();
        let read_all = self.protocol() == Protocol::Tl310
            && u8::from_str_radix(firmware.trim(), 16).ok() == Some(tl310::FIRMWARE_READ_ALL);
        let mut in_order = true;
        if read_all {
            match self.tl310_read_all(&mut totals).await? {
                DayRead::Complete => {
                    for day in &days {
                        self.completed(*day).await;
                    }
                }
                DayRead::Left(why) => {
                    tracing::info!(instrument = %link.instrument, "read all left for the next poll: {why}");
                }
                DayRead::Offline => {
                    self.offline("no answer to the comm test after an unanswered read");
                    return Ok(());
                }
            }
        } else {
            for day in days {
                let r = match self.protocol() {
                    Protocol::Lz4000t => self.lz4000t_day(day, &mut totals).await?,
                    Protocol::Tl310 => self.tl310_day(day, &mut totals).await?,
                    _ => self.dy723pc_day(day, &mut totals).await?,
                };
                match r {
                    DayRead::Complete if in_order => self.completed(day).await,
                    DayRead::Complete => {}
                    DayRead::Left(why) => {
                        in_order = false;
                        tracing::info!(instrument = %link.instrument, %day, "day left for the next poll: {why}");
                    }
                    DayRead::Offline => {
                        self.offline(&format!("no answer to the request for {day}"));
                        return Ok(());
                    }
                }
            }
        }
        let now = Utc::now();
        link.status.update(|st| {
            st.last_poll_at = Some(now);
            st.last_poll_records = totals.records;
            st.last_poll_new = totals.new;
            st.last_poll_duplicates = totals.duplicates;
        });
        Ok(())
    }

    /// `day` is read completely (and every day before it in this poll).
    async fn completed(&self, day: NaiveDate) {
        let link = self.link;
        if link
            .status
            .snapshot()
            .last_complete_day
            .is_some_and(|l| l > day)
        {
            return;
        }
        match link.sink.day_complete(&link.instrument, day).await {
            Ok(()) => link.status.update(|st| {
                st.last_complete_day = st.last_complete_day.max(Some(day));
            }),
            Err(e) => link
                .status
                .error(format!("cannot note {day} as read completely: {e}")),
        }
    }

    /// Send `request` for the records of `day` until a whole reply is stored; `None` when
    /// the device never answered at all.
    async fn read_records(
        &mut self,
        request: &[u8],
        expect: Expect,
        day: Option<NaiveDate>,
        totals: &mut PollTotals,
    ) -> io::Result<Option<DayRead>> {
        let what = match day {
            Some(d) => format!("records of {d}"),
            None => "all records".to_string(),
        };
        let mut heard = false;
        let mut last_why = String::new();
        for _ in 0..=self.link.poll.retries {
            let mut reply = self.exchange(request, expect).await?;
            if !reply.heard() {
                last_why = "no reply".into();
                if self.protocol() != Protocol::Tl310 {
                    self.protocol_error(&what, "no reply");
                }
                continue;
            }
            heard = true;
            let broken = reply.broken(day, expect, self.link.decoder.utc_offset);
            // Whole records of a broken reply are stored too: they may never come whole again.
            if let Err(e) = self.commit(&mut reply, totals).await {
                return Ok(Some(DayRead::Left(e.to_string())));
            }
            match broken {
                None => return Ok(Some(DayRead::Complete)),
                Some(why) => {
                    self.protocol_error(&what, &why);
                    last_why = why;
                }
            }
        }
        Ok(if heard {
            Some(DayRead::Left(last_why))
        } else {
            None
        })
    }

    /// Count request (date echo checked), then the read request when there are records.
    async fn lz4000t_day(
        &mut self,
        day: NaiveDate,
        totals: &mut PollTotals,
    ) -> io::Result<DayRead> {
        let what = format!("count of {day}");
        let request = lz4000t::count_request(day);
        let mut count = None;
        let mut heard = false;
        let mut why = String::new();
        for _ in 0..=self.link.poll.retries {
            let reply = self.exchange(&request, Expect::Count).await?;
            heard |= reply.heard();
            match (reply.count, reply.first_error) {
                (Some((d, n)), None) if d == day => {
                    count = Some(n);
                    break;
                }
                (Some((d, _)), None) => why = format!("count reply for {d}"),
                (_, Some(e)) => why = e,
                (None, None) => why = "no reply".into(),
            }
            self.protocol_error(&what, &why);
        }
        match count {
            None if !heard => Ok(DayRead::Offline),
            None => Ok(DayRead::Left(why)),
            Some(0) => Ok(DayRead::Complete),
            Some(_) => {
                let request = lz4000t::read_request(day);
                Ok(self
                    .read_records(&request, Expect::Records, Some(day), totals)
                    .await?
                    .unwrap_or(DayRead::Left("no reply".into())))
            }
        }
    }

    /// Read by date; a day the device never answers is a day without records as long as
    /// the comm test still answers.
    async fn tl310_day(&mut self, day: NaiveDate, totals: &mut PollTotals) -> io::Result<DayRead> {
        let request = tl310::read_request(day);
        match self
            .read_records(&request, Expect::Records, Some(day), totals)
            .await?
        {
            Some(r) => Ok(r),
            None => self.still_there().await,
        }
    }

    async fn tl310_read_all(&mut self, totals: &mut PollTotals) -> io::Result<DayRead> {
        let request = tl310::read_all_request();
        match self
            .read_records(&request, Expect::Records, None, totals)
            .await?
        {
            Some(r) => Ok(r),
            None => self.still_there().await,
        }
    }

    /// After an unanswered read: the device holds nothing there if it still answers.
    async fn still_there(&mut self) -> io::Result<DayRead> {
        Ok(match self.comm_test().await? {
            Some(_) => DayRead::Complete,
            None => DayRead::Offline,
        })
    }

    /// `D<day>D<day>`, records until `FINISH`.
    async fn dy723pc_day(
        &mut self,
        day: NaiveDate,
        totals: &mut PollTotals,
    ) -> io::Result<DayRead> {
        let request = dy723pc::request(day, day);
        let r = self
            .read_records(&request, Expect::Finish, Some(day), totals)
            .await?;
        if r.is_some() {
            self.online(None);
        }
        Ok(r.unwrap_or(DayRead::Offline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, m, day).unwrap()
    }

    #[test]
    fn days_end_today_and_catch_up_at_most_31_days() {
        assert_eq!(days_to_read(d(5, 10), 2, None), [d(5, 9), d(5, 10)]);
        assert_eq!(
            days_to_read(d(5, 10), 2, Some(d(5, 10))),
            [d(5, 9), d(5, 10)]
        );
        assert_eq!(
            days_to_read(d(5, 10), 2, Some(d(5, 6))),
            [d(5, 6), d(5, 7), d(5, 8), d(5, 9), d(5, 10)]
        );
        let long = days_to_read(d(5, 10), 2, Some(d(1, 1)));
        assert_eq!(long.len(), 31);
        assert_eq!(long[0], d(4, 10));
        assert_eq!(days_to_read(d(5, 10), 0, None), [d(5, 10)]);
    }
}
