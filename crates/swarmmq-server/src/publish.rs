//! Publish: route each message to its partition, encrypt it into one record batch per
//! partition, queue the batches in request order, then await their offsets.
//!
//! Preparing and queueing happen on the connection's read path, one request after the
//! other, so a producer's pipelined publishes land in the order it sent them; only the
//! waiting for durability runs concurrently.

use std::sync::Arc;
use std::time::Instant;

use swarmmq_protocol::{PublishRequest, PublishResponse, PublishRun};
use swarmmq_storage::{BatchBuilder, RecordHeaderRef, RecordInput};
use swarmmq_types::{ErrorCode, PartitionId, now_ms, partition_for_key};
use tokio::sync::oneshot;

use crate::broker::Broker;
use crate::destination::Destination;
use crate::error::RequestError;
use crate::metrics::Metrics;

/// A publish whose batches are queued; [`PendingPublish::finish`] waits for them.
pub(crate) struct PendingPublish {
    dest: Option<Arc<Destination>>,
    /// Per message, in request order: its partition and index within that partition's batch.
    placement: Vec<(PartitionId, u32)>,
    waits: Vec<(PartitionId, oneshot::Receiver<Result<u64, RequestError>>)>,
    payload_bytes: u64,
    started: Instant,
}

pub(crate) async fn prepare(
    broker: &Broker,
    req: PublishRequest,
    producer_id: u64,
) -> Result<PendingPublish, RequestError> {
    let started = Instant::now();
    if req.messages.is_empty() {
        return Ok(PendingPublish {
            dest: None,
            placement: Vec::new(),
            waits: Vec::new(),
            payload_bytes: 0,
            started,
        });
    }
    let dest = broker.get_or_create(&req.destination).await?;
    let n = dest.spec.partitions;
    if let Some(p) = req.partition {
        dest.partition(p)?;
    }
    let sticky = req.partition.unwrap_or_else(|| dest.next_sticky());
    let now = now_ms();
    let mut per_partition: Vec<Vec<usize>> = vec![Vec::new(); n as usize];
    let mut placement = Vec::with_capacity(req.messages.len());
    let mut payload_bytes = 0u64;
    for (i, m) in req.messages.iter().enumerate() {
        if m.payload.len() > dest.spec.max_message_bytes as usize {
            return Err(RequestError::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "message {i} has {} payload bytes; {:?} accepts at most {}",
                    m.payload.len(),
                    dest.name,
                    dest.spec.max_message_bytes
                ),
            ));
        }
        payload_bytes += m.payload.len() as u64;
        let p = match (&m.key, req.partition) {
            (_, Some(p)) => p,
            (Some(key), None) => partition_for_key(key, n),
            (None, None) => sticky,
        };
        let slot = per_partition
            .get_mut(p as usize)
            .ok_or_else(|| RequestError::new(ErrorCode::Internal, "partition out of range"))?;
        placement.push((p, slot.len() as u32));
        slot.push(i);
    }
    let mut batches = Vec::new();
    let mut headers: Vec<RecordHeaderRef<'_>> = Vec::new();
    for (p, indexes) in per_partition.iter().enumerate() {
        if indexes.is_empty() {
            continue;
        }
        let hint: usize = indexes
            .iter()
            .filter_map(|i| req.messages.get(*i))
            .map(|m| m.payload.len() + 64)
            .sum();
        let mut builder = BatchBuilder::new(&broker.keyring, producer_id, hint)?;
        for i in indexes {
            let Some(m) = req.messages.get(*i) else {
                continue;
            };
            headers.clear();
            headers.extend(m.headers.iter().map(|h| RecordHeaderRef {
                name: &h.name,
                value: &h.value,
            }));
            let ttl = m.ttl_ms.or(dest.spec.default_ttl_ms);
            builder.push(RecordInput {
                timestamp_ms: now,
                priority: m.priority,
                id: m.id.as_ref(),
                key: m.key.as_deref(),
                headers: &headers,
                deliver_at_ms: m.deliver_at_ms,
                expires_at_ms: ttl
                    .map(|t| now.saturating_add(i64::try_from(t).unwrap_or(i64::MAX))),
                payload: &m.payload,
            })?;
        }
        batches.push((p as PartitionId, builder.finish()));
    }
    let mut waits = Vec::with_capacity(batches.len());
    for (p, batch) in batches {
        let rx = dest.partition(p)?.enqueue(batch).await?;
        waits.push((p, rx));
    }
    Ok(PendingPublish {
        dest: Some(dest),
        placement,
        waits,
        payload_bytes,
        started,
    })
}

impl PendingPublish {
    /// Waits until every batch is durable and answers with the offsets, as runs in
    /// request order.
    pub async fn finish(self, metrics: &Metrics) -> Result<PublishResponse, RequestError> {
        let mut bases: Vec<Option<u64>> = Vec::new();
        let mut first_err = None;
        for (p, rx) in self.waits {
            let result = rx
                .await
                .unwrap_or_else(|_| Err(RequestError::shutting_down()));
            match result {
                Ok(base) => {
                    if bases.len() <= p as usize {
                        bases.resize(p as usize + 1, None);
                    }
                    bases[p as usize] = Some(base);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let mut runs: Vec<PublishRun> = Vec::new();
        for (p, idx) in &self.placement {
            let base =
                bases.get(*p as usize).copied().flatten().ok_or_else(|| {
                    RequestError::new(ErrorCode::Internal, "missing append result")
                })?;
            let offset = base + u64::from(*idx);
            match runs.last_mut() {
                Some(r) if r.partition == *p && r.base_offset + u64::from(r.count) == offset => {
                    r.count += 1;
                }
                _ => runs.push(PublishRun {
                    partition: *p,
                    base_offset: offset,
                    count: 1,
                    duplicate: false,
                }),
            }
        }
        if let Some(dest) = &self.dest {
            let label = Metrics::dest(&dest.name);
            metrics
                .messages_in
                .get_or_create(&label)
                .inc_by(self.placement.len() as u64);
            metrics
                .bytes_in
                .get_or_create(&label)
                .inc_by(self.payload_bytes);
        }
        metrics
            .publish_latency
            .observe(self.started.elapsed().as_secs_f64());
        Ok(PublishResponse { runs })
    }
}
