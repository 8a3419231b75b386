//! The demo's market inspector: the printer, strip reader and spectrophotometer send no stall,
//! so a person at each of their markets names the stall of every failure (`PATCH
//! /api/v1/holds/{id}`), as a tester does from the sampling sheet. Upstream then gets the
//! corrected `sample.failed` naming the stall whose goods are blocked.

use super::client::{self, request, HttpClient};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;

/// Name of the inspector's station token.
pub const TOKEN_NAME: &str = "demo-inspector";
/// Between two rounds.
pub const EVERY: Duration = Duration::from_secs(5);

/// The markets whose analyzers send no stall.
pub fn markets() -> Vec<String> {
    super::instruments::PLAN
        .iter()
        .filter(|p| !p.tcp)
        .map(|p| p.market.to_string())
        .collect()
}

/// The stall a hold's goods came from: drawn from the hold id, so the same hold always gets
/// the same stall.
pub fn stall_for(hold: &str) -> String {
    let h = hold
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("{}{:02}", ['A', 'B', 'C'][(h % 3) as usize], h / 3 % 30 + 1)
}

/// Name the stall of every held failure without one, every [`EVERY`], until `stop`.
pub async fn run(api: SocketAddr, token: String, mut stop: watch::Receiver<bool>) {
    let client = client::new();
    loop {
        match round(&client, api, &token).await {
            Ok(n) if n > 0 => {
                tracing::info!("inspector {TOKEN_NAME}: named the stall of {n} hold(s)")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("inspector {TOKEN_NAME}: {e}"),
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn round(client: &HttpClient, api: SocketAddr, token: &str) -> Result<usize, String> {
    let holds = request(
        client,
        "GET",
        &format!("http://{api}/api/v1/holds?status=held"),
        token,
        None,
    )
    .await?;
    let mut named = 0;
    for h in holds["holds"].as_array().cloned().unwrap_or_default() {
        let (Some(id), true) = (h["id"].as_str(), h["stall"].is_null()) else {
            continue;
        };
        let body = serde_json::json!({ "stall": stall_for(id) }).to_string();
        request(
            client,
            "PATCH",
            &format!("http://{api}/api/v1/holds/{id}"),
            token,
            Some(body),
        )
        .await?;
        named += 1;
    }
    Ok(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serial_markets_and_a_stable_stall() {
        assert_eq!(
            markets(),
            ["ZB-0003", "ZB-0007", "ZB-0012", "ZB-0051", "ZB-0052", "ZB-0068"]
        );
        let s = stall_for("h-123");
        assert_eq!(s, stall_for("h-123"));
        assert!(s.len() == 3 && s.starts_with(['A', 'B', 'C']), "{s}");
    }
}
