//! The numbers a run prints, in the same shape as `swarmmq bench` (text and `--json`), so
//! the comparison script reads both with one parser.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency the histogram holds, in microseconds (10 min); longer ones are clamped.
const MAX_LATENCY_US: u64 = 600_000_000;

/// Latency histogram in microseconds, 1 µs .. 10 min, 3 significant digits (as swarmmq's).
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?)
}

/// Records one latency, clamped into the histogram's range.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_LATENCY_US);
    h.saturating_record(us);
}

/// One finished run.
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

    /// The object `swarmmq bench ... --json` prints, field for field.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut latency = histogram().unwrap();
        for ms in 1..=100u64 {
            record(&mut latency, Duration::from_millis(ms));
        }
        Report {
            mode: "produce",
            messages: 2_000,
            payload_bytes: 2_000 * 1024,
            elapsed: Duration::from_millis(500),
            latency,
            latency_meaning: "send to acknowledgement",
            errors: 1,
            settings: serde_json::json!({"in_flight": 4096}),
        }
    }

    #[test]
    fn json_has_the_fields_of_swarmmq_bench() {
        let j = report().to_json();
        assert_eq!(j["mode"], "produce");
        assert_eq!(j["messages"], 2_000);
        assert_eq!(j["payload_bytes"], 2_048_000);
        assert_eq!(j["errors"], 1);
        assert!((j["seconds"].as_f64().unwrap() - 0.5).abs() < 1e-9);
        assert!((j["msgs_per_sec"].as_f64().unwrap() - 4_000.0).abs() < 1e-6);
        assert!((j["mb_per_sec"].as_f64().unwrap() - 4.096).abs() < 1e-9);
        let l = &j["latency_us"];
        assert_eq!(l["samples"], 100);
        // 3 significant digits: quantiles land within 0.1 % of the recorded values.
        let p50 = l["p50"].as_u64().unwrap();
        assert!((49_950..=50_050).contains(&p50), "p50 {p50}");
        let p99 = l["p99"].as_u64().unwrap();
        assert!((98_900..=99_100).contains(&p99), "p99 {p99}");
        assert!(l["max"].as_u64().unwrap() >= 100_000);
        for k in ["p90", "p999"] {
            assert!(l[k].is_u64(), "{k}");
        }
        assert_eq!(j["settings"]["in_flight"], 4096);
    }

    #[test]
    fn text_is_two_lines_like_swarmmq() {
        let t = report().to_text();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0]
                .starts_with("produce: 2000 messages in 0.50 s = 4000 msg/s, 4.1 MB/s, 1 errors")
        );
        assert!(lines[1].starts_with("latency (send to acknowledgement) ms: p50 "));
    }

    #[test]
    fn record_clamps_out_of_range_values() {
        let mut h = histogram().unwrap();
        record(&mut h, Duration::ZERO);
        record(&mut h, Duration::from_secs(3_600));
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 1);
        assert!(h.max() >= MAX_LATENCY_US);
    }
}
