//! A token bucket for log lines.

use std::sync::Mutex;
use std::time::Instant;

/// Lets through `burst` lines at once and `per_sec` a second after that; the lines it
/// holds back are counted and reported with the next line that goes through.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    burst: f64,
    per_sec: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

impl LogLimiter {
    pub fn new(burst: u32, per_sec: u32) -> Self {
        LogLimiter {
            burst: f64::from(burst),
            per_sec: f64::from(per_sec),
            state: Mutex::new(Bucket {
                tokens: f64::from(burst),
                last: Instant::now(),
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` when a line may be logged now, `n` being the lines held back since
    /// the last one that was; `None` when this one must be held back (it is counted).
    pub fn allow(&self) -> Option<u64> {
        // A poisoned lock only means another thread panicked while counting: go on.
        let mut b = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.last).as_secs_f64() * self.per_sec;
        b.tokens = (b.tokens + refill).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Some(std::mem::take(&mut b.suppressed))
        } else {
            b.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_a_burst_through_then_counts_what_it_holds_back() {
        let l = LogLimiter::new(3, 1);
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), Some(0));
        let held = (0..1000).filter(|_| l.allow().is_none()).count();
        assert!(held >= 998, "only {held} of 1000 held back");
        // Time refills the bucket; the next line reports what was held back.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let reported = l.allow().expect("a token after a second");
        assert_eq!(reported as usize, held);
        assert_eq!(l.allow(), None, "the bucket holds about one token a second");
    }
}
