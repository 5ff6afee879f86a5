//! The run report as text (the JSON form is `serde_json` of [`RunReport`]).

use std::fmt::Write;
use std::time::Duration;

use crate::run::RunReport;

/// Serializes a duration as whole milliseconds.
pub(crate) fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(crate::run::ms(*d))
}

/// The human-readable summary `swarmmq chaos run` prints after the fault log.
pub fn render_text(r: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "chaos run: seed {}, {} nodes, {} partitions, {} faults in {:.0}s, {:.1}s in all",
        r.seed,
        r.nodes,
        r.partitions,
        r.faults.len(),
        r.duration_ms as f64 / 1000.0,
        r.elapsed_ms as f64 / 1000.0
    );
    for p in &r.producers {
        let _ = writeln!(
            out,
            "  producer {}: {} created, {} acknowledged ({} deduplicated), {} failed sends, {} without receipt at the end, {} errors, longest unavailable {} ms, longest send round {} ms{}",
            p.producer,
            p.created,
            p.acked,
            p.dedup_receipts,
            p.failed_sends,
            p.unacked_at_end,
            p.errors,
            p.longest_unavailable_ms,
            p.longest_round_ms,
            p.last_error
                .as_deref()
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        );
    }
    for c in &r.consumers {
        let _ = writeln!(
            out,
            "  consumer {}: {} pulls, {} delivered, {} acks confirmed, {} acks not applied, {} errors{}",
            c.consumer,
            c.pulls,
            c.delivered,
            c.acks_confirmed,
            c.acks_not_applied,
            c.errors,
            c.last_error
                .as_deref()
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(out, "  drain: {} ({} ms)", r.drain_note, r.drain_ms);
    for c in &r.crashes {
        let _ = writeln!(out, "  CRASH: {c}");
    }
    for f in r.faults.iter().filter(|f| !f.ok) {
        let _ = writeln!(
            out,
            "  FAULT NOT AS PLANNED at +{} ms on {}: {}",
            f.at_ms, f.node, f.detail
        );
    }
    for c in &r.check.results {
        let _ = writeln!(
            out,
            "  [{}] {}: {}",
            if c.passed { "ok" } else { "FAIL" },
            c.name,
            c.summary
        );
        for v in &c.violations {
            let _ = writeln!(out, "      {v}");
        }
        if c.violation_count > c.violations.len() {
            let _ = writeln!(
                out,
                "      ... and {} more",
                c.violation_count - c.violations.len()
            );
        }
    }
    let _ = writeln!(
        out,
        "result: {} (replay with --seed {})",
        if r.passed() { "PASS" } else { "FAIL" },
        r.seed
    );
    out
}
