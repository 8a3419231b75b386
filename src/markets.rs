//! The market registry: `foodgate markets import FILE.csv` and the built-in registry.
//!
//! Header `code,name,district,type,quota` (any order, UTF-8 or GBK). Good lines are upserted
//! in one transaction; bad ones are reported by line number and change nothing.
//!
//! The built-in registry (the 484 demo markets `ZB-0001` … `ZB-0484`, named as the city's
//! real registry looks, every name marked 演示) is product data, not schema: a new database
//! has no markets until `foodgate markets import --builtin` (or `foodgate demo`) loads it.

use crate::charset::decode_text;
use crate::store::audit::audit;
use crate::store::insert::rfc3339;
use crate::store::{markets, Store, Tx};
use chrono::Utc;

/// One registry line, checked.
pub use crate::store::markets::MarketRow;

/// A bad line: its 1-based line number in the file and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: u64,
    pub message: String,
}

/// Parse a registry file. `Err` when the file as a whole is unusable (encoding, header).
pub fn parse(bytes: &[u8]) -> Result<(Vec<MarketRow>, Vec<LineError>), String> {
    let text = decode_text(bytes, None)?;
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| format!("line 1: cannot read the header: {e}"))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(c_code), Some(c_name), Some(c_district), Some(c_type), Some(c_quota)) = (
        col("code"),
        col("name"),
        col("district"),
        col("type"),
        col("quota"),
    ) else {
        return Err(format!(
            "line 1: the header must name code,name,district,type,quota (found {})",
            headers.join(",")
        ));
    };
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                bad.push(LineError {
                    line,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let line = rec.position().map_or(0, |p| p.line());
        let cell = |i: usize| rec.get(i).unwrap_or("").trim().to_string();
        let code = cell(c_code);
        let quota = cell(c_quota);
        let mut problems = Vec::new();
        if code.is_empty() {
            problems.push("code is empty".to_string());
        } else if code.len() > 64 || code.chars().any(|c| c.is_control() || c == ' ') {
            problems.push(format!(
                "code {code:?} has spaces or control characters or is too long"
            ));
        }
        let quota = match quota.parse::<u32>() {
            Ok(q) if q <= 100_000 => Some(q),
            _ => {
                problems.push(format!(
                    "quota {quota:?} is not a whole number from 0 to 100000"
                ));
                None
            }
        };
        if let Some(first) = seen.get(&code) {
            problems.push(format!("code {code:?} already on line {first}"));
        }
        match (problems.is_empty(), quota) {
            (true, Some(quota)) => {
                seen.insert(code.clone(), line);
                good.push(MarketRow {
                    code,
                    name: cell(c_name),
                    district: cell(c_district),
                    kind: cell(c_type),
                    quota,
                })
            }
            _ => bad.push(LineError {
                line,
                message: problems.join("; "),
            }),
        }
    }
    Ok((good, bad))
}

/// The built-in registry as CSV, in the import format.
pub const BUILTIN_CSV: &str = include_str!("markets/builtin.csv");

/// The markets of the built-in registry (every line of it is good: a unit test checks).
pub fn builtin() -> Vec<MarketRow> {
    parse(BUILTIN_CSV.as_bytes())
        .map(|(good, _)| good)
        .unwrap_or_default()
}

/// Upsert the built-in registry (audited as `actor`); returns (inserted, updated).
pub fn import_builtin(tx: &Tx<'_>, actor: &str) -> rusqlite::Result<(usize, usize)> {
    upsert(tx, &builtin(), actor)
}

/// Say at start when the registry is empty: every reading would be refused (unknown market)
/// until markets are imported.
pub fn warn_if_registry_empty(store: &Store) {
    let count = store
        .reader()
        .map_err(|e| e.to_string())
        .and_then(|conn| markets::count(&conn).map_err(|e| e.to_string()));
    match count {
        Ok(0) => tracing::warn!(
            "the market registry is empty: every reading is refused until markets are imported \
             (`foodgate markets import FILE.csv`, or `foodgate markets import --builtin` for the \
             484 built-in demo markets)"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot count the registered markets: {e}"),
    }
}

/// Upsert `rows` (audited as `actor`); returns (inserted, updated).
pub fn upsert(tx: &Tx<'_>, rows: &[MarketRow], actor: &str) -> rusqlite::Result<(usize, usize)> {
    let done = markets::upsert(tx, rows, &rfc3339(Utc::now()))?;
    audit(
        tx,
        actor,
        "markets.import",
        None,
        &serde_json::json!({"inserted": done.inserted, "updated": done.updated}),
    )?;
    Ok((done.inserted, done.updated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_registry_has_484_good_markets() {
        let (good, bad) = parse(BUILTIN_CSV.as_bytes()).expect("parses");
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(good.len(), 484);
        assert_eq!(good[0].code, "ZB-0001");
        assert_eq!(good[0].name, "张店区城乡农贸市场001（演示）");
        assert_eq!(good[483].code, "ZB-0484");
        assert!(good
            .iter()
            .all(|m| m.quota == 10 && m.name.ends_with("（演示）")));
    }

    #[test]
    fn parses_gbk_and_reports_bad_lines() {
        let text = "code,name,district,type,quota\nZB-0001,东门市场,罗湖,farmers,12\n,x,y,z,3\nZB-0002,b,c,d,many\nZB-0001,again,c,d,1\n";
        let (gbk, _, _) = encoding_rs::GBK.encode(text);
        let (good, bad) = parse(&gbk).expect("parses");
        assert_eq!(good.len(), 1);
        assert_eq!(good[0].name, "东门市场");
        assert_eq!(good[0].quota, 12);
        let lines: Vec<u64> = bad.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 5]);
        assert!(bad[1].message.contains("quota"));
        assert!(bad[2].message.contains("line 2"));
        assert!(parse(b"a,b\n1,2\n").is_err());
    }
}
