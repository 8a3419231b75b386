//! What the writer needs to know beyond the rows themselves, from the config.

use crate::config::{Config, Format, SendMode};
use chrono::FixedOffset;

/// Where the store sends what, from the config.
#[derive(Debug, Clone)]
pub struct Route {
    pub upstream: String,
    pub send: SendMode,
    pub format: Format,
}

/// What the writer needs to know beyond the rows themselves.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// The offset whose local day a reading counts in (`server.utc_offset`).
    pub utc_offset: FixedOffset,
    /// One entry per `[[upstream]]`: each makes its own outbox rows.
    pub routes: Vec<Route>,
    /// Judges again a reading that takes the category of a registered sample (the category
    /// decides the limit): the one the readings were judged with before they came here.
    pub judge: crate::judge::Judge,
    /// Some reading was stored before migration 0013, with the key of its identity alone
    /// (see [`identity::reading_key`]): duplicates are looked for under both keys.
    /// [`Store::open`] finds out; true is always correct, only slower.
    pub legacy_identity_keys: bool,
    /// `server.resample_days`: when a confirmed hold without a passing re-sample is overdue.
    pub resample_days: u32,
    /// `server.trace_days`: how far back a supplier's batch reaches (`super::trace`).
    pub trace_days: u32,
}

impl StoreSettings {
    pub fn from_config(c: &Config) -> Self {
        StoreSettings {
            utc_offset: c.utc_offset,
            routes: c
                .upstreams
                .iter()
                .map(|u| Route {
                    upstream: u.name.clone(),
                    send: u.send,
                    format: u.format,
                })
                .collect(),
            judge: crate::judge::Judge::builtin(),
            legacy_identity_keys: true,
            resample_days: c.resample_days,
            trace_days: c.trace_days,
        }
    }

    /// The same settings judging with `judge` (a `limits =` file of the config).
    pub fn with_judge(mut self, judge: crate::judge::Judge) -> Self {
        self.judge = judge;
        self
    }
}
