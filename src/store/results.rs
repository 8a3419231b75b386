//! Stored readings as the API answers them: the `GET /api/v1/results` page, and the
//! `uploads` ledger that tells an uploaded row seen before (same uploader, same row id) from
//! a new one.

use super::insert::parse_verdict;
use super::Db;
use super::{Reader, Tx};
use crate::judge::Verdict;
use rusqlite::{params, OptionalExtension};

/// What a results page is filtered by; `None` is "any".
#[derive(Debug, Clone, Default)]
pub struct ResultsFilter {
    pub market: Option<String>,
    /// A local day, `YYYY-MM-DD`.
    pub date: Option<String>,
    pub verdict: Option<String>,
    /// A canonical analyte name.
    pub analyte: Option<String>,
    /// Only readings stored before this one (the cursor of the previous page).
    pub before: Option<i64>,
    /// Only readings of these markets (a scoped token); `None`: every market.
    pub scope: Option<Vec<String>>,
    /// Rows at most.
    pub limit: i64,
}

/// One stored reading, newest first in a page.
#[derive(Debug, Clone)]
pub struct ResultRow {
    /// The row id: the cursor of the next page.
    pub id: i64,
    pub identity: String,
    pub market: String,
    pub stall: Option<String>,
    pub uploader: Option<String>,
    pub received_at: String,
    /// The reading as the decoder made it, with its verdict (a JSON object).
    pub reading_json: String,
}

/// Readings matching `f`, newest first, `f.limit` at most.
pub fn list(reader: &Reader, f: &ResultsFilter) -> rusqlite::Result<Vec<ResultRow>> {
    // A JSON array: SQLite takes the scope's markets as one parameter.
    let scope = f
        .scope
        .as_ref()
        .map(|m| serde_json::to_string(m).unwrap_or_default());
    let mut stmt = reader.connection().prepare_cached(
        "SELECT id, identity, market, stall, uploader, received_at, reading_json FROM readings
         WHERE (?1 IS NULL OR market = ?1) AND (?2 IS NULL OR local_day = ?2)
           AND (?3 IS NULL OR verdict = ?3) AND (?4 IS NULL OR analyte = ?4)
           AND (?5 IS NULL OR id < ?5)
           AND (?6 IS NULL OR market IN (SELECT value FROM json_each(?6)))
         ORDER BY id DESC LIMIT ?7",
    )?;
    let rows = stmt
        .query_map(
            params![f.market, f.date, f.verdict, f.analyte, f.before, scope, f.limit],
            |r| {
                Ok(ResultRow {
                    id: r.get("id")?,
                    identity: r.get("identity")?,
                    market: r.get("market")?,
                    stall: r.get("stall")?,
                    uploader: r.get("uploader")?,
                    received_at: r.get("received_at")?,
                    reading_json: r.get("reading_json")?,
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// An uploaded row seen before: what its content was, and the reading it became.
#[derive(Debug, Clone)]
pub struct SeenUpload {
    pub content_hash: String,
    pub reading: i64,
}

/// The row `row_id` of `uploader`, if it was uploaded before.
pub fn seen_upload(
    tx: &Tx<'_>,
    uploader: &str,
    row_id: &str,
) -> rusqlite::Result<Option<SeenUpload>> {
    tx.conn()
        .prepare_cached(
            "SELECT content_hash, reading FROM uploads WHERE uploader = ?1 AND row_id = ?2",
        )?
        .query_row(params![uploader, row_id], |r| {
            Ok(SeenUpload {
                content_hash: r.get("content_hash")?,
                reading: r.get("reading")?,
            })
        })
        .optional()
}

/// Note that the row `row_id` of `uploader` (content `content_hash`) became `reading`.
pub fn record_upload(
    tx: &Tx<'_>,
    uploader: &str,
    row_id: &str,
    content_hash: &str,
    reading: i64,
    received_at: &str,
) -> rusqlite::Result<()> {
    tx.conn()
        .prepare_cached(
            "INSERT INTO uploads (uploader, row_id, content_hash, reading, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            uploader,
            row_id,
            content_hash,
            reading,
            received_at
        ])?;
    Ok(())
}

/// The reason the judge gave for the stored reading `reading`.
pub fn reason(tx: &Tx<'_>, reading: i64) -> rusqlite::Result<String> {
    tx.conn()
        .prepare_cached("SELECT reason FROM readings WHERE id = ?1")?
        .query_row([reading], |r| r.get("reason"))
}

/// How a stored reading was judged, and the hold its failure opened: what a duplicate of it
/// is answered with.
#[derive(Debug, Clone)]
pub struct Judged {
    pub verdict: Verdict,
    pub reason: String,
    pub identity: String,
    pub hold: Option<String>,
}

/// The verdict, reason, identity and hold of the stored reading `reading`.
pub fn judged(tx: &Tx<'_>, reading: i64) -> rusqlite::Result<Judged> {
    let conn = tx.conn();
    let (verdict, reason, identity): (String, String, String) = conn
        .prepare_cached("SELECT verdict, reason, identity FROM readings WHERE id = ?1")?
        .query_row([reading], |r| {
            Ok((r.get("verdict")?, r.get("reason")?, r.get("identity")?))
        })?;
    let hold: Option<String> = conn
        .prepare_cached("SELECT id FROM holds WHERE reading = ?1")?
        .query_row([reading], |r| r.get("id"))
        .optional()?;
    Ok(Judged {
        verdict: parse_verdict(&verdict),
        reason,
        identity,
        hold,
    })
}
