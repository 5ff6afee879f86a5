//! Pull: hand a group's deliverable messages to a consumer, writing them straight into
//! the answer frame, and wait (long-poll) while nothing is deliverable.
//!
//! Shared groups lease messages (priority, delay, TTL and attempts decided by the
//! group's delivery state); ordered groups read each owned partition in offset order
//! from the member's position.

mod fetch;
mod ordered;
mod shared;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use swarmmq_protocol::{
    DeliveredMessageRef, HeaderRef, OffsetRange, PullRequest, PullResponseEncoder,
};
use swarmmq_storage::Record;
use swarmmq_types::{ErrorCode, PartitionId, now_ms};
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::destination::Destination;
use crate::error::RequestError;
use crate::group::{Group, GroupState};
use crate::metrics::Metrics;

pub(crate) use fetch::BatchCursor;
pub(crate) use shared::{report, settle};

/// The answer being built, and its limits.
pub(crate) struct Fill<'a> {
    encoder: PullResponseEncoder<'a>,
    count: u32,
    bytes: usize,
    max_messages: u32,
    max_bytes: usize,
    full: bool,
    /// Offsets handed out, for auto-ack.
    delivered: Vec<OffsetRange>,
    redelivered: u64,
    payload_bytes: u64,
    /// The earliest time a held message (delay) becomes deliverable, to wake the poll.
    wake_at_ms: Option<i64>,
}

/// Whether a record went into the answer.
pub(crate) enum Pushed {
    Yes,
    /// The answer is full; the record was not added.
    Full,
}

impl Fill<'_> {
    fn room(&self) -> u64 {
        if self.full {
            0
        } else {
            u64::from(self.max_messages.saturating_sub(self.count))
        }
    }

    fn wake_at(&mut self, ms: i64) {
        self.wake_at_ms = Some(self.wake_at_ms.map_or(ms, |w| w.min(ms)));
    }

    /// Adds one record, unless the answer is out of messages or bytes (a first record
    /// always goes in, so a large message is never stuck).
    fn push(
        &mut self,
        p: PartitionId,
        record: &Record,
        attempt: u32,
    ) -> Result<Pushed, RequestError> {
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
            delivery_attempt: attempt,
            id: record.meta.id.as_ref(),
            key: record.meta.key.as_deref(),
            headers: &headers,
            payload: &record.payload,
        };
        let size = message.encoded_len() as usize;
        if self.count >= self.max_messages || (self.count > 0 && self.bytes + size > self.max_bytes)
        {
            self.full = true;
            return Ok(Pushed::Full);
        }
        if let Err(e) = self.encoder.push(&message) {
            if self.count == 0 {
                return Err(RequestError::new(
                    ErrorCode::Internal,
                    format!(
                        "message at offset {} does not fit an answer: {e}",
                        record.meta.offset
                    ),
                ));
            }
            self.full = true;
            return Ok(Pushed::Full);
        }
        self.count += 1;
        self.bytes += size;
        self.payload_bytes += record.payload.len() as u64;
        if attempt > 1 {
            self.redelivered += 1;
        }
        match self.delivered.last_mut() {
            Some(r) if r.partition == p && r.end == record.meta.offset => r.end += 1,
            _ => self.delivered.push(OffsetRange {
                partition: p,
                start: record.meta.offset,
                end: record.meta.offset + 1,
            }),
        }
        Ok(Pushed::Yes)
    }
}

/// Everything one pass over the partitions needs.
pub(crate) struct Ctx<'a> {
    pub broker: &'a Broker,
    pub dest: &'a Arc<Destination>,
    pub group: &'a Arc<Group>,
    pub req: &'a PullRequest,
}

pub(crate) async fn pull(
    broker: &Broker,
    req: PullRequest,
    correlation_id: u32,
    cancel: &CancellationToken,
) -> Result<BytesMut, RequestError> {
    let started = Instant::now();
    let dest = broker.get(&req.destination)?;
    let group = broker.group(&dest, &req.group, None)?;
    if let Some(p) = req.partition {
        dest.partition(p)?;
    }
    let limits = &broker.limits;
    let wait = Duration::from_millis(u64::from(req.max_wait_ms.min(limits.max_pull_wait_ms)));
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = BytesMut::new();
    let ctx = Ctx {
        broker,
        dest: &dest,
        group: &group,
        req: &req,
    };
    let (count, redelivered, payload_bytes) =
        fill_answer(&ctx, cancel, deadline, correlation_id, &mut out).await?;
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

/// Fills `out` with one answer, waiting while nothing is deliverable.
/// Returns (messages, redeliveries, payload bytes).
async fn fill_answer(
    ctx: &Ctx<'_>,
    cancel: &CancellationToken,
    deadline: tokio::time::Instant,
    correlation_id: u32,
    out: &mut BytesMut,
) -> Result<(u32, u64, u64), RequestError> {
    let limits = &ctx.broker.limits;
    let mut fill = Fill {
        encoder: PullResponseEncoder::begin(out, correlation_id, limits),
        count: 0,
        bytes: 0,
        max_messages: ctx.req.max_messages.clamp(1, limits.max_pull_messages),
        max_bytes: ctx.req.max_bytes.clamp(1, limits.max_pull_bytes) as usize,
        full: false,
        delivered: Vec::new(),
        redelivered: 0,
        payload_bytes: 0,
        wake_at_ms: None,
    };
    let mut parked = false;
    let result = loop {
        let notified = ctx.dest.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        fill.wake_at_ms = None;
        let pass = match &ctx.group.state {
            GroupState::Shared(s) => shared::collect(ctx, s, &mut fill),
            GroupState::Ordered(o) => ordered::collect(ctx, o, &mut fill),
        };
        if let Err(e) = pass {
            break Err(e);
        }
        let now = tokio::time::Instant::now();
        if fill.count > 0 || now >= deadline || cancel.is_cancelled() {
            break Ok(());
        }
        if !parked {
            let waiting = ctx.broker.waiting_pulls.fetch_add(1, Ordering::AcqRel);
            parked = true;
            if waiting >= limits.max_waiting_pulls {
                // Too many parked pulls: answer empty now rather than hold more memory.
                break Ok(());
            }
        }
        let mut wake_at = deadline;
        let due = match &ctx.group.state {
            GroupState::Shared(s) => s.next_due_ms(),
            GroupState::Ordered(_) => None,
        };
        if let Some(due) = [due, fill.wake_at_ms].into_iter().flatten().min() {
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
        ctx.broker.waiting_pulls.fetch_sub(1, Ordering::AcqRel);
    }
    result?;
    if ctx.req.auto_ack && !fill.delivered.is_empty() {
        crate::group_ops::ack_ranges(
            ctx.broker,
            ctx.dest,
            ctx.group,
            &ctx.req.consumer_id,
            ctx.req.generation,
            &fill.delivered,
            false,
        )
        .await?;
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

/// The partitions to visit, in rotating order, restricted to `allowed`.
fn visit_order(
    req_partition: Option<PartitionId>,
    first: usize,
    allowed: &[PartitionId],
) -> Vec<PartitionId> {
    match req_partition {
        Some(p) => allowed.iter().copied().filter(|a| *a == p).collect(),
        None => {
            let n = allowed.len();
            (0..n)
                .filter_map(|i| allowed.get((first + i) % n.max(1)).copied())
                .collect()
        }
    }
}

/// Reports a failed partition only when nothing else could be served.
fn merge_error(fill: &Fill<'_>, last: Option<RequestError>) -> Result<(), RequestError> {
    match last {
        Some(e) if fill.count == 0 => Err(e),
        _ => Ok(()),
    }
}
