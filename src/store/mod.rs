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
//! - [`schema`]: connection pragmas and the `user_version` migrator (SQL in `migrations/`).
//! - [`identity`]: reading identity, event and hold ids.
//! - [`insert`]: storing a [`Batch`]: readings, raw frames, samples, and what a failure opens.
//! - [`codec`]: column codecs (verdicts, times, local day, JSON columns).
//! - [`holds`]: the hold life cycle: opening, status changes, history, retests, reads.
//! - [`events`]: outbox event kinds and their typed bodies.
//! - [`queue`]: queueing outbox events for the upstreams that take them.
//! - [`outbox`]: what the uplink reads and writes: due events, delivery results, stats.
//! - [`samples`]: registered samples (the sampling record) and stall corrections, applied to
//!   the readings already stored, with their corrected events.
//! - [`coverage`]: the per-market-per-day coverage aggregate, kept by every writing job.
//! - [`results`]: stored readings as the API lists them; the upload ledger.
//! - [`instruments`]: the persisted status of the live instrument links.
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
pub mod events;
pub mod holds;
pub mod identity;
pub mod insert;
pub mod instruments;
pub mod markets;
pub mod outbox;
pub mod pages;
pub mod queue;
pub mod results;
pub mod retention;
pub mod samples;
pub mod schema;
pub mod sessions;
pub mod stats;
pub mod tokens;

pub use events::EventKind;
pub use holds::HoldStatus;
pub use identity::Origin;
pub use insert::{insert_batch, Batch, Committed, NewReading, Outcome, RawFrame};

use crate::config::{Config, Format, SendMode};
use chrono::FixedOffset;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, watch};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the database has schema version {found}, newer than this foodgate knows ({known}): upgrade foodgate")]
    TooNew { found: u32, known: u32 },
    #[error("migration {version} not applied: {reason}")]
    Migration { version: u32, reason: String },
    #[error("the store is closed")]
    Closed,
    #[error("transaction not committed: {0}")]
    NotCommitted(String),
}

/// How long opening waits for another process that holds the database (`serve` creating it
/// while `ingest` starts, a backup): switching a new file to WAL does not wait by itself.
const OPEN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

fn is_busy(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Run `f` again while the database is busy, up to [`OPEN_PATIENCE`].
fn retry_busy<T>(mut f: impl FnMut() -> Result<T, StoreError>) -> Result<T, StoreError> {
    let start = std::time::Instant::now();
    loop {
        match f() {
            Err(e) if is_busy(&e) && start.elapsed() < OPEN_PATIENCE => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn open_configured(path: &Path) -> Result<Connection, StoreError> {
    retry_busy(|| {
        let conn = Connection::open(path)?;
        schema::configure(&conn)?;
        Ok(conn)
    })
}

/// Where the store sends what, from the config.
#[derive(Debug, Clone)]
pub struct Route {
    pub upstream: String,
    pub send: SendMode,
    pub format: Format,
}

/// What the writer needs to know beyond the rows themselves.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// The offset whose local day a reading counts in (`server.utc_offset`).
    pub utc_offset: FixedOffset,
    /// One entry per `[[upstream]]`: each makes its own outbox rows.
    pub routes: Vec<Route>,
    /// Judges again a reading that takes the category of a registered sample (the category
    /// decides the limit): the one the readings were judged with before they came here.
    pub judge: crate::judge::Judge,
    /// Some reading was stored before migration 0013, with the key of its identity alone
    /// (see [`identity::reading_key`]): duplicates are looked for under both keys.
    /// [`Store::open`] finds out; true is always correct, only slower.
    pub legacy_identity_keys: bool,
}

impl StoreSettings {
    pub fn from_config(c: &Config) -> Self {
        StoreSettings {
            utc_offset: c.utc_offset,
            routes: c
                .upstreams
                .iter()
                .map(|u| Route {
                    upstream: u.name.clone(),
                    send: u.send,
                    format: u.format,
                })
                .collect(),
            judge: crate::judge::Judge::builtin(),
            legacy_identity_keys: true,
        }
    }

    /// The same settings judging with `judge` (a `limits =` file of the config).
    pub fn with_judge(mut self, judge: crate::judge::Judge) -> Self {
        self.judge = judge;
        self
    }
}

/// The writing transaction as a job sees it: a connection (inside the job's savepoint), a
/// way to say it queued outbox events so the uplink is woken after commit, and the coverage
/// changes of the readings it stored, written when the job ends.
pub struct Tx<'a> {
    conn: &'a Connection,
    events: usize,
    coverage: coverage::CoverageDelta,
    /// Statements of [`Tx::hot`], by the address of their SQL text.
    hot: std::cell::RefCell<Vec<(usize, rusqlite::Statement<'a>)>>,
    /// Changes to the outbox counts of each upstream (see [`Tx::outbox_moved`]).
    outbox: std::cell::RefCell<outbox::Moves>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("events", &self.events)
            .field("coverage", &self.coverage)
            .finish_non_exhaustive()
    }
}

impl<'a> Tx<'a> {
    fn new(conn: &'a Connection) -> Self {
        Tx {
            conn,
            events: 0,
            coverage: coverage::CoverageDelta::default(),
            hot: std::cell::RefCell::new(Vec::new()),
            outbox: std::cell::RefCell::new(outbox::Moves::default()),
        }
    }

    /// Note `n` events of `upstream` leaving status `from` (none: new) for `to` (none:
    /// deleted); written to `outbox_upstreams` when the job ends, with the failed attempt's
    /// answer `error` if any.
    pub fn outbox_moved(
        &self,
        upstream: &str,
        from: Option<&str>,
        to: Option<&str>,
        n: i64,
        error: Option<(&str, i64)>,
    ) {
        self.outbox.borrow_mut().note(upstream, from, to, n, error);
    }

    /// Run `f` with statement `sql`, prepared once per job. For the statements run once or
    /// more per reading: `prepare_cached` hashes the whole SQL text on every use and again
    /// when the statement goes back to its cache (a few per cent of an ingest), where this
    /// compares the address of a `'static` text among a handful.
    pub fn hot<T>(
        &self,
        sql: &'static str,
        f: impl FnOnce(&mut rusqlite::Statement<'a>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let key = sql.as_ptr() as usize;
        // Taken out while `f` runs, so a nested use prepares its own instead of failing.
        let found = {
            let mut hot = self.hot.borrow_mut();
            let at = hot.iter().position(|(k, _)| *k == key);
            at.map(|at| hot.swap_remove(at).1)
        };
        let mut stmt = match found {
            Some(stmt) => stmt,
            None => self.conn.prepare(sql)?,
        };
        let out = f(&mut stmt);
        self.hot.borrow_mut().push((key, stmt));
        out
    }

    pub fn events_added(&mut self, n: usize) {
        self.events += n;
    }

    /// Where a job notes what its readings change in the coverage aggregate.
    pub fn coverage(&mut self) -> &mut coverage::CoverageDelta {
        &mut self.coverage
    }

    /// The job's connection, for the store's own modules: code above the store writes
    /// through their functions, never with SQL of its own.
    pub(in crate::store) fn conn(&self) -> &'a Connection {
        self.conn
    }

    // The statements the store's modules run on the job's connection, by the names
    // `rusqlite::Connection` gives them: not visible above the store.

    pub(in crate::store) fn execute<P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
    ) -> rusqlite::Result<usize> {
        self.conn.execute(sql, params)
    }

    pub(in crate::store) fn prepare_cached(
        &self,
        sql: &str,
    ) -> rusqlite::Result<rusqlite::CachedStatement<'a>> {
        self.conn.prepare_cached(sql)
    }

    pub(in crate::store) fn query_row<T, P, F>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.conn.query_row(sql, params, f)
    }

    pub(in crate::store) fn last_insert_rowid(&self) -> i64 {
        self.conn.last_insert_rowid()
    }

    /// Write the noted coverage changes; the writer does it when a job succeeds.
    fn finish(&mut self) -> rusqlite::Result<()> {
        let conn = self.conn;
        self.coverage.flush(conn)?;
        self.outbox.get_mut().flush(conn)
    }
}

/// What a store read runs on: a [`Reader`], or the writer's [`Tx`] when a write reads
/// first. Store functions that only read take `&impl Db`, so the API and the pages read
/// through a reader and a write job through its transaction, with the same function.
pub trait Db {
    /// The connection inside; for the store's own modules (SQL lives in the store only).
    #[doc(hidden)]
    fn connection(&self) -> &Connection;
}

impl Db for Reader {
    fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl Db for Tx<'_> {
    fn connection(&self) -> &Connection {
        self.conn
    }
}

impl Db for Connection {
    fn connection(&self) -> &Connection {
        self
    }
}

/// A read connection of the store (see [`Store::reader`]): the store's read functions take
/// it, and only they see the connection inside.
pub struct Reader {
    conn: Connection,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

impl Reader {
    pub(in crate::store) fn conn(&self) -> &Connection {
        &self.conn
    }
}

trait WriterJob: std::marker::Send {
    /// Run the job; `false` when it failed (its error kept for its caller).
    fn run(&mut self, tx: &mut Tx<'_>) -> bool;
    fn reply(self: Box<Self>, result: Result<(), StoreError>);
}

struct FnJob<T, F> {
    f: Option<F>,
    out: Option<rusqlite::Result<T>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> WriterJob for FnJob<T, F>
where
    T: std::marker::Send,
    F: FnOnce(&mut Tx<'_>) -> rusqlite::Result<T> + std::marker::Send,
{
    fn run(&mut self, tx: &mut Tx<'_>) -> bool {
        let Some(f) = self.f.take() else {
            return true;
        };
        let r = f(tx).and_then(|v| tx.finish().map(|()| v));
        let ok = r.is_ok();
        self.out = Some(r);
        ok
    }

    fn reply(self: Box<Self>, result: Result<(), StoreError>) {
        let answer = match (result, self.out) {
            (Err(_), Some(Err(own))) => Err(StoreError::Sqlite(own)),
            (Err(e), _) => Err(e),
            (Ok(()), Some(Ok(v))) => Ok(v),
            (Ok(()), Some(Err(e))) => Err(StoreError::Sqlite(e)),
            (Ok(()), None) => Err(StoreError::Closed),
        };
        // The caller may have given up waiting; the data is committed either way.
        let _ = self.reply.send(answer);
    }
}

enum WriterCommand {
    Job(Box<dyn WriterJob>),
    Shutdown,
}

/// Handle to the store; cheap to clone, usable from any thread and from async code.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<WriterCommand>,
    wake: watch::Receiver<u64>,
    path: Arc<PathBuf>,
    settings: Arc<StoreSettings>,
    writer: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// Jobs waiting beyond this make senders wait (back-pressure on instruments and uploads).
const QUEUE: usize = 1024;
/// Jobs committed together at most; bounds the latency of the first one.
const GROUP: usize = 256;
/// WAL pages after which the writer checkpoints itself: only when the checkpointer lags.
const WRITER_CHECKPOINT_PAGES: i64 = 16_384;
/// Page cache of the writing connection, in KiB (negative: SQLite's unit for KiB).
const WRITER_CACHE_KIB: i64 = -262_144;
/// The checkpointer runs at most this often.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

impl Store {
    /// Open (creating and migrating as needed) the database at `path` and start its writer.
    pub fn open(path: &Path, settings: StoreSettings) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let mut conn = open_configured(path)?;
        retry_busy(|| schema::migrate(&mut conn))?;
        let mut settings = settings;
        // Only this version's writers store readings from now on, and they store timed keys.
        settings.legacy_identity_keys = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM readings WHERE identity_key < ?1)",
            [identity::TIMED_KEY],
            |r| r.get(0),
        )?;
        // The writer checkpoints only when the WAL has grown far; the checkpointer thread
        // (below) copies committed pages into the database beside it, off the commit path.
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
        // The writer's cache holds the index pages a big batch dirties (a 20,000-reading
        // ingest batch touches ~100 MiB of them at a million readings): pages evicted before
        // COMMIT are written to the WAL twice.
        conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)?;
        let checkpointer = open_configured(path)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let (wake_tx, wake) = watch::channel(0u64);
        let handle = std::thread::Builder::new()
            .name("foodgate-store".into())
            .spawn(move || writer_loop(conn, checkpointer, rx, wake_tx))
            .map_err(|source| StoreError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Store {
            tx,
            wake,
            path: Arc::new(path.to_path_buf()),
            settings: Arc::new(settings),
            writer: Arc::new(Mutex::new(Some(handle))),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn settings(&self) -> &StoreSettings {
        &self.settings
    }

    /// A new reader (WAL: reads never wait for the writer), for the store's read functions.
    pub fn reader(&self) -> Result<Reader, StoreError> {
        Ok(Reader {
            conn: self.inspect()?,
        })
    }

    /// A bare read-only SQLite connection to the database, for tests and benchmarks that
    /// look at the tables themselves. The service reads through [`Store::reader`].
    pub fn inspect(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &*self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        schema::configure(&conn)?;
        // Writing through it is refused: every write goes through the writer thread.
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }

    /// Changes each time a commit added outbox events: the uplink waits on it.
    pub fn wake(&self) -> watch::Receiver<u64> {
        self.wake.clone()
    }

    fn job<T, F>(&self, f: F) -> (WriterCommand, oneshot::Receiver<Result<T, StoreError>>)
    where
        T: std::marker::Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> rusqlite::Result<T> + std::marker::Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = FnJob {
            f: Some(f),
            out: None,
            reply,
        };
        (WriterCommand::Job(Box::new(job)), rx)
    }

    /// Run `f` in the writer's transaction; returns after COMMIT. If `f` fails, its own
    /// changes are rolled back and nothing else is. Blocking: not for async code.
    pub fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: std::marker::Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> rusqlite::Result<T> + std::marker::Send + 'static,
    {
        let (cmd, rx) = self.job(f);
        self.tx.blocking_send(cmd).map_err(|_| StoreError::Closed)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// [`Store::write`] for async callers.
    pub async fn write_async<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: std::marker::Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> rusqlite::Result<T> + std::marker::Send + 'static,
    {
        let (cmd, rx) = self.job(f);
        self.tx.send(cmd).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Store a batch (readings already judged, their raw frames, rejected frames); returns
    /// after COMMIT with one [`Outcome`] per reading, in order. A duplicate or a reading for an
    /// unknown market is an outcome, never a failure of the batch. Blocking.
    pub fn submit(&self, batch: Batch) -> Result<Committed, StoreError> {
        let settings = self.settings.clone();
        self.write(move |tx| insert::insert_batch(tx, &settings, batch))
    }

    /// [`Store::submit`] for async callers (live links: acknowledge after this returns).
    pub async fn submit_async(&self, batch: Batch) -> Result<Committed, StoreError> {
        let settings = self.settings.clone();
        self.write_async(move |tx| insert::insert_batch(tx, &settings, batch))
            .await
    }

    /// Finish every job already sent (committing it), then stop the writer thread.
    /// Later calls on any clone answer [`StoreError::Closed`].
    pub fn close(&self) {
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = self.tx.blocking_send(WriterCommand::Shutdown);
            let _ = handle.join();
        }
    }

    /// [`Store::close`] from async code.
    pub async fn close_async(&self) {
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = self.tx.send(WriterCommand::Shutdown).await;
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

fn writer_loop(
    mut conn: Connection,
    checkpointer: Connection,
    mut rx: mpsc::Receiver<WriterCommand>,
    wake: watch::Sender<u64>,
) {
    // One pending signal at most: commits while a checkpoint runs make one more, not many.
    let (commits, committed) = std::sync::mpsc::sync_channel::<()>(1);
    let background = std::thread::Builder::new()
        .name("foodgate-checkpoint".into())
        .spawn(move || checkpoint_loop(checkpointer, committed))
        .ok();
    let mut jobs: Vec<Box<dyn WriterJob>> = Vec::with_capacity(GROUP);
    let mut stop = false;
    while !stop {
        match rx.blocking_recv() {
            Some(WriterCommand::Job(j)) => jobs.push(j),
            Some(WriterCommand::Shutdown) | None => break,
        }
        while jobs.len() < GROUP {
            match rx.try_recv() {
                Ok(WriterCommand::Job(j)) => jobs.push(j),
                Ok(WriterCommand::Shutdown) => {
                    stop = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let events = run_group(&mut conn, &mut jobs);
        let _ = commits.try_send(());
        if events > 0 {
            wake.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
    // Jobs still queued after a shutdown are refused, not silently dropped.
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        if let WriterCommand::Job(j) = cmd {
            j.reply(Err(StoreError::Closed));
        }
    }
    drop(commits);
    if let Some(h) = background {
        let _ = h.join();
    }
}

/// Copy committed WAL pages into the database file while the writer goes on writing.
///
/// PASSIVE never blocks the writer or readers. Durability does not depend on it: a commit
/// is durable once its WAL frames are synced (before the writer replies); a checkpoint only
/// moves them, and one cut short by a crash is redone from the WAL on the next open.
fn checkpoint_loop(conn: Connection, committed: std::sync::mpsc::Receiver<()>) {
    use std::sync::mpsc::RecvTimeoutError;
    let checkpoint = || {
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    };
    let mut pending = false;
    loop {
        if !pending && committed.recv().is_err() {
            break;
        }
        pending = false;
        let until = std::time::Instant::now() + CHECKPOINT_EVERY;
        checkpoint();
        // Rate limit, but notice a shutdown at once.
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            match committed.recv_timeout(left) {
                Ok(()) => pending = true,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    checkpoint();
                    return;
                }
            }
        }
    }
    checkpoint();
}

/// Run `jobs` in one transaction, reply to each after COMMIT; returns events queued.
fn run_group(conn: &mut Connection, jobs: &mut Vec<Box<dyn WriterJob>>) -> usize {
    let mut results: Vec<Result<(), StoreError>> = Vec::with_capacity(jobs.len());
    let mut events = 0;
    let outcome = (|| -> rusqlite::Result<()> {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let [job] = jobs.as_mut_slice() {
            // Alone in its transaction, a job needs no savepoint (which would copy every page
            // it touches into a sub-journal): failing, it rolls the transaction back.
            let mut t = Tx::new(&tx);
            let ran = job.run(&mut t);
            let added = t.events;
            drop(t); // its statements, before the transaction ends
            if ran {
                events += added;
                results.push(Ok(()));
                return tx.commit();
            }
            results.push(Err(StoreError::Closed)); // replaced by the job's own error
            return tx.rollback();
        }
        for job in jobs.iter_mut() {
            let sp = tx.savepoint()?;
            let mut t = Tx::new(&sp);
            let ran = job.run(&mut t);
            let added = t.events;
            drop(t);
            if ran {
                sp.commit()?;
                events += added;
                results.push(Ok(()));
            } else {
                drop(sp); // rolls back this job only
                results.push(Err(StoreError::Closed)); // replaced by the job's own error
            }
        }
        tx.commit()
    })();
    let commit_error = outcome.err().map(|e| e.to_string());
    for (i, job) in jobs.drain(..).enumerate() {
        let r = match (&commit_error, results.get_mut(i)) {
            (Some(e), _) => Err(StoreError::NotCommitted(e.clone())),
            (None, Some(r)) => std::mem::replace(r, Ok(())),
            (None, None) => Err(StoreError::Closed),
        };
        job.reply(r);
    }
    if commit_error.is_some() {
        0
    } else {
        events
    }
}
