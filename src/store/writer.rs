//! The one writer thread, the handle every caller holds ([`Store`]), and checkpoints.

use super::error::StoreError;
use super::insert::{self, Batch, Committed};
use super::reader::Reader;
use super::settings::StoreSettings;
use super::tx::Tx;
use super::{identity, schema};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, watch};

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
