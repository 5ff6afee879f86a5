//! The dead-letter mover: copies messages that used up their delivery attempts (or
//! expired, when the destination says so) into `<destination>.dlq` with headers saying
//! where they came from and why, then marks them done in their group.
//!
//! It runs as one task fed by a bounded queue. A message is settled only after its copy
//! is durable in the DLQ; a crash in between moves it again after the restart, and the
//! copy keeps the original message id, so the DLQ's dedup window drops the repeat.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use swarmmq_delivery::SettleRange;
use swarmmq_protocol::{Header, PublishMessage, PublishRequest};
use swarmmq_types::{DestinationName, PartitionId};
use tokio::sync::mpsc;

use crate::broker::Broker;
use crate::destination::Destination;
use crate::error::RequestError;
use crate::group::Group;
use crate::metrics::Metrics;
use crate::publish;
use crate::pull::BatchCursor;

/// Most dead-letter jobs waiting; past it a report waits for the next poll instead.
pub(crate) const QUEUE: usize = 1024;

pub(crate) struct DeadLetter {
    dest: Arc<Destination>,
    group: Arc<Group>,
    partition: PartitionId,
    start: u64,
    end: u64,
    attempts: u32,
    reason: String,
    expired: bool,
}

impl DeadLetter {
    pub fn exhausted(
        dest: &Arc<Destination>,
        group: &Arc<Group>,
        partition: PartitionId,
        r: &SettleRange,
        reason: &str,
    ) -> Self {
        DeadLetter {
            dest: Arc::clone(dest),
            group: Arc::clone(group),
            partition,
            start: r.start,
            end: r.end,
            attempts: r.attempts,
            reason: reason.to_string(),
            expired: false,
        }
    }

    pub fn expired(
        dest: &Arc<Destination>,
        group: &Arc<Group>,
        partition: PartitionId,
        r: &SettleRange,
    ) -> Self {
        DeadLetter {
            dest: Arc::clone(dest),
            group: Arc::clone(group),
            partition,
            start: r.start,
            end: r.end,
            attempts: r.attempts,
            reason: "expired (TTL)".to_string(),
            expired: true,
        }
    }

    pub fn with_reason(mut self, reason: &str) -> Self {
        if !reason.is_empty() {
            self.reason = reason.to_string();
        }
        self
    }

    /// Hands the range back to the group so the next poll reports it again.
    pub fn give_back(&self) {
        if let Ok(shared) = self.group.shared()
            && let Ok(m) = shared.partition(self.partition)
            && let Ok(mut st) = m.lock()
        {
            st.report_again(self.start, self.end);
        }
    }
}

pub(crate) fn channel() -> (mpsc::Sender<DeadLetter>, mpsc::Receiver<DeadLetter>) {
    mpsc::channel(QUEUE)
}

/// Runs until the broker is gone.
pub(crate) async fn run(broker: Weak<Broker>, mut rx: mpsc::Receiver<DeadLetter>) {
    while let Some(job) = rx.recv().await {
        let Some(broker) = broker.upgrade() else {
            return;
        };
        if let Err(e) = move_one(&broker, &job).await {
            tracing::warn!(destination = %job.dest.name, group = %job.group.name, partition = job.partition, start = job.start, end = job.end, code = %e.code, error = %e.message, "dead-letter move failed; it will be retried");
            job.give_back();
        }
    }
}

fn header(name: &str, value: impl Into<String>) -> Header {
    Header {
        name: name.to_string(),
        value: Bytes::from(value.into()),
    }
}

async fn move_one(broker: &Arc<Broker>, job: &DeadLetter) -> Result<(), RequestError> {
    let dlq_name = DestinationName::new(job.dest.name.as_str())
        .ok()
        .and_then(|d| d.dlq())
        .ok_or_else(|| {
            RequestError::new(
                swarmmq_types::ErrorCode::InvalidName,
                format!("{:?} is too long to have a .dlq destination", job.dest.name),
            )
        })?;
    let partition = job.dest.partition(job.partition)?;
    let reader = partition.reader()?;
    let mut cursor = BatchCursor::new(reader, broker.keys.current(), partition.visible_end());
    let mut messages = Vec::new();
    for offset in job.start..job.end {
        let Some(r) = cursor.get(offset)? else {
            continue;
        };
        let mut headers: Vec<Header> = r
            .meta
            .headers
            .iter()
            .map(|h| Header {
                name: h.name.to_string(),
                value: Bytes::copy_from_slice(h.value),
            })
            .collect();
        headers.push(header(
            "x-swarmmq-original-destination",
            job.dest.name.clone(),
        ));
        headers.push(header(
            "x-swarmmq-original-partition",
            job.partition.to_string(),
        ));
        headers.push(header("x-swarmmq-original-offset", offset.to_string()));
        headers.push(header(
            "x-swarmmq-delivery-attempts",
            job.attempts.to_string(),
        ));
        headers.push(header("x-swarmmq-last-error", job.reason.clone()));
        headers.push(header("x-swarmmq-group", job.group.name.clone()));
        messages.push(PublishMessage {
            id: r.meta.id.clone(),
            key: r.meta.key.clone(),
            headers,
            priority: r.meta.priority.get(),
            deliver_at_ms: None,
            ttl_ms: None,
            payload: r.payload.clone(),
        });
    }
    if !messages.is_empty() {
        // The DLQ exists even where auto-create is off: it is part of the destination.
        let create = swarmmq_protocol::CreateDestinationRequest {
            name: dlq_name.to_string(),
            partitions: 1,
            config: Default::default(),
        };
        let req = PublishRequest {
            destination: dlq_name.to_string(),
            acks: Default::default(),
            partition: None,
            messages,
        };
        if let Some(rt) = broker.cluster() {
            // In a cluster the DLQ is a cluster destination, placed like any other.
            if rt.topology().destination(dlq_name.as_str()).is_none() {
                crate::cluster::create_destination(broker, &rt, &create).await?;
            }
            crate::cluster::prepare_publish(broker, &rt, req, 0)
                .await?
                .finish(&broker.metrics)
                .await?;
        } else {
            if broker.get(dlq_name.as_str()).is_err() {
                broker.create(&create).await?;
            }
            publish::prepare(broker, req, 0)
                .await?
                .finish(&broker.metrics)
                .await?;
        }
    }
    let range = SettleRange {
        start: job.start,
        end: job.end,
        attempts: job.attempts,
    };
    let moved = crate::pull::settle(&job.group, job.partition, &[range])?;
    job.group
        .dlq_moved
        .fetch_add(moved, std::sync::atomic::Ordering::Relaxed);
    let label = Metrics::dest(&job.dest.name);
    broker.metrics.dlq_moves.get_or_create(&label).inc_by(moved);
    if job.expired {
        job.group
            .expired
            .fetch_add(moved, std::sync::atomic::Ordering::Relaxed);
        broker.metrics.expired.get_or_create(&label).inc_by(moved);
    }
    tracing::info!(destination = %job.dest.name, group = %job.group.name, partition = job.partition, start = job.start, end = job.end, attempts = job.attempts, reason = %job.reason, "moved to the dead-letter queue");
    Ok(())
}
