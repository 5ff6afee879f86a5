//! One pass of a shared-group pull: let each partition's delivery state read ahead in
//! the log, lease what it picks, and serve those records; dead and expired messages go
//! to the dead-letter mover or are dropped, as the destination says.

use std::sync::Arc;

use swarmmq_delivery::{Grant, PollOutcome, SettleRange};
use swarmmq_types::{PartitionId, now_ms};

use super::fetch::{BatchCursor, read_infos};
use super::{Ctx, Fill, Pushed, merge_error, visit_order};
use crate::dlq::DeadLetter;
use crate::error::RequestError;
use crate::group::SharedGroup;

/// Most metadata reads one partition does per pass (bounds the work under its lock).
const MAX_SCAN_ROUNDS: usize = 16;

pub(super) fn collect(
    ctx: &Ctx<'_>,
    shared: &SharedGroup,
    fill: &mut Fill<'_>,
) -> Result<(), RequestError> {
    // A replicated partition is served by its leader only (it holds the delivery state).
    let all: Vec<PartitionId> = (0..shared.len() as PartitionId)
        .filter(|p| ctx.dest.partition(*p).is_ok_and(|x| x.serving()))
        .collect();
    let order = visit_order(ctx.req.partition, shared.first_partition(), &all);
    let mut last_err = None;
    for p in order {
        if fill.room() == 0 {
            break;
        }
        if let Err(e) = collect_partition(ctx, shared, p, fill) {
            tracing::warn!(destination = %ctx.dest.name, partition = p, code = %e.code, error = %e.message, "pull could not serve a partition");
            last_err = Some(e);
        }
    }
    merge_error(fill, last_err)
}

fn collect_partition(
    ctx: &Ctx<'_>,
    shared: &SharedGroup,
    p: PartitionId,
    fill: &mut Fill<'_>,
) -> Result<(), RequestError> {
    let partition = ctx.dest.partition(p)?;
    let reader = partition.reader()?;
    let visible = partition.visible_end();
    let now = now_ms();
    let outcome: PollOutcome = {
        let mut st = shared.partition(p)?.lock().map_err(|_| lock_err())?;
        st.skip_below(partition.start_offset());
        for _ in 0..MAX_SCAN_ROUNDS {
            let Some((from, max)) = st.scan_request(visible, &shared.settings) else {
                break;
            };
            let infos = read_infos(reader, from, max, visible)?;
            if infos.is_empty() || st.observe(&infos, now) == 0 {
                break;
            }
        }
        st.poll(now, fill.room(), &shared.settings)
    };
    handle_reports(ctx, p, outcome.expired, outcome.dead)?;
    if outcome.grants.is_empty() {
        return Ok(());
    }
    let served = serve(ctx, reader, p, visible, &outcome.grants, fill);
    let (served, err) = match served {
        Ok(s) => (s, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    // Give back whatever was granted but not handed out.
    {
        let mut st = shared.partition(p)?.lock().map_err(|_| lock_err())?;
        for g in &outcome.grants {
            let mut cursor = g.start;
            for (s, e, _) in served
                .iter()
                .filter(|(s, e, _)| *s >= g.start && *e <= g.end)
            {
                if *s > cursor {
                    st.release(cursor, *s);
                }
                cursor = cursor.max(*e);
            }
            if cursor < g.end {
                st.release(cursor, g.end);
            }
        }
    }
    // Attempts are recorded for exactly what the consumer receives, before it does.
    let attempts: Vec<(PartitionId, u64, u64, u32)> =
        served.iter().map(|(s, e, a)| (p, *s, *e, *a)).collect();
    ctx.group.log_attempts(&attempts)?;
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Writes the granted records in grant order; returns the served ranges with their attempt.
fn serve(
    ctx: &Ctx<'_>,
    reader: &swarmmq_storage::LogReader,
    p: PartitionId,
    visible: u64,
    grants: &[Grant],
    fill: &mut Fill<'_>,
) -> Result<Vec<(u64, u64, u32)>, RequestError> {
    let mut cursor = BatchCursor::new(reader, ctx.broker.keys.current(), visible);
    let mut served = Vec::new();
    'grants: for g in grants {
        let mut end = g.start;
        for offset in g.start..g.end {
            let Some(record) = cursor.get(offset)? else {
                break;
            };
            match fill.push(p, record, g.attempt)? {
                Pushed::Yes => end = offset + 1,
                Pushed::Full => {
                    if end > g.start {
                        served.push((g.start, end, g.attempt));
                    }
                    break 'grants;
                }
            }
        }
        if end > g.start {
            served.push((g.start, end, g.attempt));
        }
        if end < g.end {
            // The log no longer has the rest (retention): stop here.
            break;
        }
    }
    Ok(served)
}

/// Expired messages are dropped (settled) or dead-lettered per the destination's
/// config; dead ones (attempts used up) always go to the dead-letter mover.
pub(crate) fn handle_reports(
    ctx: &Ctx<'_>,
    p: PartitionId,
    expired: Vec<SettleRange>,
    dead: Vec<SettleRange>,
) -> Result<(), RequestError> {
    report(ctx.broker, ctx.dest, ctx.group, p, expired, dead)
}

pub(crate) fn report(
    broker: &crate::broker::Broker,
    dest: &Arc<crate::destination::Destination>,
    group: &Arc<crate::group::Group>,
    p: PartitionId,
    expired: Vec<SettleRange>,
    dead: Vec<SettleRange>,
) -> Result<(), RequestError> {
    let to_dlq = dest.spec.dlq_enabled;
    let mut drop_expired = Vec::new();
    let mut drop_dead = Vec::new();
    for r in expired {
        if to_dlq && dest.spec.expired_to_dlq {
            broker.dead_letter(DeadLetter::expired(dest, group, p, &r));
        } else {
            drop_expired.push(r);
        }
    }
    for r in dead {
        if to_dlq {
            broker.dead_letter(DeadLetter::exhausted(
                dest,
                group,
                p,
                &r,
                "delivered on every attempt without an ack",
            ));
        } else {
            drop_dead.push(r);
        }
    }
    let label = crate::metrics::Metrics::dest(&dest.name);
    let expired_count = settle(group, p, &drop_expired)?;
    group
        .expired
        .fetch_add(expired_count, std::sync::atomic::Ordering::Relaxed);
    broker
        .metrics
        .expired
        .get_or_create(&label)
        .inc_by(expired_count);
    let dead_count = settle(group, p, &drop_dead)?;
    broker
        .metrics
        .dead_dropped
        .get_or_create(&label)
        .inc_by(dead_count);
    Ok(())
}

/// Marks ranges done (dropped or moved) durably; returns how many offsets changed.
pub(crate) fn settle(
    group: &Arc<crate::group::Group>,
    p: PartitionId,
    ranges: &[SettleRange],
) -> Result<u64, RequestError> {
    if ranges.is_empty() {
        return Ok(0);
    }
    let shared = group.shared()?;
    let mut done = Vec::new();
    let mut count = 0;
    {
        let mut st = shared.partition(p)?.lock().map_err(|_| lock_err())?;
        for r in ranges {
            let c = st.settle(r.start, r.end);
            count += c.count;
            done.extend(c.ranges.into_iter().map(|(s, e)| (p, s, e)));
        }
    }
    group.log_settled(&done)?;
    Ok(count)
}

fn lock_err() -> RequestError {
    RequestError::new(
        swarmmq_types::ErrorCode::Internal,
        "group state lock poisoned",
    )
}
