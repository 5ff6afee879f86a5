//! The SwarmMQ node: it binds the client (9001) and HTTP (8080) listeners, runs one
//! session per client connection, turns requests into partition appends and group
//! deliveries, and shuts down without losing an acknowledged write.
//!
//! It is not the storage format (`swarmmq-storage`), the wire format
//! (`swarmmq-protocol`), the delivery state machine (`swarmmq-delivery`), nor the
//! configuration file (`swarmmq-config`): the CLI turns a config into [`NodeSettings`]
//! and hands it here.

mod admin;
mod auth;
mod broker;
mod cluster;
mod dedup;
mod destination;
mod dlq;
mod error;
mod group;
mod group_ops;
mod guard;
mod http;
mod key_files;
mod keyring;
mod keys;
mod load;
mod metrics;
mod node;
mod partition;
mod publish;
mod pull;
mod session;
mod settings;
mod stream;
mod sync_gate;
pub mod tls;
mod writer;

pub use error::{RequestError, ServerError};
pub use node::{Node, RunningNode};
pub use settings::{ClusterSettings, NodeSettings, ReplicationMode};
