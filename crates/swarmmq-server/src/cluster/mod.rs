//! Cluster mode: the node as one of several. It joins through seeds, keeps the
//! metadata Raft group and the gossip membership running, mirrors the cluster's
//! destinations locally, and routes every client request to the node that owns its
//! partition, over the internal link.
//!
//! With `cluster.replication: none` each partition lives on the first node of its
//! replica set (its owner); with `raft` each partition of several replicas is a Raft
//! group over them and its leader serves it (`replicas`). Every node accepts every
//! request and forwards what it does not serve. Ownership comes from Raft; liveness
//! from gossip only decides whether to try.

mod codec;
mod handler;
mod replicas;
mod route_admin;
mod route_consume;
mod route_publish;
mod start;
mod status;
mod sync;
mod topology;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use swarmmq_cluster::ClusterError;
use swarmmq_cluster::link::{KIND_FORWARD, KIND_META, LinkError, LinkPool};
use swarmmq_cluster::membership::{LoadReport, MemberState, MemberView, Membership};
use swarmmq_cluster::metadata::{MetaCommand, MetaReply, MetadataRaft};
use swarmmq_protocol::{Request, Response};
use swarmmq_types::{ErrorCode, Limits};

use crate::error::RequestError;
use crate::settings::ClusterSettings;

pub(crate) use handler::NodeHandler;
pub(crate) use replicas::Replicas;
pub(crate) use route_admin::{create as create_destination, route_admin};
pub(crate) use route_consume::{route_consume, route_pull};
pub(crate) use route_publish::prepare_publish;
pub(crate) use start::start;
pub(crate) use status::{health_json, status_json, under_replicated};
pub(crate) use topology::{DestTopology, NodeAddrs, Topology};

/// Longest a forwarded request other than a long poll may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest a metadata operation waits for a leader and a commit.
const META_TIMEOUT: Duration = Duration::from_secs(10);

/// The cluster side of a node.
pub(crate) struct ClusterRuntime {
    pub node_id: String,
    pub cluster_name: String,
    pub settings: ClusterSettings,
    pub addrs: NodeAddrs,
    /// Forwarded client requests.
    pub data_link: LinkPool,
    /// Raft and metadata proposals, on their own connections so that a slow
    /// publish never delays a heartbeat.
    pub control_link: Arc<LinkPool>,
    pub meta: Arc<MetadataRaft>,
    /// The partition Raft groups this node takes part in (`cluster.replication: raft`).
    pub replicas: Replicas,
    /// Gossip; taken out at shutdown (stopping it consumes it).
    membership: std::sync::Mutex<Option<Membership>>,
    /// Whether an unknown destination is created on first publish.
    pub auto_create: bool,
    pub limits: Limits,
    topology: RwLock<Arc<Topology>>,
    /// Gossip's verdict per node id, refreshed by the sync task.
    liveness: RwLock<HashMap<String, MemberState>>,
}

fn unavailable(node: &str, e: &LinkError) -> RequestError {
    let code = match e {
        LinkError::Remote(_) | LinkError::Protocol(_) => ErrorCode::Internal,
        _ => ErrorCode::Unavailable,
    };
    RequestError::new(code, format!("node {node} is unreachable: {e}"))
}

impl ClusterRuntime {
    pub fn topology(&self) -> Arc<Topology> {
        match self.topology.read() {
            Ok(t) => Arc::clone(&t),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    pub(crate) fn set_topology(&self, t: Topology) {
        let t = Arc::new(t);
        match self.topology.write() {
            Ok(mut g) => *g = t,
            Err(p) => *p.into_inner() = t,
        }
    }

    pub(crate) fn set_liveness(&self, l: HashMap<String, MemberState>) {
        match self.liveness.write() {
            Ok(mut g) => *g = l,
            Err(p) => *p.into_inner() = l,
        }
    }

    pub fn is_self(&self, node: &str) -> bool {
        node == self.node_id
    }

    /// Whether a partition is a Raft group (replication on, more than one replica).
    pub fn is_replicated(&self, dest: &DestTopology, p: swarmmq_types::PartitionId) -> bool {
        replicas::is_replicated(self.replicas.mode, dest, p)
    }

    /// The destination as requests are routed: for a replicated partition, the replica
    /// to ask first is its Raft leader as this node's own replica knows it (or the first
    /// replica gossip does not call dead), so `owner()` names the node that serves it.
    pub fn routed(&self, mut dest: DestTopology, name: &str) -> DestTopology {
        if self.replicas.mode != crate::settings::ReplicationMode::Raft {
            return dest;
        }
        for (p, set) in dest.replicas.iter_mut().enumerate() {
            if set.len() < 2 {
                continue;
            }
            let leader = self
                .replicas
                .leader_of(&replicas::group_id(name, p as swarmmq_types::PartitionId))
                .filter(|l| set.contains(l) && self.is_alive(l))
                .or_else(|| set.iter().find(|n| self.is_alive(n)).cloned());
            if let Some(l) = leader
                && let Some(i) = set.iter().position(|n| *n == l)
            {
                let first = set.remove(i);
                set.insert(0, first);
            }
        }
        dest
    }

    /// False only when gossip says the node is dead: a node gossip has not heard of
    /// yet is tried (the link's breaker guards against it).
    pub fn is_alive(&self, node: &str) -> bool {
        if self.is_self(node) {
            return true;
        }
        let l = match self.liveness.read() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        !matches!(l.get(node), Some(MemberState::Dead))
    }

    /// Registered nodes gossip does not call dead, sorted.
    pub fn live_nodes(&self) -> Vec<String> {
        self.topology()
            .nodes
            .keys()
            .filter(|n| self.is_alive(n))
            .cloned()
            .collect()
    }

    fn internal_addr(&self, node: &str) -> Result<std::net::SocketAddr, RequestError> {
        self.topology()
            .nodes
            .get(node)
            .map(|a| a.internal)
            .ok_or_else(|| {
                RequestError::new(
                    ErrorCode::Unavailable,
                    format!("node {node} is not registered in the cluster metadata yet"),
                )
            })
    }

    /// Queues `req` on `node`'s link (in call order) and returns the wait for its answer.
    pub async fn forward_start(
        &self,
        node: &str,
        req: &Request,
        timeout: Duration,
    ) -> Result<impl Future<Output = Result<Response, RequestError>> + Send + 'static, RequestError>
    {
        if !self.is_alive(node) {
            return Err(RequestError::new(
                ErrorCode::Unavailable,
                format!("node {node} is dead (gossip); its partitions are unavailable"),
            ));
        }
        let addr = self.internal_addr(node)?;
        let frame = codec::request_frame(req, &self.limits)?;
        let wait = self
            .data_link
            .start(node, addr, KIND_FORWARD, frame, timeout)
            .await
            .map_err(|e| unavailable(node, &e))?;
        let (limits, node) = (self.limits.clone(), node.to_string());
        Ok(async move {
            let bytes = wait.await.map_err(|e| unavailable(&node, &e))?;
            codec::decode_response_frame(bytes, &limits)
        })
    }

    /// A smart client's request (DIRECT flag) for a partition this node does not own
    /// is answered NOT_OWNER, naming the owner, instead of being forwarded.
    pub fn check_direct(&self, req: &Request) -> Result<(), RequestError> {
        let (name, partition) = match req {
            Request::Publish(p) => (&p.destination, p.partition),
            Request::Pull(p) => (&p.destination, p.partition),
            _ => return Ok(()),
        };
        let Some(partition) = partition else {
            return Ok(());
        };
        let topo = self.topology();
        let Some(dest) = topo.destination(name).map(|d| self.routed(d.clone(), name)) else {
            return Ok(());
        };
        let Some(owner) = dest.owner(partition) else {
            return Ok(());
        };
        if self.is_self(owner) {
            return Ok(());
        }
        let at = topo
            .nodes
            .get(owner)
            .map(|a| a.client.to_string())
            .unwrap_or_default();
        Err(RequestError::new(
            ErrorCode::NotOwner,
            format!(
                "partition {partition} of {name:?} is owned by {owner} at {at}; refresh metadata"
            ),
        ))
    }

    /// Leaves the cluster's background work: Raft and gossip stop.
    pub async fn shutdown(&self) {
        self.replicas.shutdown().await;
        self.meta.shutdown().await;
        let m = match self.membership.lock() {
            Ok(mut m) => m.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(m) = m {
            m.shutdown().await;
        }
    }

    /// Gossip's view of every node (empty once stopped).
    pub fn members(&self) -> Vec<MemberView> {
        match self.membership.lock() {
            Ok(m) => m.as_ref().map(|m| m.members()).unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    pub fn set_load(&self, load: LoadReport) {
        if let Ok(m) = self.membership.lock()
            && let Some(m) = m.as_ref()
        {
            m.set_load(load);
        }
    }

    /// Bumps on every liveness change gossip sees.
    pub fn membership_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.membership
            .lock()
            .ok()
            .and_then(|m| m.as_ref().map(|m| m.subscribe()))
    }

    pub async fn forward(&self, node: &str, req: &Request) -> Result<Response, RequestError> {
        self.forward_start(node, req, FORWARD_TIMEOUT).await?.await
    }

    /// Commits a metadata change through the Raft leader, wherever it is.
    pub async fn propose(&self, cmd: MetaCommand) -> Result<MetaReply, RequestError> {
        let deadline = tokio::time::Instant::now() + META_TIMEOUT;
        let mut last;
        loop {
            match self.meta.propose(cmd.clone()).await {
                Ok(r) => return Ok(r),
                Err(ClusterError::NotLeader {
                    leader: Some((id, addr)),
                }) if id != self.node_id => match self.propose_at(&id, addr, &cmd).await {
                    Ok(r) => return Ok(r),
                    Err(e) => last = e,
                },
                // Not in the group yet (a node joining through seeds): any member
                // passes the proposal on to its leader.
                Err(ClusterError::NotLeader { leader: None }) => {
                    match self.propose_through_peers(&cmd).await {
                        Ok(r) => return Ok(r),
                        Err(e) => last = e,
                    }
                }
                Err(e) => last = e.to_string(),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RequestError::new(
                    ErrorCode::Unavailable,
                    format!("cluster metadata could not be changed: {last}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn propose_through_peers(&self, cmd: &MetaCommand) -> Result<MetaReply, String> {
        let topo = self.topology();
        let mut peers: Vec<(String, std::net::SocketAddr)> = topo
            .nodes
            .iter()
            .filter(|(id, _)| !self.is_self(id))
            .map(|(id, a)| (id.clone(), a.internal))
            .collect();
        for seed in &self.settings.seeds {
            if !peers.iter().any(|(_, a)| a == seed) && *seed != self.addrs.internal {
                peers.push((format!("seed {seed}"), *seed));
            }
        }
        let mut last = String::from("no peer to ask");
        for (id, addr) in peers {
            match self.propose_at(&id, addr, cmd).await {
                Ok(r) => return Ok(r),
                Err(e) => last = format!("{id}: {e}"),
            }
        }
        Err(last)
    }

    async fn propose_at(
        &self,
        node: &str,
        addr: std::net::SocketAddr,
        cmd: &MetaCommand,
    ) -> Result<MetaReply, String> {
        let body = serde_json::to_vec(cmd).map_err(|e| e.to_string())?;
        let answer = self
            .control_link
            .call(node, addr, KIND_META, body.into(), META_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&answer).map_err(|e| e.to_string())
    }
}
