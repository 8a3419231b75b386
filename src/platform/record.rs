//! The canonical record a platform request is made of, read from the outbox event's body (the
//! `result.recorded` shape of `docs/reference.md`, "Upstream events").

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct RecordBody {
    occurred_at: String,
    market: String,
    stall: Option<String>,
    sample: RecordSample,
    reading: RecordReading,
}

#[derive(Debug, Default, Deserialize)]
struct RecordSample {
    id: Option<String>,
    name: Option<String>,
    category: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RecordReading {
    instrument: Option<String>,
    sample_name: Option<String>,
    analyte: String,
    value: Option<f64>,
    value_text: Option<String>,
    unit: Option<String>,
    measured_at: Option<String>,
    tester: Option<String>,
    verdict: String,
    limit: Option<RecordLimit>,
    recomputed_rate: Option<f64>,
}

/// The limit a reading was judged against.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RecordLimit {
    pub value: f64,
    pub unit: String,
    pub source: Option<String>,
}

/// One pass or fail reading as every adapter needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub market: String,
    pub stall: Option<String>,
    pub sample_id: Option<String>,
    pub sample_name: Option<String>,
    pub category: Option<String>,
    pub analyte: String,
    /// The value as the source sent it (its own precision).
    pub value: String,
    pub unit: String,
    pub failed: bool,
    pub limit: Option<RecordLimit>,
    /// When it was measured (else received), in the reading's own offset.
    pub measured_at: DateTime<FixedOffset>,
    pub instrument: Option<String>,
    pub tester: Option<String>,
    /// An enzyme reading's inhibition rate (%).
    pub inhibition: Option<f64>,
}

/// Why a body cannot be a platform record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotARecord {
    #[error("the event body is not a reading event: {0}")]
    RecordBody(String),
    #[error("verdict {0:?}: a platform takes pass and fail readings only")]
    Verdict(String),
    #[error("the reading has no usable time ({0:?})")]
    Time(String),
}

impl Record {
    pub fn from_body(body: &[u8]) -> Result<Record, NotARecord> {
        let b: RecordBody =
            serde_json::from_slice(body).map_err(|e| NotARecord::RecordBody(e.to_string()))?;
        let failed = match b.reading.verdict.as_str() {
            "fail" => true,
            "pass" => false,
            v => return Err(NotARecord::Verdict(v.to_string())),
        };
        let time = b.reading.measured_at.as_deref().unwrap_or(&b.occurred_at);
        let measured_at =
            DateTime::parse_from_rfc3339(time).map_err(|_| NotARecord::Time(time.to_string()))?;
        let value = b
            .reading
            .value_text
            .clone()
            .or_else(|| b.reading.value.map(|v| v.to_string()))
            .unwrap_or_default();
        Ok(Record {
            market: b.market,
            stall: b.stall.filter(|s| !s.trim().is_empty()),
            sample_id: b.sample.id,
            sample_name: b.sample.name.or(b.reading.sample_name),
            category: b.sample.category,
            analyte: b.reading.analyte,
            value,
            unit: b.reading.unit.unwrap_or_default(),
            failed,
            limit: b.reading.limit,
            measured_at,
            instrument: b.reading.instrument,
            tester: b.reading.tester,
            inhibition: b.reading.recomputed_rate,
        })
    }

    /// `yyyy-MM-dd HH:mm:ss` at `offset` (the platforms' local time).
    pub fn local_time(&self, offset: FixedOffset) -> String {
        self.measured_at
            .with_timezone(&offset)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    /// The limit as the shortest decimal and its unit, no space (`0.2g/kg`, `50%`).
    pub fn limit_text(&self) -> String {
        self.limit
            .as_ref()
            .map(|l| format!("{}{}", l.value, l.unit))
            .unwrap_or_default()
    }
}
