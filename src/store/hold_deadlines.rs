//! The deadline of the positive workflow: a hold on the confirmed path (confirmed, stopped,
//! lab, destroyed) whose failed test is more than `resample_days` old and that has no passing
//! re-sample is overdue. The service looks every [`DEADLINE_EVERY`]; the first time a hold is
//! found overdue its history says so and a `hold.overdue` event goes upstream, once.

use super::codec::rfc3339;
use super::events::EventKind;
use super::hold_actions::{queue_hold_event, subject};
use super::holds::{add_history, overdue_cutoff, HistoryEntry, OVERDUE};
use super::{StoreSettings, Tx};
use chrono::{DateTime, Utc};
use rusqlite::params;

/// How many holds are overdue at `now` (`/metrics`).
pub fn count_overdue(
    db: &impl super::Db,
    settings: &StoreSettings,
    markets: Option<&[String]>,
    now: DateTime<Utc>,
) -> rusqlite::Result<i64> {
    let scope = markets.map(super::codec::to_json);
    let sql = format!(
        "SELECT count(*) FROM holds h JOIN readings r ON r.id = h.reading WHERE {OVERDUE}
         AND (?2 IS NULL OR h.market IN (SELECT value FROM json_each(?2)))"
    );
    db.connection()
        .prepare_cached(&sql)?
        .query_row(params![overdue_cutoff(settings, now), scope], |r| r.get(0))
}

/// Find the holds that became overdue and were not yet reported, note it in each one's
/// history and queue its `hold.overdue` event (once per hold). Returns how many.
pub fn queue_overdue(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    now: DateTime<Utc>,
) -> rusqlite::Result<usize> {
    let sql = format!(
        "SELECT h.id FROM holds h JOIN readings r ON r.id = h.reading
         WHERE {OVERDUE} AND h.overdue_at IS NULL ORDER BY h.created_at LIMIT 1000"
    );
    let due: Vec<String> = tx
        .prepare_cached(&sql)?
        .query_map([overdue_cutoff(settings, now)], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let at = rfc3339(now);
    for hold in &due {
        let Some(s) = subject(tx.conn(), hold)? else {
            continue;
        };
        tx.prepare_cached("UPDATE holds SET overdue_at = ?1 WHERE id = ?2")?
            .execute(params![at, hold])?;
        let entry = HistoryEntry {
            action: Some("overdue".into()),
            fields: None,
            ..HistoryEntry::new(
                &at,
                s.status,
                "foodgate",
                format!(
                    "overdue: no passing re-sample within {} days of the failed test ({})",
                    settings.resample_days, s.tested_at
                ),
            )
        };
        add_history(tx, hold, &entry)?;
        super::hold_mirror::queue_hold_state(tx, settings, hold)?;
        queue_hold_event(
            tx,
            settings,
            &s,
            hold,
            EventKind::HoldOverdue,
            0,
            s.status,
            &at,
        )?;
    }
    Ok(due.len())
}

/// How often the service looks for holds that became overdue.
pub const DEADLINE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Look for overdue holds now and then every [`DEADLINE_EVERY`] until `stop` turns true; a
/// failed pass is logged and tried again next time.
pub fn spawn_deadlines(
    store: super::Store,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let settings = store.settings().clone();
            let pass = store.write_async(move |tx| queue_overdue(tx, &settings, Utc::now()));
            tokio::select! {
                done = pass => match done {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(holds = n, "holds overdue: no passing re-sample in time"),
                    Err(e) => tracing::warn!("overdue holds: {e}"),
                },
                _ = stop.wait_for(|s| *s) => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(DEADLINE_EVERY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}
