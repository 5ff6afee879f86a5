//! Failed authentication attempts, rate-limited per client address.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Start of the current counting window.
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
}

/// Counts failed attempts per IP address. More than `max_failures` failures within
/// `window` block that address's further attempts for `window` from the failure that
/// crossed the limit. Attempts refused while blocked do not extend the block, so an
/// address is never locked out for good.
///
/// Bounded: at most `max_addresses` are tracked; a new address at the bound evicts the
/// one tracked longest. Under a flood from more addresses than that, the oldest blocks
/// are forgotten early; each address still gets at most `max_failures + 1` guesses
/// per window, which against 256-bit secrets is no help to an attacker.
///
/// Time is passed in (`now`), so the limiter is deterministic and needs no clock.
#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    max_addresses: usize,
    entries: HashMap<IpAddr, Entry>,
    /// Addresses in the order they were first tracked; same set as `entries`.
    order: VecDeque<IpAddr>,
}

impl Default for FailureLimiter {
    /// More than 5 failures in 10 s block for 10 s; 10,000 addresses tracked.
    fn default() -> Self {
        FailureLimiter::new(5, Duration::from_secs(10), 10_000)
    }
}

impl FailureLimiter {
    pub fn new(max_failures: u32, window: Duration, max_addresses: usize) -> Self {
        FailureLimiter {
            max_failures,
            window,
            max_addresses: max_addresses.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// `Err(time left)` while `ip` is blocked; check before verifying a key.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.entries.get(&ip).and_then(|e| e.blocked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt from `ip`; returns true when this failure blocked it.
    pub fn record_failure(&mut self, ip: IpAddr, now: Instant) -> bool {
        if !self.entries.contains_key(&ip) {
            while self.entries.len() >= self.max_addresses {
                match self.order.pop_front() {
                    Some(old) => {
                        self.entries.remove(&old);
                    }
                    None => break,
                }
            }
            self.entries.insert(
                ip,
                Entry {
                    window_start: now,
                    failures: 0,
                    blocked_until: None,
                },
            );
            self.order.push_back(ip);
        }
        let Some(e) = self.entries.get_mut(&ip) else {
            return false;
        };
        if e.blocked_until.is_some_and(|until| until > now) {
            return false;
        }
        if now.saturating_duration_since(e.window_start) >= self.window {
            e.window_start = now;
            e.failures = 0;
            e.blocked_until = None;
        }
        e.failures = e.failures.saturating_add(1);
        if e.failures > self.max_failures {
            e.blocked_until = Some(now + self.window);
            return true;
        }
        false
    }

    /// Addresses tracked now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn the_sixth_failure_in_the_window_blocks_until_it_passes() {
        let mut l = FailureLimiter::default();
        let t0 = Instant::now();
        for i in 0..5 {
            assert!(!l.record_failure(ip(1), t0 + S * i));
            assert!(l.check(ip(1), t0 + S * i).is_ok());
        }
        assert!(l.record_failure(ip(1), t0 + S * 5));
        let left = l.check(ip(1), t0 + S * 6).unwrap_err();
        assert_eq!(left, S * 9);
        // Another address is unaffected.
        assert!(l.check(ip(2), t0 + S * 6).is_ok());
        // Attempts while blocked do not extend the block.
        assert!(!l.record_failure(ip(1), t0 + S * 14));
        assert!(l.check(ip(1), t0 + S * 15).is_ok());
    }

    #[test]
    fn failures_spread_over_windows_never_block() {
        let mut l = FailureLimiter::default();
        let t0 = Instant::now();
        for i in 0..50 {
            // Three failures every 10 s.
            let t = t0 + Duration::from_millis(3_400 * i);
            assert!(!l.record_failure(ip(1), t), "blocked at {i}");
            assert!(l.check(ip(1), t).is_ok());
        }
    }

    #[test]
    fn the_map_is_bounded_and_evicts_the_oldest() {
        let mut l = FailureLimiter::new(0, Duration::from_secs(10), 3);
        let t0 = Instant::now();
        for n in 0..3 {
            assert!(l.record_failure(ip(n), t0));
        }
        assert!(l.check(ip(0), t0).is_err());
        assert!(l.record_failure(ip(3), t0));
        assert_eq!(l.tracked(), 3);
        // ip(0) was the oldest: forgotten; the others still blocked.
        assert!(l.check(ip(0), t0).is_ok());
        for n in 1..4 {
            assert!(l.check(ip(n), t0).is_err());
        }
        for n in 10..1000 {
            l.record_failure(ip(n), t0);
            assert!(l.tracked() <= 3);
        }
    }

    #[test]
    fn ipv6_addresses_are_tracked_too() {
        let mut l = FailureLimiter::new(1, Duration::from_secs(10), 10);
        let t0 = Instant::now();
        let v6: IpAddr = "::1".parse().unwrap();
        assert!(!l.record_failure(v6, t0));
        assert!(l.record_failure(v6, t0));
        assert!(l.check(v6, t0).is_err());
    }
}
