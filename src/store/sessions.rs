//! Page sign-in state: `web_sessions` (a browser's session, by the hash of its cookie) and
//! `signin_codes` (one-time sign-in links, by the hash of their code). Both belong to a
//! token by name; the times are RFC 3339 text, which orders as time.

use super::Tx;
use rusqlite::{params, OptionalExtension};

/// A session or sign-in code to store.
#[derive(Debug, Clone, Copy)]
pub struct NewSecret<'a> {
    /// SHA-256 of the secret the browser holds.
    pub hash: &'a str,
    pub token_name: &'a str,
    pub created_at: &'a str,
    pub expires_at: &'a str,
}

/// A session with the token it belongs to, as the session check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionToken {
    pub token_name: String,
    /// The token's role as stored.
    pub role: String,
    pub markets: Vec<String>,
    pub token_expires_at: Option<String>,
    pub token_revoked_at: Option<String>,
    pub session_expires_at: String,
}

/// Store a new session, first clearing sessions that ended by `new.created_at` (they are
/// of no use to anyone).
pub fn create_session(tx: &Tx<'_>, new: &NewSecret<'_>) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM web_sessions WHERE expires_at <= ?1")?
        .execute([new.created_at])?;
    tx.prepare_cached(
        "INSERT INTO web_sessions (hash, token_name, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        new.hash,
        new.token_name,
        new.created_at,
        new.expires_at
    ])?;
    Ok(())
}

/// Delete the session whose hash is `hash`; the name of its token, if it existed.
pub fn end_session(tx: &Tx<'_>, hash: &str) -> rusqlite::Result<Option<String>> {
    tx.prepare_cached("DELETE FROM web_sessions WHERE hash = ?1 RETURNING token_name")?
        .query_row([hash], |r| r.get("token_name"))
        .optional()
}

/// The session whose hash is `hash` and its token, whatever their expiry.
pub fn session_token(db: &impl super::Db, hash: &str) -> rusqlite::Result<Option<SessionToken>> {
    let conn = db.connection();
    conn.prepare_cached(
        "SELECT t.name, t.role, t.markets, t.expires_at AS token_expires_at,
                t.revoked_at, s.expires_at AS session_expires_at
         FROM web_sessions s JOIN tokens t ON t.name = s.token_name
         WHERE s.hash = ?1",
    )?
    .query_row([hash], |r| {
        let markets: String = r.get("markets")?;
        Ok(SessionToken {
            token_name: r.get("name")?,
            role: r.get("role")?,
            // Unreadable scope grants no market: the safe side.
            markets: serde_json::from_str(&markets).unwrap_or_default(),
            token_expires_at: r.get("token_expires_at")?,
            token_revoked_at: r.get("revoked_at")?,
            session_expires_at: r.get("session_expires_at")?,
        })
    })
    .optional()
}

/// Store a new sign-in code, first clearing codes that expired by `new.created_at`. Fails
/// (a foreign-key error) when no token has that name.
pub fn create_signin_code(tx: &Tx<'_>, new: &NewSecret<'_>) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM signin_codes WHERE expires_at <= ?1")?
        .execute([new.created_at])?;
    tx.prepare_cached(
        "INSERT INTO signin_codes (hash, token_name, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        new.hash,
        new.token_name,
        new.created_at,
        new.expires_at
    ])?;
    Ok(())
}

/// Mark the code whose hash is `hash` used at `at` if it is unused and unexpired; the name
/// of its token if it was.
pub fn use_signin_code(tx: &Tx<'_>, hash: &str, at: &str) -> rusqlite::Result<Option<String>> {
    tx.prepare_cached(
        "UPDATE signin_codes SET used_at = ?2
         WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2
         RETURNING token_name",
    )?
    .query_row(params![hash, at], |r| r.get("token_name"))
    .optional()
}
