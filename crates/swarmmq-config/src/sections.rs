//! The sections of [`crate::Config`] and their defaults: a single node that just works.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};
use swarmmq_types::NodeId;

use crate::{ByteSize, FsyncPolicy, LogFormat, MasterKey, NodeRole, ReplicationMode};

/// `node`: who this node is and where it listens.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSection {
    /// This node's id in its cluster. Default `node-1`.
    #[serde(deserialize_with = "node_id")]
    pub id: NodeId,
    /// The IP address every listener binds. Default `127.0.0.1`.
    #[serde(deserialize_with = "ip_addr")]
    pub bind: IpAddr,
    /// Client binary protocol port. Default 9001.
    pub port: u16,
    /// HTTP port (health, metrics). Default 8080.
    pub http_port: u16,
    /// gRPC port, reserved. Default 9000.
    pub grpc_port: u16,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            id: default_node_id(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 9001,
            http_port: 8080,
            grpc_port: 9000,
        }
    }
}

/// The id of a node that names none.
pub(crate) fn default_node_id() -> NodeId {
    // A literal that satisfies the NodeId rules; covered by the defaults test.
    NodeId::new("node-1").unwrap_or_else(|_| unreachable!("\"node-1\" is a valid node id"))
}

/// `cluster`: the cluster this node belongs to. Cluster mode is on when `nodes` or
/// `seeds` is non-empty; otherwise the node runs alone and opens no internal port.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSection {
    /// The cluster's name; nodes of another name are refused. Default `swarmmq`.
    pub name: String,
    /// The founding nodes (ids and internal addresses): the first voters of the metadata
    /// group. Default empty (a single node). Not settable from env.
    pub nodes: Vec<ClusterNode>,
    /// Internal addresses (`host:port`) of nodes to join through, for a node that is
    /// not in `nodes`. Default empty. Not settable from env (flag `--seeds`).
    pub seeds: Vec<String>,
    /// Replicas per partition, 1 to 7. Default none: min(3, nodes).
    pub replication_factor: Option<u32>,
    /// How partitions are copied: `none` (only the owner holds data) or `raft` (each
    /// partition is a Raft group over its replica set). Default `none`.
    pub replication: ReplicationMode,
    /// A node with only seeds that reaches none within this gives up. Default 10s.
    #[serde(with = "humantime_serde")]
    pub join_timeout: Duration,
    /// Cluster-internal TCP and gossip UDP port. When this node's id is listed in
    /// `nodes`, it must be the port of that entry's address. Default 7000.
    pub internal_port: u16,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            name: "swarmmq".to_owned(),
            nodes: Vec::new(),
            seeds: Vec::new(),
            replication_factor: None,
            replication: ReplicationMode::None,
            join_timeout: Duration::from_secs(10),
            internal_port: 7000,
        }
    }
}

impl ClusterSection {
    /// Whether the node runs as a cluster member (it names peers) or alone.
    pub fn is_enabled(&self) -> bool {
        !self.nodes.is_empty() || !self.seeds.is_empty()
    }
}

/// One entry of `cluster.nodes`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterNode {
    /// The node's id. Required.
    #[serde(deserialize_with = "node_id")]
    pub id: NodeId,
    /// Its internal address (`host:port`, the port is its `cluster.internal_port`),
    /// where other nodes reach it. Required.
    pub address: String,
    /// What it does. Default: every role.
    #[serde(default = "all_roles")]
    pub roles: Vec<NodeRole>,
}

fn all_roles() -> Vec<NodeRole> {
    NodeRole::ALL.to_vec()
}

/// `performance`: request and connection bounds (they feed [`swarmmq_types::Limits`]).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerformanceSection {
    /// Largest message payload. Default 1MiB.
    pub max_message_size: ByteSize,
    /// Most messages in one publish request. Default 10000.
    pub batch_size: u32,
    /// Default lease (visibility timeout) of a pulled message. Default 30s.
    #[serde(with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// Most open client connections. Default 1024.
    pub max_connections: u32,
    /// Largest frame on the wire, at most 60MiB. Default 16MiB.
    pub max_frame_size: ByteSize,
    /// Most request bytes in flight per connection. Default 64MiB.
    pub max_inflight_bytes: ByteSize,
    /// A frame whose first byte has arrived must be complete within this, and a
    /// connection whose answers cannot be written for this long is closed (slow
    /// senders and readers). Default 30s.
    #[serde(with = "humantime_serde")]
    pub frame_timeout: Duration,
    /// A connection with no request in flight that sends no complete request for this
    /// long is closed. Default 10m.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl Default for PerformanceSection {
    fn default() -> Self {
        PerformanceSection {
            max_message_size: ByteSize::mib(1),
            batch_size: 10_000,
            ack_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_frame_size: ByteSize::mib(16),
            max_inflight_bytes: ByteSize::mib(64),
            frame_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(10 * 60),
        }
    }
}

/// `storage`: where and how partition logs are kept.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// Data directory. Default `./swarmmq-data`.
    pub data_dir: PathBuf,
    /// Past this many bytes on disk publishes fail with DISK_FULL. Default none.
    pub max_disk_usage: Option<ByteSize>,
    /// When appends are fsynced. Default `always`.
    pub fsync: FsyncPolicy,
    /// Period of `fsync: interval`. Default 50ms.
    #[serde(with = "humantime_serde")]
    pub fsync_interval: Duration,
    /// A segment rolls past this size, at most 4032MiB. Default 128MiB.
    pub segment_size: ByteSize,
    /// A segment rolls past this age. Default 7d.
    #[serde(with = "humantime_serde")]
    pub segment_age: Duration,
    /// Segments older than this are deleted; `None` keeps them forever. Default 7d.
    #[serde(with = "humantime_serde")]
    pub retention_age: Option<Duration>,
    /// Per partition, the oldest segments past this size are deleted. Default none.
    pub retention_bytes: Option<ByteSize>,
    /// Partitions of a destination created without a count. Default 1.
    pub default_partitions: u32,
    /// Publishing to an unknown destination creates it. Default true.
    pub auto_create_destinations: bool,
    /// Memory for recently written batches, shared by all partitions (1–32 MiB each).
    /// Default 128MiB.
    pub read_cache_size: ByteSize,
}

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            data_dir: PathBuf::from("./swarmmq-data"),
            max_disk_usage: None,
            fsync: FsyncPolicy::Always,
            fsync_interval: Duration::from_millis(50),
            segment_size: ByteSize::mib(128),
            segment_age: DAY * 7,
            retention_age: Some(DAY * 7),
            retention_bytes: None,
            default_partitions: 1,
            auto_create_destinations: true,
            read_cache_size: ByteSize::mib(128),
        }
    }
}

/// `delivery`: redelivery and deduplication.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySection {
    /// Deliveries of one message before it goes to the DLQ. Default 5.
    pub max_delivery_attempts: u32,
    /// A message id seen within this window is not stored twice; 0 turns it off.
    /// Default 2m.
    #[serde(with = "humantime_serde")]
    pub dedup_window: Duration,
    /// Most message ids one destination remembers for dedup; bounds memory (about
    /// 100 bytes each). At high rates this, not the window, limits what is caught.
    /// Default 100000.
    pub dedup_max_ids: u32,
}

impl Default for DeliverySection {
    fn default() -> Self {
        DeliverySection {
            max_delivery_attempts: 5,
            dedup_window: Duration::from_secs(120),
            dedup_max_ids: 100_000,
        }
    }
}

/// `security`: keys, TLS files and authentication.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecuritySection {
    /// Base64 of 32 bytes; also env `SWARMMQ_MASTER_KEY`. Default none (the node
    /// generates one in the data dir).
    pub master_key: Option<MasterKey>,
    /// PEM certificate chain. Default none.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key. Default none.
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle that client (and peer) certificates must chain to. Default none.
    pub tls_ca: Option<PathBuf>,
    /// Require API keys. Default false.
    pub auth_enabled: bool,
    /// The API key file (managed by `swarmmq auth`). Default none:
    /// `<storage.data_dir>/api-keys.json`; see [`crate::Config::api_keys_file`].
    pub api_keys_file: Option<PathBuf>,
    /// Allow a non-loopback `node.bind` without TLS. Default false.
    pub allow_insecure: bool,
}

/// `log`: what is logged and how.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// A tracing `EnvFilter` directive string. Default `info`.
    pub level: String,
    /// Line format. Default `text`.
    pub format: LogFormat,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

// Both parse inside the visitor, not after `String::deserialize` returns, so that a
// refusal is raised at the leaf and carries the field's path, not its section's.

fn node_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<NodeId, D::Error> {
    deserializer.deserialize_str(TextVisitor("a node id", |text| {
        NodeId::new(text).map_err(|e| e.to_string())
    }))
}

fn ip_addr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<IpAddr, D::Error> {
    deserializer.deserialize_str(TextVisitor("an IP address", |text| {
        text.trim().parse().map_err(|_| {
            format!(
                "{:?} is not an IP address (use e.g. 127.0.0.1, 0.0.0.0 or ::1)",
                text.chars().take(64).collect::<String>()
            )
        })
    }))
}

/// Accepts a string and converts it with the function; `.0` says what is expected.
struct TextVisitor<T>(&'static str, fn(&str) -> Result<T, String>);

impl<T> Visitor<'_> for TextVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.1)(v).map_err(E::custom)
    }
}
