//! [`PartitionGroup`]: one replica of one partition's Raft group (wraps openraft).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver;
use openraft::errors::{ForwardReason, ForwardToLeader, RaftError};
use openraft::{Config, SnapshotPolicy, TryAsRef};
use swarmmq_storage::{LogReader, PartitionLog};

use crate::ReplicationError;
use crate::log_store::{OpenReport, PartitionLogStore};
use crate::network::{
    MAX_RPC_BYTES, NetworkFactory, ReplicaTransport, RpcEnvelope, RpcRequest, RpcResponse,
};
use crate::state_machine::{CommitWatch, PartitionStateMachine};
use crate::types::{AppendReply, BatchData, PartitionConfig, ReplicaNode};

/// How a replica takes part in its group.
#[derive(Clone, Debug)]
pub struct GroupSettings {
    /// The group's name on the wire, e.g. `orders/3`; every replica uses the same.
    pub group: String,
    /// This replica's node id.
    pub node_id: String,
    pub heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
}

impl GroupSettings {
    /// Production timings: heartbeat 100 ms, election timeout 300-600 ms, so a dead
    /// leader is replaced well under the 2 s target.
    pub fn new(group: String, node_id: String) -> Self {
        GroupSettings {
            group,
            node_id,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(300),
            election_timeout_max: Duration::from_millis(600),
        }
    }
}

/// This replica's view of the group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStatus {
    pub leader: Option<String>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
}

/// One replica of a partition group: the partition log as Raft log, the commit point,
/// and openraft's tasks.
pub struct PartitionGroup {
    settings: GroupSettings,
    raft: openraft::Raft<PartitionConfig, PartitionStateMachine<PartitionConfig>>,
    commit: CommitWatch,
    reader: LogReader,
    max_batch_bytes: usize,
}

impl PartitionGroup {
    /// Opens the Raft view of `log` (side files in `raft_dir`) and starts the replica.
    /// It takes part in elections once the group is initialized.
    pub async fn start(
        settings: GroupSettings,
        log: PartitionLog,
        raft_dir: &Path,
        transport: Arc<dyn ReplicaTransport>,
    ) -> Result<(PartitionGroup, OpenReport), ReplicationError> {
        let max_batch_bytes = log.config().max_batch_bytes as usize;
        let reader = log.reader();
        let sm = PartitionStateMachine::<PartitionConfig>::new(reader.clone());
        let commit = sm.commit_watch();
        let (store, report) = PartitionLogStore::<PartitionConfig>::open(log, raft_dir)?;
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = Config {
            cluster_name: settings.group.clone(),
            heartbeat_interval: millis(settings.heartbeat_interval),
            election_timeout_min: millis(settings.election_timeout_min),
            election_timeout_max: millis(settings.election_timeout_max),
            // A snapshot carries no partition data yet (ADR 0009): never purge by policy.
            snapshot_policy: SnapshotPolicy::Never,
            // Bounds one AppendEntries during catch-up so that it stays within the
            // internal link's frame limit (openraft's default is 300 entries).
            max_payload_entries: 8,
            ..Config::default()
        }
        .validate()
        .map_err(|e| ReplicationError::Raft(format!("partition raft config: {e}")))?;
        let network = NetworkFactory {
            group: settings.group.clone(),
            local: settings.node_id.clone(),
            transport,
        };
        let raft = openraft::Raft::new(
            settings.node_id.clone(),
            Arc::new(config),
            network,
            store,
            sm,
        )
        .await
        .map_err(|e| ReplicationError::Raft(e.to_string()))?;
        Ok((
            PartitionGroup {
                settings,
                raft,
                commit,
                reader,
                max_batch_bytes,
            },
            report,
        ))
    }

    pub fn node_id(&self) -> &str {
        &self.settings.node_id
    }

    /// Forms the group with `members` as voters. Every replica may call it with the same
    /// map; an initialized replica returns `Ok` unchanged.
    pub async fn initialize(
        &self,
        members: BTreeMap<String, ReplicaNode>,
    ) -> Result<(), ReplicationError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| ReplicationError::Raft(e.to_string()))?;
        if initialized {
            return Ok(());
        }
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            // Raced with a vote or log from a peer: the group exists already.
            Err(RaftError::APIError(openraft::errors::InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(ReplicationError::Raft(e.to_string())),
        }
    }

    /// Leader only: replicates a fresh batch (builder output) and answers once a
    /// majority holds it durably and it is committed, with the offsets it got. On a
    /// follower: [`ReplicationError::NotLeader`].
    pub async fn propose(&self, batch: BatchData) -> Result<AppendReply, ReplicationError> {
        // A batch the log would refuse must be refused here: openraft treats a failed
        // log write on the leader as fatal.
        if !batch.is_fresh() || batch.header().is_none_or(|h| h.record_count == 0) {
            return Err(ReplicationError::Raft(
                "propose needs a fresh, non-empty batch from the builder".into(),
            ));
        }
        if batch.len() > self.max_batch_bytes {
            return Err(ReplicationError::Raft(format!(
                "batch of {} bytes is above max_batch_bytes {}",
                batch.len(),
                self.max_batch_bytes
            )));
        }
        let deadline = tokio::time::Instant::now() + self.settings.election_timeout_max * 2;
        loop {
            match self.raft.client_write(batch.clone()).await {
                Ok(resp) => return Ok(resp.data),
                Err(e) => {
                    // A fresh leader refuses writes until a quorum acknowledged it; nothing
                    // was appended then, so a retry cannot write the batch twice.
                    let lease = e
                        .forward_to_leader()
                        .is_some_and(|f| f.reason == ForwardReason::LeaseExpired);
                    if lease && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(self.settings.heartbeat_interval).await;
                        continue;
                    }
                    return Err(self.map_err(e));
                }
            }
        }
    }

    /// Answers one RPC another replica's [`ReplicaTransport::call`] delivered here.
    pub async fn handle_rpc(&self, body: &[u8]) -> Result<Vec<u8>, ReplicationError> {
        if body.len() > MAX_RPC_BYTES {
            return Err(ReplicationError::Raft(format!(
                "raft rpc of {} bytes exceeds {MAX_RPC_BYTES}",
                body.len()
            )));
        }
        let env: RpcEnvelope = serde_json::from_slice(body)
            .map_err(|e| ReplicationError::Raft(format!("raft rpc: {e}")))?;
        if env.to != self.settings.node_id || env.group != self.settings.group {
            return Err(ReplicationError::Raft(format!(
                "raft rpc for {}@{} reached {}@{}",
                env.to, env.group, self.settings.node_id, self.settings.group
            )));
        }
        let fatal =
            |e: openraft::errors::RaftError<PartitionConfig>| ReplicationError::Raft(e.to_string());
        let resp = match env.req {
            RpcRequest::Append(r) => {
                RpcResponse::Append(self.raft.append_entries(r).await.map_err(fatal)?)
            }
            RpcRequest::Vote(r) => RpcResponse::Vote(self.raft.vote(r).await.map_err(fatal)?),
            RpcRequest::PreVote(r) => {
                RpcResponse::Vote(self.raft.pre_vote(r).await.map_err(fatal)?)
            }
            RpcRequest::Snapshot { vote, meta, state } => {
                let snapshot = openraft::Snapshot {
                    meta,
                    snapshot: state,
                };
                RpcResponse::Snapshot(
                    self.raft
                        .install_full_snapshot(vote, snapshot)
                        .await
                        .map_err(|e| ReplicationError::Raft(e.to_string()))?,
                )
            }
        };
        serde_json::to_vec(&resp).map_err(|e| ReplicationError::Raft(format!("encode reply: {e}")))
    }

    /// The commit point: consumers read the partition with `upto = end_offset`.
    pub fn commit_watch(&self) -> CommitWatch {
        self.commit.clone()
    }

    /// A read handle on this replica's partition log.
    pub fn reader(&self) -> LogReader {
        self.reader.clone()
    }

    /// Leader, term and progress as this replica sees them now.
    pub fn status(&self) -> GroupStatus {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        GroupStatus {
            leader: m.current_leader.clone(),
            term: m.current_term,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.as_ref().map(|id| id.index),
        }
    }

    /// Stops this replica's Raft tasks; RPCs to it fail afterwards.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(node = %self.settings.node_id, group = %self.settings.group, "partition raft shutdown: {e}");
        }
    }

    fn map_err<E>(&self, e: RaftError<PartitionConfig, E>) -> ReplicationError
    where
        E: std::error::Error + TryAsRef<ForwardToLeader<PartitionConfig>>,
    {
        match e.forward_to_leader() {
            Some(fwd) => ReplicationError::NotLeader {
                leader: fwd
                    .leader_id
                    .clone()
                    .filter(|l| *l != self.settings.node_id),
            },
            None => ReplicationError::Raft(e.to_string()),
        }
    }
}
