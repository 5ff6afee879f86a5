//! Pull: lease messages of a group and write them straight into the answer frame,
//! waiting (long-poll) until something is deliverable or the wait runs out.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use swarmmq_delivery::Grant;
use swarmmq_protocol::{
    DeliveredMessageRef, HeaderRef, OffsetRange, PullRequest, PullResponseEncoder,
};
use swarmmq_types::{ErrorCode, PartitionId, now_ms};
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::destination::Destination;
use crate::error::RequestError;
use crate::group::Group;
use crate::metrics::Metrics;

/// Most bytes one storage read takes for a grant.
const READ_AHEAD_BYTES: usize = 1024 * 1024;

struct Fill<'a> {
    encoder: PullResponseEncoder<'a>,
    count: u32,
    bytes: usize,
    max_messages: u32,
    max_bytes: usize,
    full: bool,
    delivered: Vec<OffsetRange>,
    redelivered: u64,
    payload_bytes: u64,
}

pub(crate) async fn pull(
    broker: &Broker,
    req: PullRequest,
    correlation_id: u32,
    cancel: &CancellationToken,
) -> Result<BytesMut, RequestError> {
    let started = Instant::now();
    let dest = broker.get(&req.destination)?;
    let group = broker.group(&dest, &req.group)?;
    if let Some(p) = req.partition {
        dest.partition(p)?;
    }
    let limits = &broker.limits;
    let max_messages = req.max_messages.clamp(1, limits.max_pull_messages);
    let max_bytes = (req.max_bytes.clamp(1, limits.max_pull_bytes)) as usize;
    let wait = Duration::from_millis(u64::from(req.max_wait_ms.min(limits.max_pull_wait_ms)));
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = BytesMut::new();
    let stats = fill_answer(
        broker,
        &dest,
        &group,
        &req,
        cancel,
        Budget {
            max_messages,
            max_bytes,
            deadline,
        },
        correlation_id,
        &mut out,
    )
    .await?;
    let (count, redelivered, payload_bytes) = stats;
    let label = Metrics::dest(&dest.name);
    broker
        .metrics
        .messages_out
        .get_or_create(&label)
        .inc_by(u64::from(count));
    broker
        .metrics
        .bytes_out
        .get_or_create(&label)
        .inc_by(payload_bytes);
    if redelivered > 0 {
        broker
            .metrics
            .redelivered
            .get_or_create(&label)
            .inc_by(redelivered);
    }
    broker
        .metrics
        .pull_latency
        .observe(started.elapsed().as_secs_f64());
    Ok(out)
}

struct Budget {
    max_messages: u32,
    max_bytes: usize,
    deadline: tokio::time::Instant,
}

/// Fills `out` with one pull answer, waiting (long-poll) while nothing is deliverable.
/// Returns (messages, redeliveries, payload bytes).
#[allow(clippy::too_many_arguments)]
async fn fill_answer(
    broker: &Broker,
    dest: &Arc<Destination>,
    group: &Arc<Group>,
    req: &PullRequest,
    cancel: &CancellationToken,
    budget: Budget,
    correlation_id: u32,
    out: &mut BytesMut,
) -> Result<(u32, u64, u64), RequestError> {
    let limits = &broker.limits;
    let mut fill = Fill {
        encoder: PullResponseEncoder::begin(out, correlation_id, limits),
        count: 0,
        bytes: 0,
        max_messages: budget.max_messages,
        max_bytes: budget.max_bytes,
        full: false,
        delivered: Vec::new(),
        redelivered: 0,
        payload_bytes: 0,
    };
    let mut parked = false;
    let result = loop {
        let notified = dest.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Err(e) = collect(broker, dest, group, req, &mut fill) {
            break Err(e);
        }
        let now = tokio::time::Instant::now();
        if fill.count > 0 || now >= budget.deadline || cancel.is_cancelled() {
            break Ok(());
        }
        if !parked {
            let waiting = broker.waiting_pulls.fetch_add(1, Ordering::AcqRel);
            parked = true;
            if waiting >= limits.max_waiting_pulls {
                // Too many parked pulls: answer empty now rather than hold more memory.
                break Ok(());
            }
        }
        let mut wake_at = budget.deadline;
        if let Some(due) = group.next_due_ms() {
            let in_ms = u64::try_from(due.saturating_sub(now_ms())).unwrap_or(0);
            wake_at = wake_at.min(now + Duration::from_millis(in_ms));
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(wake_at) => {}
            _ = cancel.cancelled() => {}
        }
    };
    if parked {
        broker.waiting_pulls.fetch_sub(1, Ordering::AcqRel);
    }
    result?;
    if req.auto_ack && !fill.delivered.is_empty() {
        group.ack(&fill.delivered, false).await?;
    }
    let stats = (fill.count, fill.redelivered, fill.payload_bytes);
    fill.encoder.finish().map_err(|e| {
        RequestError::new(
            ErrorCode::Internal,
            format!("cannot finish the answer: {e}"),
        )
    })?;
    Ok(stats)
}

/// One pass over the group's partitions, filling the answer.
fn collect(
    broker: &Broker,
    dest: &Arc<Destination>,
    group: &Arc<Group>,
    req: &PullRequest,
    fill: &mut Fill<'_>,
) -> Result<(), RequestError> {
    let n = dest.partitions.len();
    let order: Vec<PartitionId> = match req.partition {
        Some(p) => vec![p],
        None => {
            let first = group.first_partition();
            (0..n).map(|i| ((first + i) % n) as PartitionId).collect()
        }
    };
    let mut last_err = None;
    for p in order {
        if fill.full || fill.count >= fill.max_messages {
            break;
        }
        if let Err(e) = collect_partition(broker, dest, group, p, fill) {
            tracing::warn!(destination = %dest.name, partition = p, code = %e.code, error = %e.message, "pull could not read a partition");
            last_err = Some(e);
        }
    }
    match last_err {
        // Report a failure only when nothing else could be served.
        Some(e) if fill.count == 0 => Err(e),
        _ => Ok(()),
    }
}

fn collect_partition(
    broker: &Broker,
    dest: &Arc<Destination>,
    group: &Arc<Group>,
    p: PartitionId,
    fill: &mut Fill<'_>,
) -> Result<(), RequestError> {
    let partition = dest.partition(p)?;
    let reader = partition.reader()?;
    let visible = partition.visible_end();
    let now = now_ms();
    let room = u64::from(fill.max_messages - fill.count);
    let grants = group.poll(p, now, room, visible, partition.start_offset())?;
    let mut i = 0;
    while let Some(g) = grants.get(i).copied() {
        i += 1;
        if fill.full {
            group.release(p, g.start, g.end);
            continue;
        }
        match serve_grant(broker, reader, p, g, visible, fill) {
            Ok(served_to) => {
                if served_to > g.start {
                    fill.delivered.push(OffsetRange {
                        partition: p,
                        start: g.start,
                        end: served_to,
                    });
                }
                if served_to < g.end {
                    group.release(p, served_to, g.end);
                }
            }
            Err(e) => {
                group.release(p, g.start, g.end);
                for rest in &grants[i..] {
                    group.release(p, rest.start, rest.end);
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Writes the records of one grant into the answer; returns the offset it stopped at
/// (`g.end` when all of it fit).
fn serve_grant(
    broker: &Broker,
    reader: &swarmmq_storage::LogReader,
    p: PartitionId,
    g: Grant,
    visible: u64,
    fill: &mut Fill<'_>,
) -> Result<u64, RequestError> {
    let mut offset = g.start;
    while offset < g.end {
        // Read about what the grant can still use: a grant ends inside some batch, and
        // every byte read past it is read, checked and decrypted for nothing.
        let want = fill
            .max_bytes
            .saturating_sub(fill.bytes)
            .clamp(1, READ_AHEAD_BYTES);
        // Whole batches up to the visible end (a grant may end inside a batch).
        let read = reader.read(offset, want, visible)?;
        let mut advanced = false;
        for batch in &read.batches {
            for record in batch.decrypt_records(&broker.keyring) {
                let record = record?;
                if record.meta.offset < offset {
                    continue;
                }
                if record.meta.offset >= g.end {
                    return Ok(g.end);
                }
                let headers: Vec<HeaderRef<'_>> = record
                    .meta
                    .headers
                    .iter()
                    .map(|h| HeaderRef {
                        name: h.name,
                        value: h.value,
                    })
                    .collect();
                let message = DeliveredMessageRef {
                    partition: p,
                    offset: record.meta.offset,
                    timestamp_ms: record.meta.timestamp_ms,
                    priority: record.meta.priority.get(),
                    delivery_attempt: g.attempt,
                    id: record.meta.id.as_ref(),
                    key: record.meta.key.as_deref(),
                    headers: &headers,
                    payload: &record.payload,
                };
                let size = message.encoded_len() as usize;
                if fill.count >= fill.max_messages
                    || (fill.count > 0 && fill.bytes + size > fill.max_bytes)
                {
                    fill.full = true;
                    return Ok(record.meta.offset);
                }
                if let Err(e) = fill.encoder.push(&message) {
                    // The answer is full (frame limit): stop here, the rest goes back.
                    if fill.count == 0 {
                        return Err(RequestError::new(
                            ErrorCode::Internal,
                            format!(
                                "message at offset {} does not fit an answer: {e}",
                                record.meta.offset
                            ),
                        ));
                    }
                    fill.full = true;
                    return Ok(record.meta.offset);
                }
                fill.count += 1;
                fill.bytes += size;
                fill.payload_bytes += record.payload.len() as u64;
                if g.attempt > 1 {
                    fill.redelivered += 1;
                }
                offset = record.meta.offset + 1;
                advanced = true;
            }
        }
        if !advanced {
            // Nothing readable at this offset (retention removed it meanwhile): stop here
            // and let the unserved rest return to the group.
            if fill.count == 0 && offset == g.start {
                return Err(RequestError::new(
                    ErrorCode::StorageFailure,
                    format!("offset {offset} of partition {p} could not be read"),
                ));
            }
            return Ok(offset);
        }
    }
    Ok(g.end)
}
