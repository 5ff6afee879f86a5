//! Command-line shape of `swarmmq`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "swarmmq",
    version,
    about = "SwarmMQ: a durable, encrypted message broker in one binary"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a node (embedded defaults: 127.0.0.1:9001, HTTP :8080, data in ./swarmmq-data)
    Node(NodeArgs),
    /// Publish messages: --message, --file, or one per line of stdin
    Produce(ProduceArgs),
    /// Pull, print and acknowledge messages
    Consume(ConsumeArgs),
    /// Manage destinations (topics)
    Topic(TopicArgs),
    /// Inspect consumer groups
    Group(GroupArgs),
    /// Master keys of a node (status, rotate, retire) and end-to-end keys (new-e2e)
    Keys(crate::cmd_keys::KeysArgs),
    /// Measure a running node end to end
    Bench(crate::bench::BenchArgs),
    /// Manage API keys (create-key, list, revoke) in the key file, with or without a running node
    Auth(crate::cmd_auth::AuthArgs),
    /// Development certificates for TLS
    Certs(crate::cmd_certs::CertsArgs),
    /// Inspect the cluster a node belongs to
    Cluster(crate::cmd_cluster::ClusterArgs),
    /// Run a local development cluster: N nodes as separate processes on 127.0.0.1
    Dev(crate::cmd_dev::DevArgs),
    /// Chaos testing: a local cluster under a seeded fault schedule, then a checker
    Chaos(crate::cmd_chaos::ChaosArgs),
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// YAML config file (see configs/)
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// This node's id
    #[arg(long)]
    pub node_id: Option<String>,
    /// Client protocol port
    #[arg(long)]
    pub port: Option<u16>,
    /// HTTP port (health, metrics)
    #[arg(long)]
    pub http_port: Option<u16>,
    /// Data directory
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// IP address to bind
    #[arg(long)]
    pub bind: Option<IpAddr>,
    /// Allow binding a non-loopback address without TLS
    #[arg(long)]
    pub insecure: bool,
    /// Serve TLS 1.3 with this PEM certificate chain (security.tls_cert)
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (security.tls_key)
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates issued by this PEM CA: mutual TLS (security.tls_ca)
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Internal addresses of nodes to join through, comma-separated (cluster.seeds)
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    pub seeds: Option<Vec<String>>,
    /// Cluster-internal TCP and gossip UDP port (cluster.internal_port)
    #[arg(long, value_name = "PORT")]
    pub internal_port: Option<u16>,
    /// The cluster's name; nodes of another name are refused (cluster.name)
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Option<String>,
}

#[derive(Args, Clone)]
pub struct Target {
    /// Node address
    #[arg(
        long,
        short = 'n',
        env = "SWARMMQ_NODE",
        default_value = "127.0.0.1:9001"
    )]
    pub node: String,
    /// API key (smq_...), for a node with authentication on
    #[arg(long, env = "SWARMMQ_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Connect with TLS 1.3, trusting only this PEM CA certificate
    #[arg(long, env = "SWARMMQ_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for a node that requires mutual TLS
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Name the node's certificate must carry (default: the host of --node)
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
}

impl Target {
    /// How every client command connects: the address, TLS (`--tls-ca` switches it on)
    /// and the API key if one is given.
    pub fn connect_options(&self) -> anyhow::Result<swarmmq_client::ConnectOptions> {
        let mut options = swarmmq_client::ConnectOptions::new(self.node.clone());
        // An empty SWARMMQ_API_KEY means none, as an unset one does.
        if let Some(key) = self
            .api_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
        {
            options = options.with_api_key(key.to_string());
        }
        let Some(ca) = &self.tls_ca else {
            if self.tls_cert.is_some() || self.tls_key.is_some() || self.tls_server_name.is_some() {
                anyhow::bail!(
                    "--tls-cert, --tls-key and --tls-server-name need --tls-ca (the CA that signed the node's certificate)"
                );
            }
            return Ok(options);
        };
        let mut tls = swarmmq_client::TlsOptions::new(ca.clone());
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => tls = tls.with_client_cert(cert.clone(), key.clone()),
            (None, None) => {}
            _ => anyhow::bail!("--tls-cert and --tls-key go together"),
        }
        if let Some(name) = &self.tls_server_name {
            tls = tls.with_server_name(name.clone());
        }
        Ok(options.with_tls(tls))
    }
}

// By hand, so that a key given on the command line never reaches debug output.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("node", &self.node)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("tls_server_name", &self.tls_server_name)
            .finish()
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProduceFormat {
    /// Print nothing on success
    Quiet,
    /// One JSON line per acknowledged message: id, partition, offset
    Json,
}

#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub target: Target,
    /// Destination name
    #[arg(long, short = 'd')]
    pub destination: String,
    /// Message text (repeated --count times)
    #[arg(long, short = 'm', conflicts_with = "file")]
    pub message: Option<String>,
    /// File whose whole content is one message (repeated --count times)
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// Message key: picks the partition
    #[arg(long, short = 'k')]
    pub key: Option<String>,
    /// Message id (dedup); a UUIDv7 per message when not given
    #[arg(long)]
    pub id: Option<String>,
    /// Priority 1 (lowest) to 10 (highest)
    #[arg(long, short = 'p', default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=10))]
    pub priority: u8,
    /// Number of copies of --message / --file
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Header as NAME=VALUE (repeatable)
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// Not deliverable before this delay (e.g. 30s)
    #[arg(long, value_parser = humantime::parse_duration)]
    pub delay: Option<Duration>,
    /// Never delivered after this time from now (e.g. 10m)
    #[arg(long, value_parser = humantime::parse_duration)]
    pub ttl: Option<Duration>,
    /// Output on success
    #[arg(long, value_enum, default_value_t = ProduceFormat::Quiet)]
    pub format: ProduceFormat,
    /// Seal every payload with this end-to-end key file (see `swarmmq keys new-e2e`)
    #[arg(long, value_name = "FILE")]
    pub e2e_key: Option<PathBuf>,
    /// Smart client: fetch cluster metadata and send each partition's messages straight
    /// to its owner node (falls back to --node, which forwards, when the map is stale)
    #[arg(long)]
    pub smart: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConsumeFormat {
    /// One payload per line
    Raw,
    /// One JSON object per line
    Json,
}

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub target: Target,
    /// Destination name
    #[arg(long, short = 'd')]
    pub destination: String,
    /// Consumer group
    #[arg(long, short = 'g', default_value = "default")]
    pub group: String,
    /// Stop after this many messages
    #[arg(long)]
    pub max: Option<u64>,
    /// Keep waiting for new messages
    #[arg(long)]
    pub follow: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = ConsumeFormat::Raw)]
    pub format: ConsumeFormat,
    /// Read only this partition
    #[arg(long)]
    pub partition: Option<u32>,
    /// Without --follow: how long to wait for more before deciding there is nothing more
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// Acknowledge on delivery (at most once) instead of after printing
    #[arg(long, conflicts_with = "nack")]
    pub no_ack: bool,
    /// Print, then hand every message back for redelivery
    #[arg(long)]
    pub nack: bool,
    /// Group mode when the group is new: shared (queue) or ordered (stream)
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Start position: earliest, latest, an offset, or a time (RFC 3339, e.g. 2026-11-23T10:00:00Z)
    #[arg(long, value_parser = parse_from)]
    pub from: Option<swarmmq_client::SeekPosition>,
    /// Open end-to-end encrypted payloads with this key file; messages it cannot open
    /// are reported on stderr, nacked, and make the exit status non-zero
    #[arg(long, value_name = "FILE")]
    pub e2e_key: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Shared,
    Ordered,
}

fn parse_from(s: &str) -> Result<swarmmq_client::SeekPosition, String> {
    use swarmmq_client::SeekPosition;
    match s {
        "earliest" => Ok(SeekPosition::Earliest),
        "latest" => Ok(SeekPosition::Latest),
        _ => {
            if let Ok(offset) = s.parse::<u64>() {
                return Ok(SeekPosition::Offset(offset));
            }
            humantime::parse_rfc3339_weak(s)
                .map_err(|_| {
                    format!("{s:?} is not earliest, latest, an offset or an RFC 3339 time")
                })
                .and_then(|t| {
                    t.duration_since(std::time::UNIX_EPOCH)
                        .map(|d| SeekPosition::Timestamp(d.as_millis() as i64))
                        .map_err(|_| format!("{s:?} is before 1970"))
                })
        }
    }
}

#[derive(Args, Debug)]
pub struct GroupArgs {
    #[command(subcommand)]
    pub command: GroupCommand,
}

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Members, assignment, committed offset and lag per partition; in-flight, pending, delayed and DLQ counts
    Describe {
        group: String,
        /// Only this destination (default: every destination the group reads)
        #[arg(long, short = 'd')]
        destination: Option<String>,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct TopicArgs {
    #[command(subcommand)]
    pub command: TopicCommand,
}

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a destination
    Create {
        name: String,
        #[arg(
            long,
            short = 'p',
            default_value_t = 0,
            help = "Partitions (0: the node's default)"
        )]
        partitions: u32,
        /// Delete segments older than this (e.g. 7d)
        #[arg(long, value_parser = humantime::parse_duration)]
        retention: Option<Duration>,
        /// Lease (visibility timeout) of a pulled message
        #[arg(long, value_parser = humantime::parse_duration)]
        ack_timeout: Option<Duration>,
        /// Deliveries of a message before it moves to <name>.dlq
        #[arg(long)]
        max_attempts: Option<u32>,
        /// Default time to live of messages published without --ttl
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
        /// Move expired messages to <name>.dlq instead of dropping them
        #[arg(long)]
        expired_to_dlq: bool,
        /// Drop messages out of attempts instead of moving them to <name>.dlq
        #[arg(long)]
        no_dlq: bool,
        /// A repeated message id within this window is not stored again
        #[arg(long, value_parser = humantime::parse_duration)]
        dedup_window: Option<Duration>,
        /// A waiting message gains one priority level per this long (0s: no aging)
        #[arg(long, value_parser = humantime::parse_duration)]
        priority_aging: Option<Duration>,
        #[command(flatten)]
        target: Target,
    },
    /// List destinations
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Show one destination's partitions and settings
    Describe {
        name: String,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Delete a destination and its data
    Delete {
        name: String,
        #[command(flatten)]
        target: Target,
    },
}
