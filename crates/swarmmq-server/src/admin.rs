//! The admin and health operations.

use swarmmq_protocol::{
    CreateDestinationRequest, DestinationInfo, HealthResponse, MetadataResponse, NodeInfo,
};

use crate::broker::Broker;
use crate::error::RequestError;

pub(crate) async fn create(
    broker: &Broker,
    req: CreateDestinationRequest,
) -> Result<DestinationInfo, RequestError> {
    let dest = broker.create(&req).await?;
    Ok(dest.info(&broker.node_id))
}

pub(crate) async fn delete(broker: &Broker, name: &str) -> Result<(), RequestError> {
    broker.delete(name).await
}

pub(crate) fn list(broker: &Broker) -> Result<Vec<DestinationInfo>, RequestError> {
    Ok(broker
        .list()?
        .iter()
        .map(|d| d.info(&broker.node_id))
        .collect())
}

pub(crate) fn describe(broker: &Broker, name: &str) -> Result<DestinationInfo, RequestError> {
    Ok(broker.get(name)?.info(&broker.node_id))
}

/// `ok`, or `degraded` when some partition has failed (the node still serves the rest).
pub(crate) fn status(broker: &Broker) -> &'static str {
    if broker.failures().is_empty() {
        "ok"
    } else {
        "degraded"
    }
}

pub(crate) fn health(broker: &Broker) -> HealthResponse {
    HealthResponse {
        status: status(broker).to_string(),
        node_id: broker.node_id.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_ms: broker.started.elapsed().as_millis() as u64,
    }
}

pub(crate) fn metadata(broker: &Broker) -> Result<MetadataResponse, RequestError> {
    Ok(MetadataResponse {
        cluster_name: broker.cluster_name.clone(),
        nodes: vec![NodeInfo {
            id: broker.node_id.clone(),
            host: broker.client_addr.ip().to_string(),
            port: broker.client_addr.port(),
        }],
        destinations: list(broker)?,
    })
}

/// The cluster status object (`ClusterStatus`, and `/v1/admin/cluster` once the cluster
/// runtime serves it), shape in docs/cluster.md. A single node answers with itself only:
/// alive, its own metadata leader, term 0. Addresses it does not know (HTTP, internal)
/// are empty strings, so readers can treat every field as always present.
pub(crate) fn cluster_status(broker: &Broker) -> Result<String, RequestError> {
    Ok(cluster_status_json(broker)?.to_string())
}

/// [`cluster_status`] as a JSON value; in cluster mode, the cluster runtime's view.
pub(crate) fn cluster_status_json(broker: &Broker) -> Result<serde_json::Value, RequestError> {
    if let Some(rt) = broker.cluster() {
        return Ok(crate::cluster::status_json(&rt));
    }
    let led: u64 = broker
        .list()?
        .iter()
        .map(|d| d.partitions.len() as u64)
        .sum();
    let status = serde_json::json!({
        "cluster": broker.cluster_name,
        "node": broker.node_id,
        "leader": broker.node_id,
        "term": 0,
        "healthy": status(broker) == "ok",
        "nodes": [{
            "id": broker.node_id,
            "addr": broker.client_addr.to_string(),
            "http": "",
            "internal": "",
            "state": "alive",
            "version": env!("CARGO_PKG_VERSION"),
            "last_seen_ms": 0,
            "voter": true,
            "partitions_led": led,
            "load": {
                "publish_rate": 0.0,
                "publish_p99_ms": 0.0,
                "queue_depth": 0,
                "disk_used": broker.disk_used(),
                "partitions_led": led,
            },
        }],
    });
    Ok(status)
}
