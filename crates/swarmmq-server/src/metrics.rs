//! The node's Prometheus metrics, served as text on `GET /metrics`.
//!
//! Label sets are bounded: destination labels by `Limits::max_destinations`, error
//! labels by the fixed set of error codes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use swarmmq_types::ErrorCode;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DestinationLabel {
    pub destination: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GroupLabel {
    pub group: String,
    pub destination: String,
}

impl GroupLabel {
    pub fn new(group: &str, destination: &str) -> Self {
        GroupLabel {
            group: group.to_string(),
            destination: destination.to_string(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GroupPartitionLabel {
    pub group: String,
    pub destination: String,
    pub partition: u32,
}

impl GroupPartitionLabel {
    pub fn new(group: &str, destination: &str, partition: u32) -> Self {
        GroupPartitionLabel {
            group: group.to_string(),
            destination: destination.to_string(),
            partition,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CodeLabel {
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    pub reason: &'static str,
}

pub(crate) struct Metrics {
    registry: Registry,
    pub messages_in: Family<DestinationLabel, Counter>,
    pub bytes_in: Family<DestinationLabel, Counter>,
    pub messages_out: Family<DestinationLabel, Counter>,
    pub bytes_out: Family<DestinationLabel, Counter>,
    pub acked: Family<DestinationLabel, Counter>,
    pub redelivered: Family<DestinationLabel, Counter>,
    pub dedup_hits: Family<DestinationLabel, Counter>,
    pub expired: Family<DestinationLabel, Counter>,
    pub dlq_moves: Family<DestinationLabel, Counter>,
    pub dead_dropped: Family<DestinationLabel, Counter>,
    pub rebalances: Family<GroupLabel, Counter>,
    pub rebalance_duration: Histogram,
    pub group_lag: Family<GroupPartitionLabel, Gauge>,
    pub group_delayed: Family<GroupPartitionLabel, Gauge>,
    pub stored_bytes: Family<DestinationLabel, Gauge>,
    pub publish_latency: Histogram,
    pub pull_latency: Histogram,
    pub fsync_latency: Histogram,
    pub batches_per_commit: Histogram,
    pub open_connections: Gauge,
    /// Cluster mode: partitions with a replica on a node that is not alive.
    pub under_replicated: Gauge,
    pub errors: Family<CodeLabel, Counter>,
    /// Refused authentications and authorizations; reasons are a fixed set of labels.
    pub auth_failures: Family<ReasonLabel, Counter>,
    /// What the node gossips as its load (cluster mode).
    pub load: crate::load::LoadWindow,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    // 50 µs .. ~26 s
    exponential_buckets(0.000_05, 2.0, 20)
}

impl Metrics {
    pub fn published_total(&self) -> u64 {
        self.load.published_total()
    }

    pub fn take_publish_p99_ms(&self) -> f64 {
        self.load.take_p99_ms()
    }

    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("swarmmq");
        let m = Metrics {
            messages_in: Family::default(),
            bytes_in: Family::default(),
            messages_out: Family::default(),
            bytes_out: Family::default(),
            acked: Family::default(),
            redelivered: Family::default(),
            dedup_hits: Family::default(),
            expired: Family::default(),
            dlq_moves: Family::default(),
            dead_dropped: Family::default(),
            rebalances: Family::default(),
            rebalance_duration: Histogram::new(latency_buckets()),
            group_lag: Family::default(),
            group_delayed: Family::default(),
            stored_bytes: Family::default(),
            publish_latency: Histogram::new(latency_buckets()),
            pull_latency: Histogram::new(latency_buckets()),
            fsync_latency: Histogram::new(latency_buckets()),
            batches_per_commit: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            open_connections: Gauge::default(),
            under_replicated: Gauge::default(),
            errors: Family::default(),
            auth_failures: Family::default(),
            load: crate::load::LoadWindow::new(),
            registry: Registry::default(),
        };
        registry.register(
            "messages_in",
            "Messages stored, by destination",
            m.messages_in.clone(),
        );
        registry.register_with_unit(
            "payload_in",
            "Payload bytes stored, by destination",
            Unit::Bytes,
            m.bytes_in.clone(),
        );
        registry.register(
            "messages_out",
            "Messages delivered to consumers, by destination",
            m.messages_out.clone(),
        );
        registry.register_with_unit(
            "payload_out",
            "Payload bytes delivered to consumers, by destination",
            Unit::Bytes,
            m.bytes_out.clone(),
        );
        registry.register(
            "messages_acked",
            "Messages acknowledged by consumer groups, by destination",
            m.acked.clone(),
        );
        registry.register(
            "messages_redelivered",
            "Deliveries after the first (lease expired or nacked), by destination",
            m.redelivered.clone(),
        );
        registry.register(
            "dedup_hits",
            "Published messages not stored again because their id was seen within the dedup window",
            m.dedup_hits.clone(),
        );
        registry.register(
            "messages_expired",
            "Messages never delivered because their TTL passed, by destination",
            m.expired.clone(),
        );
        registry.register(
            "dlq_moves",
            "Messages moved to <destination>.dlq, by the destination they came from",
            m.dlq_moves.clone(),
        );
        registry.register(
            "dead_dropped",
            "Messages out of delivery attempts dropped because the destination's DLQ is off",
            m.dead_dropped.clone(),
        );
        registry.register(
            "rebalances",
            "Completed rebalances of ordered groups",
            m.rebalances.clone(),
        );
        registry.register_with_unit(
            "rebalance_duration",
            "From a membership change until every member of the group learned the new assignment",
            Unit::Seconds,
            m.rebalance_duration.clone(),
        );
        registry.register(
            "group_lag",
            "Messages of a partition not yet acknowledged or committed by a group",
            m.group_lag.clone(),
        );
        registry.register(
            "group_delayed",
            "Messages of a partition a shared group holds back until their delivery time",
            m.group_delayed.clone(),
        );
        registry.register_with_unit(
            "stored",
            "Bytes on disk in partition logs, by destination",
            Unit::Bytes,
            m.stored_bytes.clone(),
        );
        registry.register_with_unit(
            "publish_latency",
            "Time from a publish request's arrival to its answer",
            Unit::Seconds,
            m.publish_latency.clone(),
        );
        registry.register_with_unit(
            "pull_latency",
            "Time from a pull request's arrival to its answer, long-poll wait included",
            Unit::Seconds,
            m.pull_latency.clone(),
        );
        registry.register_with_unit(
            "fsync_latency",
            "Duration of one group-commit append and fsync of a partition log",
            Unit::Seconds,
            m.fsync_latency.clone(),
        );
        registry.register(
            "batches_per_commit",
            "Record batches covered by one group commit",
            m.batches_per_commit.clone(),
        );
        registry.register(
            "open_connections",
            "Open client connections",
            m.open_connections.clone(),
        );
        registry.register(
            "under_replicated_partitions",
            "Partitions with a replica on a node that is not alive (cluster mode)",
            m.under_replicated.clone(),
        );
        registry.register(
            "errors",
            "Error answers sent to clients, by error code",
            m.errors.clone(),
        );
        registry.register(
            "auth_failures",
            "Refused API keys and requests, by reason (missing_key, malformed, unknown_key, \
             wrong_secret, revoked, rate_limited, forbidden)",
            m.auth_failures.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn dest(name: &str) -> DestinationLabel {
        DestinationLabel {
            destination: name.to_string(),
        }
    }

    pub fn error(&self, code: ErrorCode) {
        self.errors
            .get_or_create(&CodeLabel { code: code.name() })
            .inc();
    }

    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Prometheus / OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            // Writing into a String cannot fail; an empty body is the honest fallback.
            out.clear();
        }
        out
    }

    /// Drops the label sets of a deleted destination so the families stay bounded.
    pub fn forget_destination(&self, name: &str) {
        let label = Metrics::dest(name);
        for family in [
            &self.messages_in,
            &self.bytes_in,
            &self.messages_out,
            &self.bytes_out,
            &self.acked,
            &self.redelivered,
            &self.dedup_hits,
            &self.expired,
            &self.dlq_moves,
            &self.dead_dropped,
        ] {
            family.remove(&label);
        }
        self.stored_bytes.remove(&label);
    }

    /// Drops the label sets of a group's partitions (its destination was deleted).
    pub fn forget_group(&self, group: &str, destination: &str, partitions: u32) {
        self.rebalances.remove(&GroupLabel::new(group, destination));
        for p in 0..partitions {
            let label = GroupPartitionLabel::new(group, destination, p);
            self.group_lag.remove(&label);
            self.group_delayed.remove(&label);
        }
    }
}
