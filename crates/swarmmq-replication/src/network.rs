//! How openraft's RPCs for a partition group travel: encoded to JSON and handed to the
//! [`ReplicaTransport`].
//!
//! Every request names its group and the replica it is meant for, so a node that took
//! over an old address, or hosts other groups, answers with an error instead of acting
//! on another replica's traffic. JSON carries batch bytes as number arrays (about 3.5x
//! their size): good enough for tests and the first wiring; the server's internal link
//! should carry `AppendEntries` batches as raw bytes (see the crate's open points).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openraft::OptionalSend;
use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use serde::{Deserialize, Serialize};

use crate::state_machine::PartitionSnapshot;
use crate::types::{PartitionConfig as TypeConfig, ReplicaNode};

/// Largest RPC body accepted in either direction (a snapshot is the biggest).
pub const MAX_RPC_BYTES: usize = 64 * 1024 * 1024;

/// How partition Raft RPCs travel between nodes; the server implements it over the
/// internal link (one connection per peer, shared by every group).
///
/// `call` sends `body` to replica `target` at `addr` and resolves to the bytes that
/// node's [`PartitionGroup::handle_rpc`](crate::PartitionGroup::handle_rpc) for `group`
/// returned, or to an error text if the node could not be reached or failed. Bodies are
/// opaque to the transport.
pub trait ReplicaTransport: Send + Sync + 'static {
    fn call(
        &self,
        group: &str,
        target: &str,
        addr: SocketAddr,
        body: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>>;
}

#[derive(Serialize, Deserialize)]
pub(crate) struct RpcEnvelope {
    pub group: String,
    pub to: String,
    pub req: RpcRequest,
}

#[derive(Serialize, Deserialize)]
pub(crate) enum RpcRequest {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    Snapshot {
        vote: VoteOf<TypeConfig>,
        meta: SnapshotMetaOf<TypeConfig>,
        state: PartitionSnapshot,
    },
}

#[derive(Serialize, Deserialize)]
pub(crate) enum RpcResponse {
    Append(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    Snapshot(SnapshotResponse<TypeConfig>),
}

/// Makes one [`PeerClient`] per peer for openraft.
pub(crate) struct NetworkFactory {
    pub group: String,
    pub local: String,
    pub transport: Arc<dyn ReplicaTransport>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: String, node: &ReplicaNode) -> PeerClient {
        PeerClient {
            group: self.group.clone(),
            local: self.local.clone(),
            target,
            addr: node.addr,
            transport: self.transport.clone(),
        }
    }
}

/// Sends openraft's RPCs to one peer.
pub(crate) struct PeerClient {
    group: String,
    local: String,
    target: String,
    addr: SocketAddr,
    transport: Arc<dyn ReplicaTransport>,
}

enum CallError {
    Timeout(Duration),
    Unreachable(String),
    Network(String),
}

impl CallError {
    fn into_rpc(self, action: RPCTypes, local: &str, target: &str) -> RPCError<TypeConfig> {
        match self {
            CallError::Timeout(timeout) => RPCError::Timeout(Timeout {
                action,
                id: local.to_string(),
                target: target.to_string(),
                timeout,
            }),
            CallError::Unreachable(s) => RPCError::Unreachable(Unreachable::from_string(s)),
            CallError::Network(s) => RPCError::Network(NetworkError::from_string(s)),
        }
    }
}

impl PeerClient {
    async fn call(&self, req: RpcRequest, ttl: Duration) -> Result<RpcResponse, CallError> {
        let body = serde_json::to_vec(&RpcEnvelope {
            group: self.group.clone(),
            to: self.target.clone(),
            req,
        })
        .map_err(|e| CallError::Network(format!("encode: {e}")))?;
        if body.len() > MAX_RPC_BYTES {
            return Err(CallError::Network(format!(
                "request of {} bytes exceeds {MAX_RPC_BYTES}",
                body.len()
            )));
        }
        let fut = self
            .transport
            .call(&self.group, &self.target, self.addr, body);
        let bytes = match tokio::time::timeout(ttl, fut).await {
            Err(_) => return Err(CallError::Timeout(ttl)),
            // Whether the link failed or the peer's Raft refused, backing off is right.
            Ok(Err(e)) => return Err(CallError::Unreachable(e)),
            Ok(Ok(b)) => b,
        };
        if bytes.len() > MAX_RPC_BYTES {
            return Err(CallError::Network(format!(
                "response of {} bytes exceeds {MAX_RPC_BYTES}",
                bytes.len()
            )));
        }
        serde_json::from_slice(&bytes).map_err(|e| CallError::Network(format!("decode: {e}")))
    }

    fn unexpected<T>(&self, action: RPCTypes) -> Result<T, RPCError<TypeConfig>> {
        Err(
            CallError::Network(format!("{}: unexpected response kind", self.target)).into_rpc(
                action,
                &self.local,
                &self.target,
            ),
        )
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = PartitionSnapshot;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let action = RPCTypes::AppendEntries;
        match self.call(RpcRequest::Append(rpc), option.soft_ttl()).await {
            Ok(RpcResponse::Append(r)) => Ok(r),
            Ok(_) => self.unexpected(action),
            Err(e) => Err(e.into_rpc(action, &self.local, &self.target)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let action = RPCTypes::Vote;
        match self.call(RpcRequest::Vote(rpc), option.soft_ttl()).await {
            Ok(RpcResponse::Vote(r)) => Ok(r),
            Ok(_) => self.unexpected(action),
            Err(e) => Err(e.into_rpc(action, &self.local, &self.target)),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let action = RPCTypes::Vote;
        match self.call(RpcRequest::PreVote(rpc), option.soft_ttl()).await {
            Ok(RpcResponse::Vote(r)) => Ok(r),
            Ok(_) => self.unexpected(action),
            Err(e) => Err(e.into_rpc(action, &self.local, &self.target)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, PartitionSnapshot>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let req = RpcRequest::Snapshot {
            vote,
            meta: snapshot.meta,
            state: snapshot.snapshot,
        };
        let res = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            res = self.call(req, option.hard_ttl()) => res,
        };
        match res {
            Ok(RpcResponse::Snapshot(r)) => Ok(r),
            Ok(_) => Err(StreamingError::Network(NetworkError::from_string(
                "unexpected response kind",
            ))),
            Err(CallError::Timeout(timeout)) => Err(StreamingError::Timeout(Timeout {
                action: RPCTypes::InstallSnapshot,
                id: self.local.clone(),
                target: self.target.clone(),
                timeout,
            })),
            Err(CallError::Unreachable(s)) => {
                Err(StreamingError::Unreachable(Unreachable::from_string(s)))
            }
            Err(CallError::Network(s)) => {
                Err(StreamingError::Network(NetworkError::from_string(s)))
            }
        }
    }
}
