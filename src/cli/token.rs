//! `foodgate token create|list|revoke`.

use crate::auth::{self, NewToken, Role, TokenError};
use crate::config::Config;
use crate::store::{Store, StoreError, StoreSettings};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Configuration file (default: the embedded configuration).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token and print it once, alone on the last line (only its hash is stored).
    Create {
        /// station, contractor, regulator or admin.
        #[arg(long)]
        role: Role,
        /// A market the token may act for (station and contractor; repeat for several).
        #[arg(long = "market")]
        markets: Vec<String>,
        /// Name shown in the audit log and `token list` (default: ROLE-<random>).
        #[arg(long)]
        name: Option<String>,
        /// The token stops working after this many days.
        #[arg(long)]
        expires_days: Option<u32>,
    },
    /// The tokens: name, role, markets, created, last used, expiry (never the token).
    List,
    /// Revoke a token by name.
    Revoke { name: String },
}

impl clap::ValueEnum for Role {
    fn value_variants<'a>() -> &'a [Self] {
        &Role::ALL
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

fn open(config: Option<&std::path::Path>) -> anyhow::Result<Result<Store, ExitCode>> {
    let config = match Config::load_or_default(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("foodgate: {e}");
            return Ok(Err(ExitCode::from(2)));
        }
    };
    let store = Store::open(&config.database_path(), StoreSettings::from_config(&config))
        .with_context(|| format!("cannot open the store {}", config.database_path().display()))?;
    Ok(Ok(store))
}

pub fn run(args: TokenArgs) -> anyhow::Result<ExitCode> {
    let store = match open(args.config.as_deref())? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let code = match args.command {
        TokenCommand::Create {
            role,
            markets,
            name,
            expires_days,
        } => {
            let name = match name {
                Some(n) if !n.trim().is_empty() => n.trim().to_string(),
                Some(_) => {
                    eprintln!("foodgate: --name: must not be empty");
                    store.close();
                    return Ok(ExitCode::from(2));
                }
                None => {
                    let suffix = auth::generate_token().map_err(|e| {
                        anyhow::anyhow!("the OS random number generator failed: {e}")
                    })?;
                    format!("{role}-{}", suffix.get(3..11).unwrap_or("0"))
                }
            };
            let new = NewToken {
                name,
                role,
                markets,
                expires_days,
            };
            let shown = new.clone();
            let r = store.write(move |tx| Ok(auth::create(tx, &new, "cli")));
            match r {
                Ok(Ok(token)) => {
                    println!(
                        "token {:?}: role {}{}{} (shown once: store it now)",
                        shown.name,
                        shown.role,
                        if shown.markets.is_empty() {
                            String::new()
                        } else {
                            format!(", markets {}", shown.markets.join(","))
                        },
                        shown
                            .expires_days
                            .map(|d| format!(", expires in {d} days"))
                            .unwrap_or_default()
                    );
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Ok(Err(
                    e @ (TokenError::NameTaken(_)
                    | TokenError::UnknownMarket(_)
                    | TokenError::NeedsMarket(_)
                    | TokenError::MarketNotAllowed(_)),
                )) => {
                    eprintln!("foodgate: {e}");
                    ExitCode::from(2)
                }
                Ok(Err(e)) => {
                    eprintln!("foodgate: {e}");
                    ExitCode::from(1)
                }
                Err(e) => return Err(store_err(&store, e)),
            }
        }
        TokenCommand::List => {
            let conn = store.reader()?;
            let tokens = crate::store::tokens::list(&conn)?;
            for t in &tokens {
                println!("{}", serde_json::to_string(t)?);
            }
            ExitCode::SUCCESS
        }
        TokenCommand::Revoke { name } => {
            let n = name.clone();
            match store.write(move |tx| Ok(auth::revoke(tx, &n, "cli"))) {
                Ok(Ok(())) => {
                    println!("token {name:?} revoked");
                    ExitCode::SUCCESS
                }
                Ok(Err(e)) => {
                    eprintln!("foodgate: {e}");
                    ExitCode::from(1)
                }
                Err(e) => return Err(store_err(&store, e)),
            }
        }
    };
    store.close();
    Ok(code)
}

fn store_err(store: &Store, e: StoreError) -> anyhow::Error {
    store.close();
    anyhow::Error::new(e)
}
