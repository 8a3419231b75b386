//! The demo's testing contractor: a lab that tests a handful of markets for the city and
//! uploads its results, a batch every few seconds, over the real API with a contractor token.

use super::client::{self, request, HttpClient};
use chrono::{FixedOffset, Utc};
use foodgate_parsers::synth::Rng;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;

/// The markets the contractor's token covers.
pub const MARKETS: [&str; 6] = [
    "ZB-0040", "ZB-0041", "ZB-0042", "ZB-0043", "ZB-0044", "ZB-0045",
];
/// Name of its token.
pub const TOKEN_NAME: &str = "demo-contractor";
/// Between two uploads.
pub const EVERY: Duration = Duration::from_secs(10);
/// One row in this many fails.
const FAIL_ONE_IN: u64 = 12;

/// What one lab result is: commodity, category, analyte, unit, passing and failing ranges
/// (in thousandths of the unit).
struct Test {
    names: &'static [&'static str],
    category: &'static str,
    analyte: &'static str,
    method: &'static str,
    unit: &'static str,
    pass: (u64, u64),
    fail: (u64, u64),
}

const TESTS: [Test; 4] = [
    Test {
        names: &["菠菜", "小白菜", "芹菜", "油麦菜"],
        category: "leafy_vegetable",
        analyte: "omethoate",
        method: "GB 23200.113-2018",
        unit: "mg/kg",
        pass: (1, 15),
        fail: (30, 200),
    },
    Test {
        names: &["韭菜", "生菜", "菠菜"],
        category: "leafy_vegetable",
        analyte: "chlorpyrifos",
        method: "GB 23200.113-2018",
        unit: "mg/kg",
        pass: (1, 15),
        fail: (40, 300),
    },
    Test {
        names: &["猪肉", "牛肉", "羊肉"],
        category: "livestock_meat",
        analyte: "enrofloxacin",
        method: "GB/T 21312-2007",
        unit: "ug/kg",
        pass: (2_000, 80_000),
        fail: (120_000, 400_000),
    },
    Test {
        names: &["草鱼", "鲫鱼", "鲈鱼"],
        category: "aquatic_product",
        analyte: "formaldehyde",
        method: "SC/T 3025-2006",
        unit: "mg/kg",
        pass: (500, 6_000),
        fail: (12_000, 40_000),
    },
];

/// The rows of upload number `batch` (4 to 8 rows).
pub fn rows(rng: &mut Rng, batch: u64, offset: FixedOffset) -> Vec<Value> {
    let now = Utc::now().with_timezone(&offset);
    let n = rng.range(4, 8);
    (0..n)
        .map(|i| {
            let t = &TESTS[rng.below(TESTS.len() as u64) as usize];
            let fail = rng.chance(1, FAIL_ONE_IN);
            let (lo, hi) = if fail { t.fail } else { t.pass };
            let value = rng.range(lo, hi) as f64 / 1000.0;
            let market = MARKETS[rng.below(MARKETS.len() as u64) as usize];
            json!({
                "id": format!("LAB-{batch:05}-{i:02}"),
                "market": market,
                "stall": format!("B{:02}", rng.range(1, 30)),
                "sample_id": format!("QC{}{batch:05}{i:02}", now.format("%y%m%d")),
                "sample_name": t.names[rng.below(t.names.len() as u64) as usize],
                "category": t.category,
                "analyte": t.analyte,
                "method": t.method,
                "value": value,
                "unit": t.unit,
                "measured_at": (now - chrono::Duration::minutes(rng.range(5, 90) as i64)).to_rfc3339(),
                "instrument": "LAB-LCMS-02",
                "tester": "质检员",
            })
        })
        .collect()
}

/// Upload a batch every [`EVERY`] (the first at once) until `stop`.
pub async fn run(
    api: SocketAddr,
    token: String,
    offset: FixedOffset,
    mut stop: watch::Receiver<bool>,
) {
    let client = client::new();
    let url = format!("http://{api}/api/v1/results");
    let mut rng = Rng::new(2026);
    let mut batch = 0u64;
    loop {
        batch += 1;
        let body = Value::Array(rows(&mut rng, batch, offset)).to_string();
        match upload(&client, &url, &token, body).await {
            Ok(summary) => tracing::info!("contractor {TOKEN_NAME}: upload {batch}: {summary}"),
            Err(e) => tracing::warn!("contractor {TOKEN_NAME}: upload {batch} failed: {e}"),
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// POST one batch; a summary of the answer (`5 stored (1 fail)`).
async fn upload(
    client: &HttpClient,
    url: &str,
    token: &str,
    body: String,
) -> Result<String, String> {
    let answer = request(client, "POST", url, token, Some(body)).await?;
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    let count = |k: &str, v: &str| results.iter().filter(|r| r[k] == v).count();
    Ok(format!(
        "{} stored, {} rejected ({} fail)",
        count("status", "stored"),
        count("status", "rejected"),
        count("verdict", "fail")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::rows::{json_cells, parse_row};
    use crate::judge::{Judge, Verdict};

    #[test]
    fn rows_are_valid_uploads_that_pass_or_fail_as_drawn() {
        let judge = Judge::builtin();
        let aliases = judge.reference().alias_table();
        let offset = FixedOffset::east_opt(8 * 3600).expect("offset");
        let mut rng = Rng::new(5);
        let (mut pass, mut fail) = (0, 0);
        for batch in 0..100 {
            for row in rows(&mut rng, batch, offset) {
                let cells = json_cells(&row.to_string()).expect("cells");
                let parsed = parse_row(cells, &judge, &aliases).expect("valid row");
                let judged = judge.judged(parsed.reading);
                match judged.verdict {
                    Verdict::Pass => pass += 1,
                    Verdict::Fail => fail += 1,
                    v => panic!("{row}: {v:?} {}", judged.reason),
                }
                assert!(MARKETS.contains(&parsed.market.as_str()));
            }
        }
        // About one in twelve fails.
        assert!(
            fail * 20 > pass && fail * 6 < pass,
            "{fail} fail, {pass} pass"
        );
    }
}
