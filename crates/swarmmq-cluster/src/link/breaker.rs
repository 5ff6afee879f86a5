//! A per-peer circuit breaker: after repeated failures calls fail at once instead of
//! each waiting out a timeout against a dead or stuck node; after a cool-down one probe
//! is let through, and its success closes the circuit again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out; everyone else fails fast until it answers.
    HalfOpen,
}

/// What the breaker lets a caller do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit {
    /// Go ahead (closed circuit).
    Call,
    /// Go ahead as the half-open probe.
    Probe,
    /// Fail fast: the circuit is open.
    Refused,
}

/// The circuit of one peer.
pub struct CircuitBreaker {
    state: Mutex<State>,
    threshold: u32,
    cool_down: Duration,
}

impl CircuitBreaker {
    /// Opens after `threshold` consecutive failures, probes again after `cool_down`.
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        CircuitBreaker {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold: threshold.max(1),
            cool_down,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned breaker still holds a valid state: keep using it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn permit(&self) -> Permit {
        let mut s = self.lock();
        match *s {
            State::Closed { .. } => Permit::Call,
            State::Open { until } if Instant::now() >= until => {
                *s = State::HalfOpen;
                Permit::Probe
            }
            State::Open { .. } | State::HalfOpen => Permit::Refused,
        }
    }

    pub fn success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    /// Records a failure; true when this one opened the circuit.
    pub fn failure(&self) -> bool {
        let mut s = self.lock();
        let open = State::Open {
            until: Instant::now() + self.cool_down,
        };
        match *s {
            State::Closed { failures } if failures + 1 >= self.threshold => {
                *s = open;
                true
            }
            State::Closed { failures } => {
                *s = State::Closed {
                    failures: failures + 1,
                };
                false
            }
            State::HalfOpen | State::Open { .. } => {
                *s = open;
                false
            }
        }
    }

    /// `closed`, `open` or `half-open`, for status pages and logs.
    pub fn state_name(&self) -> &'static str {
        match *self.lock() {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::HalfOpen => "half-open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_probes_once_and_closes_on_success() {
        let b = CircuitBreaker::new(3, Duration::from_millis(30));
        assert_eq!(b.permit(), Permit::Call);
        assert!(!b.failure());
        assert!(!b.failure());
        b.success();
        assert!(!b.failure());
        assert!(!b.failure());
        assert!(b.failure());
        assert_eq!(b.state_name(), "open");
        assert_eq!(b.permit(), Permit::Refused);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.permit(), Permit::Probe);
        // Only one probe at a time.
        assert_eq!(b.permit(), Permit::Refused);
        b.failure();
        assert_eq!(b.permit(), Permit::Refused);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.permit(), Permit::Probe);
        b.success();
        assert_eq!(b.permit(), Permit::Call);
        assert_eq!(b.state_name(), "closed");
    }
}
