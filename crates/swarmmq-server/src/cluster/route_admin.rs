//! Destination admin in a cluster: creation and deletion are Raft commits (placement
//! decided by the proposing node from the live nodes), every node then mirrors them
//! locally; describe and list ask each partition's owner for its offsets.

use std::sync::Arc;
use std::time::Duration;

use swarmmq_cluster::metadata::{DestinationMeta, MetaCommand, MetaReply, PartitionPlacement};
use swarmmq_cluster::placement;
use swarmmq_protocol::{
    CreateDestinationRequest, DestinationConfig, DestinationInfo, MetadataResponse, NodeInfo,
    PartitionInfo, Request, Response,
};
use swarmmq_types::{DestinationName, ErrorCode};

use super::{ClusterRuntime, DestTopology};
use crate::broker::Broker;
use crate::destination::DestinationSpec;
use crate::error::RequestError;

/// Longest a node waits for a committed destination change to reach its own registry.
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// The destination as the cluster knows it (UNKNOWN_DESTINATION otherwise).
pub(crate) fn known_destination(
    rt: &ClusterRuntime,
    name: &str,
) -> Result<DestTopology, RequestError> {
    if let Some(d) = rt.topology().destination(name) {
        return Ok(rt.routed(d.clone(), name));
    }
    DestinationName::new(name)?;
    Err(RequestError::unknown_destination(name))
}

/// The destination for a publish: created cluster-wide with defaults when missing and
/// auto-create is on.
pub(crate) async fn ensure_destination(
    broker: &Arc<Broker>,
    rt: &ClusterRuntime,
    name: &str,
) -> Result<DestTopology, RequestError> {
    match known_destination(rt, name) {
        Ok(d) => Ok(d),
        Err(e) if e.code == ErrorCode::UnknownDestination && rt.auto_create => {
            let req = CreateDestinationRequest {
                name: name.to_string(),
                partitions: 0,
                config: DestinationConfig::default(),
            };
            create(broker, rt, &req).await?;
            known_destination(rt, name)
        }
        Err(e) => Err(e),
    }
}

/// Waits until this node's registry holds a destination the cluster committed.
pub(crate) async fn ensure_local(broker: &Broker, name: &str) -> Result<(), RequestError> {
    let deadline = tokio::time::Instant::now() + APPLY_WAIT;
    loop {
        match broker.get(name) {
            Ok(_) => return Ok(()),
            Err(e) if e.code != ErrorCode::UnknownDestination => return Err(e),
            Err(e) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(e);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_topology(rt: &ClusterRuntime, name: &str, present: bool) {
    let deadline = tokio::time::Instant::now() + APPLY_WAIT;
    while rt.topology().destination(name).is_some() != present
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn spec_of(meta: &DestinationMeta) -> Result<DestinationSpec, RequestError> {
    serde_json::from_value(meta.spec.clone()).map_err(|e| {
        RequestError::new(
            ErrorCode::Internal,
            format!("cluster metadata of {:?} is unreadable: {e}", meta.name),
        )
    })
}

pub(crate) async fn create(
    broker: &Arc<Broker>,
    rt: &ClusterRuntime,
    req: &CreateDestinationRequest,
) -> Result<DestinationInfo, RequestError> {
    let name = DestinationName::new(req.name.as_str())?;
    let spec = broker.resolve_spec(req)?;
    let topo = rt.topology();
    if topo.destinations.len() >= broker.limits.max_destinations as usize
        && topo.destination(name.as_str()).is_none()
    {
        return Err(RequestError::new(
            ErrorCode::Busy,
            format!(
                "the cluster already has its maximum of {} destinations",
                broker.limits.max_destinations
            ),
        ));
    }
    let nodes = rt.live_nodes();
    if nodes.is_empty() {
        return Err(RequestError::new(
            ErrorCode::Unavailable,
            "no live node is registered in the cluster metadata yet",
        ));
    }
    let rf = rt
        .settings
        .replication_factor
        .map(|r| r as usize)
        .unwrap_or_else(|| placement::default_replication_factor(nodes.len()));
    let sets = placement::place(name.as_str(), spec.partitions, &nodes, rf);
    let meta = DestinationMeta {
        name: name.to_string(),
        spec: serde_json::to_value(&spec)
            .map_err(|e| RequestError::new(ErrorCode::Internal, e.to_string()))?,
        partitions: sets
            .into_iter()
            .map(|replicas| PartitionPlacement { replicas })
            .collect(),
    };
    match rt.propose(MetaCommand::CreateDestination(meta)).await? {
        MetaReply::AlreadyExists(existing) => {
            let existing_spec = spec_of(&existing)?;
            let same_partitions =
                req.partitions == 0 || existing_spec.partitions == spec.partitions;
            let explicit_config = req.config != DestinationConfig::default();
            if !(same_partitions && (!explicit_config || existing_spec == spec)) {
                return Err(RequestError::new(
                    ErrorCode::DestinationExists,
                    format!(
                        "destination {:?} already exists with {} partitions and other settings",
                        name.as_str(),
                        existing_spec.partitions
                    ),
                ));
            }
        }
        MetaReply::Created(_) | MetaReply::Done => {
            tracing::info!(
                destination = name.as_str(),
                partitions = spec.partitions,
                "destination created in the cluster"
            );
        }
        MetaReply::NotFound => {
            return Err(RequestError::new(
                ErrorCode::Internal,
                "create answered not found",
            ));
        }
        MetaReply::Rejected(reason) => {
            return Err(RequestError::new(ErrorCode::Busy, reason));
        }
    }
    wait_topology(rt, name.as_str(), true).await;
    ensure_local(broker, name.as_str()).await?;
    describe(broker, rt, name.as_str()).await
}

pub(crate) async fn delete(
    broker: &Arc<Broker>,
    rt: &ClusterRuntime,
    name: &str,
) -> Result<(), RequestError> {
    DestinationName::new(name)?;
    match rt
        .propose(MetaCommand::DeleteDestination {
            name: name.to_string(),
        })
        .await?
    {
        MetaReply::NotFound => Err(RequestError::unknown_destination(name)),
        MetaReply::Rejected(reason) => Err(RequestError::new(ErrorCode::Busy, reason)),
        _ => {
            wait_topology(rt, name, false).await;
            let deadline = tokio::time::Instant::now() + APPLY_WAIT;
            while broker.get(name).is_ok() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        }
    }
}

/// Each partition as its owner reports it; a dead owner's partitions show what the
/// cluster knows (offsets 0) rather than failing the whole answer.
pub(crate) async fn describe(
    broker: &Arc<Broker>,
    rt: &ClusterRuntime,
    name: &str,
) -> Result<DestinationInfo, RequestError> {
    let dest = known_destination(rt, name)?;
    let mut infos: Vec<PartitionInfo> = (0..dest.partitions())
        .map(|p| PartitionInfo {
            partition: p,
            leader: dest.owner(p).unwrap_or_default().to_string(),
            start_offset: 0,
            end_offset: 0,
            size_bytes: 0,
        })
        .collect();
    let mut owners: Vec<String> = infos.iter().map(|i| i.leader.clone()).collect();
    owners.sort();
    owners.dedup();
    for owner in owners {
        let got = if rt.is_self(&owner) {
            ensure_local(broker, name).await?;
            broker.get(name).map(|d| d.info(&rt.node_id))
        } else if rt.is_alive(&owner) {
            match rt
                .forward(
                    &owner,
                    &Request::DescribeDestination {
                        name: name.to_string(),
                    },
                )
                .await
            {
                Ok(Response::DescribeDestination(d)) => Ok(d),
                Ok(_) => continue,
                Err(e) => Err(e),
            }
        } else {
            continue;
        };
        let Ok(got) = got else { continue };
        for p in got.partitions {
            if let Some(slot) = infos.get_mut(p.partition as usize)
                && slot.leader == owner
            {
                *slot = PartitionInfo {
                    leader: owner.clone(),
                    ..p
                };
            }
        }
    }
    Ok(DestinationInfo {
        name: name.to_string(),
        partitions: infos,
        config: dest.spec.to_config(),
    })
}

pub(crate) async fn list(
    broker: &Arc<Broker>,
    rt: &ClusterRuntime,
) -> Result<Vec<DestinationInfo>, RequestError> {
    let names: Vec<String> = rt.topology().destinations.keys().cloned().collect();
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        out.push(describe(broker, rt, &n).await?);
    }
    Ok(out)
}

pub(crate) async fn metadata(
    broker: &Arc<Broker>,
    rt: &ClusterRuntime,
) -> Result<MetadataResponse, RequestError> {
    let nodes = rt
        .topology()
        .nodes
        .iter()
        .map(|(id, a)| NodeInfo {
            id: id.clone(),
            host: a.client.ip().to_string(),
            port: a.client.port(),
        })
        .collect();
    Ok(MetadataResponse {
        cluster_name: rt.cluster_name.clone(),
        nodes,
        destinations: list(broker, rt).await?,
    })
}

/// Destination admin requests.
pub(crate) async fn route_admin(
    broker: &Arc<Broker>,
    rt: &ClusterRuntime,
    req: Request,
) -> Result<Response, RequestError> {
    Ok(match req {
        Request::CreateDestination(r) => Response::CreateDestination(create(broker, rt, &r).await?),
        Request::DeleteDestination { name } => {
            delete(broker, rt, &name).await?;
            Response::DeleteDestination
        }
        Request::ListDestinations => Response::ListDestinations(list(broker, rt).await?),
        Request::DescribeDestination { name } => {
            Response::DescribeDestination(describe(broker, rt, &name).await?)
        }
        Request::Metadata => Response::Metadata(metadata(broker, rt).await?),
        other => {
            return Err(RequestError::new(
                ErrorCode::Internal,
                format!("{:?} is not an admin request", other.opcode()),
            ));
        }
    })
}
