//! API tokens: random, shown once, stored as a SHA-256 hash; roles and market scope.
//!
//! A token is 32 bytes from the OS RNG, written `fg_` + 64 lowercase hex digits. Only its
//! hash is stored, so a copy of the database grants nothing. A presented token is hashed and
//! looked up by that hash; the stored hash is then compared with the computed one in
//! constant time, so neither the lookup nor the comparison tells an attacker how close a
//! guess was to a real token.

use crate::store::audit::audit;
use crate::store::{insert::rfc3339, markets, tokens, Tx};
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use subtle::ConstantTimeEq;

/// What a token may do.
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
    conn: &impl crate::store::Db,
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
    let row = tokens::by_hash(conn, &hash)
        .map_err(|_| AuthError::Unknown)?
        .ok_or(AuthError::Unknown)?;
    if !bool::from(row.hash.as_bytes().ct_eq(hash.as_bytes())) {
        return Err(AuthError::Unknown);
    }
    if let Some(at) = row.revoked_at {
        return Err(AuthError::Revoked(at));
    }
    if let Some(at) = row.expires_at {
        let past = DateTime::parse_from_rfc3339(&at)
            .map(|t| t.with_timezone(&Utc) <= now)
            .unwrap_or(true);
        if past {
            return Err(AuthError::Expired(at));
        }
    }
    let role = Role::from_str(&row.role).map_err(|_| AuthError::Unknown)?;
    Ok(Principal {
        name: row.name,
        role,
        markets: row.markets,
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
        if !markets::exists(tx, m)? {
            return Err(TokenError::UnknownMarket(m.clone()));
        }
    }
    if tokens::name_exists(tx, &new.name)? {
        return Err(TokenError::NameTaken(new.name.clone()));
    }
    let token = generate_token().map_err(|e| TokenError::Random(e.to_string()))?;
    let now = Utc::now();
    let expires = new
        .expires_days
        .map(|d| rfc3339(now + Duration::days(i64::from(d))));
    tokens::insert(
        tx,
        &tokens::NewTokenRecord {
            name: &new.name,
            hash: &hash_token(&token),
            role: new.role.as_str(),
            markets: &new.markets,
            created_at: &rfc3339(now),
            expires_at: expires.as_deref(),
        },
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
    if !tokens::revoke(tx, name, &rfc3339(Utc::now()))? {
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
