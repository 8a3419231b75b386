//! Per-token rate limit: a token bucket per token name.
//!
//! A token may make `burst` requests at once and `per_second` on average; beyond that it is
//! answered 429 with `Retry-After`. The default (50 per second, bursts of 200; `[server]`
//! `api_rate_per_s` and `api_burst` change it) is far above what a station or an upload script
//! needs (a 100,000-row upload in batches of 1,000 is 100 requests), and stops a runaway
//! client from starving the others. Each token has its own
//! bucket, so one token's excess never limits another. A few lines of arithmetic under a
//! mutex: no crate needed (keyed limiters such as `governor` key by IP or need the token
//! before authentication).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many requests a token may make.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests per second, on average (the refill rate).
    pub per_second: f64,
    /// Requests at once (the bucket's size).
    pub burst: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 50.0,
            burst: 200.0,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every token seen.
#[derive(Debug)]
pub(crate) struct Buckets {
    limit: RateLimit,
    map: Mutex<HashMap<String, Bucket>>,
}

impl Buckets {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Buckets {
            limit,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Take one request from `name`'s bucket at `now`; `Err(wait)` when it is empty.
    pub(crate) fn take(&self, name: &str, now: Instant) -> Result<(), Duration> {
        let Ok(mut map) = self.map.lock() else {
            // A poisoned lock limits nobody rather than everybody.
            return Ok(());
        };
        let RateLimit { per_second, burst } = self.limit;
        let bucket = match map.get_mut(name) {
            Some(b) => b,
            None => map.entry(name.to_string()).or_insert(Bucket {
                tokens: burst,
                at: now,
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = if per_second > 0.0 {
            (1.0 - bucket.tokens) / per_second
        } else {
            f64::from(u32::MAX)
        };
        Err(Duration::from_secs_f64(wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_beyond_the_bucket_waits_for_the_refill_and_other_tokens_do_not() {
        let b = Buckets::new(RateLimit {
            per_second: 2.0,
            burst: 3.0,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(b.take("a", t0), Ok(()));
        }
        let wait = b.take("a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(b.take("b", t0), Ok(()));
        // Half a second later one request more, not two.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(b.take("a", t1), Ok(()));
        assert!(b.take("a", t1).is_err());
        // Idle long enough, the bucket is full again but no fuller.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.take("a", t2), Ok(()));
        }
        assert!(b.take("a", t2).is_err());
    }
}
