//! Column codecs: how values are written to and read from their text columns. The texts are
//! part of the stored data and of the API, so they never change.

use crate::judge::{JudgedReading, Verdict};
use chrono::{DateTime, FixedOffset, SecondsFormat, TimeDelta, Utc};
use foodgate_parsers::{DeviceVerdict, Qualifier, Reading};

/// The `readings.verdict` text of a verdict.
pub fn verdict_str(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Invalid => "invalid",
        Verdict::Unknown => "unknown",
    }
}

/// A `readings.verdict` text; a text this version does not know is `unknown`.
pub fn parse_verdict(s: &str) -> Verdict {
    match s {
        "pass" => Verdict::Pass,
        "fail" => Verdict::Fail,
        "invalid" => Verdict::Invalid,
        _ => Verdict::Unknown,
    }
}

/// The `readings.qualifier` text.
pub fn qualifier_str(q: Qualifier) -> &'static str {
    match q {
        Qualifier::Below => "<",
        Qualifier::Above => ">",
        Qualifier::NotDetected => "ND",
    }
}

/// The `readings.device_verdict` text.
pub fn device_verdict_str(d: DeviceVerdict) -> &'static str {
    match d {
        DeviceVerdict::Positive => "positive",
        DeviceVerdict::Negative => "negative",
        DeviceVerdict::Invalid => "invalid",
    }
}

/// A time as every time column holds it: UTC, milliseconds, `Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An instrument's time as it sent it (its own offset, only the digits it gave).
pub fn measured_str(t: DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// The local day a reading counts in for coverage: of `measured_at`, or of
/// `received_at` when the instrument clock is missing or more than 24 h off.
pub fn local_day(r: &Reading, received_at: DateTime<Utc>, offset: FixedOffset) -> String {
    // The whole difference, not whole seconds of it: 24 h and 0.5 s is "more than 24 h".
    let at = match r.measured_at {
        Some(m) if (m.with_timezone(&Utc) - received_at).abs() <= TimeDelta::hours(24) => {
            m.with_timezone(&Utc)
        }
        _ => received_at,
    };
    at.with_timezone(&offset).format("%Y-%m-%d").to_string()
}

/// A JSON column read back as `T`; a column that does not parse is a conversion error of
/// column `col`, not a panic.
pub fn from_json<T: serde::de::DeserializeOwned>(col: usize, text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// A `reading_json` column read back; one that does not parse is a conversion error of
/// column `col`.
pub fn judged_from_json(col: usize, text: &str) -> rusqlite::Result<JudgedReading> {
    JudgedReading::from_json(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// `T` as the text of a JSON column.
pub fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    // Serializing our own types to a string cannot fail (no maps with non-text keys).
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use foodgate_parsers::Protocol;

    #[test]
    fn the_local_day_takes_received_at_when_measured_at_is_more_than_24_h_away() {
        let offset = FixedOffset::east_opt(8 * 3600).unwrap();
        let received = DateTime::parse_from_rfc3339("2025-03-05T01:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut r = Reading::new(Protocol::Astm, "chlorpyrifos");
        let at = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap());
        // Exactly 24 h before: still the instrument's clock (local 2025-03-04).
        r.measured_at = at("2025-03-04T01:00:00Z");
        assert_eq!(local_day(&r, received, offset), "2025-03-04");
        // Half a second more is "more than 24 h away": the day it was received (local 03-05).
        r.measured_at = at("2025-03-04T00:59:59.500Z");
        assert_eq!(local_day(&r, received, offset), "2025-03-05");
        r.measured_at = at("2025-03-06T01:00:00.001Z");
        assert_eq!(local_day(&r, received, offset), "2025-03-05");
        r.measured_at = None;
        assert_eq!(local_day(&r, received, offset), "2025-03-05");
        // The local day, not the UTC one: 16:30 UTC is 00:30 the next day at +08:00.
        r.measured_at = at("2025-03-04T16:30:00Z");
        assert_eq!(local_day(&r, received, offset), "2025-03-05");
    }

    #[test]
    fn verdict_texts_read_back() {
        for v in [
            Verdict::Pass,
            Verdict::Fail,
            Verdict::Invalid,
            Verdict::Unknown,
        ] {
            assert_eq!(parse_verdict(verdict_str(v)), v);
        }
    }
}
