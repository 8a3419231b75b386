//! What the API and the pages share, below both: the handlers' state ([`AppState`]), the
//! error answer ([`ApiError`]), the per-token rate limit and response helpers.
//!
//! - [`state`]: the state, pooled store readers, authorization.
//! - [`error`]: the error answer.
//! - [`ratelimit`]: the per-token request budget (429 beyond it).
//! - [`abuse`]: failed sign-ins and bad tokens per client address (429 beyond them).
//! - [`conn`]: the HTTP/1 server loop: header and idle timeouts, the client address.

pub mod abuse;
pub mod conn;
pub mod error;
pub mod ratelimit;
pub mod state;

pub use error::ApiError;
pub use state::{AppState, ConfiguredInstrument};

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;

/// A `text/csv` response.
pub(crate) fn csv_response(body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    r
}
