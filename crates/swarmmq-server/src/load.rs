//! The load a node reports to its cluster by gossip: messages published and the p99
//! publish latency over the last report period.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

/// Longest latency the window tells apart (60 s, in µs); slower publishes count as it.
const MAX_US: u64 = 60_000_000;

pub(crate) struct LoadWindow {
    published: AtomicU64,
    latency_us: Mutex<Option<Histogram<u64>>>,
}

impl LoadWindow {
    pub fn new() -> Self {
        LoadWindow {
            published: AtomicU64::new(0),
            // Two significant digits: the p99 is a hint for routing, not a benchmark.
            latency_us: Mutex::new(Histogram::new_with_bounds(1, MAX_US, 2).ok()),
        }
    }

    pub fn record(&self, messages: u64, latency: std::time::Duration) {
        self.published.fetch_add(messages, Ordering::Relaxed);
        let us = (latency.as_micros() as u64).clamp(1, MAX_US);
        if let Ok(mut h) = self.latency_us.lock()
            && let Some(h) = h.as_mut()
        {
            let _ = h.record(us);
        }
    }

    pub fn published_total(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// The p99 since the previous call, in ms (0 without publishes), and a fresh window.
    pub fn take_p99_ms(&self) -> f64 {
        let Ok(mut h) = self.latency_us.lock() else {
            return 0.0;
        };
        let Some(h) = h.as_mut() else { return 0.0 };
        let p99 = if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(0.99) as f64 / 1000.0
        };
        h.reset();
        p99
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_publishes_and_reports_the_p99_of_each_window() {
        let w = LoadWindow::new();
        assert_eq!(w.take_p99_ms(), 0.0);
        for i in 1..=100u64 {
            w.record(2, Duration::from_millis(i));
        }
        assert_eq!(w.published_total(), 200);
        let p99 = w.take_p99_ms();
        assert!((98.0..=100.5).contains(&p99), "{p99}");
        assert_eq!(w.take_p99_ms(), 0.0);
    }
}
