//! Per-partition replication in the node (`cluster.replication: raft`, ADR 0009).
//!
//! For every partition whose replica set holds this node and more than one replica,
//! the node takes the partition log away from its writer task and gives it to a
//! [`PartitionGroup`]: from then on the Raft group owns the log. Publishes are proposed
//! to the group (in the order they were queued) and acknowledged once a majority holds
//! them; the committed end offset becomes the partition's visible end, so consumers
//! never see a batch a new leader could truncate. The placement's first replica forms
//! the group with the whole replica set. Raft messages travel on their own link pool
//! (`KIND_PARTITION_RAFT`), so a heavy append never delays the metadata group.
//!
//! Not here: delivery state replication (a consumer group's state stays on the node
//! that served it), membership changes of a group, snapshot transfer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use swarmmq_cluster::link::{KIND_PARTITION_RAFT, LinkPool, encode_group_frame};
use swarmmq_replication::{
    BatchData, GroupSettings, PartitionGroup, ReplicaNode, ReplicaTransport, ReplicationError,
};
use swarmmq_types::{ErrorCode, PartitionId};
use tokio::sync::{mpsc, oneshot};

use super::{ClusterRuntime, DestTopology, Topology};
use crate::broker::Broker;
use crate::destination::Destination;
use crate::error::RequestError;
use crate::partition::{Partition, Proposal, Replicated, WriterCommand};
use crate::settings::ReplicationMode;

/// Longest one partition Raft message may take on the link (openraft applies its own,
/// shorter, time limits per RPC on top).
const RAFT_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Batches waiting to be proposed, per partition (backpressure, like the writer queue).
const PROPOSAL_QUEUE: usize = 1024;
/// Proposals in flight in one group at once.
const MAX_IN_FLIGHT: usize = 256;
/// Most bytes one read of newly committed batches takes (dedup feed).
const FEED_READ_BYTES: usize = 1 << 20;

/// A partition group's name on the wire: `destination/partition`.
pub(crate) fn group_id(destination: &str, partition: PartitionId) -> String {
    format!("{destination}/{partition}")
}

/// Partition Raft messages on the node's replication link pool.
pub(crate) struct LinkReplicaTransport {
    pub pool: Arc<LinkPool>,
}

impl ReplicaTransport for LinkReplicaTransport {
    fn call(
        &self,
        group: &str,
        target: &str,
        addr: SocketAddr,
        body: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>> {
        let pool = Arc::clone(&self.pool);
        let target = target.to_string();
        let frame = encode_group_frame(group, &body);
        Box::pin(async move {
            let frame = frame.map_err(|e| e.to_string())?;
            pool.call(&target, addr, KIND_PARTITION_RAFT, frame, RAFT_CALL_TIMEOUT)
                .await
                .map(|b| b.to_vec())
                .map_err(|e| e.to_string())
        })
    }
}

/// The partition groups this node takes part in.
pub(crate) struct Replicas {
    pub mode: ReplicationMode,
    transport: Arc<dyn ReplicaTransport>,
    groups: RwLock<HashMap<String, Arc<PartitionGroup>>>,
    /// Groups being started, or whose start failed after the log was handed over (the
    /// partition has failed then; not retried).
    busy: Mutex<HashSet<String>>,
}

impl Replicas {
    pub fn new(mode: ReplicationMode, pool: Arc<LinkPool>) -> Self {
        Replicas {
            mode,
            transport: Arc::new(LinkReplicaTransport { pool }),
            groups: RwLock::new(HashMap::new()),
            busy: Mutex::new(HashSet::new()),
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<PartitionGroup>> {
        let g = match self.groups.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.get(id).cloned()
    }

    fn insert(&self, id: String, group: Arc<PartitionGroup>) {
        match self.groups.write() {
            Ok(mut g) => g.insert(id, group),
            Err(p) => p.into_inner().insert(id, group),
        };
    }

    fn remove(&self, id: &str) -> Option<Arc<PartitionGroup>> {
        match self.groups.write() {
            Ok(mut g) => g.remove(id),
            Err(p) => p.into_inner().remove(id),
        }
    }

    fn ids(&self) -> Vec<String> {
        let g = match self.groups.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.keys().cloned().collect()
    }

    fn all(&self) -> Vec<Arc<PartitionGroup>> {
        let g = match self.groups.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.values().cloned().collect()
    }

    /// Marks `id` busy; false if it already was.
    fn claim(&self, id: &str) -> bool {
        let mut b = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        b.insert(id.to_string())
    }

    fn release(&self, id: &str) {
        let mut b = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        b.remove(id);
    }

    /// The leader of a group as this node's replica sees it (`None`: not a replica
    /// here, or no leader known).
    pub fn leader_of(&self, id: &str) -> Option<String> {
        self.get(id).and_then(|g| g.status().leader)
    }

    /// Stops every group's Raft tasks (node shutdown).
    pub async fn shutdown(&self) {
        for g in self.all() {
            g.shutdown().await;
        }
    }
}

/// Whether `partition` of `dest` is replicated by Raft in this cluster.
pub(crate) fn is_replicated(mode: ReplicationMode, dest: &DestTopology, p: PartitionId) -> bool {
    mode == ReplicationMode::Raft && dest.replicas.get(p as usize).is_some_and(|r| r.len() > 1)
}

/// Starts a group for every replicated partition this node holds a replica of and
/// does not run yet. Called on every pass of the sync loop; cheap when nothing is new.
pub(crate) fn ensure_groups(broker: &Arc<Broker>, rt: &Arc<ClusterRuntime>, topo: &Topology) {
    if rt.replicas.mode != ReplicationMode::Raft {
        return;
    }
    // A group whose destination the cluster deleted stops (its files went with the
    // destination's directory); a destination created again under the name gets a new
    // group over its new log.
    for id in rt.replicas.ids() {
        let gone = id
            .rsplit_once('/')
            .is_none_or(|(name, _)| !topo.destinations.contains_key(name));
        if gone && let Some(g) = rt.replicas.remove(&id) {
            tokio::spawn(async move { g.shutdown().await });
        }
    }
    for (name, dest) in &topo.destinations {
        for (p, replicas) in dest.replicas.iter().enumerate() {
            let p = p as PartitionId;
            if !is_replicated(rt.replicas.mode, dest, p) || !replicas.contains(&rt.node_id) {
                continue;
            }
            let id = group_id(name, p);
            let attached = broker
                .get(name)
                .ok()
                .and_then(|d| d.partition(p).ok().map(|x| x.replicated().is_some()))
                .unwrap_or(false);
            if rt.replicas.get(&id).is_some() {
                if attached {
                    continue;
                }
                // The destination was deleted and created again between two passes:
                // the running group belongs to the old log.
                if let Some(g) = rt.replicas.remove(&id) {
                    tokio::spawn(async move { g.shutdown().await });
                }
            }
            if attached || !rt.replicas.claim(&id) {
                continue;
            }
            let (broker, rt) = (Arc::downgrade(broker), Arc::clone(rt));
            let (name, replicas) = (name.clone(), replicas.clone());
            tokio::spawn(async move {
                match start_group(&broker, &rt, &name, p, &replicas).await {
                    Ok(()) => rt.replicas.release(&id),
                    // Nothing was handed over: try again on a later pass.
                    Err(StartError::NotYet(why)) => {
                        tracing::debug!(group = %id, reason = %why, "partition group not started yet");
                        rt.replicas.release(&id);
                    }
                    Err(StartError::Failed(why)) => {
                        tracing::error!(group = %id, reason = %why, "partition group failed to start; the partition is unavailable on this node");
                    }
                }
            });
        }
    }
}

enum StartError {
    NotYet(String),
    Failed(String),
}

async fn start_group(
    broker: &Weak<Broker>,
    rt: &Arc<ClusterRuntime>,
    name: &str,
    p: PartitionId,
    replicas: &[String],
) -> Result<(), StartError> {
    let topo = rt.topology();
    let mut members = BTreeMap::new();
    for r in replicas {
        let addr = if rt.is_self(r) {
            rt.addrs.internal
        } else {
            match topo.nodes.get(r) {
                Some(a) => a.internal,
                None => return Err(StartError::NotYet(format!("replica {r} not registered"))),
            }
        };
        members.insert(r.clone(), ReplicaNode { addr });
    }
    let broker = broker
        .upgrade()
        .ok_or_else(|| StartError::NotYet("the node is stopping".into()))?;
    let dest = broker
        .get(name)
        .map_err(|e| StartError::NotYet(e.message))?;
    let partition = Arc::clone(
        dest.partition(p)
            .map_err(|e| StartError::NotYet(e.message))?,
    );
    if partition.replicated().is_some() {
        return Ok(());
    }
    if let Some(reason) = partition.failure() {
        return Err(StartError::Failed(format!(
            "partition has failed: {reason}"
        )));
    }
    let (done, rx) = oneshot::channel();
    if !partition.command(WriterCommand::Handover { done }).await {
        return Err(StartError::Failed(
            "the partition writer has stopped".into(),
        ));
    }
    let log = rx
        .await
        .ok()
        .flatten()
        .ok_or_else(|| StartError::Failed("the partition writer gave no log back".into()))?;
    let id = group_id(name, p);
    let raft_dir = dest.dir.join("raft").join(p.to_string());
    let settings = GroupSettings::new(id.clone(), rt.node_id.clone());
    let started =
        PartitionGroup::start(settings, log, &raft_dir, Arc::clone(&rt.replicas.transport)).await;
    let group = match started {
        Ok((g, report)) => {
            tracing::info!(group = %id, report = ?report, "partition group started");
            Arc::new(g)
        }
        Err(e) => {
            let reason = format!("partition raft log: {e}");
            partition.fail(reason.clone());
            return Err(StartError::Failed(reason));
        }
    };
    let (tx, proposals) = mpsc::channel(PROPOSAL_QUEUE);
    tokio::spawn(propose_in_order(
        Arc::clone(&group),
        proposals,
        name.to_string(),
        p,
    ));
    tokio::spawn(follow_commits(
        Arc::clone(&group),
        Arc::clone(&partition),
        Arc::downgrade(&dest),
    ));
    partition.set_replicated(Some(Arc::new(Replicated {
        node_id: rt.node_id.clone(),
        group: Arc::clone(&group),
        proposals: tx,
    })));
    rt.replicas.insert(id.clone(), Arc::clone(&group));
    // The placement's first replica forms the group (and so most likely leads it
    // first, which keeps the placement's leader spreading).
    if replicas.first().is_some_and(|f| rt.is_self(f))
        && let Err(e) = group.initialize(members).await
    {
        tracing::warn!(group = %id, error = %e, "could not initialize the partition group");
    }
    Ok(())
}

fn proposal_error(e: ReplicationError, node: &str, name: &str, p: PartitionId) -> RequestError {
    match e {
        ReplicationError::NotLeader { leader: Some(l) } => RequestError::new(
            ErrorCode::NotOwner,
            format!("node {node} does not lead partition {p} of {name:?}; its leader is {l}"),
        ),
        ReplicationError::NotLeader { leader: None } => RequestError::new(
            ErrorCode::Unavailable,
            format!("partition {p} of {name:?} has no leader right now (election); retry"),
        ),
        ReplicationError::Storage(e) => RequestError::from(e),
        ReplicationError::Raft(e) => RequestError::new(
            ErrorCode::Unavailable,
            format!("partition {p} of {name:?} could not replicate the batch: {e}"),
        ),
        other => RequestError::new(ErrorCode::StorageFailure, other.to_string()),
    }
}

/// Proposes queued batches to the group in queue order, up to [`MAX_IN_FLIGHT`] at
/// once, and answers each with its base offset once it is committed.
///
/// Order: a proposal enters openraft on its first poll, and `FuturesOrdered` first
/// polls its futures in the order they were pushed, so the log order is the queue
/// order (which is the order publishes were prepared in).
async fn propose_in_order(
    group: Arc<PartitionGroup>,
    mut rx: mpsc::Receiver<Proposal>,
    name: String,
    p: PartitionId,
) {
    type Done = oneshot::Sender<Result<u64, RequestError>>;
    let mut inflight: FuturesOrdered<Pin<Box<dyn Future<Output = _> + Send>>> =
        FuturesOrdered::new();
    let mut open = true;
    loop {
        tokio::select! {
            biased;
            Some((r, done)) = inflight.next(), if !inflight.is_empty() => {
                let r: Result<u64, RequestError> = r;
                let done: Done = done;
                let _ = done.send(r);
            }
            got = rx.recv(), if open && inflight.len() < MAX_IN_FLIGHT => match got {
                Some(Proposal { batch, done }) => {
                    let (g, name) = (Arc::clone(&group), name.clone());
                    inflight.push_back(Box::pin(async move {
                        let r = g
                            .propose(BatchData::from_encoded(batch))
                            .await
                            .map(|reply| reply.base_offset)
                            .map_err(|e| proposal_error(e, g.node_id(), &name, p));
                        (r, done)
                    }));
                }
                None => open = false,
            },
            else => break,
        }
    }
}

/// Follows the commit point: it becomes the partition's visible end (consumers read
/// only committed batches), wakes long polls, and feeds the ids of newly committed
/// messages to the destination's dedup index, so a producer retrying through a new
/// leader is recognised.
async fn follow_commits(
    group: Arc<PartitionGroup>,
    partition: Arc<Partition>,
    dest: Weak<Destination>,
) {
    let mut watch = group.commit_watch();
    let reader = group.reader();
    // What the log held at start was fed by the dedup rebuild when the destination
    // opened.
    let mut fed = reader.next_offset();
    let mut point = watch.current();
    loop {
        let Some(dest) = dest.upgrade() else { return };
        let end = point.end_offset;
        if end > fed {
            fed = feed_dedup(&reader, &dest, partition.id, fed, end).await;
        }
        partition.set_visible_end(end);
        partition.set_extent(reader.start_offset(), reader.size_bytes());
        dest.notify.notify_waiters();
        drop(dest);
        match watch.changed().await {
            Some(c) => point = c,
            None => return,
        }
    }
}

/// Records the ids of committed messages in `[from, upto)`; returns where it stopped.
async fn feed_dedup(
    reader: &swarmmq_storage::LogReader,
    dest: &Destination,
    p: PartitionId,
    from: u64,
    upto: u64,
) -> u64 {
    let reader = reader.clone();
    let found = tokio::task::spawn_blocking(move || {
        let mut ids = Vec::new();
        let mut offset = from.max(reader.start_offset());
        while offset < upto {
            let Ok(read) = reader.read(offset, FEED_READ_BYTES, upto) else {
                break;
            };
            let Some(next) = read.next_offset() else {
                break;
            };
            for batch in &read.batches {
                for meta in batch.records_meta().flatten() {
                    if meta.offset >= offset
                        && let Some(id) = meta.id
                    {
                        ids.push((id, meta.offset, meta.timestamp_ms));
                    }
                }
            }
            offset = next;
        }
        (ids, offset)
    })
    .await;
    let Ok((ids, reached)) = found else {
        return upto;
    };
    if let Ok(mut dedup) = dest.dedup.lock()
        && dedup.enabled()
    {
        let now = swarmmq_types::now_ms();
        for (id, offset, ts) in ids {
            dedup.insert_stored(id, (p, offset), ts, now);
        }
    }
    reached.max(from)
}

/// What this node is for a replicated partition right now.
pub(crate) enum LocalRole {
    Leader,
    /// A replica that does not lead; the leader it knows, if any.
    Follower(Option<String>),
    /// The group does not run here (yet).
    NotStarted,
}

pub(crate) fn local_role(
    broker: &Broker,
    name: &str,
    p: PartitionId,
) -> Result<LocalRole, RequestError> {
    let dest = broker.get(name)?;
    let partition = dest.partition(p)?;
    Ok(match partition.replicated() {
        None => LocalRole::NotStarted,
        Some(r) if r.is_leader() => LocalRole::Leader,
        Some(r) => LocalRole::Follower(r.group.status().leader),
    })
}

/// The answer of a replica that cannot take a publish for a partition it does not lead.
pub(crate) fn not_leader(node: &str, name: &str, p: PartitionId, role: &LocalRole) -> RequestError {
    match role {
        LocalRole::Follower(Some(l)) => RequestError::new(
            ErrorCode::NotOwner,
            format!("node {node} does not lead partition {p} of {name:?}; its leader is {l}"),
        ),
        LocalRole::Follower(None) => RequestError::new(
            ErrorCode::Unavailable,
            format!("partition {p} of {name:?} has no leader right now (election); retry"),
        ),
        LocalRole::NotStarted | LocalRole::Leader => RequestError::new(
            ErrorCode::Unavailable,
            format!(
                "the Raft group of partition {p} of {name:?} is not running on node {node} yet; retry"
            ),
        ),
    }
}
