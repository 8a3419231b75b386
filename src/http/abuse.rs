//! Failed sign-ins and bad-token requests, counted per client address.
//!
//! An address that failed [`FailureLimit::failures`] times within [`FailureLimit::window`] is
//! answered 429 on every request that presents a credential (a token, a sign-in) until the
//! oldest of those failures leaves the window; other addresses are not affected, and successful requests are
//! not counted. Guessing a 256-bit token is hopeless anyway: the limit keeps a guesser from
//! filling the log and costing the store a lookup per guess.
//!
//! The client address is the TCP peer (no proxy header is trusted). IPv6 peers are counted per
//! /64, the block one subscriber usually holds, so an attacker cannot get a fresh budget from
//! each of its own addresses. The table is bounded ([`MAX_ADDRESSES`]): when it is full,
//! addresses whose failures have all left the window go first, then the one that failed
//! longest ago.
//!
//! Requests that are in flight at the same time are checked before any of them has failed, so
//! one address can exceed the limit by as many requests as it sends at once, once.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many client addresses are remembered at most.
pub const MAX_ADDRESSES: usize = 10_000;

/// How many failures an address may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimit {
    /// Failures allowed within `window`; 0: no limit.
    pub failures: u32,
    pub window: Duration,
}

impl Default for FailureLimit {
    fn default() -> Self {
        FailureLimit {
            failures: 10,
            window: Duration::from_secs(60),
        }
    }
}

impl FailureLimit {
    /// `per_minute` failures within a minute (0: no limit).
    pub fn per_minute(per_minute: u32) -> Self {
        FailureLimit {
            failures: per_minute,
            window: Duration::from_secs(60),
        }
    }
}

/// Put in a response's extensions by whoever refused a credential (a bad token, a wrong
/// sign-in code): the limiter counts the response as a failure of the client's address.
#[derive(Debug, Clone, Copy)]
pub struct AuthFailed;

/// The failures of every client address seen (bounded).
#[derive(Debug)]
pub(crate) struct FailureLimiter {
    limit: FailureLimit,
    capacity: usize,
    map: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

/// The address failures are counted under: an IPv4 address (also when it arrives mapped into
/// IPv6), or the /64 of an IPv6 address.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl FailureLimiter {
    pub(crate) fn new(limit: FailureLimit) -> Self {
        Self::with_capacity(limit, MAX_ADDRESSES)
    }

    pub(crate) fn with_capacity(limit: FailureLimit, capacity: usize) -> Self {
        FailureLimiter {
            limit,
            capacity: capacity.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn limit(&self) -> FailureLimit {
        self.limit
    }

    /// May `ip` present a credential at `now`? `Err(wait)`: not before `wait` has passed.
    pub(crate) fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let FailureLimit { failures, window } = self.limit;
        if failures == 0 {
            return Ok(());
        }
        let Ok(mut map) = self.map.lock() else {
            // A poisoned lock limits nobody rather than everybody.
            return Ok(());
        };
        let k = key(ip);
        let Some(times) = map.get_mut(&k) else {
            return Ok(());
        };
        expire(times, now, window);
        if times.is_empty() {
            map.remove(&k);
            return Ok(());
        }
        if times.len() < failures as usize {
            return Ok(());
        }
        // `times` holds the last `failures` failures: blocked until the oldest leaves.
        let oldest = times.front().copied().unwrap_or(now);
        Err((oldest + window).saturating_duration_since(now))
    }

    /// Count a failure of `ip` at `now`; `true` when this failure used up its budget.
    pub(crate) fn record(&self, ip: IpAddr, now: Instant) -> bool {
        let FailureLimit { failures, window } = self.limit;
        if failures == 0 {
            return false;
        }
        let Ok(mut map) = self.map.lock() else {
            return false;
        };
        let k = key(ip);
        if !map.contains_key(&k) && map.len() >= self.capacity {
            make_room(&mut map, now, window, self.capacity);
        }
        let times = map.entry(k).or_default();
        expire(times, now, window);
        times.push_back(now);
        // Only the last `failures` matter: the oldest of them says when the block ends.
        while times.len() > failures as usize {
            times.pop_front();
        }
        times.len() == failures as usize
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
}

fn expire(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        times.pop_front();
    }
}

/// Free a place: forget the addresses with no failure left in the window, or else the one
/// whose last failure is the oldest.
fn make_room(
    map: &mut HashMap<IpAddr, VecDeque<Instant>>,
    now: Instant,
    window: Duration,
    capacity: usize,
) {
    map.retain(|_, times| {
        times
            .back()
            .is_some_and(|t| now.saturating_duration_since(*t) < window)
    });
    if map.len() < capacity {
        return;
    }
    let stalest = map
        .iter()
        .min_by_key(|(_, times)| times.back().copied())
        .map(|(k, _)| *k);
    if let Some(k) = stalest {
        map.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn the_failure_after_the_limit_waits_until_the_oldest_leaves_the_window() {
        let l = FailureLimiter::new(FailureLimit {
            failures: 3,
            window: Duration::from_secs(60),
        });
        let a = v4(10, 0, 0, 1);
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(l.check(a, t0 + Duration::from_secs(i)), Ok(()));
            assert_eq!(l.record(a, t0 + Duration::from_secs(i)), i == 2);
        }
        let t = t0 + Duration::from_secs(10);
        assert_eq!(l.check(a, t), Err(Duration::from_secs(50)));
        // Another address is not affected.
        assert_eq!(l.check(v4(10, 0, 0, 2), t), Ok(()));
        // The first failure leaves the window at 60 s: one more attempt, then blocked again.
        let t = t0 + Duration::from_secs(60);
        assert_eq!(l.check(a, t), Ok(()));
        l.record(a, t);
        assert_eq!(l.check(a, t), Err(Duration::from_secs(1)));
        // Once all have left, the address is forgotten.
        let t = t0 + Duration::from_secs(200);
        assert_eq!(l.check(a, t), Ok(()));
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn no_limit_counts_nothing() {
        let l = FailureLimiter::new(FailureLimit::per_minute(0));
        let t = Instant::now();
        for _ in 0..100 {
            l.record(v4(10, 0, 0, 1), t);
        }
        assert_eq!(l.check(v4(10, 0, 0, 1), t), Ok(()));
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let l = FailureLimiter::new(FailureLimit::per_minute(2));
        let t = Instant::now();
        l.record("2001:db8:1:2::1".parse().unwrap(), t);
        l.record("2001:db8:1:2:ffff::9".parse().unwrap(), t);
        assert!(l.check("2001:db8:1:2::77".parse().unwrap(), t).is_err());
        assert_eq!(l.check("2001:db8:1:3::1".parse().unwrap(), t), Ok(()));
        l.record("::ffff:192.0.2.1".parse().unwrap(), t);
        l.record(v4(192, 0, 2, 1), t);
        assert!(l.check(v4(192, 0, 2, 1), t).is_err());
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_stalest_first() {
        let l = FailureLimiter::with_capacity(FailureLimit::per_minute(2), 100);
        let t0 = Instant::now();
        let blocked = v4(10, 9, 9, 9);
        l.record(blocked, t0 + Duration::from_secs(30));
        l.record(blocked, t0 + Duration::from_secs(30));
        for i in 0..10_000u32 {
            let [_, _, c, d] = i.to_be_bytes();
            l.record(v4(10, 1, c, d), t0 + Duration::from_millis(u64::from(i)));
            assert!(l.len() <= 100);
        }
        // The recent, blocked address outlived the older ones.
        assert!(l.check(blocked, t0 + Duration::from_secs(31)).is_err());
    }
}
