//! The audit log: who did what to which subject, appended by the writing job that did it
//! (the table is append-only by trigger).

use super::insert::rfc3339;
use super::Tx;
use chrono::Utc;
use rusqlite::params;

/// Append one entry; a null `detail` is stored as no detail.
pub fn audit(
    tx: &Tx<'_>,
    actor: &str,
    action: &str,
    subject: Option<&str>,
    detail: &serde_json::Value,
) -> rusqlite::Result<()> {
    let detail = (!detail.is_null()).then(|| detail.to_string());
    tx.prepare_cached(
        "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![rfc3339(Utc::now()), actor, action, subject, detail])?;
    Ok(())
}
