//! Bringing a node into its cluster: the internal port (link and gossip), the join
//! check through seeds, the metadata Raft group, and the task that keeps the node's
//! registry in step with the cluster.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use swarmmq_cluster::link::{self, KIND_RAFT, LinkConfig, LinkError, LinkPool};
use swarmmq_cluster::membership::{self as gossip, Membership, MembershipConfig};
use swarmmq_cluster::metadata::{MetadataConfig, MetadataRaft, RaftTransport};
use swarmmq_crypto::{ChannelKey, MasterKey};
use tokio_util::sync::CancellationToken;

use super::{ClusterRuntime, NodeAddrs, NodeHandler, Replicas, Topology, sync};
use crate::broker::Broker;
use crate::error::ServerError;
use crate::settings::NodeSettings;

/// Longest one Raft message may take on the link.
const RAFT_TIMEOUT: Duration = Duration::from_secs(2);

/// Raft messages travel on the control link.
struct LinkTransport {
    pool: Arc<LinkPool>,
}

impl RaftTransport for LinkTransport {
    fn call(
        &self,
        target: &str,
        addr: SocketAddr,
        body: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>> {
        let (pool, target) = (Arc::clone(&self.pool), target.to_string());
        Box::pin(async move {
            pool.call(&target, addr, KIND_RAFT, body.into(), RAFT_TIMEOUT)
                .await
                .map(|b| b.to_vec())
                .map_err(|e| e.to_string())
        })
    }
}

fn cluster_err(reason: impl Into<String>) -> ServerError {
    ServerError::Cluster(reason.into())
}

/// A node given only seeds must reach one that admits it before it starts serving:
/// a refusal (another cluster, a duplicate id, another master key) stops the start at
/// once with the seed's reason; silence from every seed stops it after the timeout.
async fn join_check(
    pool: &LinkPool,
    seeds: &[SocketAddr],
    timeout: Duration,
) -> Result<(), ServerError> {
    if seeds.is_empty() {
        return Err(cluster_err(
            "cluster mode needs cluster.nodes or at least one seed (--seeds)",
        ));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = Vec::new();
    loop {
        last.clear();
        for seed in seeds {
            match pool.probe(*seed, Duration::from_secs(1)).await {
                Ok(()) => return Ok(()),
                Err(e @ (LinkError::Refused(..) | LinkError::KeyMismatch(_))) => {
                    return Err(cluster_err(format!("cannot join the cluster: {e}")));
                }
                Err(e) => last.push(format!("{seed}: {e}")),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(cluster_err(format!(
                "cannot join the cluster: no seed answered within {}s ({})",
                timeout.as_secs(),
                last.join("; ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub(crate) async fn start(
    broker: &Arc<Broker>,
    settings: &NodeSettings,
    http_addr: SocketAddr,
    stop: CancellationToken,
) -> Result<Arc<ClusterRuntime>, ServerError> {
    let Some(cs) = settings.cluster.clone() else {
        return Err(cluster_err("not in cluster mode"));
    };
    let master: MasterKey = settings.master_key.clone().ok_or_else(|| {
        cluster_err(
            "cluster mode needs the master key shared by every node: set security.master_key \
             or SWARMMQ_MASTER_KEY (the same on every node)",
        )
    })?;
    let node_id = settings.node_id.to_string();
    let listener = link::bind(cs.internal_addr)
        .await
        .map_err(|e| cluster_err(e.to_string()))?;
    let internal = listener
        .local_addr()
        .map_err(|e| cluster_err(format!("internal port: {e}")))?;
    let max_frame = broker.limits.max_frame_bytes as usize + 4096;
    let link_cfg = Arc::new(LinkConfig::new(
        settings.cluster_name.clone(),
        node_id.clone(),
        internal,
        master.clone(),
        max_frame,
    ));
    let control_link = Arc::new(LinkPool::new(Arc::clone(&link_cfg)));
    let data_link = LinkPool::new(Arc::clone(&link_cfg));
    // Partition Raft traffic has its own connections: a large append never queues a
    // metadata heartbeat or a forwarded publish behind it.
    let replica_link = Arc::new(LinkPool::new(Arc::clone(&link_cfg)));
    if cs.bootstrap.is_empty() {
        join_check(&control_link, &cs.seeds, cs.join_timeout).await?;
    }

    let gossip_key = Arc::new(
        ChannelKey::derive(
            &master,
            settings.cluster_name.as_bytes(),
            b"swarmmq/v1/gossip",
        )
        .map_err(|e| cluster_err(e.to_string()))?,
    );
    let addrs = NodeAddrs {
        client: broker.client_addr,
        http: http_addr,
        internal,
    };
    let mut gossip_cfg = MembershipConfig::new(
        settings.cluster_name.clone(),
        node_id.clone(),
        internal,
        gossip::NodeAddrs {
            client: addrs.client,
            http: addrs.http,
            internal,
        },
        gossip_key,
    );
    gossip_cfg.version = env!("CARGO_PKG_VERSION").to_string();
    gossip_cfg.seeds = cs.seeds.clone();
    let membership = Membership::start(gossip_cfg)
        .await
        .map_err(|e| cluster_err(format!("gossip: {e}")))?;

    let meta = MetadataRaft::open(MetadataConfig::new(
        node_id.clone(),
        settings.data_dir.join("raft"),
        Arc::new(LinkTransport {
            pool: Arc::clone(&control_link),
        }),
    ))
    .await
    .map_err(|e| cluster_err(format!("metadata: {e}")))?;
    let rt = Arc::new(ClusterRuntime {
        node_id: node_id.clone(),
        cluster_name: settings.cluster_name.clone(),
        settings: cs.clone(),
        addrs,
        data_link,
        control_link,
        meta: Arc::new(meta),
        replicas: Replicas::new(cs.replication, replica_link),
        membership: std::sync::Mutex::new(Some(membership)),
        auto_create: settings.auto_create_destinations,
        limits: broker.limits.clone(),
        topology: RwLock::new(Arc::new(Topology::default())),
        liveness: RwLock::new(HashMap::new()),
    });
    broker.set_cluster(Arc::clone(&rt));

    let handler = Arc::new(NodeHandler {
        broker: Arc::downgrade(broker),
        stop: stop.clone(),
    });
    tokio::spawn(link::serve(listener, link_cfg, handler, stop.clone()));

    // The first voters are the (at most 5) lowest ids of cluster.nodes; the lowest
    // proposes them, once. The others register and join as learners.
    let mut founders: Vec<(String, SocketAddr)> = cs
        .bootstrap
        .iter()
        .map(|(id, a)| {
            let addr = if id.as_str() == node_id { internal } else { *a };
            (id.to_string(), addr)
        })
        .collect();
    founders.sort();
    founders.truncate(swarmmq_cluster::metadata::MAX_VOTERS);
    if founders.first().is_some_and(|(id, _)| *id == node_id) {
        rt.meta
            .initialize(founders)
            .await
            .map_err(|e| cluster_err(format!("metadata bootstrap: {e}")))?;
    }
    tokio::spawn(sync::run(Arc::downgrade(broker), Arc::clone(&rt), stop));
    tracing::info!(node_id = %node_id, internal = %internal, cluster = %settings.cluster_name, seeds = cs.seeds.len(), bootstrap = cs.bootstrap.len(), "cluster mode: gossip and metadata started");
    Ok(rt)
}
