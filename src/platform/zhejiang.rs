//! `zhejiang`: 浙江 农贸市场快检 (`api/farm/detect/updata`, XML), after a form login whose
//! token is kept until an answer says it expired; up to [`BATCH`] records per upload
//! (`docs/platforms.md`).

use super::codes::{Codes, MissingCode};
use super::record::Record;
use super::{xml_text, PlatformOutcome, PlatformRequest};
use crate::config::PlatformConfig;
use chrono::FixedOffset;
use serde::Deserialize;

/// The login: a form with the account.
pub fn login_request(login_url: &str, cfg: &PlatformConfig) -> PlatformRequest {
    let body = serde_urlencoded::to_string([
        ("username", cfg.username.as_str()),
        ("password", cfg.password.expose()),
    ])
    .unwrap_or_default();
    PlatformRequest::post(
        login_url,
        "application/x-www-form-urlencoded",
        body.into_bytes(),
    )
}

#[derive(Deserialize)]
struct ZhejiangAnswer {
    code: Option<i64>,
    token: Option<String>,
    msg: Option<String>,
}

/// The token of a login answer `{"code":0,"token":"…"}`, or why there is none.
pub fn login_token(status: u16, body: &str) -> Result<String, String> {
    let text = || format!("login: HTTP {status}: {}", super::keep(body));
    match serde_json::from_str::<ZhejiangAnswer>(body) {
        Ok(ZhejiangAnswer {
            code: Some(0),
            token: Some(t),
            ..
        }) if (200..300).contains(&status) && !t.is_empty() => Ok(t),
        _ => Err(text()),
    }
}

/// Records in one upload, at most (`docs/platforms.md`).
pub const BATCH: usize = 100;

/// One `<detectionRecord>` with its `<detectItem>`.
fn record_xml(codes: &Codes, r: &Record, offset: FixedOffset) -> Result<String, MissingCode> {
    let stall = format!("{}/{}", r.market, r.stall.as_deref().unwrap_or(""));
    let time = r.local_time(offset);
    let record: [(&str, String); 9] = [
        ("entitycode", codes.code("markets", &r.market)?.to_string()),
        ("booth", codes.code("stalls", &stall)?.to_string()),
        ("sampletime", time.clone()),
        ("detectiontime", time),
        (
            "deviceno",
            codes
                .code("devices", r.instrument.as_deref().unwrap_or(""))?
                .to_string(),
        ),
        ("channelno", String::new()),
        (
            "prodcode",
            codes
                .code("foods", r.category.as_deref().unwrap_or(""))?
                .to_string(),
        ),
        ("prodamount", String::new()),
        ("useunit", String::new()),
    ];
    let item: [(&str, String); 4] = [
        ("itemcode", codes.code("items", &r.analyte)?.to_string()),
        ("result", if r.failed { "1" } else { "0" }.to_string()),
        (
            "extradata",
            r.inhibition.map(|x| x.to_string()).unwrap_or_default(),
        ),
        ("data", r.value.clone()),
    ];
    let mut xml = String::with_capacity(768);
    xml.push_str("<detectionRecord>");
    for (name, value) in &record {
        xml.push_str(&format!("<{name}>{}</{name}>", xml_text(value)));
    }
    xml.push_str("<detectItem>");
    for (name, value) in &item {
        xml.push_str(&format!("<{name}>{}</{name}>", xml_text(value)));
    }
    xml.push_str("</detectItem></detectionRecord>");
    Ok(xml)
}

/// The upload of `records` (at most [`BATCH`]) in one `<detectionData>`, with `token`.
pub fn request(
    url: &str,
    token: &str,
    codes: &Codes,
    records: &[&Record],
    offset: FixedOffset,
) -> Result<PlatformRequest, MissingCode> {
    let mut body = String::with_capacity(64 + 768 * records.len());
    body.push_str("<detectionData version=\"1.0\"><detectionRecords>");
    for r in records {
        body.push_str(&record_xml(codes, r, offset)?);
    }
    body.push_str("</detectionRecords></detectionData>");
    let sep = if url.contains('?') { '&' } else { '?' };
    let token = serde_urlencoded::to_string([("token", token)]).unwrap_or_default();
    Ok(PlatformRequest::post(
        format!("{url}{sep}{token}"),
        "application/xml; charset=utf-8",
        body.into_bytes(),
    ))
}

/// `code` 0 → delivered; 1 → a data error (dead, with `msg`); 401 → the token expired;
/// anything else → retried.
pub fn classify(status: u16, body: &str) -> PlatformOutcome {
    let text = format!("HTTP {status}: {}", super::keep(body));
    let answer = serde_json::from_str::<ZhejiangAnswer>(body).ok();
    match answer.as_ref().and_then(|a| a.code) {
        Some(0) if (200..300).contains(&status) => PlatformOutcome::Delivered(text),
        Some(1) => PlatformOutcome::Dead(format!(
            "data error: {} ({text})",
            answer.and_then(|a| a.msg).unwrap_or_default()
        )),
        Some(401) => PlatformOutcome::Expired(text),
        _ if status == 401 => PlatformOutcome::Expired(text),
        _ => PlatformOutcome::Retry(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_logins_are_read_as_the_platform_says() {
        assert!(matches!(
            classify(200, r#"{"code":0}"#),
            PlatformOutcome::Delivered(_)
        ));
        match classify(200, r#"{"code":1,"msg":"itemcode 不存在"}"#) {
            PlatformOutcome::Dead(t) => assert!(t.contains("itemcode 不存在"), "{t}"),
            o => panic!("{o:?}"),
        }
        assert!(matches!(
            classify(200, r#"{"code":401}"#),
            PlatformOutcome::Expired(_)
        ));
        assert!(matches!(
            classify(200, r#"{"code":2}"#),
            PlatformOutcome::Retry(_)
        ));
        assert!(matches!(
            classify(502, "bad gateway"),
            PlatformOutcome::Retry(_)
        ));
        assert_eq!(
            login_token(200, r#"{"code":0,"token":"t-1"}"#),
            Ok("t-1".into())
        );
        assert!(login_token(200, r#"{"code":3,"msg":"wrong password"}"#).is_err());
        assert!(login_token(500, r#"{"code":0,"token":"t"}"#).is_err());
    }
}
