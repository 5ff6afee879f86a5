use std::net::SocketAddr;
use std::time::Duration;

/// Why a call over the internal link failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// No TCP connection or handshake with the peer.
    #[error("cannot reach {0}: {1}")]
    Connect(SocketAddr, String),
    /// The peer refused this node (another cluster name, a duplicate id...).
    #[error("{0} refused this node: {1}")]
    Refused(SocketAddr, String),
    /// The peer's frames do not open: it holds another master key.
    #[error("{0} holds another master key (its link frames do not open)")]
    KeyMismatch(SocketAddr),
    /// No answer within the call's time limit.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection broke while the call waited.
    #[error("the internal link connection closed")]
    Closed,
    /// Recent calls to this peer failed; calls fail fast until a probe succeeds.
    #[error("circuit to {0} is open after repeated failures")]
    CircuitOpen(String),
    /// The peer answered with an error.
    #[error("{0}")]
    Remote(String),
    /// The peer sent something this build does not understand.
    #[error("internal link protocol: {0}")]
    Protocol(String),
    /// The pool already tracks its maximum number of peers.
    #[error("the link pool already tracks {0} peers")]
    TooManyPeers(usize),
}
