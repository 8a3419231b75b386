//! `GET /login`, `POST /login`, `POST /logout`, and one-time sign-in codes.
//!
//! A token is typed into the form (never put in a URL); the link `foodgate demo` prints
//! carries a one-time code instead, valid [`CODE_MINUTES`] minutes and good for one sign-in.
//! Codes, like sessions and tokens, are stored only as hashes.

use super::html::{page, respond, PlainText};
use super::session::{
    self, cookie, create_session, csrf_for, safe_next, same_secret, set_cookie, LOGIN_CSRF_COOKIE,
    SESSION_COOKIE, SESSION_HOURS,
};
use crate::auth::{self, hash_token};
use crate::http::abuse::AuthFailed;
use crate::http::{ApiError, AppState};
use crate::store::audit::audit;
use crate::store::sessions::{self, NewSecret};
use crate::store::{insert::rfc3339, tokens, Tx};
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use maud::html;
use serde::Deserialize;

/// How long a sign-in code is valid.
pub const CODE_MINUTES: i64 = 10;

/// A one-time sign-in code for the token named `token_name`, valid [`CODE_MINUTES`] minutes
/// from `now`: for `GET /login?code=C&next=/dashboard`. Fails (a foreign-key error) when
/// no token has that name.
pub fn issue_signin_code(
    tx: &Tx<'_>,
    token_name: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<String> {
    let code = session::random_for_sql()?;
    sessions::create_signin_code(
        tx,
        &NewSecret {
            hash: &hash_token(&code),
            token_name,
            created_at: &rfc3339(now),
            expires_at: &rfc3339(now + Duration::minutes(CODE_MINUTES)),
        },
    )?;
    Ok(code)
}

/// Use a sign-in code: the token it signs in, if the code exists, is unused and unexpired
/// (it is marked used either way the token turns out), and the token is still valid.
fn use_code(tx: &Tx<'_>, code: &str, now: DateTime<Utc>) -> rusqlite::Result<Option<String>> {
    let at = rfc3339(now);
    let Some(name) = sessions::use_signin_code(tx, &hash_token(code), &at)? else {
        return Ok(None);
    };
    Ok(tokens::is_usable(tx, &name, &at)?.then_some(name))
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    code: Option<String>,
}

/// `GET /login[?next=][&code=]`: the form, or a sign-in by one-time code.
pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    // A query string that cannot be read is treated as none: the plain form.
    let q = query.map(|Query(q)| q).unwrap_or(LoginQuery {
        next: None,
        code: None,
    });
    let next = safe_next(q.next.as_deref());
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return form(&headers, StatusCode::OK, &next, None);
    };
    let now = Utc::now();
    let signed = state
        .store()
        .write_async(move |tx| {
            let Some(name) = use_code(tx, &code, now)? else {
                return Ok(None);
            };
            let sid = create_session(tx, &name, now)?;
            audit(
                tx,
                &name,
                "session.create",
                Some(&name),
                &serde_json::json!({"by": "code"}),
            )?;
            Ok(Some(sid))
        })
        .await;
    match signed {
        Ok(Some(sid)) => signed_in(&headers, &sid, &next),
        Ok(None) => failed(form(
            &headers,
            StatusCode::UNAUTHORIZED,
            &next,
            Some("This sign-in link is not valid: it was used already or has expired. Sign in with your token, or ask for a new link."),
        )),
        Err(e) => server_error(ApiError::from(e)),
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    next: Option<String>,
    #[serde(default)]
    csrf: String,
}

/// `POST /login` (form fields `token`, `next`, `csrf`).
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    form_data: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(f)) = form_data else {
        return super::html::message_page(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "The sign-in request was not a form (application/x-www-form-urlencoded with token and next).",
        );
    };
    let next = safe_next(f.next.as_deref());
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if !same_secret(&expected, &f.csrf) {
        return csrf_refused();
    }
    let bearer = format!("Bearer {}", f.token.trim());
    let now = Utc::now();
    let who = state
        .read(move |conn| Ok(auth::authenticate(conn, Some(&bearer), now).ok()))
        .await;
    let who = match who {
        Ok(Some(p)) => p,
        // One message for unknown, revoked and expired tokens: the form must not tell
        // anyone which tokens exist.
        Ok(None) => {
            return failed(form(
                &headers,
                StatusCode::UNAUTHORIZED,
                &next,
                Some("That token was not accepted. Check that you copied all of it, or ask an administrator for a new one."),
            ))
        }
        Err(e) => return server_error(e),
    };
    // The default page is the regulators'; a tester's is the testing room's.
    let next = if next == super::session::DEFAULT_NEXT
        && matches!(who.role, auth::Role::Station | auth::Role::Contractor)
    {
        "/station".to_string()
    } else {
        next
    };
    let name = who.name.clone();
    let created = state
        .store()
        .write_async(move |tx| {
            let sid = create_session(tx, &name, now)?;
            audit(
                tx,
                &name,
                "session.create",
                Some(&name),
                &serde_json::json!({"by": "token"}),
            )?;
            Ok(sid)
        })
        .await;
    match created {
        Ok(sid) => signed_in(&headers, &sid, &next),
        Err(e) => server_error(ApiError::from(e)),
    }
}

#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout` (form field `csrf`): ends the session, back to the sign-in form.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form_data: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let csrf = form_data.map(|Form(f)| f.csrf).unwrap_or_default();
    let Some(sid) = cookie(&headers, SESSION_COOKIE) else {
        return redirect("/login", &[]);
    };
    if !same_secret(&csrf_for(&sid), &csrf) {
        return csrf_refused();
    }
    let ended = state
        .store()
        .write_async(move |tx| {
            if let Some(name) = session::end_session(tx, &sid)? {
                audit(
                    tx,
                    &name,
                    "session.end",
                    Some(&name),
                    &serde_json::Value::Null,
                )?;
            }
            Ok(())
        })
        .await;
    match ended {
        Ok(()) => {
            let gone = set_cookie(&headers, SESSION_COOKIE, "", "/", 0);
            redirect("/login", &gone.into_iter().collect::<Vec<_>>())
        }
        Err(e) => server_error(ApiError::from(e)),
    }
}

/// Set the session cookie and go to `next`.
fn signed_in(headers: &HeaderMap, sid: &str, next: &str) -> Response {
    let cookies: Vec<HeaderValue> = [
        set_cookie(headers, SESSION_COOKIE, sid, "/", SESSION_HOURS * 3600),
        set_cookie(headers, LOGIN_CSRF_COOKIE, "", "/login", 0),
    ]
    .into_iter()
    .flatten()
    .collect();
    redirect(next, &cookies)
}

/// A 303 to `location` (a local path) with these `Set-Cookie` values.
pub(crate) fn redirect(location: &str, cookies: &[HeaderValue]) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    for c in cookies {
        r.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A refused token or code: counted against the client's address.
fn failed(mut r: Response) -> Response {
    r.extensions_mut().insert(AuthFailed);
    r
}

/// The answer to a sign-in from an address that failed `failures` times within `window_s`
/// seconds: 429, `Retry-After: retry_s`, a page in Chinese with English beside it.
pub(crate) fn too_many_failures(failures: u32, window_s: u64, retry_s: u64) -> Response {
    let body = html! {
        header { h1 { "foodgate · 登录 Sign in" } }
        main { section style="max-width:34rem" {
            h2 { "尝试次数过多 " span class="muted" { "Too many attempts" } }
            p class="error" role="alert" lang="zh-CN" {
                "此地址在 " (window_s) " 秒内已登录失败 " (failures) " 次。请在 "
                (retry_s) " 秒后再试，并确认令牌已完整复制。"
            }
            p lang="en" {
                (failures) " failed sign-ins from this address within "
                (window_s) " s. Try again in " (retry_s) " s, and check that the token was copied whole."
            }
            p { a href="/login" { "返回登录 · Back to sign-in" } }
        } }
    };
    let mut r = respond(
        StatusCode::TOO_MANY_REQUESTS,
        page(
            "zh-CN",
            "尝试次数过多 · Too many attempts · foodgate",
            html! {},
            body,
        ),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_s));
    r
}

fn csrf_refused() -> Response {
    super::html::message_page(
        StatusCode::FORBIDDEN,
        "Form refused",
        "This form was not sent from this site's own page, or it has expired (CSRF check failed). Reload the page and try again.",
    )
}

fn server_error(e: ApiError) -> Response {
    tracing::error!(error = %e.message, "sign-in failed");
    super::html::message_page(
        e.status,
        "Sign-in failed",
        &format!("The service could not sign you in: {}", e.message),
    )
}

/// The sign-in form, with a fresh double-submit CSRF value (cookie and hidden field).
fn form(headers: &HeaderMap, status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let csrf = match session::random_secret() {
        Ok(c) => c,
        Err(e) => return server_error(ApiError::internal(e)),
    };
    let body = html! {
        header { h1 { "foodgate · sign in" } }
        main { section style="max-width:34rem" {
            h2 { "Sign in" }
            @if let Some(m) = error {
                p class="error" role="alert" { (PlainText(m)) }
            }
            form method="post" action="/login" {
                p {
                    label for="token" { "API token (regulator or admin)" }
                    br;
                    input id="token" name="token" type="password" autocomplete="off" required
                        style="width:100%" autofocus;
                }
                input type="hidden" name="next" value=(PlainText(next));
                input type="hidden" name="csrf" value=(PlainText(&csrf));
                p { button type="submit" { "Sign in" } }
            }
            p class="muted" {
                "The token is sent once and never kept in the browser: you get a session \
                 cookie instead. A token is made with "
                code { "foodgate token create" } "."
            }
        } }
    };
    let mut r = respond(status, page("en", "Sign in · foodgate", html! {}, body));
    if let Some(c) = set_cookie(headers, LOGIN_CSRF_COOKIE, &csrf, "/login", 3600) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}
