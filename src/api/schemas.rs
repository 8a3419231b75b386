//! Schema types of the JSON the handlers build or read by hand, for the OpenAPI document.
//! They are never built: each describes one shape of the wire, beside the code that writes
//! or reads it. Each is named `…Doc` (the crate's own types keep their names) and shown
//! without the suffix.
#![allow(dead_code)]

use crate::api::MAX_ROWS;
use serde::Serialize;
use utoipa::openapi::schema::{ArrayBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// Every error answer.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// A short code, e.g. `bad_request`, `forbidden`, `token_expired`, `rate_limited`.
    pub error: String,
    /// One sentence for a person.
    pub message: String,
    /// The request field that was wrong, when one was.
    pub field: Option<String>,
}

/// `protocol` of a result row: the wire protocol its reading was decoded from (absent:
/// judged as `astm`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = ProtocolName)]
pub enum ProtocolNameDoc {
    Astm,
    Hl7,
    EnzymePrint,
    GoldCard,
    Spectro,
    Lz4000t,
    Tl310,
    Dy723pc,
}

#[derive(Serialize, ToSchema)]
#[schema(as = QualifierCode)]
pub enum QualifierCodeDoc {
    #[serde(rename = "<")]
    Below,
    #[serde(rename = ">")]
    Above,
    #[serde(rename = "ND")]
    NotDetected,
}

/// What the instrument itself concluded.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = DeviceVerdictName)]
pub enum DeviceVerdictNameDoc {
    Positive,
    Negative,
    Invalid,
}

/// foodgate's own judgement of a reading.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = VerdictName)]
pub enum VerdictNameDoc {
    Pass,
    Fail,
    Invalid,
    Unknown,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = AssayFormat)]
pub enum AssayFormatDoc {
    Competitive,
    Sandwich,
}

/// One result row of an upload (`POST /api/v1/results`, one JSON object per row, or a CSV
/// line under a header row of these names). A key left out is null.
#[derive(Serialize, ToSchema)]
#[schema(as = ResultRow)]
pub struct ResultRowDoc {
    /// The uploader's own id, unique per uploader: the same id again is a no-op, with
    /// different content it is rejected.
    pub id: String,
    pub market: String,
    pub stall: Option<String>,
    pub sample_id: Option<String>,
    pub sample_name: Option<String>,
    /// A food category of the reference data.
    pub category: Option<String>,
    /// A canonical analyte id or an alias of one.
    pub analyte: String,
    pub method: Option<String>,
    /// The measured number; its relation (`<`, `>`, not detected) goes in `qualifier`.
    /// (As in CSV, the text forms `<0.05`, `>5`, `ND`, `POS` and `NEG` are read too.)
    pub value: Option<f64>,
    pub unit: Option<String>,
    pub qualifier: Option<QualifierCodeDoc>,
    pub device_verdict: Option<DeviceVerdictNameDoc>,
    /// RFC 3339 with an offset.
    #[schema(format = DateTime)]
    pub measured_at: Option<String>,
    pub instrument: Option<String>,
    pub tester: Option<String>,
    /// Colloidal gold: T line intensity.
    pub t_line: Option<u32>,
    /// Colloidal gold: C line intensity.
    pub c_line: Option<u32>,
    /// Colloidal gold: the T/C × 1000 cut-off.
    pub cutoff: Option<u32>,
    pub assay_format: Option<AssayFormatDoc>,
    /// Enzyme inhibition: ΔA0.
    pub delta_a0: Option<f64>,
    /// Enzyme inhibition: ΔAt.
    pub delta_at: Option<f64>,
    /// Enzyme inhibition: the inhibition rate recomputed from ΔA0 and ΔAt.
    pub recomputed_rate: Option<f64>,
    /// As the instrument sent it (at most 32 bytes): `P` preliminary, `C` correction, `X`
    /// cannot be done, anything else (`F`, `V`, `W`, …) final.
    #[schema(max_length = 32)]
    pub result_status: Option<String>,
    pub protocol: Option<ProtocolNameDoc>,
    /// A multi-channel reader's channel.
    pub channel: Option<u32>,
    /// The standard the reader tested by, as it sent it (`tl310`: `00`, `01`): picks the
    /// inhibition-rate threshold.
    pub standard: Option<String>,
    /// When the reading first reached a foodgate (a station forwarding to its hub sends
    /// it): RFC 3339, not in the future.
    #[schema(format = DateTime)]
    pub received_at: Option<String>,
}

/// The body of `POST /api/v1/results` as JSON: at most [`MAX_ROWS`] rows.
pub struct ResultRowsDoc;

/// The body of `POST /api/v1/samples`: at most [`MAX_ROWS`] records.
pub struct SampleRecordsDoc;

/// The body of `POST /api/v1/results/stalls`: at most [`MAX_ROWS`] corrections.
pub struct StallCorrectionsDoc;

/// One stall correction of `POST /api/v1/results/stalls`.
#[derive(Serialize, ToSchema)]
#[schema(as = StallCorrection)]
pub struct StallCorrectionDoc {
    /// The row id the reading was uploaded with (a station's: the reading's identity).
    pub id: String,
    pub market: String,
    /// The stall code: not empty, at most 128 bytes.
    pub stall: String,
}

impl PartialSchema for StallCorrectionsDoc {
    fn schema() -> RefOr<Schema> {
        at_most_max_rows::<StallCorrectionDoc>()
    }
}

impl ToSchema for StallCorrectionsDoc {
    fn name() -> std::borrow::Cow<'static, str> {
        "StallCorrections".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        with_item::<StallCorrectionDoc>(schemas);
    }
}

/// What became of one stall correction.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = StallStatus)]
pub enum StallStatusDoc {
    /// The reading and its hold name the stall now.
    Updated,
    /// They named it already.
    Duplicate,
    Rejected,
}

/// An array of at most [`MAX_ROWS`] `T` (the derive has no bound for a wrapped `Vec`).
pub(crate) fn at_most_max_rows<T: ToSchema>() -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(Ref::from_schema_name(T::name()))
        .max_items(Some(MAX_ROWS))
        .into()
}

pub(crate) fn with_item<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

impl PartialSchema for ResultRowsDoc {
    fn schema() -> RefOr<Schema> {
        at_most_max_rows::<ResultRowDoc>()
    }
}

impl ToSchema for ResultRowsDoc {
    fn name() -> std::borrow::Cow<'static, str> {
        "ResultRows".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        with_item::<ResultRowDoc>(schemas);
    }
}

impl PartialSchema for SampleRecordsDoc {
    fn schema() -> RefOr<Schema> {
        at_most_max_rows::<SampleRecordDoc>()
    }
}

impl ToSchema for SampleRecordsDoc {
    fn name() -> std::borrow::Cow<'static, str> {
        "SampleRecords".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        with_item::<SampleRecordDoc>(schemas);
    }
}

/// The numeric threshold a verdict was reached with.
#[derive(Serialize, ToSchema)]
#[schema(as = AppliedLimit)]
pub struct AppliedLimitDoc {
    pub value: f64,
    pub unit: String,
    pub source: String,
}

/// A stored reading (the normalized result), as the API shows it. The keys with no
/// value are null; method details appear where the method has them, and more keys may
/// appear.
#[derive(Serialize, ToSchema)]
#[schema(as = Reading)]
pub struct ReadingDoc {
    /// The wire protocol it was decoded from; null for an uploaded reading.
    pub protocol: Option<String>,
    pub instrument: Option<String>,
    pub sample_id: Option<String>,
    pub sample_name: Option<String>,
    /// The stall (booth) code.
    pub source: Option<String>,
    /// Canonical analyte id, or `unknown:<code>`.
    pub analyte: String,
    pub method: Option<String>,
    pub value: Option<f64>,
    pub unit: Option<String>,
    pub qualifier: Option<QualifierCodeDoc>,
    pub device_verdict: Option<DeviceVerdictNameDoc>,
    #[schema(format = DateTime)]
    pub measured_at: Option<String>,
    pub category: Option<String>,
    pub verdict: VerdictNameDoc,
    /// One sentence: the rule or limit applied, or why none could be.
    pub reason: String,
    pub limit: Option<AppliedLimitDoc>,
    pub t_line: Option<u32>,
    pub c_line: Option<u32>,
    pub cutoff: Option<u32>,
    pub assay_format: Option<AssayFormatDoc>,
    pub delta_a0: Option<f64>,
    pub delta_at: Option<f64>,
    pub recomputed_rate: Option<f64>,
}

/// One reading of `GET /api/v1/results`: the reading and where it was stored.
#[derive(Serialize, ToSchema)]
#[schema(as = ResultView)]
pub struct ResultViewDoc {
    #[serde(flatten)]
    pub reading: ReadingDoc,
    /// The reading's identity.
    pub id: String,
    pub market: String,
    pub stall: Option<String>,
    /// The token that uploaded it; null for a reading of a live link.
    pub uploader: Option<String>,
    #[schema(format = DateTime)]
    pub received_at: String,
}

/// A page of `GET /api/v1/results`, newest first.
#[derive(Serialize, ToSchema)]
#[schema(as = ResultsPage)]
pub struct ResultsPageDoc {
    pub results: Vec<ResultViewDoc>,
    /// The `after` of the next page; null on the last one.
    pub next: Option<String>,
}

/// One sample record of `POST /api/v1/samples` (the sampling record).
#[derive(Serialize, ToSchema)]
#[schema(as = SampleRecord)]
pub struct SampleRecordDoc {
    /// Readings find their sample by it.
    pub sample_id: String,
    pub market: String,
    pub stall: Option<String>,
    pub sample_name: Option<String>,
    /// A food category of the reference data.
    pub category: Option<String>,
    /// The stall holder (personal data).
    pub vendor: Option<String>,
    pub supplier: Option<String>,
    /// 合格证 number.
    pub certificate_no: Option<String>,
    /// RFC 3339 with an offset.
    #[schema(format = DateTime)]
    pub sampled_at: Option<String>,
}

/// What became of one uploaded row.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = RowStatus)]
pub enum RowStatusDoc {
    Stored,
    Duplicate,
    Rejected,
}

/// What became of one sample record.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = SampleStatus)]
pub enum SampleStatusDoc {
    /// The first registration.
    Stored,
    /// Same content as registered: nothing changed.
    Duplicate,
    /// A correction: given fields replace the registered ones.
    Updated,
    Rejected,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = HoldStatus)]
pub enum HoldStatusDoc {
    /// 待复检: screened positive, goods held, awaiting a retest.
    Held,
    /// 复检阳性: a retest failed too.
    Confirmed,
    /// 已停售: sale stopped, goods off the stall.
    Stopped,
    /// 送检中: a sample is at a laboratory.
    Lab,
    /// 已销毁: goods destroyed, a passing re-sample awaited.
    Destroyed,
    /// 已结案: finished.
    Closed,
    /// 已放行: an independent retest or the laboratory passed it.
    Released,
    /// A correction or a conflicting retest needs a person.
    Review,
    /// 追溯待检: the same batch failed elsewhere; held until this sample is tested.
    Traced,
}

/// One entry of a hold's history.
#[derive(Serialize, ToSchema)]
#[schema(as = HistoryEntry)]
pub struct HistoryEntryDoc {
    #[schema(format = DateTime)]
    pub at: String,
    pub status: HoldStatusDoc,
    /// Who made the change (a token's name, or `foodgate`).
    pub by: String,
    pub reason: String,
    /// The action that made this entry (`stop_sale`, …, `overdue`); absent on other entries.
    pub action: Option<String>,
    /// The action's fields (`at`, `kg`, `lab`, …); a retest's entry has `retest`, the
    /// retest reading's `id` in `GET /api/v1/results`.
    #[schema(value_type = Option<Object>)]
    pub fields: Option<serde_json::Value>,
}

/// `GET /api/v1/holds`, newest first, at most 1000.
#[derive(Serialize, ToSchema)]
#[schema(as = HoldsPage)]
pub struct HoldsPageDoc {
    pub holds: Vec<HoldDoc>,
}

/// The sample a hold is about.
#[derive(Serialize, ToSchema)]
#[schema(as = HoldSample)]
pub struct HoldSampleDoc {
    pub id: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
}

/// A hold: the goods of a stall held after a failed test.
#[derive(Serialize, ToSchema)]
#[schema(as = Hold)]
pub struct HoldDoc {
    pub id: String,
    pub market: String,
    pub stall: Option<String>,
    pub sample: HoldSampleDoc,
    pub reading: ReadingDoc,
    pub status: HoldStatusDoc,
    /// The status in Chinese.
    pub status_zh: String,
    /// The actions the hold's state allows now.
    pub actions: Vec<String>,
    pub destroyed_kg: Option<f64>,
    /// The passing re-sample's reading: its `id` in `GET /api/v1/results`.
    pub resample_reading: Option<String>,
    /// When the hold was first found overdue.
    #[schema(format = DateTime)]
    pub overdue_at: Option<String>,
    pub history: Vec<HistoryEntryDoc>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = OutboxStatus)]
pub enum OutboxStatusDoc {
    Pending,
    Dead,
    Delivered,
}

/// One outbox event.
#[derive(Serialize, ToSchema)]
#[schema(as = OutboxEvent)]
pub struct OutboxEventDoc {
    pub id: i64,
    pub event_id: String,
    pub upstream: String,
    /// The event type, e.g. `reading` or `hold.confirmed`.
    #[serde(rename = "type")]
    pub kind: String,
    pub status: OutboxStatusDoc,
    pub attempts: u32,
    #[schema(format = DateTime)]
    pub created_at: Option<String>,
    /// When the next attempt is due (pending events only).
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    /// The upstream's answer to the last attempt.
    pub last_answer: Option<String>,
}

/// `GET /api/v1/outbox`, oldest first.
#[derive(Serialize, ToSchema)]
#[schema(as = OutboxPage)]
pub struct OutboxPageDoc {
    pub events: Vec<OutboxEventDoc>,
}

/// One market's coverage on one day.
#[derive(Serialize, ToSchema)]
#[schema(as = MarketCoverage)]
pub struct MarketCoverageDoc {
    pub market: String,
    pub name: String,
    pub district: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub samples: u64,
    pub tests: u64,
    pub failures: u64,
    pub quota: u64,
    /// Samples reached the quota.
    pub met: bool,
    #[schema(format = DateTime)]
    pub last_result_at: Option<String>,
    /// Entries of the day's sampling plan, where one was drawn (`GET /api/v1/plan`).
    pub plan_total: Option<u64>,
    /// Plan entries done: a reading of that stall and category received that day.
    pub plan_done: Option<u64>,
}

/// All markets together on one day.
#[derive(Serialize, ToSchema)]
#[schema(as = CoverageSummary)]
pub struct CoverageSummaryDoc {
    pub markets: u64,
    pub markets_tested: u64,
    pub markets_met_quota: u64,
    pub samples: u64,
    pub tests: u64,
    pub failures: u64,
}

/// `GET /api/v1/coverage`: the day's summary and every registered market, tested or not.
#[derive(Serialize, ToSchema)]
#[schema(as = Coverage)]
pub struct CoverageDoc {
    /// The local day, `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub date: String,
    pub summary: CoverageSummaryDoc,
    pub markets: Vec<MarketCoverageDoc>,
}

/// `GET /healthz` when the database committed a write.
#[derive(Serialize, ToSchema)]
#[schema(as = Health)]
pub struct HealthDoc {
    /// `ok`.
    pub status: String,
    /// Registered markets.
    pub markets: i64,
}

/// The sign-in form (`POST /login`).
#[derive(Serialize, ToSchema)]
#[schema(as = LoginForm)]
pub struct LoginFormDoc {
    pub token: String,
    /// A local path to go to once signed in, default `/dashboard`.
    pub next: Option<String>,
    /// The form's CSRF token.
    pub csrf: String,
}

/// The sign-out form (`POST /logout`).
#[derive(Serialize, ToSchema)]
#[schema(as = LogoutForm)]
pub struct LogoutFormDoc {
    /// The form's CSRF token.
    pub csrf: String,
}
