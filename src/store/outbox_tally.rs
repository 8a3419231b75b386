//! The changes to each upstream's outbox counts a job makes, written once when it ends.

use rusqlite::{params, Connection};

/// Changes to `outbox_upstreams` noted during a job.
#[derive(Debug, Default)]
pub struct Moves {
    by_upstream: Vec<Move>,
}

/// An upstream's pending, delivered and dead deltas, and its latest failed answer and when.
type Move = (String, [i64; 3], Option<(String, i64)>);

impl Moves {
    fn slot(status: &str) -> Option<usize> {
        match status {
            "pending" => Some(0),
            "delivered" => Some(1),
            "dead" => Some(2),
            _ => None,
        }
    }

    pub(crate) fn note(
        &mut self,
        upstream: &str,
        from: Option<&str>,
        to: Option<&str>,
        n: i64,
        error: Option<(&str, i64)>,
    ) {
        if n == 0 && error.is_none() {
            return;
        }
        let at = match self.by_upstream.iter().position(|(u, ..)| u == upstream) {
            Some(at) => at,
            None => {
                self.by_upstream.push((upstream.to_string(), [0; 3], None));
                self.by_upstream.len() - 1
            }
        };
        let Some((_, counts, last)) = self.by_upstream.get_mut(at) else {
            return;
        };
        if let Some(c) = from.and_then(Self::slot).and_then(|i| counts.get_mut(i)) {
            *c -= n;
        }
        if let Some(c) = to.and_then(Self::slot).and_then(|i| counts.get_mut(i)) {
            *c += n;
        }
        if let Some((answer, at_ms)) = error {
            if last.as_ref().is_none_or(|(_, t)| *t <= at_ms) {
                *last = Some((answer.to_string(), at_ms));
            }
        }
    }

    /// Write the noted changes. The last error is forgotten once the upstream has nothing
    /// pending or dead.
    pub(crate) fn flush(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        for (upstream, [pending, delivered, dead], last) in self.by_upstream.drain(..) {
            let (error, error_ms) = last.map_or((None, None), |(a, t)| (Some(a), Some(t)));
            conn.prepare_cached(
                "INSERT INTO outbox_upstreams (upstream, pending, delivered, dead, last_error,
                    last_error_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (upstream) DO UPDATE SET pending = pending + ?2,
                    delivered = delivered + ?3, dead = dead + ?4,
                    last_error = CASE WHEN ?6 >= coalesce(last_error_ms, ?6) THEN ?5
                        ELSE last_error END,
                    last_error_ms = max(coalesce(last_error_ms, ?6), ?6)",
            )?
            .execute(params![upstream, pending, delivered, dead, error, error_ms])?;
            conn.prepare_cached(
                "UPDATE outbox_upstreams SET last_error = NULL, last_error_ms = NULL
                 WHERE upstream = ?1 AND pending = 0 AND dead = 0 AND last_error IS NOT NULL",
            )?
            .execute([&upstream])?;
        }
        Ok(())
    }
}
