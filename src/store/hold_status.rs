//! Where a hold is in its life cycle, and one step of its history: the words the store, the
//! bodies and the pages share.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a hold is in its life cycle, as `holds.status` and every body and page say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldStatus {
    /// Held from sale, awaiting a retest.
    Held,
    /// A retest failed too: the goods are destroyed.
    Confirmed,
    /// An independent retest passed: the goods are sold again.
    Released,
    /// The results conflict: a person decides.
    Review,
}

impl HoldStatus {
    pub const ALL: [HoldStatus; 4] = [
        HoldStatus::Held,
        HoldStatus::Confirmed,
        HoldStatus::Released,
        HoldStatus::Review,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Held => "held",
            HoldStatus::Confirmed => "confirmed",
            HoldStatus::Released => "released",
            HoldStatus::Review => "review",
        }
    }

    /// Goods still blocked by the machine's own verdict: what a correction that no longer
    /// fails sends to a person.
    pub fn is_open(self) -> bool {
        matches!(self, HoldStatus::Held | HoldStatus::Confirmed)
    }
}

impl fmt::Display for HoldStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hold status {0:?}: expected held, confirmed, released or review")]
pub struct UnknownHoldStatus(pub String);

impl FromStr for HoldStatus {
    type Err = UnknownHoldStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HoldStatus::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| UnknownHoldStatus(s.to_string()))
    }
}

impl ToSql for HoldStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for HoldStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: UnknownHoldStatus| FromSqlError::Other(Box::new(e)))
    }
}

/// One entry of a hold's history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryEntry {
    pub at: String,
    pub status: HoldStatus,
    pub by: String,
    pub reason: String,
}
