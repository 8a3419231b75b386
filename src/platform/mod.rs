//! Regulator platforms in their own shapes (`docs/platforms.md`): one canonical record per
//! pass or fail reading ([`record::Record`]), the platform's codes ([`codes::Codes`]), and one
//! adapter per platform that turns a record into the platform's request and the platform's
//! answer into delivered, dead (a data error, with the platform's message) or retried.
//!
//! The uplink delivers a platform's outbox like signed events (one attempt per event, retried
//! with backoff); the request is made when it is sent, with the codes file as it is then, so a
//! missing code fixed in the file goes with the next `foodgate outbox retry`.

pub mod codes;
pub mod guangdong;
pub mod jiangsu;
pub mod record;
pub mod zhejiang;

pub use codes::{Codes, CodesError, MissingCode};
pub use record::{NotARecord, Record};

use crate::config::{Adapter, Upstream};
use chrono::FixedOffset;
use md5::{Digest, Md5};

/// One request to a platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformRequest {
    pub url: String,
    pub content_type: &'static str,
    /// Headers besides `Content-Type` and `Content-Length`.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// What a platform's answer means for the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformOutcome {
    Delivered(String),
    /// A data error: the platform will never take this record as it is.
    Dead(String),
    Retry(String),
    /// The login token is no longer good: log in again and send once more.
    Expired(String),
}

/// Why no request could be made: the event is dead at once, with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsendable {
    #[error(transparent)]
    Missing(#[from] MissingCode),
    #[error(transparent)]
    NotARecord(#[from] NotARecord),
    #[error("{0}")]
    Codes(String),
    #[error("upstream {0:?} is not a platform upstream")]
    NotAPlatform(String),
}

/// The login request of a platform that needs one (its token is kept by the uplink).
pub fn login_request(up: &Upstream) -> Option<PlatformRequest> {
    let cfg = up.platform.as_ref()?;
    match up.format {
        crate::config::Format::Platform(Adapter::Zhejiang) => Some(zhejiang::login_request(
            cfg.login_url.as_deref().unwrap_or_default(),
            cfg,
        )),
        _ => None,
    }
}

/// The token in a login answer, or why there is none (the attempt is retried).
pub fn login_token(adapter: Adapter, status: u16, body: &str) -> Result<String, String> {
    match adapter {
        Adapter::Zhejiang => zhejiang::login_token(status, body),
        Adapter::Jiangsu | Adapter::Guangdong => Err(format!("{} has no login", adapter.as_str())),
    }
}

/// The request of the event `body` for platform upstream `up`, its codes read now; `token`
/// from its login, for a platform that has one.
pub fn request(
    up: &Upstream,
    body: &[u8],
    offset: FixedOffset,
    token: Option<&str>,
) -> Result<PlatformRequest, Unsendable> {
    let (crate::config::Format::Platform(adapter), Some(cfg)) = (up.format, &up.platform) else {
        return Err(Unsendable::NotAPlatform(up.name.clone()));
    };
    let codes = Codes::load(&cfg.codes).map_err(|e| Unsendable::Codes(e.to_string()))?;
    let record = Record::from_body(body)?;
    match adapter {
        Adapter::Jiangsu => Ok(jiangsu::request(&up.url, cfg, &codes, &record, offset)?),
        Adapter::Guangdong => Ok(guangdong::request(&up.url, cfg, &codes, &record, offset)?),
        Adapter::Zhejiang => Ok(zhejiang::request(
            &up.url,
            token.unwrap_or_default(),
            &codes,
            &record,
            offset,
        )?),
    }
}

/// What the platform's HTTP answer means.
pub fn classify(adapter: Adapter, status: u16, body: &str) -> PlatformOutcome {
    match adapter {
        Adapter::Jiangsu => jiangsu::classify(status, body),
        Adapter::Zhejiang => zhejiang::classify(status, body),
        Adapter::Guangdong => guangdong::classify(status, body),
    }
}

/// Lowercase hex MD5, as the platforms' keys use it.
pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// `text` escaped for an XML element's content.
pub fn xml_text(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

/// Bytes of a platform's answer kept in a message.
const ANSWER_KEEP: usize = 1024;

/// At most the first [`ANSWER_KEEP`] bytes of an answer (on a character boundary).
fn keep(text: &str) -> &str {
    let mut end = text.len().min(ANSWER_KEEP);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
