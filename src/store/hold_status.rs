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
    /// A retest failed too: the screening positive is confirmed.
    Confirmed,
    /// Sale stopped and the goods taken off the stall (停售/下架).
    Stopped,
    /// A sample of the goods is at a laboratory for confirmation (送检).
    Lab,
    /// The goods are destroyed or made harmless (销毁/无害化), awaiting a passing re-sample.
    Destroyed,
    /// The case is finished: destroyed and re-sampled, or released.
    Closed,
    /// An independent retest (or the laboratory) passed: the goods are sold again.
    Released,
    /// The results conflict: a person decides.
    Review,
    /// Goods of a batch that failed in another sample (same certificate, or same supplier
    /// and commodity): held until a test of this sample passes (`super::trace`).
    Traced,
}

impl HoldStatus {
    pub const ALL: [HoldStatus; 9] = [
        HoldStatus::Held,
        HoldStatus::Confirmed,
        HoldStatus::Stopped,
        HoldStatus::Lab,
        HoldStatus::Destroyed,
        HoldStatus::Closed,
        HoldStatus::Released,
        HoldStatus::Review,
        HoldStatus::Traced,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Held => "held",
            HoldStatus::Confirmed => "confirmed",
            HoldStatus::Stopped => "stopped",
            HoldStatus::Lab => "lab",
            HoldStatus::Destroyed => "destroyed",
            HoldStatus::Closed => "closed",
            HoldStatus::Released => "released",
            HoldStatus::Review => "review",
            HoldStatus::Traced => "traced",
        }
    }

    /// Goods still blocked by the machine's own verdict: what a correction that no longer
    /// fails sends to a person.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            HoldStatus::Held | HoldStatus::Confirmed | HoldStatus::Stopped | HoldStatus::Lab
        )
    }

    /// A retest confirmed the failure and the case is not finished: the states of the path
    /// from stop sale to destruction.
    pub fn is_confirmed_path(self) -> bool {
        matches!(
            self,
            HoldStatus::Confirmed | HoldStatus::Stopped | HoldStatus::Lab | HoldStatus::Destroyed
        )
    }

    /// The case still needs someone: not released and not closed.
    pub fn is_unfinished(self) -> bool {
        !matches!(self, HoldStatus::Released | HoldStatus::Closed)
    }

    /// The state as a tester and a shopper read it, Chinese first.
    pub const fn zh(self) -> &'static str {
        match self {
            HoldStatus::Held => "待复检",
            HoldStatus::Confirmed => "复检阳性",
            HoldStatus::Stopped => "已停售",
            HoldStatus::Lab => "送检中",
            HoldStatus::Destroyed => "已销毁",
            HoldStatus::Closed => "已结案",
            HoldStatus::Released => "已放行",
            HoldStatus::Review => "待复核",
            HoldStatus::Traced => "追溯待检",
        }
    }
}

impl fmt::Display for HoldStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hold status {0:?}: expected held, confirmed, stopped, lab, destroyed, closed, released, review or traced")]
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
    /// The action that made this entry (`stop_sale`, `destroy`, …), with its fields: absent on
    /// the entries retests, corrections and failures make.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<serde_json::Value>,
}

impl HistoryEntry {
    /// An entry no action made (a failure, a retest, a correction).
    pub fn new(at: &str, status: HoldStatus, by: &str, reason: impl Into<String>) -> Self {
        HistoryEntry {
            at: at.to_string(),
            status,
            by: by.to_string(),
            reason: reason.into(),
            action: None,
            fields: None,
        }
    }
}

/// What was done about a failure, as the board tells shoppers and the dashboard tells
/// regulators: the hold's state with the destruction and the re-sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Handling {
    pub status: HoldStatus,
    pub destroyed_kg: Option<f64>,
    /// A passing re-sample of the stall is recorded.
    pub resampled: bool,
}

/// `12.5`, `3`, never `3.0000000001`.
fn kg_text(kg: f64) -> String {
    let t = format!("{kg:.3}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl Handling {
    /// In Chinese, in words a shopper understands.
    pub fn zh(&self) -> String {
        let destroyed = |kg: Option<f64>| match kg {
            Some(kg) => format!("已销毁 {} 公斤", kg_text(kg)),
            None => "已销毁".to_string(),
        };
        let resample = if self.resampled {
            "复抽合格"
        } else {
            "待复抽"
        };
        match self.status {
            HoldStatus::Held => "已暂停销售，等待复检".into(),
            HoldStatus::Confirmed => "复检仍不合格，暂停销售".into(),
            HoldStatus::Stopped => "已停售下架".into(),
            HoldStatus::Lab => "已停售下架，送检确认中".into(),
            HoldStatus::Destroyed => format!("{}，{resample}", destroyed(self.destroyed_kg)),
            HoldStatus::Closed if self.destroyed_kg.is_some() => {
                format!("{}，{resample}，已结案", destroyed(self.destroyed_kg))
            }
            HoldStatus::Closed => "复检合格，已恢复销售".into(),
            HoldStatus::Released => "复检合格，已恢复销售".into(),
            HoldStatus::Review => "结果不一致，由监管人员复核".into(),
            HoldStatus::Traced => "同批次货物在他处检测不合格，暂停销售待检".into(),
        }
    }

    /// The same in English.
    pub fn en(&self) -> String {
        let destroyed = |kg: Option<f64>| match kg {
            Some(kg) => format!("{} kg destroyed", kg_text(kg)),
            None => "Goods destroyed".to_string(),
        };
        let resample = if self.resampled {
            "re-sample passed"
        } else {
            "re-sample due"
        };
        match self.status {
            HoldStatus::Held => "Goods held from sale, awaiting retest".into(),
            HoldStatus::Confirmed => "Retest failed too: goods held from sale".into(),
            HoldStatus::Stopped => "Sale stopped, goods off the stall".into(),
            HoldStatus::Lab => "Sale stopped; a laboratory is confirming".into(),
            HoldStatus::Destroyed => format!("{}, {resample}", destroyed(self.destroyed_kg)),
            HoldStatus::Closed if self.destroyed_kg.is_some() => {
                format!("{}, {resample}, closed", destroyed(self.destroyed_kg))
            }
            HoldStatus::Closed | HoldStatus::Released => "Retest passed: goods released".into(),
            HoldStatus::Review => "Conflicting results: an inspector decides".into(),
            HoldStatus::Traced => "Same batch failed elsewhere: held until tested".into(),
        }
    }
}

/// The actions a hold in `status` allows now (an admin may also close one in review).
pub fn allowed(status: HoldStatus, resampled: bool) -> Vec<&'static str> {
    use HoldStatus::*;
    let mut v = match status {
        Confirmed => vec!["stop_sale"],
        Stopped => vec!["lab_sent", "destroy"],
        Lab => vec!["lab_result"],
        Destroyed if resampled => vec!["close"],
        Released => vec!["close"],
        _ => vec![],
    };
    if status.is_confirmed_path() && !resampled {
        v.push("resample");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handling_says_what_was_done_in_both_languages() {
        let h = Handling {
            status: HoldStatus::Destroyed,
            destroyed_kg: Some(12.5),
            resampled: true,
        };
        assert_eq!(h.zh(), "已销毁 12.5 公斤，复抽合格");
        assert_eq!(h.en(), "12.5 kg destroyed, re-sample passed");
        let stopped = Handling {
            status: HoldStatus::Stopped,
            destroyed_kg: None,
            resampled: false,
        };
        assert_eq!(stopped.zh(), "已停售下架");
        assert_eq!(kg_text(3.0), "3");
        assert_eq!(kg_text(0.25), "0.25");
    }
}
