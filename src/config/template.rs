//! The keys of a `format = "template"` upstream (`docs/platforms/README.md`): the body
//! template file, its content type and method, the authentication, the login, extra headers
//! and the answer rules. Everything is checked and the templates compiled here, so a mistake
//! stops the service with the file and the key.

use super::error::{ConfigError, Ctx};
use crate::platform::template::{
    AnswerAt, AnswerRules, LoginSpec, TemplateAuth, TemplateSource, TemplateSpec, TokenCarry,
    BATCH_FIELDS,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Largest template file read.
const MAX_TEMPLATE: u64 = 1024 * 1024;

/// A value in an answer rule: written as a string or a number (`ok = [0]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RuleValue {
    Text(String),
    Int(i64),
}

impl RuleValue {
    fn text(&self) -> String {
        match self {
            RuleValue::Text(s) => s.clone(),
            RuleValue::Int(i) => i.to_string(),
        }
    }
}

fn texts(v: &Option<Vec<RuleValue>>) -> Vec<String> {
    v.iter().flatten().map(RuleValue::text).collect()
}

/// `[upstream.answer]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnswer {
    /// A JSON pointer to the answer's code.
    pub json: Option<String>,
    /// Or the XML element holding it.
    pub xml: Option<String>,
    pub ok: Option<Vec<RuleValue>>,
    pub dead: Option<Vec<RuleValue>>,
    pub expired: Option<Vec<RuleValue>>,
    /// Where the platform's message is (a pointer or an element, as the code).
    pub message: Option<String>,
    /// An XML element whose presence means a fault (retried).
    pub fault: Option<String>,
    pub expired_status: Option<Vec<u16>>,
}

/// `[upstream.login]` (with `auth = "login"` and `login_url`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogin {
    /// The login body, a template over `username` and `password`.
    pub body: String,
    pub content_type: Option<String>,
    /// JSON pointer of the token in the answer.
    pub token: String,
    /// JSON pointer of the answer's code, checked against `ok`.
    pub json: Option<String>,
    pub ok: Option<Vec<RuleValue>>,
    pub token_query: Option<String>,
    pub token_header: Option<String>,
    pub token_prefix: Option<String>,
}

/// The template keys of a `[[upstream]]`.
#[derive(Debug, Default, Deserialize)]
pub struct RawTemplateKeys {
    pub template: Option<PathBuf>,
    pub content_type: Option<String>,
    pub method: Option<String>,
    pub auth: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub login: Option<RawLogin>,
    pub answer: Option<RawAnswer>,
    pub batch: Option<usize>,
    pub batch_by: Option<Vec<String>>,
}

/// Most records one template request may carry.
const MAX_BATCH: usize = 1000;

impl RawTemplateKeys {
    /// The first key given, for an upstream that is not a template.
    pub fn given(&self) -> Option<&'static str> {
        [
            ("template", self.template.is_some()),
            ("content_type", self.content_type.is_some()),
            ("method", self.method.is_some()),
            ("auth", self.auth.is_some()),
            ("headers", self.headers.is_some()),
            ("login", self.login.is_some()),
            ("answer", self.answer.is_some()),
            ("batch", self.batch.is_some()),
            ("batch_by", self.batch_by.is_some()),
        ]
        .into_iter()
        .find_map(|(k, given)| given.then_some(k))
    }
}

/// Check the template keys and compile the templates; `has_login_url` says whether the
/// upstream names a `login_url`, `has_token` a `token`.
pub(super) fn template_spec(
    cx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &RawTemplateKeys,
    has_login_url: bool,
    has_token: bool,
) -> Result<Arc<TemplateSpec>, ConfigError> {
    let Some(path) = &raw.template else {
        return Err(cx.err(
            key("template"),
            "required for a template upstream: the request body's template file",
        ));
    };
    let file = path.display().to_string();
    let body = read_template(path).map_err(|m| cx.err(key("template"), format!("{file}: {m}")))?;
    let content_type = match raw.content_type.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() && c.parse::<hyper::header::HeaderValue>().is_ok() => {
            c.to_string()
        }
        Some(c) => {
            return Err(cx.err(
                key("content_type"),
                format!("expected a media type like \"application/xml; charset=utf-8\", got {c:?}"),
            ))
        }
        None => {
            return Err(cx.err(
                key("content_type"),
                "required for a template upstream (the request's Content-Type)",
            ))
        }
    };
    let method = match raw.method.as_deref() {
        None | Some("POST") => "POST",
        Some("PUT") => "PUT",
        Some(m) => {
            return Err(cx.err(
                key("method"),
                format!("expected \"POST\" or \"PUT\", got {m:?}"),
            ))
        }
    };
    let auth = match raw.auth.as_deref() {
        None | Some("none") => TemplateAuth::None,
        Some("basic") => TemplateAuth::Basic,
        Some("bearer") => TemplateAuth::Bearer,
        Some("login") => TemplateAuth::Login,
        Some(a) => {
            return Err(cx.err(
                key("auth"),
                format!("expected \"none\", \"basic\", \"bearer\" or \"login\", got {a:?}"),
            ))
        }
    };
    if auth == TemplateAuth::Bearer && !has_token {
        return Err(cx.err(key("token"), "required with auth = \"bearer\""));
    }
    let login = match (auth, &raw.login) {
        (TemplateAuth::Login, Some(l)) => {
            if !has_login_url {
                return Err(cx.err(key("login_url"), "required with auth = \"login\""));
            }
            Some(login_spec(cx, key, l)?)
        }
        (TemplateAuth::Login, None) => {
            return Err(cx.err(key("login"), "required with auth = \"login\""))
        }
        (_, Some(_)) => return Err(cx.err(key("login"), "only taken with auth = \"login\"")),
        (_, None) => {
            if has_login_url {
                return Err(cx.err(key("login_url"), "only taken with auth = \"login\""));
            }
            None
        }
    };
    let mut headers = Vec::new();
    for (name, value) in raw.headers.iter().flatten() {
        if name.parse::<hyper::header::HeaderName>().is_err() {
            return Err(cx.err(key(&format!("headers.{name}")), "not a valid header name"));
        }
        headers.push((name.clone(), value.clone()));
    }
    let Some(answer) = &raw.answer else {
        return Err(cx.err(
            key("answer"),
            "required for a template upstream: how to read the platform's answer",
        ));
    };
    let answer = answer_rules(cx, &|k| key(&format!("answer.{k}")), answer)?;
    let batch = raw.batch.unwrap_or(1);
    if batch == 0 || batch > MAX_BATCH {
        return Err(cx.err(
            key("batch"),
            format!("expected records per request between 1 and {MAX_BATCH}, got {batch}"),
        ));
    }
    let batch_by = raw.batch_by.clone().unwrap_or_default();
    if let Some(f) = batch_by
        .iter()
        .find(|f| !BATCH_FIELDS.contains(&f.as_str()))
    {
        return Err(cx.err(
            key("batch_by"),
            format!(
                "{f:?} is not a record field: expected some of {}",
                BATCH_FIELDS.join(", ")
            ),
        ));
    }
    TemplateSpec::compile(TemplateSource {
        file: file.clone(),
        body,
        content_type,
        method,
        auth,
        headers,
        answer,
        login,
        batch,
        batch_by,
    })
    .map(Arc::new)
    .map_err(|e| {
        let k = if e.part.starts_with("template") {
            "template".to_string()
        } else {
            e.part.clone()
        };
        cx.err(key(&k), e.to_string())
    })
}

fn read_template(path: &std::path::Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.len() > MAX_TEMPLATE {
        return Err(format!("larger than {MAX_TEMPLATE} bytes"));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))
}

fn login_spec(
    cx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    l: &RawLogin,
) -> Result<(String, LoginSpec), ConfigError> {
    let pointer = |k: &str, p: &str| -> Result<String, ConfigError> {
        if p.is_empty() || p.starts_with('/') {
            Ok(p.to_string())
        } else {
            Err(cx.err(
                key(&format!("login.{k}")),
                format!("expected a JSON pointer like \"/token\", got {p:?}"),
            ))
        }
    };
    let token = pointer("token", &l.token)?;
    let check = match &l.json {
        Some(p) => Some((pointer("json", p)?, texts(&l.ok))),
        None if l.ok.is_some() => {
            return Err(cx.err(key("login.json"), "required with login.ok"));
        }
        None => None,
    };
    let carry = match (&l.token_query, &l.token_header) {
        (Some(q), None) if !q.is_empty() => TokenCarry::Query(q.clone()),
        (None, Some(h)) if h.parse::<hyper::header::HeaderName>().is_ok() => TokenCarry::Header {
            name: h.clone(),
            prefix: l.token_prefix.clone().unwrap_or_default(),
        },
        _ => return Err(cx.err(
            key("login.token_query"),
            "expected one of token_query (a query parameter name) or token_header (a header name)",
        )),
    };
    Ok((
        l.body.clone(),
        LoginSpec {
            content_type: l
                .content_type
                .clone()
                .unwrap_or_else(|| "application/x-www-form-urlencoded".into()),
            token,
            check,
            carry,
        },
    ))
}

fn answer_rules(
    cx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    a: &RawAnswer,
) -> Result<AnswerRules, ConfigError> {
    let (at, message) = match (&a.json, &a.xml) {
        (Some(p), None) if p.starts_with('/') => (
            AnswerAt::Json(p.clone()),
            a.message.clone().map(AnswerAt::Json),
        ),
        (Some(p), None) => {
            return Err(cx.err(
                key("json"),
                format!("expected a JSON pointer like \"/code\", got {p:?}"),
            ))
        }
        (None, Some(e)) if !e.is_empty() => (
            AnswerAt::Xml(e.clone()),
            a.message.clone().map(AnswerAt::Xml),
        ),
        _ => {
            return Err(cx.err(
                key("json"),
                "expected one of json (a JSON pointer) or xml (an element name): where the answer's code is",
            ))
        }
    };
    let ok = texts(&a.ok);
    if ok.is_empty() {
        return Err(cx.err(key("ok"), "expected the code values that mean delivered"));
    }
    Ok(AnswerRules {
        at,
        ok,
        dead: texts(&a.dead),
        expired: texts(&a.expired),
        message,
        fault: a.fault.clone(),
        expired_status: a.expired_status.clone().unwrap_or_default(),
    })
}
