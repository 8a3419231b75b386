//! Page sessions: cookies, the session table, CSRF tokens and the `next` rule.
//!
//! A session id is 32 random bytes; the browser keeps it in an `HttpOnly`, `SameSite=Strict`
//! cookie and the store keeps only its SHA-256 hash (migration 0007). A session belongs to a
//! token by name and is checked against that token on every page request, so revoking or
//! expiring the token ends its sessions at once.
//!
//! CSRF: a signed-in form carries `csrf` = SHA-256 of `"csrf:" + session id`, which only the
//! holder of the cookie can compute (nothing more to store). The sign-in form, before there is
//! a session, uses a double-submit cookie: a random value both in a cookie and in the form.

use crate::auth::{hash_token, Principal, Role};
use crate::store::insert::rfc3339;
use crate::store::sessions::{self, NewSecret};
use crate::store::Tx;
use axum::http::{header, HeaderMap, HeaderValue};
use chrono::{DateTime, Duration, Utc};
use std::str::FromStr;
use subtle::ConstantTimeEq;

/// The session cookie.
pub const SESSION_COOKIE: &str = "fg_session";
/// The double-submit cookie of the sign-in form.
pub const LOGIN_CSRF_COOKIE: &str = "fg_login_csrf";
/// How long a session lasts at most (its token's expiry or revocation may end it sooner).
pub const SESSION_HOURS: i64 = 12;
/// Where `next` goes when it is missing or not a local path.
pub const DEFAULT_NEXT: &str = "/dashboard";

/// 32 random bytes as 64 hex digits.
pub fn random_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// A random secret, or an SQLite error for the writer job that needed one (so the job,
/// and what it wrote so far, is rolled back).
pub(crate) fn random_for_sql() -> rusqlite::Result<String> {
    random_secret().map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Start a session for the token `token_name`; returns the session id (for the cookie).
pub fn create_session(
    tx: &Tx<'_>,
    token_name: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<String> {
    let id = random_for_sql()?;
    sessions::create_session(
        tx,
        &NewSecret {
            hash: &hash_token(&id),
            token_name,
            created_at: &rfc3339(now),
            expires_at: &rfc3339(now + Duration::hours(SESSION_HOURS)),
        },
    )?;
    Ok(id)
}

/// End a session (logout); ending one that is gone already is not an error.
pub fn end_session(tx: &Tx<'_>, session_id: &str) -> rusqlite::Result<Option<String>> {
    sessions::end_session(tx, &hash_token(session_id))
}

/// Who a session cookie signs in: `None` when the session is unknown or expired, or its
/// token was revoked or has expired since.
pub fn session_principal(
    conn: &impl crate::store::Db,
    session_id: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<Option<Principal>> {
    let Some(row) = sessions::session_token(conn, &hash_token(session_id))? else {
        return Ok(None);
    };
    let past = |at: &str| {
        DateTime::parse_from_rfc3339(at)
            .map(|t| t.with_timezone(&Utc) <= now)
            .unwrap_or(true)
    };
    if row.token_revoked_at.is_some()
        || row.token_expires_at.as_deref().is_some_and(past)
        || past(&row.session_expires_at)
    {
        return Ok(None);
    }
    let Ok(role) = Role::from_str(&row.role) else {
        return Ok(None);
    };
    Ok(Some(Principal {
        name: row.token_name,
        role,
        markets: row.markets,
    }))
}

/// The CSRF token of the forms of a signed-in page.
pub fn csrf_for(session_id: &str) -> String {
    hash_token(&format!("csrf:{session_id}"))
}

/// Constant-time equality of two secrets (a non-empty `expected` only).
pub fn same_secret(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// `next` if it is a local path (one leading `/`, not `//`, no backslash, no control
/// characters), else [`DEFAULT_NEXT`]: a sign-in never sends anyone to another site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_string()
        }
        _ => DEFAULT_NEXT.to_string(),
    }
}

/// The value of cookie `name` in the request, if sent.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value; `max_age` 0 deletes the cookie. `Secure` when the request came
/// through a TLS proxy (plain-HTTP loopback must keep working).
pub fn set_cookie(
    request: &HeaderMap,
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
) -> Option<HeaderValue> {
    let secure = request
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let s = format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path={path}; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_must_be_a_local_path() {
        assert_eq!(
            safe_next(Some("/dashboard?date=2025-03-04")),
            "/dashboard?date=2025-03-04"
        );
        assert_eq!(
            safe_next(Some("/markets/ZB-0001/board")),
            "/markets/ZB-0001/board"
        );
        for bad in [
            "//evil.com",
            "http://evil.com/",
            "https:/x",
            "/\\evil.com",
            "\\\\evil.com",
            "evil.com",
            "",
            "javascript:alert(1)",
            "/a\r\nSet-Cookie: x=1",
        ] {
            assert_eq!(safe_next(Some(bad)), DEFAULT_NEXT, "{bad:?}");
        }
        assert_eq!(safe_next(None), DEFAULT_NEXT);
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; fg_session=abc ; fg_session_x=2"),
        );
        assert_eq!(cookie(&h, "fg_session").as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "a").as_deref(), Some("1"));
        assert_eq!(cookie(&h, "b"), None);
    }

    #[test]
    fn csrf_tokens_differ_per_session() {
        assert_ne!(csrf_for("a"), csrf_for("b"));
        assert!(same_secret(&csrf_for("a"), &csrf_for("a")));
        assert!(!same_secret("", ""));
        assert!(!same_secret("abc", "abd"));
    }
}
