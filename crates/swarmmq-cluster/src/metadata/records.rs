//! What the metadata group stores and the commands that change it.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A node as the metadata group knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: String,
    pub client_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub internal_addr: SocketAddr,
    pub version: String,
}

/// Which nodes hold one partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionPlacement {
    /// Node ids; the first is the leader hint.
    pub replicas: Vec<String>,
}

/// A destination (stream/queue) and where its partitions live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationMeta {
    pub name: String,
    /// Opaque to this crate: the server's destination settings.
    pub spec: serde_json::Value,
    pub partitions: Vec<PartitionPlacement>,
}

/// A change to the cluster metadata, replicated through Raft.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Insert or replace a node's record.
    RegisterNode(NodeRecord),
    /// Create a destination unless one of that name exists.
    CreateDestination(DestinationMeta),
    DeleteDestination {
        name: String,
    },
    UpdateDestinationSpec {
        name: String,
        spec: serde_json::Value,
    },
    /// Replace the replica list of one existing partition.
    SetPlacement {
        name: String,
        partition: u32,
        replicas: Vec<String>,
    },
    /// Set the coordinator node of a consumer group; `key` is `"dest/group"`.
    AssignCoordinator {
        key: String,
        node: String,
    },
}

/// What applying a [`MetaCommand`] answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaReply {
    Done,
    Created(DestinationMeta),
    /// A destination of that name exists (returned as stored); the caller compares specs.
    AlreadyExists(DestinationMeta),
    NotFound,
    /// The command would break a bound of the metadata (see `state.rs`); nothing changed.
    Rejected(String),
}

// openraft logs commands through `Display`; keep it short (no specs).
impl fmt::Display for MetaCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaCommand::RegisterNode(n) => write!(f, "RegisterNode({})", n.id),
            MetaCommand::CreateDestination(d) => write!(f, "CreateDestination({})", d.name),
            MetaCommand::DeleteDestination { name } => write!(f, "DeleteDestination({name})"),
            MetaCommand::UpdateDestinationSpec { name, .. } => {
                write!(f, "UpdateDestinationSpec({name})")
            }
            MetaCommand::SetPlacement {
                name, partition, ..
            } => write!(f, "SetPlacement({name}/{partition})"),
            MetaCommand::AssignCoordinator { key, node } => {
                write!(f, "AssignCoordinator({key} -> {node})")
            }
        }
    }
}
