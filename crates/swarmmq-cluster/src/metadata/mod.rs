//! The cluster metadata (nodes, destinations, partition placement, group coordinators),
//! kept in one Raft group.
//!
//! Raft itself is `openraft` (pinned); this module is the only place that names it, so a
//! version bump stays here. What it adds: the state machine ([`ClusterState::apply`],
//! pure), durable storage in one directory (`log.bin`, `vote.json`, `committed.json`,
//! `snapshot.json`) and the glue that carries RPCs over a caller-supplied
//! [`RaftTransport`]. It is NOT the transport (the server's internal link implements
//! [`RaftTransport`]) nor the replication of partition data.

mod durable;
mod log_store;
mod network;
mod raft;
mod records;
mod state;
mod state_machine;

use network::PeerNode;
pub use network::RaftTransport;
pub use raft::{MAX_VOTERS, MetadataConfig, MetadataRaft, RaftStatus};
pub use records::{DestinationMeta, MetaCommand, MetaReply, NodeRecord, PartitionPlacement};
pub use state::ClusterState;

openraft::declare_raft_types!(
    /// openraft's types for the metadata group: string node ids, members known by their
    /// internal address, and the standard leader id (at most one leader per term, the
    /// classic Raft invariant the chaos checker and the simulation verify).
    pub(crate) TypeConfig:
        D = MetaCommand,
        R = MetaReply,
        NodeId = String,
        Node = PeerNode,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, String>,
);
