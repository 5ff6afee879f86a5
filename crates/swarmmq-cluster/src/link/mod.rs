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
/// A Raft message of one partition group: `[group id len u16 BE][group id][body]`
/// ([`encode_group_frame`]), the group id being `destination/partition`.
pub const KIND_PARTITION_RAFT: u8 = 5;

/// Longest group id a partition Raft frame carries (a destination name and a partition
/// number fit with room to spare).
pub const MAX_GROUP_ID: usize = 1024;

/// A partition Raft message for the link: the group id, then the body.
pub fn encode_group_frame(group: &str, body: &[u8]) -> Result<bytes::Bytes, LinkError> {
    let len = u16::try_from(group.len())
        .ok()
        .filter(|l| usize::from(*l) <= MAX_GROUP_ID)
        .ok_or_else(|| LinkError::Protocol(format!("group id of {} bytes", group.len())))?;
    let mut out = Vec::with_capacity(2 + group.len() + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(group.as_bytes());
    out.extend_from_slice(body);
    Ok(out.into())
}

/// Splits a partition Raft frame into its group id and body.
pub fn decode_group_frame(frame: &bytes::Bytes) -> Result<(&str, bytes::Bytes), LinkError> {
    let bad = |why: &str| LinkError::Protocol(format!("partition raft frame: {why}"));
    let head: [u8; 2] = frame
        .get(..2)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| bad("shorter than its header"))?;
    let len = usize::from(u16::from_be_bytes(head));
    if len > MAX_GROUP_ID {
        return Err(bad("group id too long"));
    }
    let id = frame
        .get(2..2 + len)
        .ok_or_else(|| bad("shorter than its group id"))?;
    let id = std::str::from_utf8(id).map_err(|_| bad("group id is not UTF-8"))?;
    Ok((id, frame.slice(2 + len..)))
}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_frames_round_trip_and_refuse_truncation() {
        let frame = encode_group_frame("orders/3", b"{\"raft\":1}").unwrap();
        let (group, body) = decode_group_frame(&frame).unwrap();
        assert_eq!(group, "orders/3");
        assert_eq!(body.as_ref(), b"{\"raft\":1}");
        let empty = encode_group_frame("", b"").unwrap();
        assert_eq!(decode_group_frame(&empty).unwrap().0, "");
        for cut in [0, 1, 5] {
            assert!(
                decode_group_frame(&frame.slice(..cut)).is_err(),
                "cut {cut}"
            );
        }
        let mut long = vec![0x04, 0x01];
        long.extend(std::iter::repeat_n(b'a', 1025));
        assert!(decode_group_frame(&bytes::Bytes::from(long)).is_err());
        assert!(encode_group_frame(&"a".repeat(MAX_GROUP_ID + 1), b"").is_err());
        let bad_utf8 = bytes::Bytes::from_static(&[0, 1, 0xff]);
        assert!(decode_group_frame(&bad_utf8).is_err());
    }
}
