use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use swarmmq_crypto::MasterKey;
use swarmmq_storage::FsyncPolicy;
use swarmmq_types::{Limits, NodeId};

/// Everything a node needs to run, already resolved from config file, environment and
/// flags. Tests build one directly (with port 0 to get free ports).
#[derive(Debug)]
pub struct NodeSettings {
    pub node_id: NodeId,
    pub cluster_name: String,
    /// Client binary protocol listener.
    pub client_addr: SocketAddr,
    /// Health and metrics listener.
    pub http_addr: SocketAddr,
    pub data_dir: PathBuf,
    /// From config or `SWARMMQ_MASTER_KEY`; `None` loads or generates `master.key` in
    /// the data dir.
    pub master_key: Option<MasterKey>,
    pub fsync: FsyncPolicy,
    pub segment_bytes: u64,
    pub segment_age: Duration,
    pub retention_age: Option<Duration>,
    pub retention_bytes: Option<u64>,
    /// Publishes fail with DISK_FULL once stored bytes reach this.
    pub max_disk_usage: Option<u64>,
    /// Memory for recently written batches, shared by all partitions (each gets
    /// 1–32 MiB of it), so tailing consumers are served without disk reads.
    pub read_cache_bytes: u64,
    pub default_partitions: u32,
    pub auto_create_destinations: bool,
    /// Default lease (visibility timeout) of a pulled message.
    pub ack_timeout: Duration,
    pub max_delivery_attempts: u32,
    /// A waiting message gains one priority level per this long (starvation guard).
    pub priority_aging: Duration,
    /// Longest session an ordered-group member may ask for.
    pub max_session_timeout: Duration,
    pub dedup_window: Duration,
    /// Most message ids one destination remembers for dedup (memory bound).
    pub dedup_max_entries: usize,
    pub limits: Limits,
    /// How often retention runs.
    pub retention_check_interval: Duration,
    /// Longest a graceful shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Require an API key on every request but Health.
    pub auth_enabled: bool,
    /// The API key file; `None`: `api-keys.json` in the data dir.
    pub api_keys_file: Option<PathBuf>,
    /// Serve TLS on the client and HTTP listeners with these files; `None`: plaintext.
    pub tls: Option<crate::tls::TlsFiles>,
    /// A started frame must be complete within this, and an answer may stall this
    /// long on a peer that does not read; past either the connection is closed.
    pub frame_timeout: Duration,
    /// A connection with nothing in flight and no request for this long is closed.
    pub idle_timeout: Duration,
    /// Cluster mode; `None` runs a single node with no internal port.
    pub cluster: Option<ClusterSettings>,
}

/// How a node joins and talks to its cluster.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// Internal TCP link and gossip UDP, same port (default 7000).
    pub internal_addr: SocketAddr,
    /// Internal addresses of other nodes to join through (`--seeds`, and the addresses
    /// of `cluster.nodes`).
    pub seeds: Vec<SocketAddr>,
    /// `cluster.nodes`: the ids and internal addresses of the first voters of the
    /// metadata Raft group. Empty: this node joins an existing cluster through `seeds`.
    pub bootstrap: Vec<(NodeId, SocketAddr)>,
    /// Replicas per partition; `None`: min(3, nodes).
    pub replication_factor: Option<u32>,
    /// A node given only seeds that cannot reach any within this gives up starting.
    pub join_timeout: Duration,
    /// How partitions are copied between the nodes of their replica set.
    pub replication: ReplicationMode,
}

/// `cluster.replication`: whether partitions are Raft groups over their replica sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReplicationMode {
    /// Only a partition's owner (first replica) holds its data (ADR 0008).
    #[default]
    None,
    /// Each partition with more than one replica is a Raft group over its replica set
    /// (ADR 0009); a publish is acknowledged once a majority holds it.
    Raft,
}

impl NodeSettings {
    /// The embedded defaults: one node on 127.0.0.1:9001 / :8080, data in
    /// `./swarmmq-data`, fsync always.
    pub fn embedded_default() -> Self {
        NodeSettings {
            node_id: NodeId::default(),
            cluster_name: "swarmmq".to_string(),
            client_addr: SocketAddr::from(([127, 0, 0, 1], 9001)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("swarmmq-data"),
            master_key: None,
            fsync: FsyncPolicy::Always,
            segment_bytes: 128 * 1024 * 1024,
            segment_age: Duration::from_secs(7 * 24 * 3600),
            retention_age: Some(Duration::from_secs(7 * 24 * 3600)),
            retention_bytes: None,
            max_disk_usage: None,
            read_cache_bytes: 128 * 1024 * 1024,
            default_partitions: 1,
            auto_create_destinations: true,
            ack_timeout: Duration::from_secs(30),
            max_delivery_attempts: 5,
            priority_aging: Duration::from_secs(10),
            max_session_timeout: Duration::from_secs(300),
            dedup_window: Duration::from_secs(120),
            dedup_max_entries: 100_000,
            limits: Limits::DEFAULT,
            retention_check_interval: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            auth_enabled: false,
            api_keys_file: None,
            tls: None,
            frame_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(10 * 60),
            cluster: None,
        }
    }

    /// Where the API keys are read from.
    pub fn api_keys_path(&self) -> PathBuf {
        self.api_keys_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("api-keys.json"))
    }

    /// Defaults for a test node: free ports, the given data dir.
    pub fn for_test(data_dir: PathBuf) -> Self {
        NodeSettings {
            client_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            ..NodeSettings::embedded_default()
        }
    }
}
