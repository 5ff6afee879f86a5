//! The checker: properties every run must keep, judged from the recorded history.
//!
//! Each property is a [`Check`]; [`Checker::standard`] holds the ones today's cluster
//! can be held to:
//! - `no-lost-messages`: every acknowledged message id was consumed at least once, and
//!   at the (partition, offset) its receipt named;
//! - `no-duplicates`: no id is delivered by a pull sent after an ack of that id was
//!   confirmed (redeliveries before a confirmed ack are allowed, and counted);
//! - `partition-order`: no two acknowledged ids share a (partition, offset), and within
//!   each pull answer every partition's offsets increase;
//! - `metadata-one-leader-per-term`: no two nodes were seen leading the metadata group
//!   in the same term (from the status polls; a sampled view, so it can miss a second
//!   leader but never invents one);
//! - `history-complete`: the history was not cut at its bound.
//!
//! EXTENSION POINTS for replication (issue 6), deliberately not implemented here: they
//! need data today's cluster does not expose, and a check without its data would pass
//! vacuously. Add each as a `Check` with [`Checker::with`] once the data exists:
//! - "at most one leader per term" per partition Raft group: needs each partition
//!   group's (term, leader) as every replica sees it (a field of `/v1/admin/cluster`
//!   or a per-partition status call), polled into [`Observations`] next to
//!   `metadata_views`;
//! - "replicas identical up to the commit index": needs, per partition and replica, the
//!   commit index and a digest (or the entries) of the log up to it, read after the
//!   run once the cluster is healed; the check compares the digests of all replicas at
//!   the smallest commit index they share.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::history::History;

/// At most this many violations are listed per check (all are counted).
pub const MAX_LISTED: usize = 50;

/// One status poll of one node: the metadata term it was in and the leader it knew.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MetadataView {
    pub at_ms: u64,
    pub observer: String,
    pub term: u64,
    pub leader: Option<String>,
}

/// What the harness observed of the cluster itself (as opposed to the workload).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Observations {
    pub metadata_views: Vec<MetadataView>,
}

/// What a check judges.
pub struct CheckInput<'a> {
    pub history: &'a History,
    pub observations: &'a Observations,
}

/// One property.
pub trait Check: Send + Sync {
    fn name(&self) -> &'static str;
    fn run(&self, input: &CheckInput<'_>) -> CheckResult;
}

/// The verdict of one check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub passed: bool,
    /// What was looked at, in one line (counts).
    pub summary: String,
    pub violation_count: usize,
    /// The first [`MAX_LISTED`] violations.
    pub violations: Vec<String>,
}

impl CheckResult {
    fn new(name: &str, summary: String, violations: Vec<String>) -> CheckResult {
        CheckResult {
            name: name.to_string(),
            passed: violations.is_empty(),
            summary,
            violation_count: violations.len(),
            violations: violations.into_iter().take(MAX_LISTED).collect(),
        }
    }
}

/// Every check's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    pub results: Vec<CheckResult>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }

    pub fn result(&self, name: &str) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.name == name)
    }
}

/// A list of checks run in order.
pub struct Checker {
    checks: Vec<Box<dyn Check>>,
}

impl Checker {
    /// The checks today's cluster must pass (see the module docs).
    pub fn standard() -> Checker {
        Checker {
            checks: vec![
                Box::new(HistoryComplete),
                Box::new(NoLostMessages),
                Box::new(NoDuplicates),
                Box::new(PartitionOrder),
                Box::new(MetadataOneLeaderPerTerm),
            ],
        }
    }

    /// Adds a check (the extension point for replication's properties).
    pub fn with(mut self, check: impl Check + 'static) -> Checker {
        self.checks.push(Box::new(check));
        self
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.checks.iter().map(|c| c.name()).collect()
    }

    pub fn run(&self, input: &CheckInput<'_>) -> CheckReport {
        CheckReport {
            results: self.checks.iter().map(|c| c.run(input)).collect(),
        }
    }
}

/// The history was kept whole.
pub struct HistoryComplete;

impl Check for HistoryComplete {
    fn name(&self) -> &'static str {
        "history-complete"
    }
    fn run(&self, input: &CheckInput<'_>) -> CheckResult {
        let h = input.history;
        let violations = if h.truncated {
            vec!["the history reached its bound and was cut; nothing can be vouched for".into()]
        } else {
            Vec::new()
        };
        CheckResult::new(
            self.name(),
            format!(
                "{} acknowledged, {} pulls, {} deliveries, {} confirmed acks",
                h.acked.len(),
                h.pulls.len(),
                h.deliveries(),
                h.acks.len()
            ),
            violations,
        )
    }
}

/// Every acknowledged id was consumed, at its acknowledged position.
pub struct NoLostMessages;

impl Check for NoLostMessages {
    fn name(&self) -> &'static str {
        "no-lost-messages"
    }
    fn run(&self, input: &CheckInput<'_>) -> CheckResult {
        let h = input.history;
        let mut positions: HashMap<&str, BTreeSet<(u32, u64)>> = HashMap::new();
        for d in h.pulls.iter().flat_map(|p| &p.deliveries) {
            positions
                .entry(d.id.as_str())
                .or_default()
                .insert((d.partition, d.offset));
        }
        let mut violations = Vec::new();
        let mut never = 0usize;
        for a in &h.acked {
            match positions.get(a.id.as_str()) {
                None => {
                    never += 1;
                    violations.push(format!(
                        "lost: {} (acknowledged at partition {} offset {}) was never consumed",
                        a.id, a.partition, a.offset
                    ));
                }
                Some(seen) if !seen.contains(&(a.partition, a.offset)) => {
                    violations.push(format!(
                        "lost copy: {} was acknowledged at partition {} offset {} but consumed only at {:?}",
                        a.id, a.partition, a.offset, seen
                    ));
                }
                Some(_) => {}
            }
        }
        let acked: std::collections::HashSet<&str> =
            h.acked.iter().map(|a| a.id.as_str()).collect();
        let unacked = positions.keys().filter(|id| !acked.contains(**id)).count();
        CheckResult::new(
            self.name(),
            format!(
                "{} acknowledged ids, {} never consumed, {} other ids consumed (published without a receipt: allowed)",
                h.acked.len(),
                never,
                unacked
            ),
            violations,
        )
    }
}

/// No id delivered again after an ack of it was confirmed.
pub struct NoDuplicates;

impl Check for NoDuplicates {
    fn name(&self) -> &'static str {
        "no-duplicates"
    }
    fn run(&self, input: &CheckInput<'_>) -> CheckResult {
        let h = input.history;
        // The first confirmed ack of each id.
        let mut first_ack: HashMap<&str, (u64, u32, u64)> = HashMap::new();
        for a in &h.acks {
            let e =
                first_ack
                    .entry(a.id.as_str())
                    .or_insert((a.confirmed_at, a.partition, a.offset));
            if a.confirmed_at < e.0 {
                *e = (a.confirmed_at, a.partition, a.offset);
            }
        }
        let mut deliveries: HashMap<&str, usize> = HashMap::new();
        let mut violations = Vec::new();
        for p in &h.pulls {
            for d in &p.deliveries {
                *deliveries.entry(d.id.as_str()).or_default() += 1;
                if let Some(&(at, partition, offset)) = first_ack.get(d.id.as_str())
                    && p.sent_at > at
                {
                    let copy = if (partition, offset) == (d.partition, d.offset) {
                        "the same copy"
                    } else {
                        "another stored copy"
                    };
                    violations.push(format!(
                        "duplicate: {} delivered to consumer {} at partition {} offset {} (attempt {}) after its ack at partition {partition} offset {offset} was confirmed ({copy})",
                        d.id, p.consumer, d.partition, d.offset, d.attempt
                    ));
                }
            }
        }
        let redelivered = deliveries.values().filter(|n| **n > 1).count();
        let extra: usize = deliveries.values().map(|n| n.saturating_sub(1)).sum();
        CheckResult::new(
            self.name(),
            format!(
                "{} ids consumed, {} of them more than once ({} extra deliveries, redeliveries before a confirmed ack included)",
                deliveries.len(),
                redelivered,
                extra
            ),
            violations,
        )
    }
}

/// Acknowledged positions are unique; each pull answer is in offset order per partition.
pub struct PartitionOrder;

impl Check for PartitionOrder {
    fn name(&self) -> &'static str {
        "partition-order"
    }
    fn run(&self, input: &CheckInput<'_>) -> CheckResult {
        let h = input.history;
        let mut violations = Vec::new();
        let mut at: BTreeMap<(u32, u64), &str> = BTreeMap::new();
        for a in &h.acked {
            if let Some(other) = at.insert((a.partition, a.offset), a.id.as_str())
                && other != a.id
            {
                violations.push(format!(
                    "two acknowledged ids at partition {} offset {}: {other} and {}",
                    a.partition, a.offset, a.id
                ));
            }
        }
        for (n, p) in h.pulls.iter().enumerate() {
            let mut last: HashMap<u32, u64> = HashMap::new();
            for d in &p.deliveries {
                if let Some(prev) = last.insert(d.partition, d.offset)
                    && d.offset <= prev
                {
                    violations.push(format!(
                        "out of order: pull #{n} of consumer {} gave partition {} offset {} after offset {prev}",
                        p.consumer, d.partition, d.offset
                    ));
                }
            }
        }
        let partitions: BTreeSet<u32> = h.acked.iter().map(|a| a.partition).collect();
        CheckResult::new(
            self.name(),
            format!(
                "{} acknowledged positions over {} partitions, {} pull answers",
                at.len(),
                partitions.len(),
                h.pulls.len()
            ),
            violations,
        )
    }
}

/// At most one metadata leader per term, among all status polls.
pub struct MetadataOneLeaderPerTerm;

impl Check for MetadataOneLeaderPerTerm {
    fn name(&self) -> &'static str {
        "metadata-one-leader-per-term"
    }
    fn run(&self, input: &CheckInput<'_>) -> CheckResult {
        let views = &input.observations.metadata_views;
        let mut leaders: BTreeMap<u64, BTreeSet<&str>> = BTreeMap::new();
        for v in views {
            if let Some(l) = &v.leader {
                leaders.entry(v.term).or_default().insert(l.as_str());
            }
        }
        let violations = leaders
            .iter()
            .filter(|(_, ls)| ls.len() > 1)
            .map(|(term, ls)| format!("term {term} had leaders {ls:?}"))
            .collect();
        CheckResult::new(
            self.name(),
            format!("{} status polls, {} terms seen", views.len(), leaders.len()),
            violations,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Acked, Delivery, Pull};

    fn acked(id: &str, partition: u32, offset: u64) -> Acked {
        Acked {
            id: id.into(),
            producer: 0,
            partition,
            offset,
            duplicate: false,
        }
    }

    fn d(id: &str, partition: u32, offset: u64, attempt: u32) -> Delivery {
        Delivery {
            id: id.into(),
            partition,
            offset,
            attempt,
        }
    }

    /// A clean history passes every check.
    fn clean() -> History {
        let mut h = History::new(1000);
        h.push_acked(acked("a", 0, 0));
        h.push_acked(acked("b", 0, 1));
        h.push_acked(acked("c", 1, 0));
        let sent_at = h.tick();
        let first = vec![d("a", 0, 0, 1), d("c", 1, 0, 1), d("b", 0, 1, 1)];
        h.push_pull(Pull {
            consumer: 0,
            sent_at,
            deliveries: first.clone(),
        });
        // A redelivery before any ack was confirmed: allowed.
        let sent_at = h.tick();
        h.push_pull(Pull {
            consumer: 1,
            sent_at,
            deliveries: vec![d("a", 0, 0, 2)],
        });
        for m in &first {
            h.push_ack(0, m);
        }
        h
    }

    fn run(h: &History, obs: &Observations) -> CheckReport {
        Checker::standard().run(&CheckInput {
            history: h,
            observations: obs,
        })
    }

    #[test]
    fn a_clean_history_with_a_redelivery_before_the_ack_passes() {
        let h = clean();
        let report = run(&h, &Observations::default());
        assert!(report.passed(), "{report:#?}");
        let dup = report.result("no-duplicates").unwrap();
        assert!(
            dup.summary.contains("1 of them more than once"),
            "{}",
            dup.summary
        );
    }

    #[test]
    fn a_lost_message_a_duplicate_and_an_out_of_order_delivery_are_each_reported() {
        let mut h = clean();
        // Lost: acknowledged, never consumed.
        h.push_acked(acked("lost-1", 2, 0));
        // Lost copy: consumed, but not where its receipt said.
        h.push_acked(acked("moved", 2, 1));
        // Duplicate: "b" was acked (confirmed) above; a later pull delivers it again.
        // Out of order: partition 1 goes backwards within one answer.
        let sent_at = h.tick();
        h.push_pull(Pull {
            consumer: 1,
            sent_at,
            deliveries: vec![
                d("b", 0, 1, 2),
                d("x", 1, 5, 1),
                d("y", 1, 3, 1),
                d("moved", 3, 9, 1),
            ],
        });
        // Two acknowledged ids at one position.
        h.push_acked(acked("clash", 0, 0));
        let obs = Observations {
            metadata_views: vec![
                MetadataView {
                    at_ms: 1,
                    observer: "node-1".into(),
                    term: 4,
                    leader: Some("node-1".into()),
                },
                MetadataView {
                    at_ms: 2,
                    observer: "node-2".into(),
                    term: 4,
                    leader: Some("node-2".into()),
                },
                MetadataView {
                    at_ms: 3,
                    observer: "node-3".into(),
                    term: 5,
                    leader: None,
                },
            ],
        };
        let report = run(&h, &obs);
        assert!(!report.passed());

        let lost = report.result("no-lost-messages").unwrap();
        assert!(!lost.passed);
        assert_eq!(lost.violation_count, 3, "{lost:#?}");
        assert!(
            lost.violations
                .iter()
                .any(|v| v.starts_with("lost: lost-1 "))
        );
        assert!(
            lost.violations
                .iter()
                .any(|v| v.starts_with("lost copy: moved "))
        );
        // "clash" claims partition 0 offset 0, where only "a" was ever consumed.
        assert!(lost.violations.iter().any(|v| v.contains("clash")));

        let dup = report.result("no-duplicates").unwrap();
        assert_eq!(dup.violation_count, 1, "{dup:#?}");
        assert!(dup.violations[0].starts_with("duplicate: b "), "{dup:#?}");
        assert!(dup.violations[0].contains("the same copy"));

        let order = report.result("partition-order").unwrap();
        assert_eq!(order.violation_count, 2, "{order:#?}");
        assert!(
            order
                .violations
                .iter()
                .any(|v| v.starts_with("out of order:")
                    && v.contains("partition 1 offset 3 after offset 5"))
        );
        assert!(
            order
                .violations
                .iter()
                .any(|v| v.contains("two acknowledged ids at partition 0 offset 0"))
        );

        let leaders = report.result("metadata-one-leader-per-term").unwrap();
        assert_eq!(leaders.violation_count, 1, "{leaders:#?}");
        assert!(leaders.violations[0].contains("term 4"));

        assert!(report.result("history-complete").unwrap().passed);
    }

    #[test]
    fn a_truncated_history_fails() {
        let mut h = History::new(1);
        h.push_acked(acked("a", 0, 0));
        h.push_acked(acked("b", 0, 1));
        assert!(h.truncated);
        let report = run(&h, &Observations::default());
        assert!(!report.result("history-complete").unwrap().passed);
    }
}
