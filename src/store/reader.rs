//! Reading the store: a reader connection, and the [`Db`] every read function takes.

use rusqlite::Connection;

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

impl Db for Connection {
    fn connection(&self) -> &Connection {
        self
    }
}

/// A read connection of the store (see [`Store::reader`]): the store's read functions take
/// it, and only they see the connection inside.
pub struct Reader {
    pub(super) conn: Connection,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}
