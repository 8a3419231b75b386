//! API tokens: random, shown once, stored as a SHA-256 hash; roles and market scope.
//!
//! A token is 32 bytes from the OS RNG, written `fg_` + 64 lowercase hex digits. Only its
//! hash is stored, so a copy of the database grants nothing. A presented token is hashed and
//! looked up by that hash; the stored hash is then compared with the computed one in
//! constant time, so neither the lookup nor the comparison tells an attacker how close a
//! guess was to a real token.

use crate::store::{insert::rfc3339, Tx};
use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use subtle::ConstantTimeEq;

/// What a token may do (SPEC "HTTP API").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A market's own service or tester: its markets only.
    Station,
    /// A third-party testing contractor: its markets only.
    Contractor,
    /// Reads everything, writes nothing.
    Regulator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Station,
        Role::Contractor,
        Role::Regulator,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Station => "station",
            Role::Contractor => "contractor",
            Role::Regulator => "regulator",
            Role::Admin => "admin",
        }
    }

    /// Station and contractor tokens are limited to the markets they were created for.
    pub fn is_scoped(self) -> bool {
        matches!(self, Role::Station | Role::Contractor)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected station, contractor, regulator or admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// Who is asking: a valid, unexpired, unrevoked token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name: what the audit log and `uploader` record.
    pub name: String,
    pub role: Role,
    /// Market codes of a scoped role; empty for regulator and admin.
    pub markets: Vec<String>,
}

impl Principal {
    /// May this token see or write data of `market`?
    pub fn covers(&self, market: &str) -> bool {
        !self.role.is_scoped() || self.markets.iter().any(|m| m == market)
    }
}

/// Why a request is not authenticated (401); the message says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token: send Authorization: Bearer <token>")]
    Missing,
    #[error("the Authorization header is not `Bearer <token>`")]
    Malformed,
    #[error("unknown token")]
    Unknown,
    #[error("the token expired at {0}")]
    Expired(String),
    #[error("the token was revoked at {0}")]
    Revoked(String),
}

/// Hex SHA-256 of a token: what is stored.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token (32 bytes of the OS RNG).
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("fg_{}", hex::encode(bytes)))
}

/// Check a presented token (the whole `Authorization` header value, if any).
pub fn authenticate(
    conn: &Connection,
    header: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Principal, AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::Malformed)?;
    let hash = hash_token(token);
    type Row = (
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
    );
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT hash, name, role, markets, expires_at, revoked_at FROM tokens WHERE hash = ?1",
        )
        .and_then(|mut s| {
            s.query_row([&hash], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .optional()
        })
        .map_err(|_| AuthError::Unknown)?;
    let (stored, name, role, markets, expires, revoked) = row.ok_or(AuthError::Unknown)?;
    if !bool::from(stored.as_bytes().ct_eq(hash.as_bytes())) {
        return Err(AuthError::Unknown);
    }
    if let Some(at) = revoked {
        return Err(AuthError::Revoked(at));
    }
    if let Some(at) = expires {
        let past = DateTime::parse_from_rfc3339(&at)
            .map(|t| t.with_timezone(&Utc) <= now)
            .unwrap_or(true);
        if past {
            return Err(AuthError::Expired(at));
        }
    }
    let role = Role::from_str(&role).map_err(|_| AuthError::Unknown)?;
    let markets: Vec<String> = serde_json::from_str(&markets).unwrap_or_default();
    Ok(Principal {
        name,
        role,
        markets,
    })
}

/// What `token create` is asked for.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
    pub markets: Vec<String>,
    pub expires_days: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("a token named {0:?} exists already")]
    NameTaken(String),
    #[error("unknown market {0:?}")]
    UnknownMarket(String),
    #[error("a {0} token needs at least one --market")]
    NeedsMarket(Role),
    #[error(
        "--market applies to station and contractor tokens only ({0} tokens see every market)"
    )]
    MarketNotAllowed(Role),
    #[error("no token named {0:?}")]
    NoSuchToken(String),
    #[error("the OS random number generator failed: {0}")]
    Random(String),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Store a new token (hashed) and audit it; returns the token, to be shown once.
pub fn create(tx: &Tx<'_>, new: &NewToken, actor: &str) -> Result<String, TokenError> {
    if new.role.is_scoped() && new.markets.is_empty() {
        return Err(TokenError::NeedsMarket(new.role));
    }
    if !new.role.is_scoped() && !new.markets.is_empty() {
        return Err(TokenError::MarketNotAllowed(new.role));
    }
    for m in &new.markets {
        let known = tx
            .prepare_cached("SELECT 1 FROM markets WHERE code = ?1")?
            .exists([m])?;
        if !known {
            return Err(TokenError::UnknownMarket(m.clone()));
        }
    }
    let taken = tx
        .prepare_cached("SELECT 1 FROM tokens WHERE name = ?1")?
        .exists([&new.name])?;
    if taken {
        return Err(TokenError::NameTaken(new.name.clone()));
    }
    let token = generate_token().map_err(|e| TokenError::Random(e.to_string()))?;
    let now = Utc::now();
    let expires = new
        .expires_days
        .map(|d| rfc3339(now + Duration::days(i64::from(d))));
    let markets = serde_json::to_string(&new.markets).unwrap_or_else(|_| "[]".into());
    tx.execute(
        "INSERT INTO tokens (name, hash, role, markets, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            new.name,
            hash_token(&token),
            new.role.as_str(),
            markets,
            rfc3339(now),
            expires
        ],
    )?;
    audit(
        tx,
        actor,
        "token.create",
        Some(&new.name),
        &serde_json::json!({"role": new.role, "markets": new.markets, "expires_at": expires}),
    )?;
    Ok(token)
}

/// Revoke a token by name (audited); revoking twice is not an error.
pub fn revoke(tx: &Tx<'_>, name: &str, actor: &str) -> Result<(), TokenError> {
    let now = rfc3339(Utc::now());
    let n = tx.execute(
        "UPDATE tokens SET revoked_at = coalesce(revoked_at, ?1) WHERE name = ?2",
        params![now, name],
    )?;
    if n == 0 {
        return Err(TokenError::NoSuchToken(name.to_string()));
    }
    audit(
        tx,
        actor,
        "token.revoke",
        Some(name),
        &serde_json::Value::Null,
    )?;
    Ok(())
}

/// A token as `token list` shows it (never the token, never its hash).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: String,
    pub markets: Vec<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

pub fn list(conn: &Connection) -> rusqlite::Result<Vec<TokenInfo>> {
    conn.prepare(
        "SELECT name, role, markets, created_at, last_used_at, expires_at, revoked_at
         FROM tokens ORDER BY name",
    )?
    .query_map([], |r| {
        let markets: String = r.get(2)?;
        Ok(TokenInfo {
            name: r.get(0)?,
            role: r.get(1)?,
            markets: serde_json::from_str(&markets).unwrap_or_default(),
            created_at: r.get(3)?,
            last_used_at: r.get(4)?,
            expires_at: r.get(5)?,
            revoked_at: r.get(6)?,
        })
    })?
    .collect()
}

/// Append to the audit log (append-only by trigger).
pub fn audit(
    conn: &Connection,
    actor: &str,
    action: &str,
    subject: Option<&str>,
    detail: &serde_json::Value,
) -> rusqlite::Result<()> {
    let detail = (!detail.is_null()).then(|| detail.to_string());
    conn.prepare_cached(
        "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![rfc3339(Utc::now()), actor, action, subject, detail])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = generate_token().expect("rng");
        let b = generate_token().expect("rng");
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 64);
        assert!(a.starts_with("fg_"));
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), hash_token(&b));
        assert_eq!(hash_token(&a), hash_token(&a));
    }

    #[test]
    fn scope() {
        let p = Principal {
            name: "s".into(),
            role: Role::Station,
            markets: vec!["ZB-0001".into()],
        };
        assert!(p.covers("ZB-0001"));
        assert!(!p.covers("ZB-0002"));
        let r = Principal {
            role: Role::Regulator,
            markets: vec![],
            ..p
        };
        assert!(r.covers("ZB-0002"));
    }
}
