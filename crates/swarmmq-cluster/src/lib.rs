//! The cluster layer of SwarmMQ: how nodes find each other and agree.
//!
//! - [`membership`]: who is alive, by gossip (chitchat) over AES-GCM-sealed UDP, with a
//!   phi-accrual failure detector and each node's load; hints only, never ownership.
//! - [`metadata`]: the cluster's metadata (nodes, destinations, partition placement,
//!   group coordinators) in one Raft group (openraft), persisted in the data dir.
//! - [`placement`]: which nodes hold a partition (rendezvous hashing) and the minimal
//!   plan when nodes come and go.
//! - [`link`]: the internal TCP link between nodes (sealed, pooled, pipelined, with
//!   per-peer timeouts and a circuit breaker) that carries Raft and forwarded requests.
//!
//! It is NOT the request handling (that is `swarmmq-server`, which decides what to
//! forward) and does not replicate partition data (the replication work builds on it).

pub mod error;
pub mod link;
pub mod membership;
pub mod metadata;
pub mod placement;

pub use error::ClusterError;
