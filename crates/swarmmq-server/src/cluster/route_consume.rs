//! Consuming at the entry node. A shared group's state for a partition lives with the
//! partition, on its owner; so the entry node asks the owners for messages (first each
//! in turn without waiting, then all at once in short long-poll slices), sends each
//! acknowledgement to the owner of its partition, and merges what owners report.
//!
//! Ordered groups keep one assignment for all partitions, so they are served only when
//! every partition of the destination has one owner; the request then goes there.
//! A destination spread over several nodes answers ordered-group requests with a clear
//! INVALID_REQUEST (partition replication will give ordered groups a coordinator).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use swarmmq_protocol::{
    AckResponse, DeliveredMessage, GroupDescription, GroupMode, GroupSummary, OffsetRange, Opcode,
    PullRequest, PullResponse, Request, Response, encode_response,
};
use swarmmq_types::{ErrorCode, PartitionId};
use tokio_util::sync::CancellationToken;

use super::{ClusterRuntime, DestTopology, FORWARD_TIMEOUT, route_admin};
use crate::broker::Broker;
use crate::error::RequestError;

/// Longest one long-poll slice waits when several owners are asked at once: the most a
/// message arriving at one owner can wait for the slowest of the others.
const SLICE: Duration = Duration::from_millis(50);

static ROTATE: AtomicUsize = AtomicUsize::new(0);

/// Distinct owners of the destination's partitions (or of one), in partition order.
fn owners(dest: &DestTopology, partition: Option<PartitionId>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let parts: Vec<PartitionId> = match partition {
        Some(p) => vec![p],
        None => (0..dest.partitions()).collect(),
    };
    for p in parts {
        if let Some(o) = dest.owner(p)
            && !out.iter().any(|x| x == o)
        {
            out.push(o.to_string());
        }
    }
    out
}

fn ordered_refusal(name: &str, owners: &[String]) -> RequestError {
    RequestError::new(
        ErrorCode::InvalidRequest,
        format!(
            "ordered groups need every partition of a destination on one node until \
             partition replication lands; {name:?} spreads over {}: use a shared group",
            owners.join(", ")
        ),
    )
}

/// Runs a request on `node`: here, or over the link.
async fn run_on(
    broker: &Arc<Broker>,
    rt: &ClusterRuntime,
    node: &str,
    req: Request,
    cancel: &CancellationToken,
    timeout: Duration,
) -> Result<Response, RequestError> {
    if rt.is_self(node) {
        return super::handler::exec_local(broker, req, cancel).await;
    }
    rt.forward_start(node, &req, timeout).await?.await
}

fn pull_frame(
    broker: &Broker,
    corr: u32,
    messages: Vec<DeliveredMessage>,
) -> Result<BytesMut, RequestError> {
    let mut out = BytesMut::new();
    encode_response(
        corr,
        Opcode::Pull,
        &Response::Pull(PullResponse { messages }),
        &broker.limits,
        &mut out,
    )
    .map_err(|e| RequestError::new(ErrorCode::Internal, e.to_string()))?;
    Ok(out)
}

fn pulled(r: Result<Response, RequestError>) -> Result<Vec<DeliveredMessage>, RequestError> {
    match r? {
        Response::Pull(p) => Ok(p.messages),
        _ => Err(RequestError::new(
            ErrorCode::Internal,
            "an owner answered a pull with something else",
        )),
    }
}

pub(crate) async fn route_pull(
    broker: &Arc<Broker>,
    rt: &ClusterRuntime,
    req: PullRequest,
    corr: u32,
    cancel: &CancellationToken,
) -> Result<BytesMut, RequestError> {
    let dest = route_admin::known_destination(rt, &req.destination)?;
    if let Some(p) = req.partition {
        dest.owner_of(&req.destination, p)?;
    }
    let all = owners(&dest, None);
    if req.generation != 0 && all.len() > 1 {
        return Err(ordered_refusal(&req.destination, &all));
    }
    let owners: Vec<String> = owners(&dest, req.partition)
        .into_iter()
        .filter(|o| rt.is_alive(o))
        .collect();
    let wait = Duration::from_millis(u64::from(req.max_wait_ms));
    match owners.as_slice() {
        [] => Err(RequestError::new(
            ErrorCode::Unavailable,
            format!(
                "every node holding {:?} is dead; nothing can be delivered",
                req.destination
            ),
        )),
        [only] if rt.is_self(only) => {
            route_admin::ensure_local(broker, &req.destination).await?;
            crate::pull::pull(broker, req, corr, cancel).await
        }
        [only] => {
            let r = rt
                .forward_start(only, &Request::Pull(req), wait + FORWARD_TIMEOUT)
                .await?
                .await;
            pull_frame(broker, corr, pulled(r)?)
        }
        many => pull_many(broker, rt, req, many, corr, cancel).await,
    }
}

async fn pull_many(
    broker: &Arc<Broker>,
    rt: &ClusterRuntime,
    req: PullRequest,
    owners: &[String],
    corr: u32,
    cancel: &CancellationToken,
) -> Result<BytesMut, RequestError> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(u64::from(req.max_wait_ms));
    let mut got: Vec<DeliveredMessage> = Vec::new();
    let mut last_err = None;
    // Each owner in turn, without waiting, starting at a rotating owner so that no
    // owner's partitions are always served last.
    let start = ROTATE.fetch_add(1, Ordering::Relaxed);
    let mut bytes = 0usize;
    for i in 0..owners.len() {
        let Some(owner) = owners.get((start + i) % owners.len()) else {
            continue;
        };
        let room = req.max_messages.saturating_sub(got.len() as u32);
        if room == 0 || bytes >= req.max_bytes as usize {
            break;
        }
        let mut sub = req.clone();
        sub.max_wait_ms = 0;
        sub.max_messages = room;
        sub.max_bytes = req.max_bytes.saturating_sub(bytes as u32).max(1);
        match pulled(
            run_on(
                broker,
                rt,
                owner,
                Request::Pull(sub),
                cancel,
                FORWARD_TIMEOUT,
            )
            .await,
        ) {
            Ok(m) => {
                bytes += m.iter().map(|m| m.payload.len()).sum::<usize>();
                got.extend(m);
            }
            Err(e) => last_err = Some(e),
        }
    }
    if !got.is_empty() {
        return pull_frame(broker, corr, got);
    }
    // Then all at once, in slices, until something arrives or the wait is over.
    let share = (req.max_messages / owners.len() as u32).max(1);
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline || cancel.is_cancelled() {
            break;
        }
        let slice = (deadline - now).min(SLICE);
        let mut waits = Vec::new();
        for owner in owners {
            let mut sub = req.clone();
            sub.max_wait_ms = slice.as_millis() as u32;
            sub.max_messages = share;
            let (broker, owner, cancel) = (Arc::clone(broker), owner.clone(), cancel.clone());
            let req = Request::Pull(sub);
            let fut = async move {
                if let Some(rt) = broker.cluster() {
                    run_on(&broker, &rt, &owner, req, &cancel, slice + FORWARD_TIMEOUT).await
                } else {
                    Err(RequestError::new(ErrorCode::Internal, "cluster mode ended"))
                }
            };
            waits.push(tokio::spawn(fut));
        }
        for w in waits {
            match w.await {
                Ok(r) => match pulled(r) {
                    Ok(m) => got.extend(m),
                    Err(e) => last_err = Some(e),
                },
                Err(e) => last_err = Some(RequestError::new(ErrorCode::Internal, e.to_string())),
            }
        }
        if !got.is_empty() {
            break;
        }
        if let Some(e) = &last_err
            && e.code != ErrorCode::Unavailable
        {
            break;
        }
    }
    if got.is_empty()
        && let Some(e) = last_err
    {
        // Every owner failing is an error; some failing while others are simply empty
        // is an empty answer (the dead owners' partitions wait for them).
        if owners.len() == 1 {
            return Err(e);
        }
    }
    pull_frame(broker, corr, got)
}

/// Splits offset ranges by the owner of their partition.
fn split_ranges(
    dest: &DestTopology,
    name: &str,
    ranges: &[OffsetRange],
) -> Result<BTreeMap<String, Vec<OffsetRange>>, RequestError> {
    let mut by: BTreeMap<String, Vec<OffsetRange>> = BTreeMap::new();
    for r in ranges {
        let o = dest.owner_of(name, r.partition)?;
        by.entry(o.to_string()).or_default().push(*r);
    }
    Ok(by)
}

fn count(r: Result<Response, RequestError>) -> Result<u64, RequestError> {
    match r? {
        Response::Ack(a) | Response::Nack(a) | Response::ExtendLease(a) => Ok(a.count),
        _ => Err(RequestError::new(
            ErrorCode::Internal,
            "an owner answered an ack with something else",
        )),
    }
}

/// Runs one request per owner concurrently; answers in owner order.
async fn fan_out(
    broker: &Arc<Broker>,
    rt: &ClusterRuntime,
    jobs: Vec<(String, Request)>,
) -> Vec<(String, Result<Response, RequestError>)> {
    let cancel = CancellationToken::new();
    let mut waits = Vec::new();
    for (node, req) in jobs {
        if rt.is_self(&node) {
            waits.push((node, None, Some(req)));
            continue;
        }
        let started = rt.forward_start(&node, &req, FORWARD_TIMEOUT).await;
        waits.push((node, Some(started), None));
    }
    let mut out = Vec::new();
    for (node, remote, local) in waits {
        let r = match (remote, local) {
            (Some(Ok(w)), _) => w.await,
            (Some(Err(e)), _) => Err(e),
            (None, Some(req)) => super::handler::exec_local(broker, req, &cancel).await,
            (None, None) => continue,
        };
        out.push((node, r));
    }
    out
}

/// Group and acknowledgement requests of consumers.
pub(crate) async fn route_consume(
    broker: &Arc<Broker>,
    rt: &ClusterRuntime,
    req: Request,
) -> Result<Response, RequestError> {
    match req {
        Request::Ack(a) => {
            let dest = route_admin::known_destination(rt, &a.destination)?;
            let jobs = split_ranges(&dest, &a.destination, &a.ranges)?
                .into_iter()
                .map(|(o, ranges)| {
                    (
                        o,
                        Request::Ack(swarmmq_protocol::AckRequest {
                            ranges,
                            ..a.clone()
                        }),
                    )
                })
                .collect();
            sum(fan_out(broker, rt, jobs).await).map(|count| Response::Ack(AckResponse { count }))
        }
        Request::Nack(n) => {
            let dest = route_admin::known_destination(rt, &n.destination)?;
            let jobs = split_ranges(&dest, &n.destination, &n.ranges)?
                .into_iter()
                .map(|(o, ranges)| {
                    (
                        o,
                        Request::Nack(swarmmq_protocol::NackRequest {
                            ranges,
                            ..n.clone()
                        }),
                    )
                })
                .collect();
            sum(fan_out(broker, rt, jobs).await).map(|count| Response::Nack(AckResponse { count }))
        }
        Request::ExtendLease(x) => {
            let dest = route_admin::known_destination(rt, &x.destination)?;
            let jobs = split_ranges(&dest, &x.destination, &x.ranges)?
                .into_iter()
                .map(|(o, ranges)| {
                    (
                        o,
                        Request::ExtendLease(swarmmq_protocol::ExtendLeaseRequest {
                            ranges,
                            ..x.clone()
                        }),
                    )
                })
                .collect();
            sum(fan_out(broker, rt, jobs).await)
                .map(|count| Response::ExtendLease(AckResponse { count }))
        }
        Request::JoinGroup(j) => {
            let dest = route_admin::known_destination(rt, &j.destination)?;
            let all = owners(&dest, None);
            if all.len() > 1 && j.mode == Some(GroupMode::Ordered) {
                return Err(ordered_refusal(&j.destination, &all));
            }
            let jobs = all
                .iter()
                .filter(|o| rt.is_alive(o))
                .map(|o| (o.clone(), Request::JoinGroup(j.clone())))
                .collect();
            let answers = fan_out(broker, rt, jobs).await;
            let first = first_ok(answers)?;
            if let Response::JoinGroup(r) = &first
                && r.mode == GroupMode::Ordered
                && all.len() > 1
            {
                return Err(ordered_refusal(&j.destination, &all));
            }
            Ok(first)
        }
        Request::Heartbeat(h) => {
            let dest = route_admin::known_destination(rt, &h.destination)?;
            let jobs = alive_owners(rt, &dest)
                .into_iter()
                .map(|o| (o, Request::Heartbeat(h.clone())))
                .collect();
            first_ok(fan_out(broker, rt, jobs).await)
        }
        Request::LeaveGroup(l) => {
            let dest = route_admin::known_destination(rt, &l.destination)?;
            let jobs = alive_owners(rt, &dest)
                .into_iter()
                .map(|o| (o, Request::LeaveGroup(l.clone())))
                .collect();
            first_ok(fan_out(broker, rt, jobs).await)
        }
        Request::CommitOffsets(c) => {
            let dest = route_admin::known_destination(rt, &c.destination)?;
            let all = owners(&dest, None);
            if all.len() > 1 {
                return Err(ordered_refusal(&c.destination, &all));
            }
            let jobs = all
                .into_iter()
                .map(|o| (o, Request::CommitOffsets(c.clone())))
                .collect();
            first_ok(fan_out(broker, rt, jobs).await)
        }
        Request::Seek(s) => {
            let dest = route_admin::known_destination(rt, &s.destination)?;
            let jobs: Vec<(String, Request)> = owners(&dest, s.partition)
                .into_iter()
                .map(|o| (o, Request::Seek(s.clone())))
                .collect();
            let answers = fan_out(broker, rt, jobs).await;
            let mut offsets = Vec::new();
            for (node, r) in answers {
                if let Response::Seek(mut got) = r? {
                    got.offsets
                        .retain(|o| dest.owner(o.partition) == Some(node.as_str()));
                    offsets.extend(got.offsets);
                }
            }
            offsets.sort_by_key(|o| o.partition);
            Ok(Response::Seek(swarmmq_protocol::SeekResponse { offsets }))
        }
        Request::DescribeGroup(d) => {
            let dest = route_admin::known_destination(rt, &d.destination)?;
            let jobs = alive_owners(rt, &dest)
                .into_iter()
                .map(|o| (o, Request::DescribeGroup(d.clone())))
                .collect();
            merge_descriptions(&dest, fan_out(broker, rt, jobs).await)
        }
        Request::ListGroups => {
            let jobs = rt
                .live_nodes()
                .into_iter()
                .map(|n| (n, Request::ListGroups))
                .collect();
            let mut all: BTreeMap<(String, String), GroupSummary> = BTreeMap::new();
            for (_, r) in fan_out(broker, rt, jobs).await {
                if let Ok(Response::ListGroups(list)) = r {
                    for g in list {
                        let key = (g.destination.clone(), g.group.clone());
                        let e = all.entry(key).or_insert_with(|| g.clone());
                        e.members = e.members.max(g.members);
                    }
                }
            }
            Ok(Response::ListGroups(all.into_values().collect()))
        }
        other => Err(RequestError::new(
            ErrorCode::Internal,
            format!("{:?} is not a consumer request", other.opcode()),
        )),
    }
}

fn alive_owners(rt: &ClusterRuntime, dest: &DestTopology) -> Vec<String> {
    owners(dest, None)
        .into_iter()
        .filter(|o| rt.is_alive(o))
        .collect()
}

fn sum(answers: Vec<(String, Result<Response, RequestError>)>) -> Result<u64, RequestError> {
    let mut total = 0;
    for (_, r) in answers {
        total += count(r)?;
    }
    Ok(total)
}

fn first_ok(
    answers: Vec<(String, Result<Response, RequestError>)>,
) -> Result<Response, RequestError> {
    let mut err = None;
    for (_, r) in answers {
        match r {
            Ok(resp) => return Ok(resp),
            Err(e) => {
                err.get_or_insert(e);
            }
        }
    }
    Err(err.unwrap_or_else(|| {
        RequestError::new(
            ErrorCode::Unavailable,
            "no node holding the destination is alive",
        )
    }))
}

/// One description from the owners': each partition as its owner reports it.
fn merge_descriptions(
    dest: &DestTopology,
    answers: Vec<(String, Result<Response, RequestError>)>,
) -> Result<Response, RequestError> {
    let mut merged: Option<GroupDescription> = None;
    let mut partitions = Vec::new();
    let (mut dlq, mut expired) = (0, 0);
    let mut err = None;
    for (node, r) in answers {
        match r {
            Ok(Response::DescribeGroup(d)) => {
                partitions.extend(
                    d.partitions
                        .iter()
                        .filter(|p| dest.owner(p.partition) == Some(node.as_str()))
                        .cloned(),
                );
                dlq += d.dlq_moved;
                expired += d.expired;
                match &mut merged {
                    None => merged = Some(d),
                    Some(m) => {
                        for member in d.members {
                            if !m
                                .members
                                .iter()
                                .any(|x| x.consumer_id == member.consumer_id)
                            {
                                m.members.push(member);
                            }
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                err.get_or_insert(e);
            }
        }
    }
    let Some(mut d) = merged else {
        return Err(err.unwrap_or_else(|| {
            RequestError::new(ErrorCode::UnknownGroup, "no owner knows this group")
        }));
    };
    partitions.sort_by_key(|p| p.partition);
    d.partitions = partitions;
    d.dlq_moved = dlq;
    d.expired = expired;
    Ok(Response::DescribeGroup(d))
}
