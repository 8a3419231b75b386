//! A platform's codes for foodgate's values (`docs/platforms.md`): `[items]` analyte id → item
//! code, `[foods]` food category → food code, `[stalls]` `"<market>/<stall>"` → stall code,
//! `[markets]` market → enterprise or entity code, `[devices]` instrument id → device number.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest codes file read (a city's stalls fit many times over).
const MAX_FILE: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CodesError {
    #[error("{file}: cannot read: {message}")]
    Read { file: String, message: String },
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
}

/// The tables of a codes file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Codes {
    #[serde(default)]
    pub items: BTreeMap<String, String>,
    #[serde(default)]
    pub foods: BTreeMap<String, String>,
    #[serde(default)]
    pub stalls: BTreeMap<String, String>,
    #[serde(default)]
    pub markets: BTreeMap<String, String>,
    #[serde(default)]
    pub devices: BTreeMap<String, String>,
    /// Where it was read from, for messages.
    #[serde(skip)]
    pub file: PathBuf,
}

/// A value the codes file has no code for: the event goes dead with this message until the
/// file is fixed and the event retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("missing code: {table}.{key:?} is not in {file} (add it and run `foodgate outbox retry`)")]
pub struct MissingCode {
    pub table: &'static str,
    pub key: String,
    pub file: String,
}

impl Codes {
    pub fn load(path: &Path) -> Result<Codes, CodesError> {
        let file = path.display().to_string();
        let read = |message: String| CodesError::Read {
            file: file.clone(),
            message,
        };
        let meta = std::fs::metadata(path).map_err(|e| read(e.to_string()))?;
        if meta.len() > MAX_FILE {
            return Err(read(format!("larger than {MAX_FILE} bytes")));
        }
        let text = std::fs::read_to_string(path).map_err(|e| read(e.to_string()))?;
        let mut codes: Codes = toml::from_str(&text).map_err(|e| CodesError::Syntax {
            file: file.clone(),
            message: e.to_string(),
        })?;
        codes.file = path.to_path_buf();
        Ok(codes)
    }

    /// The code of `key` in `table` (one of the five names above).
    pub fn code(&self, table: &'static str, key: &str) -> Result<&str, MissingCode> {
        let map = match table {
            "items" => &self.items,
            "foods" => &self.foods,
            "stalls" => &self.stalls,
            "markets" => &self.markets,
            _ => &self.devices,
        };
        map.get(key)
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| MissingCode {
                table,
                key: key.to_string(),
                file: self.file.display().to_string(),
            })
    }
}
