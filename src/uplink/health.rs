//! Whether an upstream is failing: one alert line in the log when it starts failing and one
//! when it recovers, not one per attempt (an upstream down for a day makes thousands).
//!
//! Up to [`super::IN_FLIGHT`] attempts run at once, so answers arrive out of order: an
//! attempt only changes the state if it started after the attempt that last changed it, so
//! a slow failure from before a recovery cannot flip the state back.

use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Default)]
pub struct Health {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Since when (wall clock, ms) and from which attempt start the upstream fails.
    failing: Option<(i64, Instant)>,
    /// Start of the attempt that last showed the upstream working.
    last_ok: Option<Instant>,
    failed_attempts: u64,
}

/// What `/metrics` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSnapshot {
    pub failing: bool,
    pub failing_since_ms: Option<i64>,
    pub failed_attempts: u64,
}

impl Health {
    /// An attempt started at `started` failed with `answer`.
    pub fn failed(&self, upstream: &str, started: Instant, now_ms: i64, answer: &str) {
        let Ok(mut s) = self.state.lock() else { return };
        if s.last_ok.is_some_and(|ok| started < ok) {
            return;
        }
        s.failed_attempts += 1;
        if s.failing.is_none() {
            s.failing = Some((now_ms, started));
            tracing::warn!(
                upstream,
                "ALERT upstream {upstream:?} is failing: {answer} (events wait and are retried)"
            );
        }
    }

    /// An attempt started at `started` was delivered.
    pub fn delivered(&self, upstream: &str, started: Instant, now_ms: i64) {
        let Ok(mut s) = self.state.lock() else { return };
        if s.last_ok.is_none_or(|ok| started > ok) {
            s.last_ok = Some(started);
        }
        if let Some((since, first)) = s.failing {
            if started < first {
                return;
            }
            tracing::info!(
                upstream,
                "RECOVERED upstream {upstream:?} delivers again after {} failed attempt(s) over {} s",
                s.failed_attempts,
                (now_ms - since).max(0) / 1000
            );
            s.failing = None;
            s.failed_attempts = 0;
        }
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        match self.state.lock() {
            Ok(s) => HealthSnapshot {
                failing: s.failing.is_some(),
                failing_since_ms: s.failing.map(|(t, _)| t),
                failed_attempts: s.failed_attempts,
            },
            Err(_) => HealthSnapshot {
                failing: false,
                failing_since_ms: None,
                failed_attempts: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_transition_each_way_and_late_answers_ignored() {
        let h = Health::default();
        let t0 = Instant::now();
        let t = |ms| t0 + Duration::from_millis(ms);
        h.delivered("u", t(0), 0);
        assert!(!h.snapshot().failing);
        h.failed("u", t(10), 10, "HTTP 503");
        h.failed("u", t(20), 20, "HTTP 503");
        let s = h.snapshot();
        assert!(s.failing);
        assert_eq!(s.failing_since_ms, Some(10));
        assert_eq!(s.failed_attempts, 2);
        // A delivery that started before the failures began says nothing about now.
        h.delivered("u", t(5), 30);
        assert!(h.snapshot().failing);
        h.delivered("u", t(40), 40);
        assert!(!h.snapshot().failing);
        // A failure that started before the recovery does not flip it back.
        h.failed("u", t(35), 50, "timeout");
        assert!(!h.snapshot().failing);
        assert_eq!(h.snapshot().failed_attempts, 0);
        h.failed("u", t(60), 60, "refused");
        assert_eq!(h.snapshot().failing_since_ms, Some(60));
    }
}
