//! Publish: drop messages whose id was already stored (dedup), route each of the rest to
//! its partition, encrypt them into one record batch per partition, queue the batches
//! in request order, then await their offsets.
//!
//! Preparing and queueing happen on the connection's read path, one request after the
//! other, so a producer's pipelined publishes land in the order it sent them; only the
//! waiting for durability runs concurrently.

use std::sync::Arc;
use std::time::Instant;

use swarmmq_protocol::{PublishRequest, PublishResponse, PublishRun};
use swarmmq_storage::{BatchBuilder, RecordHeaderRef, RecordInput};
use swarmmq_types::{ErrorCode, Offset, PartitionId, now_ms, partition_for_key};
use tokio::sync::{oneshot, watch};

use crate::broker::Broker;
use crate::dedup::{Lookup, Stored, Ticket};
use crate::destination::Destination;
use crate::error::RequestError;
use crate::metrics::Metrics;

/// Where one message of the request ends up.
enum Placement {
    /// Stored now: its partition and index within that partition's batch.
    New(PartitionId, u32),
    /// Already stored within the dedup window.
    Duplicate(Stored),
    /// Another publish (or an earlier message of this one) is storing the same id.
    Waiting(watch::Receiver<Option<Stored>>),
}

/// A publish whose batches are queued; [`PendingPublish::finish`] waits for them.
pub(crate) struct PendingPublish {
    dest: Option<Arc<Destination>>,
    placement: Vec<Placement>,
    /// Id reservations of the stored messages: (partition, index in batch, ticket).
    tickets: Vec<(PartitionId, u32, Ticket)>,
    waits: Vec<(PartitionId, oneshot::Receiver<Result<u64, RequestError>>)>,
    stored_messages: u64,
    payload_bytes: u64,
    started: Instant,
}

pub(crate) async fn prepare(
    broker: &Broker,
    req: PublishRequest,
    producer_id: u64,
) -> Result<PendingPublish, RequestError> {
    let started = Instant::now();
    let mut pending = PendingPublish {
        dest: None,
        placement: Vec::with_capacity(req.messages.len()),
        tickets: Vec::new(),
        waits: Vec::new(),
        stored_messages: 0,
        payload_bytes: 0,
        started,
    };
    if req.messages.is_empty() {
        return Ok(pending);
    }
    let dest = broker.get_or_create(&req.destination).await?;
    let n = dest.spec.partitions;
    if let Some(p) = req.partition {
        dest.partition(p)?;
    }
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
    }
    let sticky = req.partition.unwrap_or_else(|| dest.next_sticky());
    let now = now_ms();
    let mut per_partition: Vec<Vec<usize>> = vec![Vec::new(); n as usize];
    {
        let mut dedup = dest
            .dedup
            .lock()
            .map_err(|_| RequestError::new(ErrorCode::Internal, "dedup index lock poisoned"))?;
        for (i, m) in req.messages.iter().enumerate() {
            let p = match (&m.key, req.partition) {
                (_, Some(p)) => p,
                (Some(key), None) => partition_for_key(key, n),
                (None, None) => sticky,
            };
            let ticket = match &m.id {
                Some(id) if dedup.enabled() => match dedup.lookup(id, now) {
                    Lookup::New(t) => Some(t),
                    Lookup::Duplicate(at) => {
                        pending.placement.push(Placement::Duplicate(at));
                        continue;
                    }
                    Lookup::InFlight(rx) => {
                        pending.placement.push(Placement::Waiting(rx));
                        continue;
                    }
                },
                _ => None,
            };
            let slot = per_partition
                .get_mut(p as usize)
                .ok_or_else(|| RequestError::new(ErrorCode::Internal, "partition out of range"))?;
            let index = slot.len() as u32;
            if let Some(t) = ticket {
                pending.tickets.push((p, index, t));
            }
            pending.placement.push(Placement::New(p, index));
            pending.payload_bytes += m.payload.len() as u64;
            pending.stored_messages += 1;
            slot.push(i);
        }
    }
    pending.dest = Some(Arc::clone(&dest));
    // From here on, a failure must release the id reservations: `abort` does.
    match build_and_queue(broker, &dest, &req, &per_partition, producer_id, now).await {
        Ok(waits) => {
            pending.waits = waits;
            Ok(pending)
        }
        Err(e) => {
            pending.abort();
            Err(e)
        }
    }
}

async fn build_and_queue(
    broker: &Broker,
    dest: &Destination,
    req: &PublishRequest,
    per_partition: &[Vec<usize>],
    producer_id: u64,
    now: i64,
) -> Result<Vec<(PartitionId, oneshot::Receiver<Result<u64, RequestError>>)>, RequestError> {
    // Held until every batch is queued, so a key retirement can wait for batches built
    // under the ring taken here (see `KeyStore::drain_writers`).
    let (_building, ring) = broker.keys.for_write().await;
    let mut batches = Vec::new();
    for (p, indexes) in per_partition.iter().enumerate() {
        if indexes.is_empty() {
            continue;
        }
        let hint: usize = indexes
            .iter()
            .filter_map(|i| req.messages.get(*i))
            .map(|m| m.payload.len() + 64)
            .sum();
        let mut builder = BatchBuilder::new(&ring, producer_id, hint)?;
        for i in indexes {
            let Some(m) = req.messages.get(*i) else {
                continue;
            };
            let headers: Vec<RecordHeaderRef<'_>> = m
                .headers
                .iter()
                .map(|h| RecordHeaderRef {
                    name: &h.name,
                    value: &h.value,
                })
                .collect();
            let ttl = m.ttl_ms.or(dest.spec.default_ttl_ms);
            builder
                .push(RecordInput {
                    timestamp_ms: now,
                    priority: m.priority,
                    id: m.id.as_ref(),
                    key: m.key.as_deref(),
                    headers: &headers,
                    deliver_at_ms: m.deliver_at_ms,
                    expires_at_ms: ttl
                        .map(|t| now.saturating_add(i64::try_from(t).unwrap_or(i64::MAX))),
                    payload: &m.payload,
                })
                // The record is refused for what the client put in it (a deliver-at time
                // too far from now, say), not for the state of the disk.
                .map_err(|e| {
                    RequestError::new(ErrorCode::InvalidRequest, format!("message {i}: {e}"))
                })?;
        }
        batches.push((p as PartitionId, builder.finish()));
    }
    // Checked before anything is queued, so a refused publish stores nothing.
    let max = crate::broker::max_batch_bytes(&broker.limits);
    if let Some((p, b)) = batches.iter().find(|(_, b)| b.len() > max as usize) {
        return Err(RequestError::new(
            ErrorCode::InvalidRequest,
            format!(
                "the messages for partition {p} make a record batch of {} bytes; a partition \
                 takes at most {max}: send fewer messages per request",
                b.len()
            ),
        ));
    }
    let mut waits = Vec::with_capacity(batches.len());
    for (p, batch) in batches {
        let rx = dest.partition(p)?.enqueue(batch).await?;
        waits.push((p, rx));
    }
    Ok(waits)
}

impl PendingPublish {
    fn abort(&mut self) {
        if let Some(dest) = &self.dest
            && let Ok(mut dedup) = dest.dedup.lock()
        {
            for (_, _, t) in self.tickets.drain(..) {
                dedup.abort(t);
            }
        }
    }

    /// Waits until every batch is durable and answers with the offsets, as runs in
    /// request order.
    pub async fn finish(mut self, metrics: &Metrics) -> Result<PublishResponse, RequestError> {
        let mut bases: Vec<Option<u64>> = Vec::new();
        let mut first_err = None;
        for (p, rx) in std::mem::take(&mut self.waits) {
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
            self.abort();
            return Err(e);
        }
        let base_of = |p: PartitionId| -> Result<u64, RequestError> {
            bases
                .get(p as usize)
                .copied()
                .flatten()
                .ok_or_else(|| RequestError::new(ErrorCode::Internal, "missing append result"))
        };
        if let Some(dest) = &self.dest
            && let Ok(mut dedup) = dest.dedup.lock()
        {
            for (p, idx, t) in self.tickets.drain(..) {
                let at = (p, base_of(p)? + u64::from(idx));
                dedup.complete(t, at);
            }
        }
        let mut runs: Vec<PublishRun> = Vec::new();
        let mut duplicates = 0u64;
        for placement in std::mem::take(&mut self.placement) {
            let (p, offset, duplicate) = match placement {
                Placement::New(p, idx) => (p, base_of(p)? + u64::from(idx), false),
                Placement::Duplicate((p, o)) => (p, o, true),
                Placement::Waiting(rx) => {
                    let (p, o) = wait_for_first_copy(rx).await?;
                    (p, o, true)
                }
            };
            duplicates += u64::from(duplicate);
            push_run(&mut runs, p, offset, duplicate);
        }
        if let Some(dest) = &self.dest {
            let label = Metrics::dest(&dest.name);
            metrics
                .messages_in
                .get_or_create(&label)
                .inc_by(self.stored_messages);
            metrics
                .bytes_in
                .get_or_create(&label)
                .inc_by(self.payload_bytes);
            if duplicates > 0 {
                metrics.dedup_hits.get_or_create(&label).inc_by(duplicates);
            }
        }
        let elapsed = self.started.elapsed();
        metrics.publish_latency.observe(elapsed.as_secs_f64());
        metrics.load.record(self.stored_messages, elapsed);
        Ok(PublishResponse { runs })
    }
}

async fn wait_for_first_copy(
    mut rx: watch::Receiver<Option<Stored>>,
) -> Result<Stored, RequestError> {
    match rx.wait_for(|v| v.is_some()).await {
        Ok(v) => v.ok_or_else(|| RequestError::new(ErrorCode::Internal, "dedup wait ended empty")),
        Err(_) => Err(RequestError::new(
            ErrorCode::Busy,
            "the first copy of this message id failed to store; publish it again",
        )),
    }
}

fn push_run(runs: &mut Vec<PublishRun>, partition: PartitionId, offset: Offset, duplicate: bool) {
    match runs.last_mut() {
        Some(r)
            if r.partition == partition
                && r.duplicate == duplicate
                && r.base_offset + u64::from(r.count) == offset =>
        {
            r.count += 1;
        }
        _ => runs.push(PublishRun {
            partition,
            base_offset: offset,
            count: 1,
            duplicate,
        }),
    }
}
