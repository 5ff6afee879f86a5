//! Every way the cluster layer fails.

use std::net::SocketAddr;

/// Errors of the cluster layer. Texts name the peer or file involved.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// A file of the cluster state could not be read or written.
    #[error("{path}: {reason}")]
    Storage { path: String, reason: String },
    /// A key could not be derived or a packet sealed.
    #[error("crypto: {0}")]
    Crypto(#[from] swarmmq_crypto::CryptoError),
    /// Something the caller passed is not usable.
    #[error("{0}")]
    Invalid(String),
    /// The gossip service (chitchat) could not start.
    #[error("gossip: {0}")]
    Gossip(String),
    /// This node is not the metadata leader; `leader` is the one it knows of (id, internal
    /// address), so the caller can forward.
    #[error("not the metadata leader (leader: {})", fmt_leader(.leader))]
    NotLeader {
        leader: Option<(String, SocketAddr)>,
    },
    /// The metadata Raft group failed (stopped, lost quorum, storage fault).
    #[error("metadata raft: {0}")]
    Raft(String),
}

fn fmt_leader(leader: &Option<(String, SocketAddr)>) -> String {
    match leader {
        Some((id, addr)) => format!("{id} at {addr}"),
        None => "unknown".to_string(),
    }
}
