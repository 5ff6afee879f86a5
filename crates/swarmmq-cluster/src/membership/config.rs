//! What a node needs to join the gossip, and the tuned defaults.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use swarmmq_crypto::ChannelKey;

use crate::ClusterError;

/// Default gossip round. Each round a node gossips with up to 3 live peers and
/// its heartbeat advances, so peers see progress several times per round.
pub const DEFAULT_GOSSIP_INTERVAL: Duration = Duration::from_millis(200);
/// Default phi threshold. chitchat's phi is `silence / mean heartbeat interval`, and the
/// interval a peer observes is about half the gossip round (heartbeats also arrive
/// through other peers' digests), so with the default round this means ~1.5 s of
/// silence: measured dead on every peer in 1.8–2.6 s (3–10 nodes), while stalls of
/// over a second (two busy cores) raise no false alarm.
pub const DEFAULT_PHI_THRESHOLD: f64 = 16.0;
/// Default time a dead node stays listed before chitchat forgets it.
pub const DEFAULT_DEAD_GRACE: Duration = Duration::from_secs(3600);

/// Longest accepted node id or cluster name, in bytes (they travel in every digest).
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted version string, in bytes.
pub const MAX_VERSION_LEN: usize = 64;

/// The addresses a node serves on, published to every peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddrs {
    /// Client protocol listener.
    pub client: SocketAddr,
    /// HTTP (admin, health, metrics) listener.
    pub http: SocketAddr,
    /// Internal TCP link listener (the same port number carries gossip UDP).
    pub internal: SocketAddr,
}

/// Everything [`super::Membership::start`] needs.
pub struct MembershipConfig {
    /// Cluster name; also chitchat's cluster id (the key already separates clusters).
    pub cluster_name: String,
    /// This node's id (e.g. `node-3`); stable across restarts.
    pub node_id: String,
    /// UDP address to bind and advertise. Port 0 picks a free port (tests); the IP must
    /// be one peers can reach, not `0.0.0.0`.
    pub gossip_addr: SocketAddr,
    /// Addresses published to peers.
    pub addrs: NodeAddrs,
    /// This node's software version, published to peers.
    pub version: String,
    /// Gossip addresses of nodes to contact first (this node's own is ignored).
    pub seeds: Vec<SocketAddr>,
    /// `ChannelKey::derive(master, cluster name, b"swarmmq/v1/gossip")`.
    pub key: Arc<ChannelKey>,
    /// Time between gossip rounds.
    pub gossip_interval: Duration,
    /// chitchat phi threshold above which a node is dead.
    pub phi_threshold: f64,
    /// How long a dead node stays listed.
    pub dead_grace: Duration,
}

impl MembershipConfig {
    /// A config with the tuned defaults for interval, threshold and grace.
    pub fn new(
        cluster_name: impl Into<String>,
        node_id: impl Into<String>,
        gossip_addr: SocketAddr,
        addrs: NodeAddrs,
        key: Arc<ChannelKey>,
    ) -> Self {
        MembershipConfig {
            cluster_name: cluster_name.into(),
            node_id: node_id.into(),
            gossip_addr,
            addrs,
            version: env!("CARGO_PKG_VERSION").to_string(),
            seeds: Vec::new(),
            key,
            gossip_interval: DEFAULT_GOSSIP_INTERVAL,
            phi_threshold: DEFAULT_PHI_THRESHOLD,
            dead_grace: DEFAULT_DEAD_GRACE,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ClusterError> {
        let invalid = |what: String| Err(ClusterError::Invalid(what));
        for (name, value) in [
            ("cluster name", &self.cluster_name),
            ("node id", &self.node_id),
        ] {
            if value.is_empty() || value.len() > MAX_ID_LEN {
                return invalid(format!("{name} must be 1..={MAX_ID_LEN} bytes"));
            }
        }
        if self.version.len() > MAX_VERSION_LEN {
            return invalid(format!("version must be at most {MAX_VERSION_LEN} bytes"));
        }
        if self.gossip_addr.ip().is_unspecified() {
            return invalid(format!(
                "gossip address {} is advertised to peers and must be a reachable IP",
                self.gossip_addr
            ));
        }
        if self.gossip_interval < Duration::from_millis(10)
            || self.gossip_interval > Duration::from_secs(10)
        {
            return invalid("gossip interval must be within 10 ms..=10 s".into());
        }
        if !(self.phi_threshold.is_finite() && self.phi_threshold >= 2.0) {
            return invalid("phi threshold must be a finite number >= 2".into());
        }
        // chitchat stops advertising a dead node after half the grace; below a few
        // gossip rounds that would forget nodes before every peer saw them die.
        if self.dead_grace < self.gossip_interval * 20 {
            return invalid("dead grace must be at least 20 gossip intervals".into());
        }
        Ok(())
    }
}
