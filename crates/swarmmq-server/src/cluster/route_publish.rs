//! Publish at the entry node: choose each message's partition, send each partition's
//! messages to its owner (itself, or over the link), and stitch the owners' answers
//! back into one answer in request order.
//!
//! Keyless messages of one request go to one partition (one batch, one hop). That
//! partition is chosen from the first keyless message's id when it has one, so a
//! producer's retry of the same batch lands on the same partition, whose owner's dedup
//! window recognises it; partitions whose owner gossip calls dead are skipped, so
//! keyless traffic routes around a failed node.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use swarmmq_protocol::{Header, PublishRequest, PublishResponse, PublishRun, Request, Response};
use swarmmq_types::{ErrorCode, MessageId, PartitionId, key_hash, partition_for_key};

use super::replicas::{self, LocalRole};
use super::{ClusterRuntime, DestTopology, FORWARD_TIMEOUT, route_admin};
use crate::broker::Broker;
use crate::error::RequestError;
use crate::metrics::Metrics;
use crate::publish::{self, PendingPublish};

/// The header a client sets (any value) to have the route of a message recorded in it.
pub(crate) const ROUTE_HEADER: &str = "x-swarmmq-route";

type RemoteWait = Pin<Box<dyn Future<Output = Result<Response, RequestError>> + Send>>;

enum Wait {
    Local(PendingPublish),
    Remote(RemoteWait),
}

/// A publish whose parts are queued at their owners.
pub(crate) struct RoutedPublish {
    total: usize,
    /// Request indexes of each part's messages, in order, and the wait for the part.
    parts: Vec<(Vec<usize>, PartitionId, Wait)>,
}

static STICKY: AtomicU32 = AtomicU32::new(0);

fn id_hash(id: &MessageId) -> u64 {
    match id {
        MessageId::Uuid(b) => key_hash(b),
        MessageId::Text(t) => key_hash(t.as_bytes()),
    }
}

/// The partition of a request's keyless messages (see the module docs).
fn keyless_partition(rt: &ClusterRuntime, dest: &DestTopology, req: &PublishRequest) -> u32 {
    let n = dest.partitions().max(1);
    let first_id = req
        .messages
        .iter()
        .find(|m| m.key.is_none())
        .and_then(|m| m.id.as_ref());
    let base = match first_id {
        Some(id) => (id_hash(id) % u64::from(n)) as u32,
        None => STICKY.fetch_add(1, Ordering::Relaxed) % n,
    };
    (0..n)
        .map(|i| (base + i) % n)
        .find(|p| dest.owner(*p).is_some_and(|o| rt.is_alive(o)))
        .unwrap_or(base)
}

/// Appends a hop to the route header of the messages that carry one.
pub(crate) fn stamp_route(messages: &mut [swarmmq_protocol::PublishMessage], hop: &str) {
    for m in messages {
        for h in m.headers.iter_mut().filter(|h| h.name == ROUTE_HEADER) {
            let mut v = if h.value.is_empty() || !h.value.starts_with(b"entry=") {
                Vec::new()
            } else {
                let mut v = h.value.to_vec();
                v.push(b';');
                v
            };
            v.extend_from_slice(hop.as_bytes());
            h.value = Bytes::from(v);
        }
    }
}

fn has_route(req: &PublishRequest) -> bool {
    req.messages
        .iter()
        .any(|m| m.headers.iter().any(|h: &Header| h.name == ROUTE_HEADER))
}

pub(crate) async fn prepare_publish(
    broker: &Arc<Broker>,
    rt: &ClusterRuntime,
    mut req: PublishRequest,
    producer_id: u64,
) -> Result<RoutedPublish, RequestError> {
    let dest = route_admin::ensure_destination(broker, rt, &req.destination).await?;
    let n = dest.partitions();
    if let Some(p) = req.partition {
        dest.owner_of(&req.destination, p)?;
    }
    let route = has_route(&req);
    if route {
        stamp_route(&mut req.messages, &format!("entry={}", rt.node_id));
    }
    let keyless = if req.partition.is_none() {
        keyless_partition(rt, &dest, &req)
    } else {
        0
    };
    let mut by_partition: BTreeMap<PartitionId, Vec<usize>> = BTreeMap::new();
    for (i, m) in req.messages.iter().enumerate() {
        let p = match (req.partition, &m.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, n),
            (None, None) => keyless,
        };
        by_partition.entry(p).or_default().push(i);
    }
    let total = req.messages.len();
    let mut parts = Vec::with_capacity(by_partition.len());
    let single = by_partition.len() == 1;
    for (p, indexes) in by_partition {
        let mut owner = dest.owner_of(&req.destination, p)?.to_string();
        if rt.is_replicated(&dest, p) && rt.is_self(&owner) {
            // `owner` is this node's idea of the leader; check with its own replica.
            route_admin::ensure_local(broker, &req.destination).await?;
            match replicas::local_role(broker, &req.destination, p)? {
                LocalRole::Leader => {}
                LocalRole::Follower(Some(l)) if rt.is_alive(&l) => owner = l,
                role => {
                    return Err(replicas::not_leader(
                        &rt.node_id,
                        &req.destination,
                        p,
                        &role,
                    ));
                }
            }
        }
        let mut messages = if single {
            std::mem::take(&mut req.messages)
        } else {
            indexes
                .iter()
                .filter_map(|i| req.messages.get(*i).cloned())
                .collect()
        };
        let local = rt.is_self(&owner);
        if route {
            let hop = if local {
                format!("owner={owner}")
            } else {
                format!("forward={}>{owner}", rt.node_id)
            };
            stamp_route(&mut messages, &hop);
        }
        let sub = PublishRequest {
            destination: req.destination.clone(),
            acks: req.acks,
            partition: Some(p),
            messages,
        };
        let wait = if local {
            route_admin::ensure_local(broker, &sub.destination).await?;
            Wait::Local(publish::prepare(broker, sub, producer_id).await?)
        } else {
            let w = rt
                .forward_start(&owner, &Request::Publish(sub), FORWARD_TIMEOUT)
                .await?;
            Wait::Remote(Box::pin(w))
        };
        parts.push((indexes, p, wait));
    }
    Ok(RoutedPublish { total, parts })
}

impl RoutedPublish {
    /// Waits for every part; the first failure fails the whole answer (parts that did
    /// succeed are stored, and a retry with the same ids is deduplicated at them).
    pub(crate) async fn finish(self, metrics: &Metrics) -> Result<PublishResponse, RequestError> {
        let mut slots: Vec<Option<(PartitionId, u64, bool)>> = vec![None; self.total];
        let mut first_err = None;
        for (indexes, partition, wait) in self.parts {
            let answer = match wait {
                Wait::Local(p) => p.finish(metrics).await,
                Wait::Remote(w) => match w.await {
                    Ok(Response::Publish(r)) => Ok(r),
                    Ok(_) => Err(RequestError::new(
                        ErrorCode::Internal,
                        "the owner answered a publish with something else",
                    )),
                    Err(e) => Err(e),
                },
            };
            let runs = match answer {
                Ok(r) => r.runs,
                Err(e) => {
                    first_err.get_or_insert(e);
                    continue;
                }
            };
            let mut at = indexes.iter();
            for run in runs {
                for k in 0..u64::from(run.count) {
                    if let Some(i) = at.next()
                        && let Some(slot) = slots.get_mut(*i)
                    {
                        *slot = Some((run.partition, run.base_offset + k, run.duplicate));
                    }
                }
            }
            if at.next().is_some() {
                first_err.get_or_insert(RequestError::new(
                    ErrorCode::Internal,
                    format!("the owner of partition {partition} answered for fewer messages than it was sent"),
                ));
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let mut runs: Vec<PublishRun> = Vec::new();
        for slot in slots {
            let Some((partition, offset, duplicate)) = slot else {
                return Err(RequestError::new(
                    ErrorCode::Internal,
                    "a message of the publish got no offset",
                ));
            };
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
        Ok(PublishResponse { runs })
    }
}
