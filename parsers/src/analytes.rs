//! Instrument test codes to canonical analyte ids (`docs/judging.md`, "The reference data").

use crate::reading::Text;
use rustc_hash::FxHashMap;
use std::sync::OnceLock;

const BUILTIN: &str = include_str!("analytes.txt");

/// A line of an alias file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AliasError {
    #[error("line {line}: expected `canonical_id: alias, alias, …`")]
    Syntax { line: usize },
    #[error("line {line}: {id:?} is not a canonical id (lowercase letters, digits and _)")]
    BadId { line: usize, id: String },
    #[error("line {line}: alias {alias:?} already names {existing}")]
    Duplicate {
        line: usize,
        alias: String,
        existing: String,
    },
}

/// Case-insensitive map from test codes and names to canonical analyte ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AliasTable {
    /// Looked up once per reading with short keys: a fast non-cryptographic hash (the
    /// keys come from our own reference data, not from the wire). Keys are lowercased
    /// bytes, so a lookup needs no UTF-8 check; ids are kept as `Text`, so handing one to a
    /// reading is a copy, not an allocation.
    map: FxHashMap<Box<[u8]>, Text>,
}

fn key(code: &str) -> Box<[u8]> {
    code.trim().to_lowercase().into_bytes().into_boxed_slice()
}

/// Whether `id` has the shape of a canonical analyte id.
pub fn is_canonical_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl AliasTable {
    /// The table shipped with foodgate.
    pub fn builtin() -> &'static AliasTable {
        static TABLE: OnceLock<AliasTable> = OnceLock::new();
        TABLE.get_or_init(|| AliasTable::parse(BUILTIN).expect("the built-in alias table parses"))
    }

    /// Parse the `canonical_id: alias, …` line format; `#` starts a comment line.
    pub fn parse(text: &str) -> Result<Self, AliasError> {
        let mut table = AliasTable::default();
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (id, aliases) = l.split_once(':').ok_or(AliasError::Syntax { line })?;
            let id = id.trim();
            if !is_canonical_id(id) {
                return Err(AliasError::BadId {
                    line,
                    id: id.to_string(),
                });
            }
            let names = std::iter::once(id).chain(
                aliases
                    .split([',', '，'])
                    .map(str::trim)
                    .filter(|a| !a.is_empty()),
            );
            for name in names {
                let k = key(name);
                match table.map.get(&k) {
                    Some(existing) if existing != id => {
                        return Err(AliasError::Duplicate {
                            line,
                            alias: name.to_string(),
                            existing: existing.to_string(),
                        })
                    }
                    _ => {
                        table.map.insert(k, Text::from(id));
                    }
                }
            }
        }
        Ok(table)
    }

    /// Add or replace one code (per-instrument `aliases` in configuration).
    pub fn insert(&mut self, code: &str, canonical: &str) {
        self.map.insert(key(code), Text::from(canonical));
    }

    /// The canonical id for `code`, if any.
    pub fn lookup(&self, code: &str) -> Option<&str> {
        self.lookup_text(code).map(Text::as_str)
    }

    fn lookup_text(&self, code: &str) -> Option<&Text> {
        let code = code.trim();
        // Instrument codes are short ASCII: lowercase them on the stack, not the heap.
        let mut buf = [0u8; 32];
        if code.len() <= buf.len() && code.is_ascii() {
            let b = &mut buf[..code.len()];
            b.copy_from_slice(code.as_bytes());
            b.make_ascii_lowercase();
            return self.map.get(&*b);
        }
        self.map.get(&*key(code))
    }

    /// The canonical id for `code`, else `unknown:<code>`.
    pub fn canonical(&self, code: &str) -> Text {
        match self.lookup_text(code) {
            Some(id) => id.clone(),
            None => compact_str::format_compact!("unknown:{}", code.trim()),
        }
    }

    /// Every canonical id in the table, sorted.
    pub fn canonical_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.map.values().map(Text::as_str).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_covers_limits_md() {
        let t = AliasTable::builtin();
        assert_eq!(t.canonical_ids().len(), 19);
        assert_eq!(t.lookup("opi"), Some("op_carbamate"));
        assert_eq!(t.lookup(" 农残 "), Some("op_carbamate"));
        assert_eq!(t.lookup("Clenbuterol"), Some("clenbuterol"));
        assert_eq!(t.lookup("硼酸"), Some("borax"));
        assert_eq!(t.canonical("WBC"), "unknown:WBC");
    }

    #[test]
    fn overrides_and_errors() {
        let mut t = AliasTable::builtin().clone();
        t.insert("PEST", "op_carbamate");
        assert_eq!(t.lookup("pest"), Some("op_carbamate"));
        assert_eq!(
            AliasTable::parse("nope"),
            Err(AliasError::Syntax { line: 1 })
        );
        assert!(matches!(
            AliasTable::parse("a: X\nb: x"),
            Err(AliasError::Duplicate { line: 2, .. })
        ));
        assert!(matches!(
            AliasTable::parse("Bad Id: x"),
            Err(AliasError::BadId { line: 1, .. })
        ));
    }
}
