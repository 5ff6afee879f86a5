//! The internal TCP link between nodes (the cluster's internal port): Raft messages and
//! forwarded client requests travel over it.
//!
//! Every frame is AES-256-GCM ciphertext under per-connection keys derived from the
//! cluster's master key (format in `wire`), so payloads are never in clear between
//! nodes, a node of another cluster is refused with a reason, and a node holding another
//! master key cannot talk at all. Calls are pipelined over one connection per peer with
//! correlation ids, bounded in flight, limited in time, and guarded by a circuit breaker.
//!
//! It is NOT the client protocol (forwarded requests are opaque payloads here) and does
//! not decide what to forward.

mod breaker;
mod error;
mod pool;
mod server;
mod wire;

use std::net::SocketAddr;
use std::time::Duration;

pub use breaker::{CircuitBreaker, Permit};
pub use error::LinkError;
pub use pool::LinkPool;
pub use server::{HandlerFuture, LinkHandler, StartFuture, bind, serve};
pub use wire::Hello;

/// A Raft message of the metadata group.
pub const KIND_RAFT: u8 = 1;
/// A client request forwarded to the node that owns its partition.
pub const KIND_FORWARD: u8 = 2;
/// A liveness probe, answered by the link itself.
pub const KIND_PING: u8 = 3;
/// A metadata change proposed through a node that is not the Raft leader.
pub const KIND_META: u8 = 4;
pub(crate) const RESP_OK: u8 = 0x80;
pub(crate) const RESP_ERR: u8 = 0x81;

/// Who this node is on the link, and the link's bounds.
pub struct LinkConfig {
    pub cluster: String,
    pub node_id: String,
    /// The internal address other nodes reach this one at.
    pub advertise: SocketAddr,
    pub master: swarmmq_crypto::MasterKey,
    /// Largest payload of one frame.
    pub max_frame: usize,
    /// Requests in flight per connection, each way.
    pub max_inflight: usize,
    /// Incoming connections served at once.
    pub max_connections: usize,
    /// Peers the pool keeps connections to.
    pub max_peers: usize,
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    /// Consecutive failures that open a peer's circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit fails fast before one probe is let through.
    pub breaker_cool_down: Duration,
}

impl LinkConfig {
    /// Bounds for a cluster of up to a few dozen nodes.
    pub fn new(
        cluster: String,
        node_id: String,
        advertise: SocketAddr,
        master: swarmmq_crypto::MasterKey,
        max_frame: usize,
    ) -> Self {
        LinkConfig {
            cluster,
            node_id,
            advertise,
            master,
            max_frame,
            max_inflight: 1024,
            max_connections: 256,
            max_peers: 64,
            connect_timeout: Duration::from_millis(500),
            handshake_timeout: Duration::from_secs(2),
            breaker_threshold: 5,
            breaker_cool_down: Duration::from_secs(1),
        }
    }
}
