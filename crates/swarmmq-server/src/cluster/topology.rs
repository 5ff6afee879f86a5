//! This node's picture of who holds what: built from the metadata Raft group's applied
//! state, read on every routed request without touching Raft.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use swarmmq_types::{ErrorCode, PartitionId};

use crate::destination::DestinationSpec;
use crate::error::RequestError;

/// Where a node listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeAddrs {
    pub client: SocketAddr,
    pub http: SocketAddr,
    pub internal: SocketAddr,
}

/// One destination as the cluster placed it.
#[derive(Clone, Debug)]
pub(crate) struct DestTopology {
    pub spec: DestinationSpec,
    /// Per partition, its replicas; the first holds the data until replication exists.
    pub replicas: Vec<Vec<String>>,
}

impl DestTopology {
    pub fn owner(&self, partition: PartitionId) -> Option<&str> {
        self.replicas
            .get(partition as usize)
            .and_then(|r| r.first())
            .map(String::as_str)
    }

    pub fn partitions(&self) -> u32 {
        self.replicas.len() as u32
    }

    /// The owner of a partition the request names, or UNKNOWN_PARTITION.
    pub fn owner_of(&self, name: &str, partition: PartitionId) -> Result<&str, RequestError> {
        self.owner(partition).ok_or_else(|| {
            RequestError::new(
                ErrorCode::UnknownPartition,
                format!(
                    "{name:?} has {} partitions; there is no partition {partition}",
                    self.partitions()
                ),
            )
        })
    }
}

/// Everything routing needs, as one immutable snapshot.
#[derive(Clone, Debug, Default)]
pub(crate) struct Topology {
    pub nodes: BTreeMap<String, NodeAddrs>,
    pub destinations: BTreeMap<String, DestTopology>,
}

impl Topology {
    pub fn destination(&self, name: &str) -> Option<&DestTopology> {
        self.destinations.get(name)
    }

    /// Partitions whose first replica is `node`.
    pub fn partitions_led(&self, node: &str) -> u32 {
        self.destinations
            .values()
            .flat_map(|d| d.replicas.iter())
            .filter(|r| r.first().is_some_and(|n| n == node))
            .count() as u32
    }
}
