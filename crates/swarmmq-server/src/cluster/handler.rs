//! What a node does with what arrives over the internal link: Raft messages, metadata
//! proposals from nodes that are not the leader, and client requests forwarded by the
//! node a client is connected to.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use swarmmq_cluster::ClusterError;
use swarmmq_cluster::link::{
    HandlerFuture, Hello, KIND_FORWARD, KIND_META, KIND_PARTITION_RAFT, KIND_RAFT, LinkHandler,
    StartFuture, decode_group_frame,
};
use swarmmq_cluster::metadata::MetaCommand;
use swarmmq_protocol::{PublishRequest, Request, Response};
use swarmmq_types::ErrorCode;
use tokio_util::sync::CancellationToken;

use super::replicas::{self, LocalRole};
use super::{codec, route_admin, route_publish};
use crate::broker::Broker;
use crate::error::RequestError;

pub(crate) struct NodeHandler {
    pub broker: Weak<Broker>,
    pub stop: CancellationToken,
}

fn ready(result: Result<Bytes, String>) -> StartFuture {
    let rest: HandlerFuture = Box::pin(std::future::ready(result));
    Box::pin(std::future::ready(rest))
}

/// Runs a client request on this node's own partitions, as a session would.
pub(crate) async fn exec_local(
    broker: &Arc<Broker>,
    req: Request,
    cancel: &CancellationToken,
) -> Result<Response, RequestError> {
    match req {
        Request::Publish(p) => {
            route_admin::ensure_local(broker, &p.destination).await?;
            crate::publish::prepare(broker, p, 0)
                .await?
                .finish(&broker.metrics)
                .await
                .map(Response::Publish)
        }
        Request::Pull(p) => {
            route_admin::ensure_local(broker, &p.destination).await?;
            let frame = crate::pull::pull(broker, p, 0, cancel).await?;
            codec::decode_response_frame(frame.freeze(), &broker.limits)
        }
        other => {
            if let Some(name) = destination_of(&other) {
                route_admin::ensure_local(broker, name).await?;
            }
            crate::session::run_small(broker, other).await
        }
    }
}

fn destination_of(req: &Request) -> Option<&str> {
    Some(match req {
        Request::Ack(r) => &r.destination,
        Request::Nack(r) => &r.destination,
        Request::ExtendLease(r) => &r.destination,
        Request::JoinGroup(r) => &r.destination,
        Request::Heartbeat(r) => &r.destination,
        Request::LeaveGroup(r) => &r.destination,
        Request::CommitOffsets(r) => &r.destination,
        Request::Seek(r) => &r.destination,
        Request::DescribeGroup(r) => &r.destination,
        Request::DescribeDestination { name } => name,
        _ => return None,
    })
}

/// The first phase of a forwarded publish: run here, or passed on one hop.
enum Started {
    Local(crate::publish::PendingPublish),
    Forwarded(Pin<Box<dyn Future<Output = Result<Response, RequestError>> + Send>>),
}

/// The owner's first phase of a forwarded publish: checked, stamped and queued in the
/// order the entry node sent it. For a replicated partition the owner is the group's
/// leader: a follower passes the publish on to the leader it knows, once (only when it
/// came from a node outside the replica set, so two replicas with stale views never
/// bounce it between them), and otherwise answers NOT_OWNER naming the leader.
async fn start_publish(
    broker: &Arc<Broker>,
    from: &str,
    mut p: PublishRequest,
) -> Result<Started, RequestError> {
    let Some(rt) = broker.cluster() else {
        return Err(RequestError::new(
            ErrorCode::Internal,
            "not in cluster mode",
        ));
    };
    let Some(partition) = p.partition else {
        return Err(RequestError::new(
            ErrorCode::InvalidRequest,
            "a forwarded publish must name its partition",
        ));
    };
    let topo = rt.topology();
    let dest = topo.destination(&p.destination);
    if let Some(d) = dest
        && rt.is_replicated(d, partition)
    {
        route_admin::ensure_local(broker, &p.destination).await?;
        let role = replicas::local_role(broker, &p.destination, partition)?;
        match &role {
            LocalRole::Leader => {}
            LocalRole::Follower(Some(leader))
                if rt.is_alive(leader)
                    && !d
                        .replicas
                        .get(partition as usize)
                        .is_some_and(|set| set.iter().any(|n| n == from)) =>
            {
                let hop = format!("forward={}>{leader}", rt.node_id);
                route_publish::stamp_route(&mut p.messages, &hop);
                let wait = rt
                    .forward_start(leader, &Request::Publish(p), super::FORWARD_TIMEOUT)
                    .await?;
                return Ok(Started::Forwarded(Box::pin(wait)));
            }
            _ => {
                return Err(replicas::not_leader(
                    &rt.node_id,
                    &p.destination,
                    partition,
                    &role,
                ));
            }
        }
    } else {
        let owner = dest.and_then(|d| d.owner(partition));
        if owner.is_some_and(|o| o != rt.node_id) {
            return Err(RequestError::new(
                ErrorCode::NotOwner,
                format!(
                    "node {} does not own partition {partition} of {:?} (its owner is {})",
                    rt.node_id,
                    p.destination,
                    owner.unwrap_or("unknown")
                ),
            ));
        }
    }
    route_publish::stamp_route(&mut p.messages, &format!("owner={}", rt.node_id));
    route_admin::ensure_local(broker, &p.destination).await?;
    crate::publish::prepare(broker, p, 0)
        .await
        .map(Started::Local)
}

impl LinkHandler for NodeHandler {
    fn admit(&self, hello: &Hello, _peer: SocketAddr) -> Result<(), String> {
        let Some(broker) = self.broker.upgrade() else {
            return Err("the node is stopping".into());
        };
        let Some(rt) = broker.cluster() else {
            return Ok(());
        };
        let topo = rt.topology();
        if let Some(known) = topo.nodes.get(&hello.node_id)
            && known.internal.to_string() != hello.advertise
            && rt.is_alive(&hello.node_id)
        {
            return Err(format!(
                "duplicate node id {:?}: a live node with that id is registered at {}",
                hello.node_id, known.internal
            ));
        }
        Ok(())
    }

    // The first phase yields the second on purpose (see `LinkHandler::handle`).
    #[allow(clippy::async_yields_async)]
    fn handle(&self, from: Arc<str>, kind: u8, payload: Bytes) -> StartFuture {
        let Some(broker) = self.broker.upgrade() else {
            return ready(Err("the node is stopping".into()));
        };
        let Some(rt) = broker.cluster() else {
            return ready(Err("this node is not in cluster mode".into()));
        };
        match kind {
            KIND_RAFT => {
                let rest: HandlerFuture = Box::pin(async move {
                    rt.meta
                        .handle_rpc(&payload)
                        .await
                        .map(Bytes::from)
                        .map_err(|e| e.to_string())
                });
                Box::pin(std::future::ready(rest))
            }
            KIND_PARTITION_RAFT => {
                let rest: HandlerFuture = Box::pin(async move {
                    let (id, body) = decode_group_frame(&payload).map_err(|e| e.to_string())?;
                    let group = rt.replicas.get(id).ok_or_else(|| {
                        format!("partition group {id} does not run on {}", rt.node_id)
                    })?;
                    group
                        .handle_rpc(&body)
                        .await
                        .map(Bytes::from)
                        .map_err(|e| e.to_string())
                });
                Box::pin(std::future::ready(rest))
            }
            KIND_META => {
                let rest: HandlerFuture = Box::pin(async move {
                    let cmd: MetaCommand =
                        serde_json::from_slice(&payload).map_err(|e| e.to_string())?;
                    let reply = match rt.meta.propose(cmd.clone()).await {
                        Ok(r) => r,
                        // One hop on: the caller's idea of the leader was stale.
                        Err(ClusterError::NotLeader {
                            leader: Some((id, addr)),
                        }) if id != rt.node_id => rt.propose_at(&id, addr, &cmd).await?,
                        Err(e) => return Err(e.to_string()),
                    };
                    serde_json::to_vec(&reply)
                        .map(Bytes::from)
                        .map_err(|e| e.to_string())
                });
                Box::pin(std::future::ready(rest))
            }
            KIND_FORWARD => {
                let stop = self.stop.clone();
                Box::pin(async move {
                    let limits = broker.limits.clone();
                    let req = match codec::decode_request_frame(payload, &limits) {
                        Ok(r) => r,
                        Err(e) => {
                            let frame = codec::response_frame(
                                swarmmq_protocol::Opcode::Health,
                                Err(e),
                                &limits,
                            );
                            return Box::pin(std::future::ready(Ok(frame))) as HandlerFuture;
                        }
                    };
                    let op = req.opcode();
                    match req {
                        Request::Publish(p) => match start_publish(&broker, &from, p).await {
                            Ok(Started::Local(pending)) => Box::pin(async move {
                                let r =
                                    pending.finish(&broker.metrics).await.map(Response::Publish);
                                Ok(codec::response_frame(op, r, &limits))
                            })
                                as HandlerFuture,
                            Ok(Started::Forwarded(wait)) => Box::pin(async move {
                                Ok(codec::response_frame(op, wait.await, &limits))
                            }),
                            Err(e) => Box::pin(std::future::ready(Ok(codec::response_frame(
                                op,
                                Err(e),
                                &limits,
                            )))),
                        },
                        Request::Pull(p) => Box::pin(async move {
                            let frame = async {
                                route_admin::ensure_local(&broker, &p.destination).await?;
                                crate::pull::pull(&broker, p, 0, &stop).await
                            }
                            .await;
                            Ok(match frame {
                                Ok(f) => f.freeze(),
                                Err(e) => codec::response_frame(op, Err(e), &limits),
                            })
                        }),
                        other => Box::pin(async move {
                            let r = exec_local(&broker, other, &stop).await;
                            Ok(codec::response_frame(op, r, &limits))
                        }),
                    }
                })
            }
            other => ready(Err(format!("unknown internal request kind {other}"))),
        }
    }
}
