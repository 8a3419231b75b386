//! The two web pages and sign-in (`/dashboard`, `/markets/{code}/board`,
//! `/login`, `/logout`). Server-rendered HTML with inline CSS and SVG: no script, no CDN,
//! nothing loaded from anywhere, so the pages work offline.
//!
//! Pages are built with `maud`, which escapes every spliced value by its type; the SQL they
//! need is in the store (`store::pages`, `store::sessions`, `store::markets`, `store::coverage`).
//!
//! - [`html`]: the page frame, outside text ([`html::PlainText`]), HTML responses.
//! - [`session`]: session cookies, sessions (stored by hash), CSRF tokens, the `next` rule.
//! - [`signin`]: the sign-in form, one-time codes ([`signin::issue_signin_code`]), logout.
//! - [`dashboard`]: the regulators' page; its reads (`trend`, `open_holds`) take a
//!   `&Connection`.
//! - [`reports`]: the regulators' monthly report page.
//! - [`station`], [`station_forms`]: the testing room's page and its forms (testers).
//! - [`board`]: a market's public display screen.
//! - [`svg`]: the trend chart, as SVG markup.
//! - [`trend`]: the 30-day trend the chart draws.
//!
//! Page errors (401, 403, 404) are HTML too: `api::json_errors` leaves `text/html` alone.

pub mod board;
pub mod dashboard;
pub mod exposure;
pub mod html;
pub mod reports;
pub mod session;
pub mod signin;
pub mod station;
pub mod station_forms;
pub mod svg;
pub mod trend;

use crate::auth::Principal;
use crate::http::AppState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::Utc;

pub use signin::issue_signin_code;

/// The pages' routes, merged into [`crate::service::router`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(dashboard::dashboard))
        .route("/reports/monthly", get(reports::monthly_page))
        .route("/station", get(station::station))
        .route("/station/samples/new", get(station_forms::new_sample))
        .route("/station/samples", post(station_forms::register_sample))
        .route("/station/holds/{id}", get(station_forms::hold))
        .route("/station/holds/{id}/actions", post(station_forms::act))
        .route("/markets/{code}/board", get(board::board))
        .route("/exposure", get(exposure::exposure_page))
        .route("/login", get(signin::login_page).post(signin::login))
        .route("/logout", post(signin::logout))
}

/// The signed-in principal and session id of this request, if its session cookie names a
/// live session of a valid token; checked on every request, so a revoked token is out at once.
pub(crate) async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(Principal, String)>, Response> {
    let Some(sid) = session::cookie(headers, session::SESSION_COOKIE) else {
        return Ok(None);
    };
    let id = sid.clone();
    let who = state
        .read(move |conn| Ok(session::session_principal(conn, &id, Utc::now())?))
        .await
        .map_err(|e| {
            tracing::error!(error = %e.message, "session lookup failed");
            html::message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                &format!("The session could not be checked: {}", e.message),
            )
        })?;
    Ok(who.map(|p| (p, sid)))
}

/// The signed-in principal and session of a page for `roles`: not signed in, a redirect to
/// the sign-in form that comes back here; signed in with another role, a 403 page that says
/// who the page is for (`for_whom`) and offers to sign out.
pub(crate) async fn page_principal(
    state: &AppState,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    roles: &[crate::auth::Role],
    for_whom: &str,
) -> Result<(Principal, String), Response> {
    let Some((who, sid)) = signed_in(state, headers).await? else {
        let here = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        return Err(signin::redirect(
            &format!("/login?next={}", html::url_encode(here)),
            &[],
        ));
    };
    if !roles.contains(&who.role) {
        let body = maud::html! {
            header { h1 { "无权访问 Not allowed" } }
            main { section {
                p {
                    "You are signed in as " (html::PlainText(&who.name)) " with a "
                    (who.role.as_str()) " token: " (for_whom)
                }
                form method="post" action="/logout" {
                    input type="hidden" name="csrf" value=(session::csrf_for(&sid));
                    button type="submit" { "退出 Sign out" }
                }
            } }
        };
        return Err(html::respond(
            StatusCode::FORBIDDEN,
            html::page("zh-CN", "Not allowed", maud::html! {}, body),
        ));
    }
    Ok((who, sid))
}
