//! Upload rows (the `POST /api/v1/results` format) → readings ready to judge.
//!
//! JSON rows and CSV rows are both first reduced to text cells by column name, so that one
//! validator serves both and the same row sent as JSON or as CSV has the same content hash.
//!
//! Uploads have no wire protocol, but [`Reading`] needs one and judging looks at it (a
//! missing ΔA0 invalidates an `enzyme-print` report; an empty `spectro` value is a failed
//! measurement). An upload row may name the protocol its reading was decoded from
//! (`protocol`, an extension of the documented columns, so a station's forwarded reading is judged
//! as at the station); without it the reading is judged as `astm`, the generic lab format that
//! has neither special rule. The API shows `protocol: null` for uploaded readings.

use crate::judge::Judge;
use chrono::{DateTime, Utc};
use foodgate_parsers::value::{interpret, parse_decimal};
use foodgate_parsers::{AliasTable, DeviceVerdict, Protocol, Qualifier, Reading};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The columns of an upload row, in the order the content hash reads them.
pub const FIELDS: &[&str] = &[
    "id",
    "market",
    "stall",
    "sample_id",
    "sample_name",
    "category",
    "analyte",
    "method",
    "value",
    "unit",
    "qualifier",
    "device_verdict",
    "measured_at",
    "instrument",
    "tester",
    "t_line",
    "c_line",
    "cutoff",
    "assay_format",
    "delta_a0",
    "delta_at",
    "recomputed_rate",
    "result_status",
    "protocol",
];

/// Columns added after rows were first stored: hashed only when present, so a row sent again
/// as before keeps its content hash. `received_at` (RFC 3339): when the reading first reached
/// a foodgate — a station forwarding to its hub sends it, so that the reading counts on the
/// day the station received it (`docs/reference.md`, "Coverage"), however late it reaches the hub.
/// `channel` and `standard`: a multi-channel reader's channel and the standard it tested by
/// (`tl310`), so that the hub judges a forwarded reading by the same threshold.
pub const LATER_FIELDS: &[&str] = &["received_at", "channel", "standard"];

/// A `received_at` may be this far ahead of the receiving clock (clocks differ a little).
const CLOCK_SLACK: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// How a reading names an analyte code that is not in the reference data.
const UNKNOWN_PREFIX: &str = "unknown:";

/// Longest accepted result status.
const MAX_STATUS: usize = 32;

/// Longest accepted text in one cell.
const MAX_CELL: usize = 1024;

/// A problem with one field of one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// A row as text cells by column name (absent, `null` and empty are all `None`).
pub type Cells = BTreeMap<String, Option<String>>;

/// A valid row, its reading not yet judged.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub market: String,
    pub stall: Option<String>,
    pub reading: Reading,
    /// When the reading first reached a foodgate (see [`LATER_FIELDS`]).
    pub received_at: Option<DateTime<Utc>>,
    /// What makes "the same row again": hex SHA-256 of the known cells.
    pub content_hash: String,
}

/// Cells of one JSON row; a value that is neither text, number nor null is an error.
pub fn json_cells(raw: &str) -> Result<Cells, Vec<FieldError>> {
    let obj: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(raw).map_err(|e| {
            vec![FieldError::new(
                "",
                format!("the row is not a JSON object: {e}"),
            )]
        })?;
    let mut cells = Cells::new();
    let mut errors = Vec::new();
    for (k, v) in obj {
        let text = match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => {
                if FIELDS.contains(&k.as_str()) {
                    errors.push(FieldError::new(&k, "expected a string, a number or null"));
                }
                continue;
            }
        };
        cells.insert(k, text);
    }
    if errors.is_empty() {
        Ok(cells)
    } else {
        Err(errors)
    }
}

fn hash_cells(cells: &Cells) -> String {
    let mut h = Sha256::new();
    for f in FIELDS {
        match cells.get(*f).and_then(|v| v.as_deref()) {
            None => h.update([0u8]),
            Some(v) => {
                h.update([1u8]);
                h.update((v.len() as u64).to_le_bytes());
                h.update(v.as_bytes());
            }
        }
    }
    for f in LATER_FIELDS {
        if let Some(v) = cells.get(*f).and_then(|v| v.as_deref()) {
            h.update(f.as_bytes());
            h.update((v.len() as u64).to_le_bytes());
            h.update(v.as_bytes());
        }
    }
    hex::encode(h.finalize())
}

/// Validate one row's cells and build its reading (not judged).
pub fn parse_row(
    mut cells: Cells,
    judge: &Judge,
    aliases: &AliasTable,
) -> Result<Row, Vec<FieldError>> {
    // Surrounding blanks never matter; an empty cell is a missing one.
    for v in cells.values_mut() {
        if let Some(s) = v {
            let t = s.trim();
            if t.is_empty() {
                *v = None;
            } else if t.len() != s.len() {
                *v = Some(t.to_string());
            }
        }
    }
    let mut errors = Vec::new();
    let get = |f: &str| cells.get(f).and_then(|v| v.as_deref());
    for f in FIELDS.iter().chain(LATER_FIELDS) {
        if get(f).is_some_and(|v| v.len() > MAX_CELL) {
            errors.push(FieldError::new(f, format!("longer than {MAX_CELL} bytes")));
        }
    }
    let mut required = |f: &str| match get(f) {
        Some(v) => v.to_string(),
        None => {
            errors.push(FieldError::new(f, "required"));
            String::new()
        }
    };
    let id = required("id");
    let market = required("market");
    let analyte_sent = required("analyte");

    let protocol = match get("protocol") {
        None => Protocol::Astm,
        Some(p) => p
            .parse()
            .unwrap_or_else(|e: foodgate_parsers::reading::UnknownProtocol| {
                errors.push(FieldError::new("protocol", e.to_string()));
                Protocol::Astm
            }),
    };
    // What a decoder could not map is `unknown:<code>`: a station stores it (verdict
    // `unknown`), so its hub must too, with the code as the instrument sent it.
    let unknown_code = analyte_sent
        .strip_prefix(UNKNOWN_PREFIX)
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let analyte = if analyte_sent.is_empty() {
        String::new()
    } else if let Some(code) = unknown_code {
        format!("{UNKNOWN_PREFIX}{code}")
    } else {
        match aliases.lookup(&analyte_sent) {
            Some(a) => a.to_string(),
            None => {
                errors.push(FieldError::new(
                    "analyte",
                    format!("unknown analyte {analyte_sent:?}: not a canonical id or alias of the reference data (an unmapped instrument code is sent as \"unknown:<code>\")"),
                ));
                String::new()
            }
        }
    };
    let mut r = Reading::new(protocol, analyte.as_str());
    r.analyte_code = Some(unknown_code.unwrap_or(&analyte_sent).into());
    let text = |f: &str| get(f).map(Into::into);
    r.sample_id = text("sample_id");
    r.sample_name = text("sample_name");
    r.source = text("stall");
    r.method = text("method");
    r.unit = text("unit");
    r.instrument = text("instrument");
    r.tester = text("tester");
    r.result_status = text("result_status");
    // As an instrument sends it: `P` preliminary, `C` correction, `X` cannot be done, and any
    // other status (`F`, `V`, `R`, `W`, … even a word) final, as the decoders take them.
    if let Some(s) = get("result_status") {
        if s.len() > MAX_STATUS || s.chars().any(char::is_control) {
            errors.push(FieldError::new(
                "result_status",
                format!("expected a status as the instrument sent it (F, C, P, X, …), at most {MAX_STATUS} bytes"),
            ));
        }
    }
    if let Some(c) = get("category") {
        if judge.reference().category(c).is_none() {
            errors.push(FieldError::new(
                "category",
                format!("unknown category {c:?}: not a food category of the reference data"),
            ));
        }
        r.category = Some(c.into());
    }
    if let Some(v) = get("value") {
        r.value_text = Some(v.into());
        match parse_decimal(v) {
            Some(n) => r.value = Some(n),
            None => {
                let i = interpret(v);
                if i.value.is_none() && i.qualifier.is_none() && i.device_verdict.is_none() {
                    errors.push(FieldError::new(
                        "value",
                        format!("{v:?} is not a number, <x, >x, ND, POS or NEG"),
                    ));
                }
                r.value = i.value;
                r.qualifier = i.qualifier;
                r.device_verdict = i.device_verdict;
            }
        }
    }
    if let Some(q) = get("qualifier") {
        r.qualifier = match q {
            "<" => Some(Qualifier::Below),
            ">" => Some(Qualifier::Above),
            q if q.eq_ignore_ascii_case("ND") => Some(Qualifier::NotDetected),
            _ => {
                errors.push(FieldError::new("qualifier", "expected <, > or ND"));
                None
            }
        };
    }
    if let Some(d) = get("device_verdict") {
        r.device_verdict = match d.to_ascii_lowercase().as_str() {
            "positive" => Some(DeviceVerdict::Positive),
            "negative" => Some(DeviceVerdict::Negative),
            "invalid" => Some(DeviceVerdict::Invalid),
            _ => {
                errors.push(FieldError::new(
                    "device_verdict",
                    "expected positive, negative or invalid",
                ));
                None
            }
        };
    }
    if let Some(t) = get("measured_at") {
        match DateTime::parse_from_rfc3339(t) {
            Ok(t) => r.measured_at = Some(t),
            Err(_) => errors.push(FieldError::new(
                "measured_at",
                "expected RFC 3339 with an offset, e.g. 2025-03-04T09:30:00+08:00",
            )),
        }
    }
    let mut received_at = None;
    if let Some(t) = get("received_at") {
        match DateTime::parse_from_rfc3339(t) {
            Ok(t) if t.with_timezone(&Utc) <= Utc::now() + CLOCK_SLACK => {
                received_at = Some(t.with_timezone(&Utc));
            }
            Ok(_) => errors.push(FieldError::new("received_at", "in the future")),
            Err(_) => errors.push(FieldError::new(
                "received_at",
                "expected RFC 3339 with an offset, e.g. 2025-03-04T09:30:00+08:00",
            )),
        }
    }
    let mut uint = |f: &str| -> Option<u32> {
        let v = get(f)?;
        match v.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.push(FieldError::new(f, "expected a whole number ≥ 0"));
                None
            }
        }
    };
    r.channel = uint("channel");
    r.t_line = uint("t_line");
    r.c_line = uint("c_line");
    r.cutoff = uint("cutoff");
    let mut num = |f: &str| -> Option<f64> {
        let v = get(f)?;
        match v.parse::<f64>() {
            Ok(n) if n.is_finite() => Some(n),
            _ => {
                errors.push(FieldError::new(f, "expected a number"));
                None
            }
        }
    };
    r.delta_a0 = num("delta_a0");
    r.delta_at = num("delta_at");
    r.recomputed_rate = num("recomputed_rate");
    if let Some(s) = get("standard") {
        if s.len() <= 8 && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            r.standard = Some(s.into());
        } else {
            errors.push(FieldError::new(
                "standard",
                "expected the code of a standard as the reader sent it (e.g. 00, 01)",
            ));
        }
    }
    if let Some(a) = get("assay_format") {
        if a == "competitive" || a == "sandwich" {
            r.assay_format = Some(a.into());
        } else {
            errors.push(FieldError::new(
                "assay_format",
                "expected competitive or sandwich",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let content_hash = hash_cells(&cells);
    Ok(Row {
        id,
        market,
        stall: get("stall").map(str::to_string),
        reading: r,
        received_at,
        content_hash,
    })
}

pub use crate::charset::decode_text;

/// One CSV row: its cells and its text (the raw bytes kept with its reading).
#[derive(Debug)]
pub struct CsvRow {
    pub cells: Cells,
    pub raw: String,
}

/// Split a CSV upload (header row first) into rows. `Err` when it is not CSV at all.
pub fn csv_rows(text: &str) -> Result<Vec<CsvRow>, String> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| format!("cannot read the CSV header: {e}"))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if !headers.iter().any(|h| h == "id") {
        return Err("the CSV header has no `id` column: not an upload of result rows".into());
    }
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let start = rdr.position().byte() as usize;
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(format!("CSV: {e}")),
        }
        let end = rdr.position().byte() as usize;
        let raw = text
            .get(start..end)
            .unwrap_or_default()
            .trim_end()
            .to_string();
        let mut cells = Cells::new();
        for (h, v) in headers.iter().zip(record.iter()) {
            cells.insert(h.clone(), Some(v.to_string()));
        }
        out.push(CsvRow { cells, raw });
    }
    Ok(out)
}
