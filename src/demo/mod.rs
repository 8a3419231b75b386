//! The parts of `foodgate demo`: the whole system on one machine with nothing attached.
//!
//! - [`receiver`]: the upstream a city's blocking system would be; checks signatures, logs
//!   each event it gets.
//! - [`instruments`]: one simulated analyzer per protocol, on pty pairs and TCP.
//! - [`contractor`]: a testing lab uploading result rows over the API with its own token.
//! - [`history`]: thirty days of past readings through the real judge and store.
//!
//! The command itself (`src/cli/demo.rs`) wires them around the same service body as `serve`.

pub mod client;
pub mod contractor;
pub mod history;
pub mod inspector;
pub mod instruments;
pub mod receiver;

use crate::auth::{self, NewToken, Role, TokenError};
use crate::store::{Store, StoreError};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

/// Name of the regulator token the demo prints.
pub const REGULATOR: &str = "demo-regulator";
/// Name of the upstream the receiver is configured as.
pub const UPSTREAM: &str = "demo-receiver";
/// The market whose board the demo points to: its enzyme photometer prints every few seconds.
pub const BOARD_MARKET: &str = "ZB-0003";

/// The demo's configuration: a fresh data directory, the built-in registry and limits, one
/// instrument per analyzer, and the receiver as an upstream of failures.
pub fn config_text(
    data_dir: &Path,
    listen: SocketAddr,
    receiver_url: &str,
    secret: &str,
    analyzers: &[instruments::Analyzer],
) -> String {
    let mut text = format!(
        "# Written by `foodgate demo`.\n[server]\nlisten = \"{listen}\"\ndata_dir = {:?}\nutc_offset = \"+08:00\"\n\n",
        data_dir.display().to_string()
    );
    for a in analyzers {
        text.push_str(&a.config_toml());
        text.push('\n');
    }
    text.push_str(&format!(
        "[[upstream]]\nname = \"{UPSTREAM}\"\nurl = {receiver_url:?}\nsend = \"failures\"\nformat = \"events\"\nsecret = {secret:?}\ntimeout_s = 5\n"
    ));
    text
}

/// The regulator's and the contractor's tokens, in that order.
pub fn create_tokens(store: &Store) -> Result<(String, String, String), StoreError> {
    let made = store.write(|tx| {
        let make = |name: &str, role: Role, markets: Vec<String>| {
            auth::create(
                tx,
                &NewToken {
                    name: name.to_string(),
                    role,
                    markets,
                    expires_days: None,
                },
                "demo",
            )
        };
        let regulator = make(REGULATOR, Role::Regulator, Vec::new());
        let contractor = make(
            contractor::TOKEN_NAME,
            Role::Contractor,
            contractor::MARKETS.iter().map(|m| m.to_string()).collect(),
        );
        let inspector = make(inspector::TOKEN_NAME, Role::Station, inspector::markets());
        Ok(regulator.and_then(|r| contractor.and_then(|c| inspector.map(|i| (r, c, i)))))
    })?;
    made.map_err(|e| match e {
        TokenError::Sqlite(e) => StoreError::Sqlite(e),
        other => StoreError::NotCommitted(other.to_string()),
    })
}

/// An address a browser on this machine can open: `0.0.0.0` and `::` mean every interface.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// Where the regulator opens the dashboard: a sign-in link with a one-time code (valid 10
/// minutes, single use; never a token in a URL) that lands on `/dashboard`. After that,
/// the printed token signs in at `/login`.
pub async fn dashboard_url(store: &Store, token_name: &str, addr: SocketAddr) -> String {
    let name = token_name.to_string();
    let code = store
        .write_async(move |tx| crate::web::issue_signin_code(tx, &name, chrono::Utc::now()))
        .await;
    match code {
        Ok(code) => format!(
            "http://{}/login?code={code}&next=/dashboard",
            reachable(addr)
        ),
        Err(e) => {
            tracing::warn!("cannot make a sign-in code: {e}; sign in with the token");
            format!("http://{}/login?next=/dashboard", reachable(addr))
        }
    }
}

/// The public board of `market`.
pub fn board_url(addr: SocketAddr, market: &str) -> String {
    format!("http://{}/markets/{market}/board", reachable(addr))
}
