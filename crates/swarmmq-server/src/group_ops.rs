//! Consumer-group requests: ack, nack, lease extension, membership (join, heartbeat,
//! leave), commits, seeks, and the list and describe views.

use std::sync::Arc;

use swarmmq_delivery::{SettleRange, SharedPartition};
use swarmmq_protocol::{
    AckRequest, AckResponse, CommitOffsetsRequest, DescribeGroupRequest, ExtendLeaseRequest,
    GroupDescription, GroupMode, GroupSummary, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, NackRequest, OffsetRange,
    PartitionOffset, SeekPosition, SeekRequest, SeekResponse,
};
use swarmmq_types::{ErrorCode, PartitionId, now_ms};

use crate::broker::Broker;
use crate::destination::Destination;
use crate::dlq::DeadLetter;
use crate::error::RequestError;
use crate::group::{Group, GroupState};
use crate::metrics::Metrics;

fn check_ranges(
    broker: &Broker,
    dest: &Destination,
    ranges: &[OffsetRange],
) -> Result<(), RequestError> {
    if ranges.len() > broker.limits.max_ack_ranges as usize {
        return Err(RequestError::new(
            ErrorCode::InvalidRequest,
            format!(
                "{} ranges in one request; the limit is {}",
                ranges.len(),
                broker.limits.max_ack_ranges
            ),
        ));
    }
    for r in ranges {
        dest.partition(r.partition)?;
        if r.start > r.end {
            return Err(RequestError::new(
                ErrorCode::InvalidRequest,
                "a range ends before it starts",
            ));
        }
    }
    Ok(())
}

fn lock_err() -> RequestError {
    RequestError::new(ErrorCode::Internal, "group state lock poisoned")
}

/// Heartbeat period suggested to ordered members: a third of their session.
fn heartbeat_interval_ms(session_ms: u64) -> u32 {
    u32::try_from((session_ms / 3).clamp(100, 10_000)).unwrap_or(10_000)
}

pub(crate) async fn ack(broker: &Broker, req: AckRequest) -> Result<AckResponse, RequestError> {
    let dest = broker.get(&req.destination)?;
    check_ranges(broker, &dest, &req.ranges)?;
    let group = broker.group(&dest, &req.group, None)?;
    let count = ack_ranges(
        broker,
        &dest,
        &group,
        &req.consumer_id,
        req.generation,
        &req.ranges,
        true,
    )
    .await?;
    Ok(AckResponse { count })
}

/// Shared groups: acknowledges the offsets. Ordered groups: commits the position past
/// the end of each range (the member must own the partition).
pub(crate) async fn ack_ranges(
    broker: &Broker,
    dest: &Arc<Destination>,
    group: &Arc<Group>,
    member: &str,
    generation: u32,
    ranges: &[OffsetRange],
    wait_durable: bool,
) -> Result<u64, RequestError> {
    let count = match &group.state {
        GroupState::Shared(shared) => {
            let mut count = 0;
            let mut done = Vec::new();
            for r in ranges {
                let c = shared
                    .partition(r.partition)?
                    .lock()
                    .map_err(|_| lock_err())?
                    .ack(r.start, r.end);
                count += c.count;
                done.extend(c.ranges.into_iter().map(|(s, e)| (r.partition, s, e)));
            }
            group.log_acks(&done)?;
            count
        }
        GroupState::Ordered(ordered) => {
            let commits: Vec<PartitionOffset> = ranges
                .iter()
                .map(|r| PartitionOffset {
                    partition: r.partition,
                    offset: r.end,
                })
                .collect();
            commit(group, ordered, member, generation, &commits)?
        }
    };
    if count > 0 && wait_durable {
        group.durable().await?;
    }
    broker
        .metrics
        .acked
        .get_or_create(&Metrics::dest(&dest.name))
        .inc_by(count);
    Ok(count)
}

/// Moves committed positions forward (never back: that is what seek is for); returns
/// how many offsets became committed.
fn commit(
    group: &Arc<Group>,
    ordered: &crate::group::OrderedGroup,
    member: &str,
    generation: u32,
    offsets: &[PartitionOffset],
) -> Result<u64, RequestError> {
    for o in offsets {
        ordered.check(member, generation, o.partition)?;
    }
    let mut count = 0;
    let mut durable = Vec::new();
    for o in offsets {
        let mut pos = ordered
            .position(o.partition)?
            .lock()
            .map_err(|_| lock_err())?;
        if o.offset > pos.committed {
            count += o.offset - pos.committed;
            pos.committed = o.offset;
            pos.fetch = pos.fetch.max(o.offset);
            durable.push((o.partition, o.offset));
        }
    }
    group.log_committed(&durable)?;
    Ok(count)
}

pub(crate) async fn nack(broker: &Broker, req: NackRequest) -> Result<AckResponse, RequestError> {
    let dest = broker.get(&req.destination)?;
    check_ranges(broker, &dest, &req.ranges)?;
    let group = broker.group(&dest, &req.group, None)?;
    let now = now_ms();
    let count = match &group.state {
        GroupState::Shared(shared) => {
            let mut count = 0;
            for r in &req.ranges {
                let outcome = shared
                    .partition(r.partition)?
                    .lock()
                    .map_err(|_| lock_err())?
                    .nack(
                        r.start,
                        r.end,
                        now,
                        u64::from(req.delay_ms),
                        &shared.settings,
                    );
                count += outcome.requeued;
                for d in outcome.dead {
                    count += d.end - d.start;
                    if dest.spec.dlq_enabled {
                        let reason = if req.reason.is_empty() {
                            "nacked"
                        } else {
                            req.reason.as_str()
                        };
                        broker.dead_letter(
                            DeadLetter::exhausted(&dest, &group, r.partition, &d, reason)
                                .with_reason(reason),
                        );
                    } else {
                        crate::pull::report(
                            broker,
                            &dest,
                            &group,
                            r.partition,
                            Vec::new(),
                            vec![d],
                        )?;
                    }
                }
            }
            count
        }
        GroupState::Ordered(ordered) => {
            // An ordered member rewinds: the nacked offsets come back on its next pull.
            let mut count = 0;
            for r in &req.ranges {
                ordered.check(&req.consumer_id, req.generation, r.partition)?;
                let mut pos = ordered
                    .position(r.partition)?
                    .lock()
                    .map_err(|_| lock_err())?;
                let to = r.start.max(pos.committed);
                if to < pos.fetch {
                    count += pos.fetch - to;
                    pos.fetch = to;
                }
            }
            count
        }
    };
    // A nacked message may be due at once: wake parked pulls.
    dest.notify.notify_waiters();
    Ok(AckResponse { count })
}

pub(crate) async fn extend(
    broker: &Broker,
    req: ExtendLeaseRequest,
) -> Result<AckResponse, RequestError> {
    let dest = broker.get(&req.destination)?;
    check_ranges(broker, &dest, &req.ranges)?;
    let group = broker.group(&dest, &req.group, None)?;
    let shared = group.shared()?;
    let now = now_ms();
    let mut count = 0;
    for r in &req.ranges {
        count += shared
            .partition(r.partition)?
            .lock()
            .map_err(|_| lock_err())?
            .extend(r.start, r.end, now, u64::from(req.extend_ms));
    }
    Ok(AckResponse { count })
}

pub(crate) async fn join(
    broker: &Broker,
    req: JoinGroupRequest,
) -> Result<JoinGroupResponse, RequestError> {
    let dest = broker.get(&req.destination)?;
    let group = broker.group(&dest, &req.group, req.mode)?;
    check_member(broker, &req.consumer_id)?;
    match &group.state {
        GroupState::Shared(_) => Ok(JoinGroupResponse {
            mode: GroupMode::Shared,
            generation: 0,
            assignment: (0..dest.spec.partitions).collect(),
            heartbeat_interval_ms: heartbeat_interval_ms(u64::from(req.session_timeout_ms)),
        }),
        GroupState::Ordered(ordered) => {
            let session = if req.session_timeout_ms == 0 {
                broker.max_session_ms
            } else {
                u64::from(req.session_timeout_ms)
            };
            let (a, rebalance) = ordered.join(&req.consumer_id, now_ms(), session)?;
            broker.note_rebalance(&group, rebalance);
            Ok(JoinGroupResponse {
                mode: GroupMode::Ordered,
                generation: a.generation,
                assignment: a.partitions,
                heartbeat_interval_ms: heartbeat_interval_ms(session.min(broker.max_session_ms)),
            })
        }
    }
}

fn check_member(broker: &Broker, member: &str) -> Result<(), RequestError> {
    if member.is_empty() || member.len() > broker.limits.max_text_bytes as usize {
        return Err(RequestError::new(
            ErrorCode::InvalidRequest,
            "consumer id must be 1 to 4096 bytes",
        ));
    }
    Ok(())
}

pub(crate) async fn heartbeat(
    broker: &Broker,
    req: HeartbeatRequest,
) -> Result<HeartbeatResponse, RequestError> {
    let dest = broker.get(&req.destination)?;
    let group = broker.group(&dest, &req.group, None)?;
    match &group.state {
        GroupState::Shared(_) => Ok(HeartbeatResponse {
            generation: 0,
            assignment: (0..dest.spec.partitions).collect(),
            revoked: Vec::new(),
            rebalancing: false,
        }),
        GroupState::Ordered(ordered) => {
            let (h, rebalance) = ordered.heartbeat(&req.consumer_id, req.generation, now_ms())?;
            broker.note_rebalance(&group, rebalance);
            Ok(HeartbeatResponse {
                generation: h.generation,
                assignment: h.partitions,
                revoked: h.revoked,
                rebalancing: h.rebalanced,
            })
        }
    }
}

pub(crate) async fn leave(broker: &Broker, req: LeaveGroupRequest) -> Result<(), RequestError> {
    let dest = broker.get(&req.destination)?;
    let group = broker.group(&dest, &req.group, None)?;
    if let GroupState::Ordered(ordered) = &group.state {
        ordered.leave(&req.consumer_id, now_ms())?;
    }
    Ok(())
}

pub(crate) async fn commit_offsets(
    broker: &Broker,
    req: CommitOffsetsRequest,
) -> Result<(), RequestError> {
    let dest = broker.get(&req.destination)?;
    if req.offsets.len() > broker.limits.max_ack_ranges as usize {
        return Err(RequestError::new(
            ErrorCode::InvalidRequest,
            "too many offsets in one commit",
        ));
    }
    let group = broker.group(&dest, &req.group, None)?;
    let ordered = group.ordered()?;
    commit(
        &group,
        ordered,
        &req.consumer_id,
        req.generation,
        &req.offsets,
    )?;
    group.durable().await
}

/// The offset a seek lands on in one partition.
fn seek_target(
    dest: &Destination,
    p: PartitionId,
    position: SeekPosition,
) -> Result<u64, RequestError> {
    let partition = dest.partition(p)?;
    let start = partition.start_offset();
    let end = partition.visible_end();
    Ok(match position {
        SeekPosition::Earliest => start,
        SeekPosition::Latest => end,
        SeekPosition::Offset(o) => o.clamp(start, end),
        SeekPosition::Timestamp(ts) => partition
            .reader()?
            .offset_for_timestamp(ts)?
            .unwrap_or(end)
            .clamp(start, end),
    })
}

pub(crate) async fn seek(broker: &Broker, req: SeekRequest) -> Result<SeekResponse, RequestError> {
    let dest = broker.get(&req.destination)?;
    let group = broker.group(&dest, &req.group, None)?;
    let parts: Vec<PartitionId> = match req.partition {
        Some(p) => {
            dest.partition(p)?;
            vec![p]
        }
        None => (0..dest.spec.partitions).collect(),
    };
    let mut offsets = Vec::with_capacity(parts.len());
    for p in &parts {
        offsets.push(PartitionOffset {
            partition: *p,
            offset: seek_target(&dest, *p, req.position)?,
        });
    }
    match &group.state {
        GroupState::Shared(shared) => {
            // A shared group starts over at the target: nothing below it is delivered,
            // everything from it is (again). The whole state is rewritten durably.
            for o in &offsets {
                *shared
                    .partition(o.partition)?
                    .lock()
                    .map_err(|_| lock_err())? = SharedPartition::new(o.offset);
            }
            let state = group.durable_state()?;
            group.rewrite(&state)?;
        }
        GroupState::Ordered(ordered) => {
            let mut durable = Vec::new();
            for o in &offsets {
                let mut pos = ordered
                    .position(o.partition)?
                    .lock()
                    .map_err(|_| lock_err())?;
                pos.committed = o.offset;
                pos.fetch = o.offset;
                durable.push((o.partition, o.offset));
            }
            group.log_committed(&durable)?;
        }
    }
    group.durable().await?;
    dest.notify.notify_waiters();
    Ok(SeekResponse { offsets })
}

pub(crate) fn list(broker: &Broker) -> Result<Vec<GroupSummary>, RequestError> {
    let mut out = Vec::new();
    for dest in broker.list()? {
        let groups = dest.groups.lock().map_err(|_| lock_err())?;
        for g in groups.values() {
            out.push(GroupSummary {
                group: g.name.clone(),
                destination: dest.name.clone(),
                mode: g.mode,
                members: match &g.state {
                    GroupState::Ordered(o) => o.member_count(),
                    GroupState::Shared(_) => 0,
                },
            });
        }
    }
    out.sort_by(|a, b| (&a.group, &a.destination).cmp(&(&b.group, &b.destination)));
    Ok(out)
}

pub(crate) fn describe(
    broker: &Broker,
    req: DescribeGroupRequest,
) -> Result<GroupDescription, RequestError> {
    let dest = broker.get(&req.destination)?;
    let group = broker.existing_group(&dest, &req.group)?;
    let partitions = dest
        .partitions
        .iter()
        .map(|p| match &group.state {
            GroupState::Shared(s) => s.describe_partition(p.id, p.visible_end()),
            GroupState::Ordered(o) => o.describe_partition(p.id, p.visible_end()),
        })
        .collect();
    let (generation, members) = match &group.state {
        GroupState::Ordered(o) => (o.generation(), o.members()),
        GroupState::Shared(_) => (0, Vec::new()),
    };
    Ok(GroupDescription {
        group: group.name.clone(),
        destination: dest.name.clone(),
        mode: group.mode,
        generation,
        members,
        partitions,
        dlq_moved: group.dlq_moved.load(std::sync::atomic::Ordering::Relaxed),
        expired: group.expired.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// Reports dead or expired ranges found outside a pull (the node's periodic sweep).
pub(crate) fn sweep(broker: &Broker, dest: &Arc<Destination>, group: &Arc<Group>) {
    let now = now_ms();
    match &group.state {
        GroupState::Shared(shared) => {
            for p in 0..shared.len() as PartitionId {
                let outcome = match shared
                    .partition(p)
                    .and_then(|m| m.lock().map_err(|_| lock_err()))
                {
                    Ok(mut st)
                        if st.has_reports() || st.next_due_ms().is_some_and(|d| d <= now) =>
                    {
                        st.poll(now, 0, &shared.settings)
                    }
                    _ => continue,
                };
                let expired: Vec<SettleRange> = outcome.expired;
                if let Err(e) = crate::pull::report(broker, dest, group, p, expired, outcome.dead) {
                    tracing::warn!(destination = %dest.name, group = %group.name, error = %e.message, "sweep could not settle messages");
                }
            }
        }
        GroupState::Ordered(ordered) => {
            if let Ok(gone) = ordered.expire(now)
                && !gone.is_empty()
            {
                tracing::info!(destination = %dest.name, group = %group.name, members = ?gone, "members missed their session timeout; rebalanced");
                broker.note_rebalance(group, None);
            }
        }
    }
}
