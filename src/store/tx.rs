//! The writing transaction as a job sees it.

use super::coverage;
use super::outbox_tally::Moves;
use super::reader::Db;
use rusqlite::Connection;

/// The writing transaction as a job sees it: a connection (inside the job's savepoint), a
/// way to say it queued outbox events so the uplink is woken after commit, and the coverage
/// changes of the readings it stored, written when the job ends.
pub struct Tx<'a> {
    conn: &'a Connection,
    pub(super) events: usize,
    coverage: coverage::CoverageDelta,
    /// Statements of [`Tx::hot`], by the address of their SQL text.
    hot: std::cell::RefCell<Vec<(usize, rusqlite::Statement<'a>)>>,
    /// Changes to the outbox counts of each upstream (see [`Tx::outbox_moved`]).
    outbox: std::cell::RefCell<Moves>,
    /// Whether any traced hold is open (see [`Tx::any_traced`]), once looked up.
    traced: std::cell::Cell<Option<bool>>,
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
    pub(super) fn new(conn: &'a Connection) -> Self {
        Tx {
            conn,
            events: 0,
            coverage: coverage::CoverageDelta::default(),
            hot: std::cell::RefCell::new(Vec::new()),
            outbox: std::cell::RefCell::new(Moves::default()),
            traced: std::cell::Cell::new(None),
        }
    }

    /// Whether any traced hold is open (`super::trace`), looked up once per job: the writer
    /// is the only one writing while the job runs, so only this job can change the answer
    /// (and says so with [`Tx::traced_added`]). Most stores have none, and then a stored
    /// reading has no traced hold to settle.
    pub(super) fn any_traced(&self) -> rusqlite::Result<bool> {
        if let Some(t) = self.traced.get() {
            return Ok(t);
        }
        let t = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM holds WHERE traced_from IS NOT NULL
             AND status = 'traced')",
            [],
            |r| r.get(0),
        )?;
        self.traced.set(Some(t));
        Ok(t)
    }

    /// A traced hold was opened in this job.
    pub(super) fn traced_added(&self) {
        self.traced.set(Some(true));
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
    pub(super) fn finish(&mut self) -> rusqlite::Result<()> {
        let conn = self.conn;
        self.coverage.flush(conn)?;
        self.outbox.get_mut().flush(conn)
    }
}

impl Db for Tx<'_> {
    fn connection(&self) -> &Connection {
        self.conn
    }
}
