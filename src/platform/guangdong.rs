//! `guangdong`: 广东 智慧食药监, a form whose `result` field is a JSON text, the readings of
//! one item and device per request, up to [`BATCH`] (`docs/platforms.md`).

use super::codes::{Codes, MissingCode};
use super::record::Record;
use super::{PlatformOutcome, PlatformRequest};
use crate::config::PlatformConfig;
use chrono::FixedOffset;
use serde::{Deserialize, Serialize};

/// The `result` field, keys in the platform's order.
#[derive(Serialize)]
struct GuangdongResult<'a> {
    username: &'a str,
    itemid: &'a str,
    deviceid: &'a str,
    totalnum: usize,
    #[serde(rename = "Longitude")]
    longitude: &'a str,
    #[serde(rename = "Latitude")]
    latitude: &'a str,
    details: Vec<GuangdongDetail<'a>>,
}

#[derive(Serialize)]
struct GuangdongDetail<'a> {
    sampleid: &'a str,
    /// The value as a number where it is one, else as the text sent.
    doublevalue: serde_json::Value,
    unit: &'a str,
    stringvalue: &'static str,
    time: String,
}

/// Records in one request, at most.
pub const BATCH: usize = 100;

/// What the records of one request share: their item and device.
pub fn batch_key(r: &Record) -> (String, String) {
    (r.analyte.clone(), r.instrument.clone().unwrap_or_default())
}

/// The request of `records`, all of one item and device ([`batch_key`]), at most [`BATCH`].
pub fn request(
    url: &str,
    cfg: &PlatformConfig,
    codes: &Codes,
    records: &[&Record],
    offset: FixedOffset,
) -> Result<PlatformRequest, MissingCode> {
    let Some(first) = records.first() else {
        return Ok(PlatformRequest::post(
            url,
            "application/x-www-form-urlencoded",
            Vec::new(),
        ));
    };
    let itemid = codes.code("items", &first.analyte)?;
    let deviceid = codes.code("devices", first.instrument.as_deref().unwrap_or(""))?;
    let details = records
        .iter()
        .map(|r| GuangdongDetail {
            sampleid: r.sample_id.as_deref().unwrap_or(""),
            doublevalue: r
                .value
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or_else(|| r.value.clone().into(), serde_json::Value::Number),
            unit: &r.unit,
            stringvalue: if r.failed { "1" } else { "0" },
            time: r.local_time(offset),
        })
        .collect::<Vec<_>>();
    let result = GuangdongResult {
        username: &cfg.username,
        itemid,
        deviceid,
        totalnum: details.len(),
        longitude: "",
        latitude: "",
        details,
    };
    let json = serde_json::to_string(&result).unwrap_or_default();
    let body = serde_urlencoded::to_string([
        ("usr", cfg.username.as_str()),
        ("pwd", cfg.password.expose()),
        ("result", json.as_str()),
    ])
    .unwrap_or_default();
    Ok(PlatformRequest::post(
        url,
        "application/x-www-form-urlencoded",
        body.into_bytes(),
    ))
}

/// A device's status in the heartbeat: `1` on, `2` running (read lately), `0` off.
pub fn device_status(online: bool, running: bool) -> &'static str {
    match (online, running) {
        (true, true) => "2",
        (true, false) => "1",
        (false, _) => "0",
    }
}

/// The heartbeat of one device: a form with the account, its device number and status.
pub fn heartbeat_request(
    status_url: &str,
    cfg: &PlatformConfig,
    deviceid: &str,
    status: &str,
) -> PlatformRequest {
    let body = serde_urlencoded::to_string([
        ("usr", cfg.username.as_str()),
        ("pwd", cfg.password.expose()),
        ("deviceid", deviceid),
        ("status", status),
    ])
    .unwrap_or_default();
    PlatformRequest::post(
        status_url,
        "application/x-www-form-urlencoded",
        body.into_bytes(),
    )
}

#[derive(Deserialize)]
struct GuangdongAnswer {
    code: Option<i64>,
    msg: Option<String>,
}

/// `code` 0 → delivered; 1 (bad parameters) or 2 (JSON error) → dead with `msg`; 3 (system
/// error), anything else, HTTP 5xx → retried.
pub fn classify(status: u16, body: &str) -> PlatformOutcome {
    let text = format!("HTTP {status}: {}", super::keep(body));
    let answer = serde_json::from_str::<GuangdongAnswer>(body).ok();
    let msg = || {
        answer
            .as_ref()
            .and_then(|a| a.msg.clone())
            .unwrap_or_default()
    };
    match answer.as_ref().and_then(|a| a.code) {
        Some(0) if (200..300).contains(&status) => PlatformOutcome::Delivered(text),
        Some(c @ (1 | 2)) => PlatformOutcome::Dead(format!("data error {c}: {} ({text})", msg())),
        _ => PlatformOutcome::Retry(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_by_their_code() {
        assert!(matches!(
            classify(200, r#"{"code":0,"msg":"ok"}"#),
            PlatformOutcome::Delivered(_)
        ));
        for c in [1, 2] {
            let body = format!(r#"{{"code":{c},"msg":"参数错误"}}"#);
            assert!(matches!(classify(200, &body), PlatformOutcome::Dead(_)));
        }
        assert!(matches!(
            classify(200, r#"{"code":3}"#),
            PlatformOutcome::Retry(_)
        ));
        assert!(matches!(classify(503, ""), PlatformOutcome::Retry(_)));
        assert!(matches!(
            classify(500, r#"{"code":0}"#),
            PlatformOutcome::Retry(_)
        ));
    }
}
