//! `[[upstream]]`: where foodgate sends what (`docs/reference.md`, "Configuration"): signed
//! events, upload rows to a hub, or a regulator platform's own requests
//! (`docs/platforms.md`).

use super::error::{ConfigError, Ctx};
use super::template::RawTemplateKeys;
use serde::Deserialize;
use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub name: String,
    pub url: String,
    pub send: Option<String>,
    pub format: Option<String>,
    /// The HMAC key of signed events (`events`, `results`); platforms have none.
    pub secret: Option<String>,
    pub token: Option<String>,
    pub timeout_s: Option<u64>,
    /// First retry delay (default 1000 ms); operations and tests shorten it.
    pub retry_initial_ms: Option<u64>,
    /// Longest retry delay (default 300000 ms = 5 min).
    pub retry_max_ms: Option<u64>,
    /// A platform's account.
    pub username: Option<String>,
    pub password: Option<String>,
    /// The platform's codes for foodgate's values (TOML, see `docs/platforms.md`).
    pub codes: Option<PathBuf>,
    /// A platform's login endpoint (`zhejiang`, a template with `auth = "login"`).
    pub login_url: Option<String>,
    /// The device heartbeat of `guangdong`: where, and how often (default 1800 s).
    pub status_url: Option<String>,
    pub heartbeat_s: Option<u64>,
    /// The keys of `format = "template"` (see `template.rs`).
    pub template: Option<PathBuf>,
    pub content_type: Option<String>,
    pub method: Option<String>,
    pub auth: Option<String>,
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    pub login: Option<super::template::RawLogin>,
    pub answer: Option<super::template::RawAnswer>,
    /// Records per request of a template platform, and the fields they share.
    pub batch: Option<usize>,
    pub batch_by: Option<Vec<String>>,
}

/// Which readings an upstream receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendMode {
    /// Failures and hold events only.
    Failures,
    /// Also a `result.recorded` event for every reading.
    All,
}

/// A regulator platform foodgate speaks natively (`../shared/platforms.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// 江苏省食品安全快速检测采集管理系统: SOAP 1.1, one record per call.
    Jiangsu,
    /// 浙江 农贸市场快检: a form login, then XML records with its token.
    Zhejiang,
    /// 广东 智慧食药监: a form with the record as a JSON text.
    Guangdong,
    /// Any other platform: a request template and rules in the config.
    Template,
}

impl Adapter {
    pub const ALL: [Adapter; 4] = [
        Adapter::Jiangsu,
        Adapter::Zhejiang,
        Adapter::Guangdong,
        Adapter::Template,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Adapter::Jiangsu => "jiangsu",
            Adapter::Zhejiang => "zhejiang",
            Adapter::Guangdong => "guangdong",
            Adapter::Template => "template",
        }
    }
}

/// What an upstream is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The event bodies of `docs/reference.md`, "Upstream events".
    Events,
    /// Upload rows to a city hub's `/api/v1/results`.
    Results,
    /// One platform record per pass or fail reading, in the platform's own request.
    Platform(Adapter),
}

/// A platform upstream's account and codes.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub username: String,
    pub password: Secret,
    /// Read when the service starts (so a missing file stops it) and again on
    /// `foodgate outbox retry`.
    pub codes: PathBuf,
    /// Where to log in (`zhejiang`, a template with a login).
    pub login_url: Option<String>,
    /// `guangdong`'s device heartbeat: every instrument's status to this URL this often.
    pub heartbeat: Option<(String, std::time::Duration)>,
    /// The compiled request of `format = "template"`.
    pub template: Option<std::sync::Arc<crate::platform::template::TemplateSpec>>,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    /// Plain `http://` only: TLS belongs to a proxy (see README).
    pub url: String,
    pub send: SendMode,
    pub format: Format,
    /// Empty for a platform (its requests are not signed).
    pub secret: Secret,
    pub token: Option<Secret>,
    pub timeout: std::time::Duration,
    pub retry_initial: std::time::Duration,
    pub retry_max: std::time::Duration,
    /// A platform's account and codes (`Format::Platform` only).
    pub platform: Option<PlatformConfig>,
}

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

fn format_of(text: Option<&str>) -> Option<Format> {
    match text {
        None | Some("events") => Some(Format::Events),
        Some("results") => Some(Format::Results),
        Some(t) => Adapter::ALL
            .into_iter()
            .find(|a| a.as_str() == t)
            .map(Format::Platform),
    }
}

/// Check every `[[upstream]]`; the first problem names its key.
pub(super) fn validate_upstreams(
    cx: &Ctx<'_>,
    raws: Vec<RawUpstream>,
) -> Result<Vec<Upstream>, ConfigError> {
    let mut names = HashSet::new();
    let mut upstreams = Vec::with_capacity(raws.len());
    for (i, mut raw) in raws.into_iter().enumerate() {
        let key = |k: &str| format!("upstream[{i}].{k}");
        if raw.name.trim().is_empty() {
            return Err(cx.err(key("name"), "expected a non-empty name"));
        }
        if !names.insert(raw.name.clone()) {
            return Err(cx.err(
                key("name"),
                format!(
                    "duplicate upstream name {:?}: names must be unique",
                    raw.name
                ),
            ));
        }
        if raw.url.starts_with("https://") {
            return Err(cx.err(
                key("url"),
                "https is not supported yet: expected an http:// URL (terminate TLS in a local proxy)",
            ));
        }
        let uri_ok = raw
            .url
            .parse::<hyper::Uri>()
            .map(|u| u.scheme_str() == Some("http") && u.host().is_some())
            .unwrap_or(false);
        if !uri_ok {
            return Err(cx.err(
                key("url"),
                format!(
                    "expected a full endpoint URL like \"http://127.0.0.1:9000/events\", got {:?}",
                    raw.url
                ),
            ));
        }
        let send = match raw.send.as_deref() {
            None | Some("failures") => SendMode::Failures,
            Some("all") => SendMode::All,
            Some(other) => {
                return Err(cx.err(
                    key("send"),
                    format!("expected \"failures\" or \"all\", got {other:?}"),
                ))
            }
        };
        let Some(format) = format_of(raw.format.as_deref()) else {
            let platforms: Vec<String> = Adapter::ALL
                .iter()
                .map(|a| format!("{:?}", a.as_str()))
                .collect();
            return Err(cx.err(
                key("format"),
                format!(
                    "expected \"events\", \"results\" or a platform ({}), got {:?}",
                    platforms.join(", "),
                    raw.format.as_deref().unwrap_or_default()
                ),
            ));
        };
        let tkeys = RawTemplateKeys {
            template: raw.template.take(),
            content_type: raw.content_type.take(),
            method: raw.method.take(),
            auth: raw.auth.take(),
            headers: raw.headers.take(),
            login: raw.login.take(),
            answer: raw.answer.take(),
            batch: raw.batch.take(),
            batch_by: raw.batch_by.take(),
        };
        if let (false, Some(k)) = (format == Format::Platform(Adapter::Template), tkeys.given()) {
            return Err(cx.err(key(k), "only a template upstream takes it"));
        }
        let platform = match format {
            Format::Platform(adapter) => Some(platform_config(cx, &key, adapter, &raw, &tkeys)?),
            Format::Events | Format::Results => {
                for k in [
                    "username",
                    "password",
                    "codes",
                    "login_url",
                    "status_url",
                    "heartbeat_s",
                ] {
                    let given = match k {
                        "username" => raw.username.is_some(),
                        "password" => raw.password.is_some(),
                        "login_url" => raw.login_url.is_some(),
                        "status_url" => raw.status_url.is_some(),
                        "heartbeat_s" => raw.heartbeat_s.is_some(),
                        _ => raw.codes.is_some(),
                    };
                    if given {
                        return Err(cx.err(key(k), "only a platform upstream takes it"));
                    }
                }
                None
            }
        };
        let secret = match (&format, raw.secret) {
            (Format::Platform(a), Some(_)) => {
                return Err(cx.err(
                    key("secret"),
                    format!(
                        "a {} upstream is not signed: it authenticates with username and password",
                        a.as_str()
                    ),
                ))
            }
            (Format::Platform(_), None) => String::new(),
            (_, Some(s)) if !s.is_empty() => s,
            (_, _) => return Err(cx.err(key("secret"), "expected a non-empty HMAC key")),
        };
        let timeout_s = raw.timeout_s.unwrap_or(30);
        if timeout_s == 0 || timeout_s > 3600 {
            return Err(cx.err(
                key("timeout_s"),
                format!("expected seconds between 1 and 3600, got {timeout_s}"),
            ));
        }
        let initial = raw.retry_initial_ms.unwrap_or(1000);
        let max = raw.retry_max_ms.unwrap_or(300_000);
        if initial == 0 {
            return Err(cx.err(key("retry_initial_ms"), "expected at least 1 ms"));
        }
        if max < initial {
            return Err(cx.err(
                key("retry_max_ms"),
                format!("expected at least retry_initial_ms ({initial}), got {max}"),
            ));
        }
        upstreams.push(Upstream {
            name: raw.name,
            url: raw.url,
            send,
            format,
            secret: Secret(secret),
            token: raw.token.map(Secret),
            timeout: std::time::Duration::from_secs(timeout_s),
            retry_initial: std::time::Duration::from_millis(initial),
            retry_max: std::time::Duration::from_millis(max),
            platform,
        });
    }
    Ok(upstreams)
}

/// A platform's account and codes file: all required, the file readable and valid.
fn platform_config(
    cx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    adapter: Adapter,
    raw: &RawUpstream,
    tkeys: &RawTemplateKeys,
) -> Result<PlatformConfig, ConfigError> {
    let need = |k: &str, v: &Option<String>| -> Result<String, ConfigError> {
        match v.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => Ok(v.to_string()),
            _ => Err(cx.err(
                key(k),
                format!("required for a {} upstream", adapter.as_str()),
            )),
        }
    };
    let template = adapter == Adapter::Template;
    // A template platform may take no account at all (its auth says).
    let (username, password) = if template {
        (
            raw.username.clone().unwrap_or_default(),
            raw.password.clone().unwrap_or_default(),
        )
    } else {
        (
            need("username", &raw.username)?,
            need("password", &raw.password)?,
        )
    };
    let Some(codes) = raw.codes.clone() else {
        return Err(cx.err(
            key("codes"),
            format!(
                "required for a {} upstream: the platform's codes file (docs/platforms.md)",
                adapter.as_str()
            ),
        ));
    };
    if let Err(e) = crate::platform::codes::Codes::load(&codes) {
        return Err(cx.err(key("codes"), e.to_string()));
    }
    let login_url = match (adapter, raw.login_url.as_deref()) {
        (Adapter::Zhejiang | Adapter::Template, Some(u)) if http_url(u) => Some(u.to_string()),
        (Adapter::Zhejiang | Adapter::Template, Some(u)) => {
            return Err(cx.err(
                key("login_url"),
                format!("expected a full http:// URL, got {u:?}"),
            ))
        }
        (Adapter::Zhejiang, None) => {
            return Err(cx.err(key("login_url"), "required for a zhejiang upstream"))
        }
        (_, Some(_)) => {
            return Err(cx.err(
                key("login_url"),
                format!("a {} upstream has no login", adapter.as_str()),
            ))
        }
        (_, None) => None,
    };
    let template = if template {
        Some(super::template::template_spec(
            cx,
            key,
            tkeys,
            login_url.is_some(),
            raw.token.is_some(),
        )?)
    } else {
        None
    };
    let heartbeat = match (adapter, raw.status_url.as_deref(), raw.heartbeat_s) {
        (Adapter::Guangdong, Some(u), every) if http_url(u) => {
            let every = every.unwrap_or(1800);
            if every == 0 || every > 86_400 {
                return Err(cx.err(
                    key("heartbeat_s"),
                    format!("expected seconds between 1 and 86400, got {every}"),
                ));
            }
            Some((u.to_string(), std::time::Duration::from_secs(every)))
        }
        (Adapter::Guangdong, Some(u), _) => {
            return Err(cx.err(
                key("status_url"),
                format!("expected a full http:// URL, got {u:?}"),
            ))
        }
        (Adapter::Guangdong, None, Some(_)) => {
            return Err(cx.err(key("status_url"), "required with heartbeat_s"))
        }
        (_, Some(_), _) | (_, _, Some(_)) => {
            let k = if raw.status_url.is_some() {
                "status_url"
            } else {
                "heartbeat_s"
            };
            return Err(cx.err(
                key(k),
                format!("a {} upstream has no device heartbeat", adapter.as_str()),
            ));
        }
        (_, None, None) => None,
    };
    Ok(PlatformConfig {
        username,
        password: Secret(password),
        codes,
        login_url,
        heartbeat,
        template,
    })
}

/// A plain `http://` URL with a host.
fn http_url(u: &str) -> bool {
    u.parse::<hyper::Uri>()
        .map(|u| u.scheme_str() == Some("http") && u.host().is_some())
        .unwrap_or(false)
}
