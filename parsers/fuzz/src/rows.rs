//! The upload row target: a `POST /api/v1/results` body, read as JSON and as CSV (UTF-8,
//! GBK, or guessed), every row validated and every valid row judged. Nothing may panic.

use foodgate::api::results::body_rows;
use foodgate::api::rows::parse_row;
use foodgate::judge::Judge;
use foodgate_parsers::AliasTable;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use std::sync::LazyLock;

static JUDGE: LazyLock<Judge> = LazyLock::new(Judge::builtin);

const CONTENT_TYPES: [Option<&str>; 5] = [
    None,
    Some("application/json"),
    Some("text/csv"),
    Some("text/csv; charset=utf-8"),
    Some("text/csv; charset=gbk"),
];

/// Every way the service reads an upload body, on `data`.
pub fn check_upload(data: &[u8]) {
    let aliases = AliasTable::builtin();
    for ctype in CONTENT_TYPES {
        let mut headers = HeaderMap::new();
        if let Some(c) = ctype {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(c));
        }
        let Ok(rows) = body_rows(&headers, data) else {
            continue;
        };
        for (cells, _raw) in rows {
            let Ok(cells) = cells else { continue };
            if let Ok(row) = parse_row(cells, &JUDGE, aliases) {
                let _ = JUDGE.judged(row.reading);
            }
        }
    }
}
