//! Per-partition replication for SwarmMQ: each partition is one openraft group whose
//! Raft log IS the partition's segmented log (`swarmmq-storage`), so a batch's bytes are
//! written once.
//!
//! What is here: the group's openraft type configuration ([`PartitionConfig`]), the log
//! storage over [`swarmmq_storage::PartitionLog`] ([`PartitionLogStore`]), a minimal state
//! machine whose applied index is the commit point and which publishes the committed end
//! offset consumers may read up to ([`PartitionStateMachine`], [`CommitWatch`]), and the
//! RPC glue that carries openraft's messages over a caller-supplied [`ReplicaTransport`]
//! ([`PartitionGroup`]).
//!
//! What is NOT here: the transport itself (the server's internal link implements
//! [`ReplicaTransport`]; openraft-multi style multiplexing of many groups over one
//! connection is the server's concern), producer acks policy, delivery state, and
//! snapshot transfer of partition data (a replica behind the purge point cannot catch up
//! yet; see ADR 0009). Openraft is named only in this crate, so version bumps stay here.

mod durable;
mod entry_index;
mod error;
mod group;
mod log_store;
mod network;
mod state_machine;
mod types;

pub use error::ReplicationError;
pub use group::{GroupSettings, GroupStatus, PartitionGroup};
pub use log_store::{OpenReport, PartitionLogReader, PartitionLogStore};
pub use network::{MAX_RPC_BYTES, ReplicaTransport};
pub use state_machine::{
    CommitPoint, CommitWatch, PartitionSnapshot, PartitionSnapshotBuilder, PartitionStateMachine,
};
pub use types::{
    AppendReply, BatchData, PartitionConfig, PartitionEntry, PartitionTypes, ReplicaNode,
};
