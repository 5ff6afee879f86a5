//! [`MetadataRaft`]: one node's member of the metadata Raft group.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver;
use openraft::errors::{ForwardReason, ForwardToLeader, RaftError};
use openraft::{ChangeMembers, Config, ReadPolicy, SnapshotPolicy, TryAsRef};
use tokio::sync::watch;

use super::TypeConfig;
use super::log_store::{LogStore, MAX_FRAME_BYTES};
use super::network::{
    MAX_RPC_BYTES, NetworkFactory, PeerNode, RaftTransport, RpcEnvelope, RpcRequest, RpcResponse,
};
use super::records::{MetaCommand, MetaReply};
use super::state::ClusterState;
use super::state_machine::StateMachineStore;
use crate::ClusterError;

/// Most voters of the metadata group; further nodes stay learners.
pub const MAX_VOTERS: usize = 5;
/// A snapshot is taken every this many applied entries; the log is purged behind it.
const SNAPSHOT_EVERY: u64 = 1000;
/// Entries kept behind a snapshot so briefly lagging followers need no snapshot.
const KEEP_BEHIND_SNAPSHOT: u64 = 100;
/// Purge (which rewrites the log file) only once this many entries can go.
const PURGE_BATCH: u64 = 256;
/// How long `add_node` waits for a new node to catch up before promoting it.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `compact` waits for the snapshot and the purge.
const COMPACT_TIMEOUT: Duration = Duration::from_secs(10);

/// How this node joins the metadata group.
pub struct MetadataConfig {
    /// This node's id (stable for the life of its data dir).
    pub node_id: String,
    /// Where the log, vote and snapshot live, e.g. `<data_dir>/raft`.
    pub dir: PathBuf,
    pub transport: Arc<dyn RaftTransport>,
    pub heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
}

impl MetadataConfig {
    /// Production timings: heartbeat 100 ms, election timeout 300-600 ms, so a dead leader is
    /// replaced well under 2 s.
    pub fn new(node_id: String, dir: PathBuf, transport: Arc<dyn RaftTransport>) -> Self {
        MetadataConfig {
            node_id,
            dir,
            transport,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(300),
            election_timeout_max: Duration::from_millis(600),
        }
    }
}

/// A snapshot of this node's view of the group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftStatus {
    pub leader: Option<String>,
    pub term: u64,
    pub voters: Vec<String>,
    pub learners: Vec<String>,
    pub last_applied: u64,
    pub last_log_index: u64,
}

/// This node's member of the metadata Raft group (wraps openraft).
pub struct MetadataRaft {
    node_id: String,
    raft: openraft::Raft<TypeConfig, StateMachineStore<TypeConfig>>,
    state: watch::Sender<Arc<ClusterState>>,
    /// How long a request waits for a fresh leader's lease before giving up.
    lease_wait: Duration,
    heartbeat: Duration,
}

impl MetadataRaft {
    /// Opens the node from `cfg.dir` (log, vote, snapshot; the state is rebuilt from them)
    /// and starts it. It takes part in elections once the group is initialized.
    pub async fn open(cfg: MetadataConfig) -> Result<MetadataRaft, ClusterError> {
        let storage_err = |e: std::io::Error| ClusterError::Storage {
            path: cfg.dir.display().to_string(),
            reason: e.to_string(),
        };
        let log = LogStore::<TypeConfig>::open(&cfg.dir).map_err(storage_err)?;
        let sm = StateMachineStore::<TypeConfig>::open(&cfg.dir).map_err(storage_err)?;
        let state = sm.watch();
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = Config {
            cluster_name: "swarmmq-metadata".to_string(),
            heartbeat_interval: millis(cfg.heartbeat_interval),
            election_timeout_min: millis(cfg.election_timeout_min),
            election_timeout_max: millis(cfg.election_timeout_max),
            // A whole-state snapshot is small but may cross a busy link.
            install_snapshot_timeout: 10_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY),
            max_in_snapshot_log_to_keep: KEEP_BEHIND_SNAPSHOT,
            purge_batch_size: PURGE_BATCH,
            ..Config::default()
        }
        .validate()
        .map_err(|e| ClusterError::Invalid(format!("metadata raft config: {e}")))?;
        let network = NetworkFactory {
            local: cfg.node_id.clone(),
            transport: cfg.transport.clone(),
        };
        let raft = openraft::Raft::new(cfg.node_id.clone(), Arc::new(config), network, log, sm)
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        Ok(MetadataRaft {
            node_id: cfg.node_id,
            raft,
            state,
            lease_wait: cfg.election_timeout_max.saturating_mul(2),
            heartbeat: cfg.heartbeat_interval,
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Answers one RPC another node's [`RaftTransport::call`] delivered here.
    pub async fn handle_rpc(&self, body: &[u8]) -> Result<Vec<u8>, ClusterError> {
        if body.len() > MAX_RPC_BYTES {
            return Err(ClusterError::Invalid(format!(
                "raft rpc of {} bytes exceeds {MAX_RPC_BYTES}",
                body.len()
            )));
        }
        let env: RpcEnvelope = serde_json::from_slice(body)
            .map_err(|e| ClusterError::Invalid(format!("raft rpc: {e}")))?;
        if env.to != self.node_id {
            // The sender's address book is stale: this is not the node it meant.
            return Err(ClusterError::Invalid(format!(
                "raft rpc for {} reached {}",
                env.to, self.node_id
            )));
        }
        let fatal = |e: openraft::errors::RaftError<TypeConfig>| ClusterError::Raft(e.to_string());
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
                        .map_err(|e| ClusterError::Raft(e.to_string()))?,
                )
            }
        };
        serde_json::to_vec(&resp).map_err(|e| ClusterError::Raft(format!("encode reply: {e}")))
    }

    /// Forms the group with `voters` (ids and internal addresses). Every bootstrap node may
    /// call it with the same list; a node already initialized returns `Ok` unchanged.
    pub async fn initialize(&self, voters: Vec<(String, SocketAddr)>) -> Result<(), ClusterError> {
        if voters.is_empty() || voters.len() > MAX_VOTERS {
            return Err(ClusterError::Invalid(format!(
                "metadata group needs 1..={MAX_VOTERS} initial voters, got {}",
                voters.len()
            )));
        }
        if self.is_initialized().await? {
            return Ok(());
        }
        let members: BTreeMap<String, PeerNode> = voters
            .into_iter()
            .map(|(id, addr)| (id, PeerNode { addr }))
            .collect();
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            // Raced with a vote or log from a peer: the group exists already.
            Err(RaftError::APIError(openraft::errors::InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(ClusterError::Raft(e.to_string())),
        }
    }

    async fn is_initialized(&self) -> Result<bool, ClusterError> {
        self.raft
            .is_initialized()
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))
    }

    /// Replicates `cmd` and answers with what applying it returned. On a follower:
    /// [`ClusterError::NotLeader`] naming the leader, for the caller to forward to.
    pub async fn propose(&self, cmd: MetaCommand) -> Result<MetaReply, ClusterError> {
        // A command too large for one log frame would be accepted by openraft and then fail
        // the leader's log write; refuse it here, where the caller can still be told.
        let size = serde_json::to_vec(&cmd)
            .map_err(|e| ClusterError::Invalid(format!("command: {e}")))?
            .len();
        if size > MAX_FRAME_BYTES / 2 {
            return Err(ClusterError::Invalid(format!(
                "metadata command of {size} bytes exceeds {}",
                MAX_FRAME_BYTES / 2
            )));
        }
        let resp = self
            .with_lease(|| self.raft.client_write(cmd.clone()))
            .await?;
        Ok(resp.data)
    }

    /// The state as of a read the leader confirmed it still leads (ReadIndex). On a
    /// follower: [`ClusterError::NotLeader`].
    pub async fn read_linearizable(&self) -> Result<Arc<ClusterState>, ClusterError> {
        self.with_lease(|| self.raft.ensure_linearizable(ReadPolicy::ReadIndex))
            .await?;
        Ok(self.state())
    }

    /// This node's applied view; may lag the leader.
    pub fn state(&self) -> Arc<ClusterState> {
        self.state.borrow().clone()
    }

    /// A receiver that sees every applied change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterState>> {
        self.state.subscribe()
    }

    /// Leader, term, members and progress as this node sees them now.
    pub fn status(&self) -> RaftStatus {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        RaftStatus {
            leader: m.current_leader.clone(),
            term: m.current_term,
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            last_applied: m.last_applied.as_ref().map_or(0, |id| id.index()),
            last_log_index: m.last_log_index.unwrap_or(0),
        }
    }

    /// Leader only: adds `id` (internal address `addr`) as a learner, and promotes it to
    /// voter once caught up while the group has fewer than [`MAX_VOTERS`] voters. Calling it
    /// again for a known node is harmless (and retries a promotion that timed out).
    pub async fn add_node(&self, id: String, addr: SocketAddr) -> Result<(), ClusterError> {
        let status = self.status();
        if status.voters.contains(&id) {
            return Ok(());
        }
        let promote = status.voters.len() < MAX_VOTERS;
        let node = PeerNode { addr };
        if !promote {
            return match self.raft.add_learner(id, node, false).await {
                Ok(_) => Ok(()),
                Err(e) => Err(self.map_err(e)),
            };
        }
        // Promoting a learner far behind would stall commits until it catches up, so wait.
        match tokio::time::timeout(
            CATCH_UP_TIMEOUT,
            self.raft.add_learner(id.clone(), node, true),
        )
        .await
        {
            Err(_) => {
                return Err(ClusterError::Raft(format!(
                    "{id} did not catch up within {CATCH_UP_TIMEOUT:?}; left as learner"
                )));
            }
            Ok(Err(e)) => return Err(self.map_err(e)),
            Ok(Ok(_)) => {}
        }
        let voters = BTreeSet::from([id]);
        match self
            .raft
            .change_membership(ChangeMembers::AddVoterIds(voters), false)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.map_err(e)),
        }
    }

    /// Snapshots the applied state now and drops the log behind it; returns once both are
    /// done. openraft also does this by itself every 1000 entries; this is for operators
    /// and tests (a follower behind a compacted log catches up by snapshot).
    pub async fn compact(&self) -> Result<(), ClusterError> {
        let fatal = |e: openraft::errors::Fatal<TypeConfig>| ClusterError::Raft(e.to_string());
        let waited = |e: openraft::metrics::WaitError| ClusterError::Raft(format!("compact: {e}"));
        let applied = self.status().last_applied;
        self.raft.trigger().snapshot().await.map_err(fatal)?;
        let index = |id: &Option<openraft::LogId<_>>| id.as_ref().map_or(0, |id| id.index());
        let m = self
            .raft
            .wait(Some(COMPACT_TIMEOUT))
            .metrics(|m| index(&m.snapshot) >= applied, "snapshot built")
            .await
            .map_err(waited)?;
        let upto = index(&m.snapshot);
        self.raft.trigger().purge_log(upto).await.map_err(fatal)?;
        self.raft
            .wait(Some(COMPACT_TIMEOUT))
            .metrics(|m| index(&m.purged) >= upto, "log purged")
            .await
            .map_err(waited)?;
        Ok(())
    }

    /// Stops this node's Raft tasks; RPCs to it fail afterwards.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(node = %self.node_id, "metadata raft shutdown: {e}");
        }
    }

    /// Runs `op`, retrying while this node leads but its lease is not (yet) valid: a fresh
    /// leader refuses writes until a quorum has acknowledged it, and nothing was appended in
    /// that case, so a retry cannot apply a command twice.
    async fn with_lease<T, E, F, Fut>(&self, mut op: F) -> Result<T, ClusterError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, RaftError<TypeConfig, E>>>,
        E: std::error::Error + TryAsRef<ForwardToLeader<TypeConfig>>,
    {
        let deadline = tokio::time::Instant::now() + self.lease_wait;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let lease_expired = e
                        .forward_to_leader()
                        .is_some_and(|f| f.reason == ForwardReason::LeaseExpired);
                    if lease_expired && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(self.heartbeat).await;
                        continue;
                    }
                    return Err(self.map_err(e));
                }
            }
        }
    }

    fn map_err<E>(&self, e: RaftError<TypeConfig, E>) -> ClusterError
    where
        E: std::error::Error + TryAsRef<ForwardToLeader<TypeConfig>>,
    {
        match e.forward_to_leader() {
            Some(fwd) => {
                let leader = match (&fwd.leader_id, &fwd.leader_node) {
                    (Some(id), Some(node)) => Some((id.clone(), node.addr)),
                    (Some(id), None) => self.address_of(id).map(|addr| (id.clone(), addr)),
                    // Never point the caller back at this node: it would forward to itself.
                    _ => self
                        .status()
                        .leader
                        .filter(|l| *l != self.node_id)
                        .and_then(|l| self.address_of(&l).map(|addr| (l, addr))),
                };
                ClusterError::NotLeader { leader }
            }
            None => ClusterError::Raft(e.to_string()),
        }
    }

    fn address_of(&self, id: &String) -> Option<SocketAddr> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        m.membership_config
            .membership()
            .get_node(id)
            .map(|n| n.addr)
    }
}
