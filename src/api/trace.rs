//! `GET /api/v1/trace?certificate_no=|supplier=` (regulator, admin): a batch across markets —
//! every sample of a certificate (合格证), or of a supplier, with its readings and holds (the
//! traced holds a failure put on the others among them; see [`crate::store::trace`]).

use super::schemas::{ErrorBody, HoldStatusDoc};
use crate::auth::Role;
use crate::http::{ApiError, AppState};
use crate::store::trace::{batch, BatchEntry, BATCH_LIMIT};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TraceQuery {
    /// the certificate (合格证) number
    certificate_no: Option<String>,
    /// the supplier (when there is no certificate)
    supplier: Option<String>,
}

/// A batch: its samples in every market, newest first.
#[derive(Serialize)]
pub struct TraceAnswer {
    pub certificate_no: Option<String>,
    pub supplier: Option<String>,
    pub samples: Vec<BatchEntry>,
}

/// The shape of [`TraceAnswer`], for the document.
#[derive(Serialize, ToSchema)]
#[schema(as = Trace)]
pub struct TraceDoc {
    pub certificate_no: Option<String>,
    pub supplier: Option<String>,
    /// At most 1000, newest first.
    pub samples: Vec<TraceSampleDoc>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = TraceSample)]
pub struct TraceSampleDoc {
    pub market: String,
    pub stall: Option<String>,
    pub sample_id: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
    pub vendor: Option<String>,
    pub supplier: Option<String>,
    pub certificate_no: Option<String>,
    #[schema(format = DateTime)]
    pub sampled_at: Option<String>,
    pub readings: Vec<TraceReadingDoc>,
    pub holds: Vec<TraceHoldDoc>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = TraceReading)]
pub struct TraceReadingDoc {
    /// The reading's `id` in `GET /api/v1/results`.
    pub id: String,
    pub analyte: String,
    pub value: Option<String>,
    pub unit: Option<String>,
    /// pass, fail, invalid or unknown
    pub verdict: String,
    #[schema(format = DateTime)]
    pub tested_at: String,
}

#[derive(Serialize, ToSchema)]
#[schema(as = TraceHold)]
pub struct TraceHoldDoc {
    pub id: String,
    pub status: HoldStatusDoc,
    /// A traced hold: the failed reading (results-API id) it follows from.
    pub traced_from: Option<String>,
    /// A failure's own hold: its reading (results-API id).
    pub reading: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// Longest accepted certificate or supplier.
const MAX_KEY: usize = 256;

#[utoipa::path(get, path = "/api/v1/trace", operation_id = "trace",
    summary = "A batch across markets: the samples of a certificate or a supplier, their readings and holds; regulator, admin",
    params(TraceQuery),
    responses(
        (status = 200, description = "the batch", body = TraceDoc),
        (status = 400, description = "neither or both keys, or one too long (`field` names it)", body = ErrorBody)
    ))]
pub async fn trace(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TraceQuery>,
) -> Result<Json<TraceAnswer>, ApiError> {
    state
        .authorize(&headers, &[Role::Regulator, Role::Admin])
        .await?;
    let given = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let (certificate, supplier) = (given(q.certificate_no), given(q.supplier));
    match (&certificate, &supplier) {
        (None, None) => {
            return Err(ApiError::bad_request(
                "expected certificate_no=… (a 合格证 number) or supplier=…",
            )
            .with_field("certificate_no"))
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "expected one of certificate_no and supplier, not both",
            )
            .with_field("supplier"))
        }
        _ => {}
    }
    for (field, v) in [("certificate_no", &certificate), ("supplier", &supplier)] {
        if v.as_ref().is_some_and(|v| v.len() > MAX_KEY) {
            return Err(
                ApiError::bad_request(format!("{field}: longer than {MAX_KEY} bytes"))
                    .with_field(field),
            );
        }
    }
    let (c, s) = (certificate.clone(), supplier.clone());
    let samples = state
        .read(move |conn| Ok(batch(conn, c.as_deref(), s.as_deref())?))
        .await?;
    debug_assert!(samples.len() <= BATCH_LIMIT);
    Ok(Json(TraceAnswer {
        certificate_no: certificate,
        supplier,
        samples,
    }))
}
