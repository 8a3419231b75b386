//! Public exposure (公开曝光, `docs/exposure.md`): the city's confirmed failures of a period —
//! a retest (or the laboratory) confirmed them, or the goods were destroyed — never a hold
//! that was released, is awaiting its retest, or is in review.

use rusqlite::params;
use serde::Serialize;

/// One confirmed failure as the exposure page and API show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exposed {
    /// When it was tested (measured, else received), RFC 3339.
    pub tested_at: String,
    pub market: String,
    pub market_name: Option<String>,
    pub stall: Option<String>,
    pub vendor: Option<String>,
    /// The commodity (the sample's name).
    pub commodity: Option<String>,
    /// The analyte id (pages show its Chinese name).
    pub analyte: String,
    pub value: Option<String>,
    pub unit: Option<String>,
    pub limit_value: Option<f64>,
    pub limit_unit: Option<String>,
    pub limit_source: Option<String>,
    #[serde(skip)]
    pub handling: super::Handling,
}

/// Most failures listed.
pub const EXPOSED_LIMIT: usize = 2000;

/// The confirmed failures tested on local days from `since` (`YYYY-MM-DD`) on, newest first.
pub fn exposed(db: &impl super::Db, since: &str) -> rusqlite::Result<Vec<Exposed>> {
    db.connection()
        .prepare_cached(
            "SELECT coalesce(r.measured_at, r.received_at) AS tested_at, h.market, m.name,
                    coalesce(h.stall, r.stall, s.stall), s.vendor,
                    coalesce(s.name, r.sample_name), r.analyte, r.value_text, r.unit,
                    r.limit_value, r.limit_unit, r.limit_source, h.status, h.destroyed_kg,
                    h.resample_reading IS NOT NULL
             FROM holds h JOIN readings r ON r.id = h.reading
             LEFT JOIN samples s ON s.id = h.sample_ref
             LEFT JOIN markets m ON m.code = h.market
             WHERE (h.status IN ('confirmed', 'stopped', 'lab', 'destroyed')
                    OR (h.status = 'closed' AND h.destroyed_at IS NOT NULL))
               AND r.local_day >= ?1
             ORDER BY tested_at DESC, h.id LIMIT ?2",
        )?
        .query_map(params![since, EXPOSED_LIMIT as i64], |r| {
            Ok(Exposed {
                tested_at: r.get(0)?,
                market: r.get(1)?,
                market_name: r.get(2)?,
                stall: r.get(3)?,
                vendor: r.get(4)?,
                commodity: r.get(5)?,
                analyte: r.get(6)?,
                value: r.get(7)?,
                unit: r.get(8)?,
                limit_value: r.get(9)?,
                limit_unit: r.get(10)?,
                limit_source: r.get(11)?,
                handling: super::Handling {
                    status: r.get(12)?,
                    destroyed_kg: r.get(13)?,
                    resampled: r.get(14)?,
                },
            })
        })?
        .collect()
}
