//! The numbers a bench run prints.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Latency histogram in microseconds, 1 µs .. 10 min, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable_histogram()))
}

#[cold]
fn unreachable_histogram() -> Histogram<u64> {
    // Both constructors above only fail for invalid precision/bounds, which are constants.
    std::process::abort()
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(us);
}

pub struct Report {
    pub mode: &'static str,
    pub messages: u64,
    pub payload_bytes: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
    pub latency_meaning: &'static str,
    pub errors: u64,
    pub settings: serde_json::Value,
}

impl Report {
    fn secs(&self) -> f64 {
        self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.secs()
    }

    pub fn mb_per_sec(&self) -> f64 {
        self.payload_bytes as f64 / self.secs() / 1_000_000.0
    }

    fn q(&self, q: f64) -> u64 {
        self.latency.value_at_quantile(q)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "mode": self.mode,
            "messages": self.messages,
            "payload_bytes": self.payload_bytes,
            "seconds": self.secs(),
            "msgs_per_sec": self.msgs_per_sec(),
            "mb_per_sec": self.mb_per_sec(),
            "errors": self.errors,
            "latency_us": {
                "meaning": self.latency_meaning,
                "samples": self.latency.len(),
                "p50": self.q(0.5),
                "p90": self.q(0.9),
                "p99": self.q(0.99),
                "p999": self.q(0.999),
                "max": self.latency.max(),
            },
            "settings": self.settings,
        })
    }

    pub fn to_text(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "{mode}: {n} messages in {s:.2} s = {r:.0} msg/s, {mb:.1} MB/s, {e} errors\n\
             latency ({meaning}) ms: p50 {p50:.3}  p90 {p90:.3}  p99 {p99:.3}  p99.9 {p999:.3}  max {max:.3}\n",
            mode = self.mode,
            n = self.messages,
            s = self.secs(),
            r = self.msgs_per_sec(),
            mb = self.mb_per_sec(),
            e = self.errors,
            meaning = self.latency_meaning,
            p50 = ms(self.q(0.5)),
            p90 = ms(self.q(0.9)),
            p99 = ms(self.q(0.99)),
            p999 = ms(self.q(0.999)),
            max = ms(self.latency.max()),
        )
    }
}
