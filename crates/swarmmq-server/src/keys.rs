//! The master-key administration requests: `KeysStatus`, `KeysRotate`, `KeysRetire`.
//!
//! Usage per key id comes from the batch headers of every partition of every
//! destination (dead-letter queues are destinations too), through the storage layer's
//! per-segment cache, so a repeated status call reads only what was appended since.

use std::collections::BTreeSet;

use swarmmq_protocol::{KeyInfo, KeysRotateResponse, KeysStatusResponse};
use swarmmq_storage::{KeyUsage, LogReader};
use swarmmq_types::ErrorCode;

use crate::broker::Broker;
use crate::error::RequestError;
use crate::partition::WriterCommand;

/// Key id usage over the node, and the partitions that could not be counted.
struct NodeUsage {
    usage: KeyUsage,
    /// "destination/partition: reason" of partitions without a readable log.
    unreadable: Vec<String>,
}

async fn node_usage(broker: &Broker) -> Result<NodeUsage, RequestError> {
    let mut readers: Vec<LogReader> = Vec::new();
    let mut unreadable = Vec::new();
    for dest in broker.list()? {
        for p in &dest.partitions {
            match p.reader() {
                Ok(r) => readers.push(r.clone()),
                Err(e) => unreadable.push(format!("{}/{}: {}", dest.name, p.id, e.message)),
            }
        }
    }
    let usage = tokio::task::spawn_blocking(move || {
        let mut total = KeyUsage::default();
        for r in &readers {
            total.merge(&r.key_usage()?)?;
        }
        Ok::<_, swarmmq_storage::StorageError>(total)
    })
    .await
    .map_err(|e| RequestError::new(ErrorCode::Internal, e.to_string()))??;
    Ok(NodeUsage { usage, unreadable })
}

pub(crate) async fn status(broker: &Broker) -> Result<KeysStatusResponse, RequestError> {
    // A copy: the count below may take a while and must not hold up a rotation.
    let state = broker.keys.admin().await.clone();
    let ring = broker.keys.current();
    let NodeUsage { usage, unreadable } = node_usage(broker).await?;
    if !unreadable.is_empty() {
        tracing::warn!(partitions = ?unreadable, "key status does not count partitions whose log failed");
    }
    let ids: BTreeSet<u32> = ring
        .ids()
        .chain(state.file.retired.iter().copied())
        .chain(usage.iter().map(|(id, _)| id))
        .collect();
    let keys = ids
        .into_iter()
        .map(|id| {
            let u = usage.get(id);
            KeyInfo {
                id,
                fingerprint: state.fingerprints.get(&id).cloned().unwrap_or_default(),
                bytes: u.bytes,
                batches: u.batches,
                retired: state.file.retired.contains(&id),
            }
        })
        .collect();
    Ok(KeysStatusResponse {
        active_id: ring.active_id(),
        keys,
    })
}

pub(crate) async fn rotate(broker: &Broker) -> Result<KeysRotateResponse, RequestError> {
    let mut state = broker.keys.admin().await;
    let new_id = broker.keys.rotate(&mut state).await?;
    Ok(KeysRotateResponse { new_id })
}

fn refuse(message: String) -> RequestError {
    RequestError::new(ErrorCode::InvalidRequest, message)
}

pub(crate) async fn retire(broker: &Broker, id: u32) -> Result<(), RequestError> {
    let mut state = broker.keys.admin().await;
    let ring = broker.keys.current();
    if state.file.retired.contains(&id) {
        return Err(refuse(format!("key id {id} is already retired")));
    }
    if !ring.contains(id) {
        return Err(refuse(format!("there is no key id {id}")));
    }
    if id == ring.active_id() {
        return Err(refuse(format!(
            "key id {id} is the active key; rotate first (swarmmq keys rotate), then retire it once no data uses it"
        )));
    }
    // No batch can be built under `id` any more (it is not active and rotation is
    // serialised by `state`). Wait for batches built earlier to reach the logs, so the
    // count below sees them.
    broker.keys.drain_writers().await;
    for dest in broker.list()? {
        for p in &dest.partitions {
            let (done, rx) = tokio::sync::oneshot::channel();
            if p.command(WriterCommand::Barrier { done }).await {
                let _ = rx.await;
            }
        }
    }
    let NodeUsage { usage, unreadable } = node_usage(broker).await?;
    if !unreadable.is_empty() {
        return Err(refuse(format!(
            "cannot retire key id {id}: some partitions cannot be read to check whether they use it ({})",
            unreadable.join("; ")
        )));
    }
    let u = usage.get(id);
    if u.bytes > 0 {
        return Err(refuse(format!(
            "key id {id} still encrypts {} bytes in {} batch{}; retire it after retention has deleted that data",
            u.bytes,
            u.batches,
            if u.batches == 1 { "" } else { "es" }
        )));
    }
    broker.keys.retire(&mut state, id).await
}
