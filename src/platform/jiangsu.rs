//! `jiangsu`: 江苏省食品安全快速检测采集管理系统, SOAP 1.1, one record per call
//! (`docs/platforms.md`).

use super::codes::{Codes, MissingCode};
use super::record::Record;
use super::wire::element_text;
use super::{md5_hex, xml_text, PlatformOutcome, PlatformRequest};
use crate::config::PlatformConfig;
use chrono::FixedOffset;

/// The operation's namespace (**contract** of `docs/platforms.md`).
pub const NAMESPACE: &str = "http://service.ws.detection/";

/// `key` = md5hex(username + "#" + md5hex(password)).
pub fn key(cfg: &PlatformConfig) -> String {
    md5_hex(
        format!(
            "{}#{}",
            cfg.username,
            md5_hex(cfg.password.expose().as_bytes())
        )
        .as_bytes(),
    )
}

/// The SOAP request of one record.
pub fn request(
    url: &str,
    cfg: &PlatformConfig,
    codes: &Codes,
    r: &Record,
    offset: FixedOffset,
) -> Result<PlatformRequest, MissingCode> {
    let stall = format!("{}/{}", r.market, r.stall.as_deref().unwrap_or(""));
    let params: [(&str, String); 15] = [
        ("key", key(cfg)),
        ("testItemId", codes.code("items", &r.analyte)?.to_string()),
        ("sampleName", r.sample_name.clone().unwrap_or_default()),
        ("testData", r.value.clone()),
        ("testUnit", r.unit.clone()),
        (
            "result",
            if r.failed { "不合格" } else { "合格" }.to_string(),
        ),
        (
            "standard",
            r.limit
                .as_ref()
                .and_then(|l| l.source.clone())
                .unwrap_or_default(),
        ),
        ("eqModel", String::new()),
        ("createDate", r.local_time(offset)),
        (
            "eqNum",
            codes
                .code("devices", r.instrument.as_deref().unwrap_or(""))?
                .to_string(),
        ),
        (
            "foodTypeId",
            codes
                .code("foods", r.category.as_deref().unwrap_or(""))?
                .to_string(),
        ),
        (
            "enterpriseId",
            codes.code("markets", &r.market)?.to_string(),
        ),
        ("stallNum", codes.code("stalls", &stall)?.to_string()),
        ("sampleNum", r.sample_id.clone().unwrap_or_default()),
        ("standardData", r.limit_text()),
    ];
    let mut body = String::with_capacity(1024);
    body.push_str(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>",
    );
    body.push_str(&format!(
        "<ns:uploadDetectionData xmlns:ns=\"{NAMESPACE}\">"
    ));
    for (name, value) in &params {
        body.push_str(&format!("<{name}>{}</{name}>", xml_text(value)));
    }
    body.push_str("</ns:uploadDetectionData></soap:Body></soap:Envelope>");
    let mut req = PlatformRequest::post(url, "text/xml; charset=utf-8", body.into_bytes());
    req.headers.push(("SOAPAction".into(), "\"\"".into()));
    Ok(req)
}

/// `return` 0 → delivered; 1 → a data error (dead, with the answer); a SOAP fault, any other
/// value, HTTP 5xx or no envelope → retried.
pub fn classify(status: u16, body: &str) -> PlatformOutcome {
    let text = format!("HTTP {status}: {}", super::keep(body));
    if let Some(fault) = element_text(body, b"faultstring") {
        return PlatformOutcome::Retry(format!("SOAP fault: {fault} ({text})"));
    }
    match element_text(body, b"return").as_deref() {
        Some("0") if (200..300).contains(&status) => PlatformOutcome::Delivered(text),
        Some("1") => PlatformOutcome::Dead(format!("data error (return 1): {text}")),
        _ => PlatformOutcome::Retry(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(ret: &str) -> String {
        format!(
            "<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"><S:Body>\
             <ns2:uploadDetectionDataResponse xmlns:ns2=\"{NAMESPACE}\"><return>{ret}</return>\
             </ns2:uploadDetectionDataResponse></S:Body></S:Envelope>"
        )
    }

    #[test]
    fn answers_are_delivered_dead_or_retried_as_the_platform_says() {
        assert!(matches!(
            classify(200, &answer("0")),
            PlatformOutcome::Delivered(_)
        ));
        assert!(matches!(
            classify(200, &answer("1")),
            PlatformOutcome::Dead(_)
        ));
        assert!(matches!(
            classify(200, &answer("2")),
            PlatformOutcome::Retry(_)
        ));
        assert!(matches!(
            classify(200, "<html>proxy</html>"),
            PlatformOutcome::Retry(_)
        ));
        assert!(matches!(classify(503, "busy"), PlatformOutcome::Retry(_)));
        let fault = "<S:Envelope xmlns:S=\"x\"><S:Body><S:Fault><faultcode>S:Server</faultcode>\
                     <faultstring>db down</faultstring></S:Fault></S:Body></S:Envelope>";
        match classify(500, fault) {
            PlatformOutcome::Retry(t) => assert!(t.contains("db down"), "{t}"),
            o => panic!("{o:?}"),
        }
        // A success body behind an error status is not a success.
        assert!(matches!(
            classify(500, &answer("0")),
            PlatformOutcome::Retry(_)
        ));
    }
}
