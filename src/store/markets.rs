//! The `markets` table: the registry of markets, their districts, types and daily quotas.

use super::Tx;
use rusqlite::{params, OptionalExtension};

/// One registry entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketRow {
    pub code: String,
    pub name: String,
    pub district: String,
    /// The market type (the `type` column).
    pub kind: String,
    pub quota: u32,
}

/// How an upsert changed the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Upserted {
    pub inserted: usize,
    pub updated: usize,
}

/// Is `code` a registered market?
pub fn exists(db: &impl super::Db, code: &str) -> rusqlite::Result<bool> {
    let conn = db.connection();
    conn.prepare_cached("SELECT 1 FROM markets WHERE code = ?1")?
        .exists([code])
}

/// The name of market `code`, if registered.
pub fn name(db: &impl super::Db, code: &str) -> rusqlite::Result<Option<String>> {
    let conn = db.connection();
    conn.prepare_cached("SELECT name FROM markets WHERE code = ?1")?
        .query_row([code], |r| r.get("name"))
        .optional()
}

/// How many markets are registered.
pub fn count(db: &impl super::Db) -> rusqlite::Result<u64> {
    let conn = db.connection();
    let n: i64 = conn
        .prepare_cached("SELECT count(*) AS n FROM markets")?
        .query_row([], |r| r.get("n"))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Insert or update each of `rows` by code, stamped `updated_at`.
pub fn upsert(tx: &Tx<'_>, rows: &[MarketRow], updated_at: &str) -> rusqlite::Result<Upserted> {
    let mut done = Upserted::default();
    for m in rows {
        let existed = exists(tx, &m.code)?;
        tx.prepare_cached(
            "INSERT INTO markets (code, name, district, type, quota, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (code) DO UPDATE SET name = excluded.name, district = excluded.district,
                type = excluded.type, quota = excluded.quota, updated_at = excluded.updated_at",
        )?
        .execute(params![
            m.code, m.name, m.district, m.kind, m.quota, updated_at
        ])?;
        if existed {
            done.updated += 1;
        } else {
            done.inserted += 1;
        }
    }
    Ok(done)
}
