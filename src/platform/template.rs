//! `format = "template"`: a platform described by configuration instead of code
//! (`docs/platforms/README.md`). The request body (and each extra header) is a MiniJinja
//! template over the canonical record; the authentication, the login and the answer rules
//! are data. Templates are compiled when the configuration is read, so a template that does
//! not compile stops the service with its file and line; they are rendered when an event is
//! sent, with the codes file as it is then.
//!
//! Nothing is escaped unless a template says so (`xml`, `form`, `json`): a request is not a
//! web page, and a byte-exact platform shape needs every byte under the template's control.

use super::codes::{Codes, MissingCode};
use super::record::Record;
use super::wire::{element_text, keep, md5_hex, xml_text, PlatformOutcome, PlatformRequest};
use chrono::FixedOffset;
use minijinja::value::{Object, Value};
use minijinja::{AutoEscape, Environment, ErrorKind, State, UndefinedBehavior};
use serde::Serialize;

/// Template names inside the environment.
const BODY: &str = "body";
const LOGIN: &str = "login";

/// A compiled template platform.
pub struct TemplateSpec {
    env: Environment<'static>,
    pub content_type: String,
    pub method: &'static str,
    pub auth: TemplateAuth,
    /// Extra header names, in order; each is template `header:<name>`.
    pub headers: Vec<String>,
    pub answer: AnswerRules,
    pub login: Option<LoginSpec>,
    /// Records per request, at most (1: one request per record).
    pub batch: usize,
    /// The record fields the records of one request share ([`BATCH_FIELDS`]).
    pub batch_by: Vec<String>,
}

/// The record fields `batch_by` may name.
pub const BATCH_FIELDS: [&str; 9] = [
    "market",
    "stall",
    "sample_id",
    "category",
    "analyte",
    "unit",
    "verdict",
    "instrument",
    "tester",
];

impl std::fmt::Debug for TemplateSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateSpec")
            .field("content_type", &self.content_type)
            .field("method", &self.method)
            .field("auth", &self.auth)
            .field("headers", &self.headers)
            .field("answer", &self.answer)
            .field("login", &self.login)
            .field("batch", &self.batch)
            .field("batch_by", &self.batch_by)
            .finish_non_exhaustive()
    }
}

/// How requests authenticate, besides what the body itself carries (an MD5 key over named
/// fields is written in the template with `md5()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateAuth {
    None,
    /// `Authorization: Basic` with `username` and `password`.
    Basic,
    /// `Authorization: Bearer` with the upstream's `token`.
    Bearer,
    /// A login whose token is kept until an answer says it expired.
    Login,
}

/// Where a kept login token goes in each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCarry {
    /// A query parameter of the URL.
    Query(String),
    /// A header, its value `prefix + token`.
    Header { name: String, prefix: String },
}

/// A form or JSON login (template `login`).
#[derive(Debug, Clone)]
pub struct LoginSpec {
    pub content_type: String,
    /// JSON pointer of the token in the answer.
    pub token: String,
    /// The answer must have one of `ok` at `json`, where set.
    pub check: Option<(String, Vec<String>)>,
    pub carry: TokenCarry,
}

/// Where a value is found in an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerAt {
    /// A JSON pointer (`/code`).
    Json(String),
    /// The first element of this local name (`return`), any namespace.
    Xml(String),
}

impl AnswerAt {
    fn find(&self, body: &str) -> Option<String> {
        match self {
            AnswerAt::Json(p) => json_text(body, p),
            AnswerAt::Xml(name) => element_text(body, name.as_bytes()),
        }
    }
}

/// A JSON answer's value at pointer `p` as text (numbers and booleans as written).
fn json_text(body: &str, p: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    match v.pointer(p)? {
        serde_json::Value::String(s) => Some(s.clone()),
        n @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => Some(n.to_string()),
        _ => None,
    }
}

/// What an answer means: the value at `at` in `ok` (with a 2xx status) delivers, in `dead`
/// is a data error, in `expired` (or a status in `expired_status`) asks for a new login, a
/// `fault` element or anything else is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerRules {
    pub at: AnswerAt,
    pub ok: Vec<String>,
    pub dead: Vec<String>,
    pub expired: Vec<String>,
    pub message: Option<AnswerAt>,
    pub fault: Option<String>,
    pub expired_status: Vec<u16>,
}

impl AnswerRules {
    pub fn classify(&self, status: u16, body: &str) -> PlatformOutcome {
        let text = format!("HTTP {status}: {}", keep(body));
        if let Some(fault) = self.fault.as_deref() {
            if let Some(f) = element_text(body, fault.as_bytes()) {
                return PlatformOutcome::Retry(format!("fault: {f} ({text})"));
            }
        }
        let value = self.at.find(body);
        let has = |list: &[String]| value.as_ref().is_some_and(|v| list.contains(v));
        if has(&self.ok) && (200..300).contains(&status) {
            PlatformOutcome::Delivered(text)
        } else if has(&self.dead) {
            let v = value.unwrap_or_default();
            let msg = self.message.as_ref().and_then(|m| m.find(body));
            PlatformOutcome::Dead(match msg.filter(|m| !m.is_empty()) {
                Some(m) => format!("data error {v}: {m} ({text})"),
                None => format!("data error {v}: {text}"),
            })
        } else if has(&self.expired) || self.expired_status.contains(&status) {
            PlatformOutcome::Expired(text)
        } else {
            PlatformOutcome::Retry(text)
        }
    }
}

/// What [`TemplateSpec::compile`] is made of (read from the config by `config`).
pub struct TemplateSource {
    /// The body template's file, for messages.
    pub file: String,
    pub body: String,
    pub content_type: String,
    pub method: &'static str,
    pub auth: TemplateAuth,
    /// Extra headers: name and value template.
    pub headers: Vec<(String, String)>,
    pub answer: AnswerRules,
    /// The login body template and the rest of the login.
    pub login: Option<(String, LoginSpec)>,
    pub batch: usize,
    pub batch_by: Vec<String>,
}

/// A template that does not compile: which one, and the engine's message with its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part}: {message}")]
pub struct TemplateCompileError {
    /// `template`, `login.body` or `headers.<name>`.
    pub part: String,
    pub message: String,
}

/// Why a request could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Missing(#[from] MissingCode),
    #[error("template: {0}")]
    Template(String),
}

impl TemplateSpec {
    pub fn compile(src: TemplateSource) -> Result<TemplateSpec, TemplateCompileError> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_filter("xml", |s: String| xml_text(&s).into_owned());
        env.add_filter("form", |s: String| {
            form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
        });
        env.add_filter("json", |v: Value| {
            serde_json::to_string(&v)
                .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()))
        });
        env.add_function("md5", |s: String| md5_hex(s.as_bytes()));
        env.add_function("code", code);
        let add = |env: &mut Environment<'static>, name: String, part: String, text: String| {
            env.add_template_owned(name, text)
                .map_err(|e| TemplateCompileError {
                    part,
                    message: describe(&e),
                })
        };
        add(
            &mut env,
            BODY.into(),
            format!("template ({})", src.file),
            src.body,
        )?;
        for (name, value) in &src.headers {
            add(
                &mut env,
                format!("header:{name}"),
                format!("headers.{name}"),
                value.clone(),
            )?;
        }
        let login = match src.login {
            Some((body, spec)) => {
                add(&mut env, LOGIN.into(), "login.body".into(), body)?;
                Some(spec)
            }
            None => None,
        };
        Ok(TemplateSpec {
            env,
            content_type: src.content_type,
            method: src.method,
            auth: src.auth,
            headers: src.headers.into_iter().map(|(n, _)| n).collect(),
            answer: src.answer,
            login,
            batch: src.batch.max(1),
            batch_by: src.batch_by,
        })
    }

    /// The values of `batch_by` for `r`: records of one request have the same.
    pub fn batch_key(&self, r: &Record) -> Vec<String> {
        let text = |o: &Option<String>| o.clone().unwrap_or_default();
        self.batch_by
            .iter()
            .map(|f| match f.as_str() {
                "market" => r.market.clone(),
                "stall" => text(&r.stall),
                "sample_id" => text(&r.sample_id),
                "category" => text(&r.category),
                "analyte" => r.analyte.clone(),
                "unit" => r.unit.clone(),
                "verdict" => if r.failed { "fail" } else { "pass" }.to_string(),
                "instrument" => text(&r.instrument),
                "tester" => text(&r.tester),
                _ => String::new(),
            })
            .collect()
    }

    /// The login request, for a template with `auth = "login"`.
    pub fn login_request(
        &self,
        login_url: &str,
        username: &str,
        password: &str,
    ) -> Option<Result<PlatformRequest, RenderError>> {
        let login = self.login.as_ref()?;
        let ctx = minijinja::context! { username => username, password => password };
        Some(
            self.render(LOGIN, ctx).map(|body| {
                PlatformRequest::post(login_url, &login.content_type, body.into_bytes())
            }),
        )
    }

    /// The token of a login answer, or why there is none.
    pub fn login_token(&self, status: u16, body: &str) -> Result<String, String> {
        let text = || format!("login: HTTP {status}: {}", keep(body));
        let Some(login) = &self.login else {
            return Err("this template has no login".into());
        };
        if !(200..300).contains(&status) {
            return Err(text());
        }
        if let Some((at, ok)) = &login.check {
            if !json_text(body, at).is_some_and(|v| ok.contains(&v)) {
                return Err(text());
            }
        }
        json_text(body, &login.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(text)
    }

    /// The request of `records` (at most [`TemplateSpec::batch`]; templates see the first
    /// as `record`, all as `records`) to `url`: `credentials` are the account and the bearer
    /// token, `token` the kept login token.
    pub fn request(
        &self,
        url: &str,
        credentials: Credentials<'_>,
        codes: &Codes,
        records: &[&Record],
        offset: FixedOffset,
        token: Option<&str>,
    ) -> Result<PlatformRequest, RenderError> {
        let views: Vec<RecordView<'_>> =
            records.iter().map(|r| RecordView::of(r, offset)).collect();
        let ctx = minijinja::context! {
            record => views.first().map(Value::from_serialize).unwrap_or_default(),
            records => Value::from_serialize(&views),
            username => credentials.username,
            password => credentials.password,
            token => token.unwrap_or_default(),
            url => url,
            codes => Value::from_object(CodeTables(codes.clone())),
        };
        let body = self.render(BODY, ctx.clone())?;
        let mut url = url.to_string();
        let mut headers = Vec::with_capacity(self.headers.len() + 1);
        match (&self.login, token) {
            (Some(l), Some(t)) if self.auth == TemplateAuth::Login => match &l.carry {
                TokenCarry::Query(name) => {
                    let sep = if url.contains('?') { '&' } else { '?' };
                    let pair =
                        serde_urlencoded::to_string([(name.as_str(), t)]).unwrap_or_default();
                    url = format!("{url}{sep}{pair}");
                }
                TokenCarry::Header { name, prefix } => {
                    headers.push((name.clone(), format!("{prefix}{t}")));
                }
            },
            _ => {}
        }
        match self.auth {
            TemplateAuth::Basic => {
                use base64::Engine;
                let pair = format!("{}:{}", credentials.username, credentials.password);
                let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
                headers.push(("Authorization".into(), format!("Basic {b64}")));
            }
            TemplateAuth::Bearer => headers.push((
                "Authorization".into(),
                format!("Bearer {}", credentials.bearer),
            )),
            TemplateAuth::None | TemplateAuth::Login => {}
        }
        for name in &self.headers {
            let value = self.render(&format!("header:{name}"), ctx.clone())?;
            headers.push((name.clone(), value));
        }
        Ok(PlatformRequest {
            method: self.method,
            url,
            content_type: self.content_type.clone(),
            headers,
            body: body.into_bytes(),
        })
    }

    fn render(&self, name: &str, ctx: Value) -> Result<String, RenderError> {
        let t = self
            .env
            .get_template(name)
            .map_err(|e| RenderError::Template(describe(&e)))?;
        t.render(ctx).map_err(|e| {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if let Some(m) = s.downcast_ref::<MissingCode>() {
                    return RenderError::Missing(m.clone());
                }
                source = s.source();
            }
            RenderError::Template(describe(&e))
        })
    }
}

/// The account a request may carry.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a str,
    /// The upstream's `token`, for `auth = "bearer"`.
    pub bearer: &'a str,
}

/// An engine error as one line: its line in the template, what is wrong.
fn describe(e: &minijinja::Error) -> String {
    let what = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    match e.line() {
        Some(line) => format!("line {line}: {what}"),
        None => what,
    }
}

/// The codes file, for `code()`.
#[derive(Debug)]
struct CodeTables(Codes);

impl Object for CodeTables {}

/// `code(table, key)`: the platform's code of `key` in `table` (`items`, `foods`, `stalls`,
/// `markets`, `devices`); a missing one fails the request with the key named.
fn code(state: &State, table: String, key: String) -> Result<String, minijinja::Error> {
    let table: &'static str = match table.as_str() {
        "items" => "items",
        "foods" => "foods",
        "stalls" => "stalls",
        "markets" => "markets",
        "devices" => "devices",
        other => {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "no codes table {other:?}: expected items, foods, stalls, markets or devices"
                ),
            ))
        }
    };
    let codes = state.lookup("codes");
    let Some(CodeTables(codes)) = codes.as_ref().and_then(|c| c.downcast_object_ref()) else {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            "no codes in this template's context",
        ));
    };
    match codes.code(table, &key) {
        Ok(c) => Ok(c.to_string()),
        Err(m) => {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, m.to_string()).with_source(m))
        }
    }
}

/// The record as templates see it (`docs/platforms/README.md`): text where a platform wants
/// text, empty where the reading has no value.
#[derive(Debug, Serialize)]
struct RecordView<'a> {
    market: &'a str,
    stall: &'a str,
    /// `"<market>/<stall>"`, the key of the `stalls` table.
    stall_key: String,
    sample_id: &'a str,
    sample_name: &'a str,
    category: &'a str,
    analyte: &'a str,
    /// The value as the source sent it.
    value: &'a str,
    /// The value as a number where it is one, else as text.
    number: serde_json::Value,
    unit: &'a str,
    failed: bool,
    verdict: &'static str,
    /// The limit's source (`GB 2763-2021`).
    standard: &'a str,
    /// The limit and its unit, no space (`0.2g/kg`).
    limit: String,
    /// Local `yyyy-MM-dd HH:mm:ss`.
    time: String,
    /// RFC 3339, the reading's own offset.
    measured_at: String,
    instrument: &'a str,
    tester: &'a str,
    /// An enzyme reading's inhibition rate, else empty.
    inhibition: String,
}

impl<'a> RecordView<'a> {
    fn of(r: &'a Record, offset: FixedOffset) -> Self {
        let text = |o: &'a Option<String>| o.as_deref().unwrap_or("");
        let number = r
            .value
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| r.value.clone().into(), serde_json::Value::Number);
        RecordView {
            market: &r.market,
            stall: text(&r.stall),
            stall_key: format!("{}/{}", r.market, text(&r.stall)),
            sample_id: text(&r.sample_id),
            sample_name: text(&r.sample_name),
            category: text(&r.category),
            analyte: &r.analyte,
            value: &r.value,
            number,
            unit: &r.unit,
            failed: r.failed,
            verdict: if r.failed { "fail" } else { "pass" },
            standard: r
                .limit
                .as_ref()
                .and_then(|l| l.source.as_deref())
                .unwrap_or(""),
            limit: r.limit_text(),
            time: r.local_time(offset),
            measured_at: r.measured_at.to_rfc3339(),
            instrument: text(&r.instrument),
            tester: text(&r.tester),
            inhibition: r.inhibition.map(|x| x.to_string()).unwrap_or_default(),
        }
    }
}
