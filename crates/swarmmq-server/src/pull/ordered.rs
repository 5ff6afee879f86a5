//! One pass of an ordered-group pull: each partition the member owns is read in offset
//! order from the member's position. Expired messages are skipped (and counted); a
//! delayed message holds its partition until due, so order is kept and nothing is early.

use swarmmq_types::{PartitionId, now_ms};

use super::fetch::BatchCursor;
use super::{Ctx, Fill, Pushed, merge_error, visit_order};
use crate::error::RequestError;
use crate::group::OrderedGroup;
use crate::metrics::Metrics;

pub(super) fn collect(
    ctx: &Ctx<'_>,
    ordered: &OrderedGroup,
    fill: &mut Fill<'_>,
) -> Result<(), RequestError> {
    let owned = ordered.owned(&ctx.req.consumer_id, ctx.req.generation)?;
    if let Some(p) = ctx.req.partition
        && !owned.contains(&p)
    {
        ordered.check(&ctx.req.consumer_id, ctx.req.generation, p)?;
    }
    // Rotate by time so a member with several partitions does not favour the first.
    let first = (now_ms() / 10) as usize;
    // A replicated partition is served by its leader only (it holds the delivery state).
    let owned: Vec<PartitionId> = owned
        .into_iter()
        .filter(|p| ctx.dest.partition(*p).is_ok_and(|x| x.serving()))
        .collect();
    let order = visit_order(ctx.req.partition, first, &owned);
    let mut last_err = None;
    for p in order {
        if fill.room() == 0 {
            break;
        }
        if let Err(e) = collect_partition(ctx, ordered, p, fill) {
            tracing::warn!(destination = %ctx.dest.name, partition = p, code = %e.code, error = %e.message, "pull could not serve a partition");
            last_err = Some(e);
        }
    }
    merge_error(fill, last_err)
}

fn collect_partition(
    ctx: &Ctx<'_>,
    ordered: &OrderedGroup,
    p: PartitionId,
    fill: &mut Fill<'_>,
) -> Result<(), RequestError> {
    let partition = ctx.dest.partition(p)?;
    let reader = partition.reader()?;
    let visible = partition.visible_end();
    let now = now_ms();
    let member = &ctx.req.consumer_id;
    let mut pos = ordered.position(p)?.lock().map_err(|_| {
        RequestError::new(swarmmq_types::ErrorCode::Internal, "position lock poisoned")
    })?;
    if pos.owner.as_deref() != Some(member.as_str()) {
        // A new owner starts from what the group committed.
        pos.owner = Some(member.clone());
        pos.fetch = pos.committed;
    }
    let start = partition.start_offset();
    if pos.fetch < start {
        pos.fetch = start;
    }
    let mut cursor = BatchCursor::new(reader, ctx.broker.keys.current(), visible);
    let mut expired = 0u64;
    while pos.fetch < visible && fill.room() > 0 {
        let Some(record) = cursor.get(pos.fetch)? else {
            break;
        };
        if record.meta.expires_at_ms.is_some_and(|t| t <= now) {
            expired += 1;
            pos.fetch += 1;
            continue;
        }
        if let Some(at) = record.meta.deliver_at_ms
            && at > now
        {
            fill.wake_at(at);
            break;
        }
        let attempt = if pos.fetch < pos.delivered_to { 2 } else { 1 };
        match fill.push(p, record, attempt)? {
            Pushed::Yes => {
                pos.fetch += 1;
                pos.delivered_to = pos.delivered_to.max(pos.fetch);
            }
            Pushed::Full => break,
        }
    }
    if expired > 0 {
        ctx.group
            .expired
            .fetch_add(expired, std::sync::atomic::Ordering::Relaxed);
        ctx.broker
            .metrics
            .expired
            .get_or_create(&Metrics::dest(&ctx.dest.name))
            .inc_by(expired);
    }
    Ok(())
}
