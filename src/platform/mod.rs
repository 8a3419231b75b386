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
pub mod template;
pub mod wire;
pub mod zhejiang;

pub use codes::{Codes, CodesError, MissingCode};
pub use record::{NotARecord, Record};
pub use wire::{keep, md5_hex, xml_text, PlatformOutcome, PlatformRequest};

use crate::config::{Adapter, Format, Upstream};
use chrono::FixedOffset;

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
    #[error("{0}")]
    Template(String),
    #[error("a request needs at least one record")]
    NoRecord,
}

impl From<template::RenderError> for Unsendable {
    fn from(e: template::RenderError) -> Self {
        match e {
            template::RenderError::Missing(m) => Unsendable::Missing(m),
            template::RenderError::Template(t) => Unsendable::Template(format!("template: {t}")),
        }
    }
}

/// The login request of a platform that needs one (its token is kept by the uplink); an
/// error when a template's login cannot be rendered.
pub fn login_request(up: &Upstream) -> Option<Result<PlatformRequest, Unsendable>> {
    let cfg = up.platform.as_ref()?;
    let login_url = cfg.login_url.as_deref().unwrap_or_default();
    match up.format {
        Format::Platform(Adapter::Zhejiang) => Some(Ok(zhejiang::login_request(login_url, cfg))),
        Format::Platform(Adapter::Template) => cfg
            .template
            .as_ref()?
            .login_request(login_url, &cfg.username, cfg.password.expose())
            .map(|r| r.map_err(Unsendable::from)),
        _ => None,
    }
}

/// The token in a login answer, or why there is none (the attempt is retried).
pub fn login_token(up: &Upstream, status: u16, body: &str) -> Result<String, String> {
    let template = up.platform.as_ref().and_then(|p| p.template.as_deref());
    match (up.format, template) {
        (Format::Platform(Adapter::Zhejiang), _) => zhejiang::login_token(status, body),
        (Format::Platform(Adapter::Template), Some(t)) => t.login_token(status, body),
        _ => Err(format!("upstream {:?} has no login", up.name)),
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
    let codes = load_codes(up)?;
    let record = Record::from_body(body)?;
    request_many(up, &codes, &[&record], offset, token)
}

/// The codes file of platform upstream `up`, read now.
pub fn load_codes(up: &Upstream) -> Result<Codes, Unsendable> {
    let Some(cfg) = &up.platform else {
        return Err(Unsendable::NotAPlatform(up.name.clone()));
    };
    Codes::load(&cfg.codes).map_err(|e| Unsendable::Codes(e.to_string()))
}

/// How many records one request to `up` may carry (`docs/platforms.md`).
pub fn batch_size(up: &Upstream) -> usize {
    match (
        up.format,
        up.platform.as_ref().and_then(|p| p.template.as_deref()),
    ) {
        (Format::Platform(Adapter::Zhejiang), _) => zhejiang::BATCH,
        (Format::Platform(Adapter::Guangdong), _) => guangdong::BATCH,
        (Format::Platform(Adapter::Template), Some(t)) => t.batch,
        _ => 1,
    }
}

/// What the records of one request must share (guangdong: item and device; a template:
/// its `batch_by` fields); empty when any records may go together.
pub fn batch_key(up: &Upstream, r: &Record) -> Vec<String> {
    match (
        up.format,
        up.platform.as_ref().and_then(|p| p.template.as_deref()),
    ) {
        (Format::Platform(Adapter::Guangdong), _) => {
            let (item, device) = guangdong::batch_key(r);
            vec![item, device]
        }
        (Format::Platform(Adapter::Template), Some(t)) => t.batch_key(r),
        _ => Vec::new(),
    }
}

/// One request of `records` (at most [`batch_size`], all of one [`batch_key`]) to `up`.
pub fn request_many(
    up: &Upstream,
    codes: &Codes,
    records: &[&Record],
    offset: FixedOffset,
    token: Option<&str>,
) -> Result<PlatformRequest, Unsendable> {
    let (Format::Platform(adapter), Some(cfg)) = (up.format, &up.platform) else {
        return Err(Unsendable::NotAPlatform(up.name.clone()));
    };
    let one = || records.first().copied().ok_or(Unsendable::NoRecord);
    match (adapter, cfg.template.as_deref()) {
        (Adapter::Jiangsu, _) => Ok(jiangsu::request(&up.url, cfg, codes, one()?, offset)?),
        (Adapter::Guangdong, _) => Ok(guangdong::request(&up.url, cfg, codes, records, offset)?),
        (Adapter::Zhejiang, _) => Ok(zhejiang::request(
            &up.url,
            token.unwrap_or_default(),
            codes,
            records,
            offset,
        )?),
        (Adapter::Template, Some(t)) => {
            let credentials = template::Credentials {
                username: &cfg.username,
                password: cfg.password.expose(),
                bearer: up.token.as_ref().map(|t| t.expose()).unwrap_or_default(),
            };
            Ok(t.request(&up.url, credentials, codes, records, offset, token)?)
        }
        (Adapter::Template, None) => Err(Unsendable::NotAPlatform(up.name.clone())),
    }
}

/// What the platform's HTTP answer means.
pub fn classify(up: &Upstream, status: u16, body: &str) -> PlatformOutcome {
    let template = up.platform.as_ref().and_then(|p| p.template.as_deref());
    match (up.format, template) {
        (Format::Platform(Adapter::Jiangsu), _) => jiangsu::classify(status, body),
        (Format::Platform(Adapter::Zhejiang), _) => zhejiang::classify(status, body),
        (Format::Platform(Adapter::Guangdong), _) => guangdong::classify(status, body),
        (Format::Platform(Adapter::Template), Some(t)) => t.answer.classify(status, body),
        _ => PlatformOutcome::Dead(format!("upstream {:?} is not a platform upstream", up.name)),
    }
}
