//! What can go wrong in the store.

use std::path::PathBuf;

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
