//! The small requests: acknowledgements and the admin and health operations.

use swarmmq_protocol::{
    AckRequest, AckResponse, CreateDestinationRequest, DestinationInfo, HealthResponse,
    MetadataResponse, NackRequest, NodeInfo, OffsetRange,
};
use swarmmq_types::{ErrorCode, now_ms};

use crate::broker::Broker;
use crate::error::RequestError;
use crate::metrics::Metrics;

fn check_ranges(broker: &Broker, ranges: &[OffsetRange]) -> Result<(), RequestError> {
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
    Ok(())
}

pub(crate) async fn ack(broker: &Broker, req: AckRequest) -> Result<AckResponse, RequestError> {
    check_ranges(broker, &req.ranges)?;
    let dest = broker.get(&req.destination)?;
    let group = broker.group(&dest, &req.group)?;
    let count = group.ack(&req.ranges, true).await?;
    broker
        .metrics
        .acked
        .get_or_create(&Metrics::dest(&dest.name))
        .inc_by(count);
    Ok(AckResponse { count })
}

pub(crate) async fn nack(broker: &Broker, req: NackRequest) -> Result<AckResponse, RequestError> {
    check_ranges(broker, &req.ranges)?;
    let dest = broker.get(&req.destination)?;
    let group = broker.group(&dest, &req.group)?;
    let count = group.nack(&req.ranges, now_ms(), u64::from(req.delay_ms))?;
    // A nacked message may be due at once: wake parked pulls.
    dest.notify.notify_waiters();
    Ok(AckResponse { count })
}

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
