//! The `tokens` table: API tokens by the hash of their secret (the secret itself is never
//! stored), their role and market scope as text, and their life cycle times.

use super::Tx;
use rusqlite::{params, OptionalExtension};

/// A stored token as authentication needs it; `role` is as stored (checked by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub hash: String,
    pub name: String,
    pub role: String,
    pub markets: Vec<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A token as `token list` shows it (never the token, never its hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: String,
    pub markets: Vec<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A token to store.
#[derive(Debug, Clone, Copy)]
pub struct NewTokenRecord<'a> {
    pub name: &'a str,
    pub hash: &'a str,
    pub role: &'a str,
    pub markets: &'a [String],
    pub created_at: &'a str,
    pub expires_at: Option<&'a str>,
}

/// The market list column: a JSON array of codes. A column that does not read as one
/// grants no market, which is the safe side for a scoped token.
fn markets_of(column: &str) -> Vec<String> {
    serde_json::from_str(column).unwrap_or_default()
}

/// The token whose hash is `hash`, if any.
pub fn by_hash(db: &impl super::Db, hash: &str) -> rusqlite::Result<Option<TokenRecord>> {
    let conn = db.connection();
    conn.prepare_cached(
        "SELECT hash, name, role, markets, expires_at, revoked_at FROM tokens WHERE hash = ?1",
    )?
    .query_row([hash], |r| {
        Ok(TokenRecord {
            hash: r.get("hash")?,
            name: r.get("name")?,
            role: r.get("role")?,
            markets: markets_of(&r.get::<_, String>("markets")?),
            expires_at: r.get("expires_at")?,
            revoked_at: r.get("revoked_at")?,
        })
    })
    .optional()
}

/// Is there a token named `name` (revoked or not)?
pub fn name_exists(db: &impl super::Db, name: &str) -> rusqlite::Result<bool> {
    let conn = db.connection();
    conn.prepare_cached("SELECT 1 FROM tokens WHERE name = ?1")?
        .exists([name])
}

/// Is the token named `name` usable at `at` (RFC 3339): not revoked, not expired?
pub fn is_usable(db: &impl super::Db, name: &str, at: &str) -> rusqlite::Result<bool> {
    let conn = db.connection();
    conn.prepare_cached(
        "SELECT 1 FROM tokens WHERE name = ?1 AND revoked_at IS NULL
         AND (expires_at IS NULL OR expires_at > ?2)",
    )?
    .exists(params![name, at])
}

pub fn insert(tx: &Tx<'_>, new: &NewTokenRecord<'_>) -> rusqlite::Result<()> {
    let markets = serde_json::to_string(new.markets)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    tx.prepare_cached(
        "INSERT INTO tokens (name, hash, role, markets, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        new.name,
        new.hash,
        new.role,
        markets,
        new.created_at,
        new.expires_at
    ])?;
    Ok(())
}

/// Mark the token revoked at `at`, keeping an earlier revocation time; false when no token
/// has that name.
pub fn revoke(tx: &Tx<'_>, name: &str, at: &str) -> rusqlite::Result<bool> {
    let n = tx
        .prepare_cached("UPDATE tokens SET revoked_at = coalesce(revoked_at, ?1) WHERE name = ?2")?
        .execute(params![at, name])?;
    Ok(n > 0)
}

/// Note that the token named `name` was used at `at`.
pub fn touch(tx: &Tx<'_>, name: &str, at: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE tokens SET last_used_at = ?1 WHERE name = ?2")?
        .execute(params![at, name])?;
    Ok(())
}

/// Every token, by name.
pub fn list(db: &impl super::Db) -> rusqlite::Result<Vec<TokenInfo>> {
    let conn = db.connection();
    conn.prepare(
        "SELECT name, role, markets, created_at, last_used_at, expires_at, revoked_at
         FROM tokens ORDER BY name",
    )?
    .query_map([], |r| {
        Ok(TokenInfo {
            name: r.get("name")?,
            role: r.get("role")?,
            markets: markets_of(&r.get::<_, String>("markets")?),
            created_at: r.get("created_at")?,
            last_used_at: r.get("last_used_at")?,
            expires_at: r.get("expires_at")?,
            revoked_at: r.get("revoked_at")?,
        })
    })?
    .collect()
}
