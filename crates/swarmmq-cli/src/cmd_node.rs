//! `swarmmq node`: config file, then `SWARMMQ_*` environment, then flags; start the
//! node; stop gracefully on SIGINT or SIGTERM (finish in-flight writes, fsync, exit 0);
//! reload the TLS certificate, key and CA on SIGHUP.

use std::net::SocketAddr;

use anyhow::Context;
use swarmmq_config::{Config, LogFormat, process_env};
use swarmmq_server::{Node, NodeSettings};
use swarmmq_storage::FsyncPolicy;
use swarmmq_types::NodeId;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::NodeArgs;

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .with_context(|| format!("log.level: {:?} is not a valid filter", config.log.level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))
}

/// The node's settings from a validated config.
pub fn settings_from(config: &Config) -> anyhow::Result<NodeSettings> {
    let fsync = match config.storage.fsync {
        swarmmq_config::FsyncPolicy::Always => FsyncPolicy::Always,
        swarmmq_config::FsyncPolicy::Interval => {
            FsyncPolicy::Interval(config.storage.fsync_interval)
        }
        swarmmq_config::FsyncPolicy::Never => FsyncPolicy::Never,
    };
    let defaults = NodeSettings::embedded_default();
    Ok(NodeSettings {
        node_id: config.node.id.clone(),
        cluster_name: config.cluster.name.clone(),
        client_addr: SocketAddr::new(config.node.bind, config.node.port),
        http_addr: SocketAddr::new(config.node.bind, config.node.http_port),
        data_dir: config.storage.data_dir.clone(),
        master_key: config
            .security
            .master_key
            .as_ref()
            .map(|k| swarmmq_crypto::MasterKey::from_bytes(*k.as_bytes())),
        fsync,
        segment_bytes: config.storage.segment_size.as_u64(),
        segment_age: config.storage.segment_age,
        retention_age: config.storage.retention_age,
        retention_bytes: config.storage.retention_bytes.map(|b| b.as_u64()),
        max_disk_usage: config.storage.max_disk_usage.map(|b| b.as_u64()),
        read_cache_bytes: config.storage.read_cache_size.as_u64(),
        default_partitions: config.storage.default_partitions,
        auto_create_destinations: config.storage.auto_create_destinations,
        ack_timeout: config.performance.ack_timeout,
        max_delivery_attempts: config.delivery.max_delivery_attempts,
        dedup_window: config.delivery.dedup_window,
        dedup_max_entries: config.delivery.dedup_max_ids as usize,
        limits: config.limits(),
        auth_enabled: config.security.auth_enabled,
        api_keys_file: Some(config.api_keys_file()),
        tls: match (&config.security.tls_cert, &config.security.tls_key) {
            (Some(cert), Some(key)) => Some(swarmmq_server::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                ca: config.security.tls_ca.clone(),
            }),
            _ => None,
        },
        frame_timeout: config.performance.frame_timeout,
        idle_timeout: config.performance.idle_timeout,
        cluster: crate::node_cluster::cluster_settings(config)?,
        ..defaults
    })
}

pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref(), process_env())?;
    if let Some(id) = args.node_id {
        config.node.id = NodeId::new(id).context("--node-id")?;
    }
    if let Some(p) = args.port {
        config.node.port = p;
    }
    if let Some(p) = args.http_port {
        config.node.http_port = p;
    }
    if let Some(d) = args.data_dir {
        config.storage.data_dir = d;
    }
    if let Some(b) = args.bind {
        config.node.bind = b;
    }
    if args.insecure {
        config.security.allow_insecure = true;
    }
    if let Some(f) = args.tls_cert {
        config.security.tls_cert = Some(f);
    }
    if let Some(f) = args.tls_key {
        config.security.tls_key = Some(f);
    }
    if let Some(f) = args.tls_ca {
        config.security.tls_ca = Some(f);
    }
    if let Some(seeds) = args.seeds {
        // `--seeds ""` clears the file's list.
        config.cluster.seeds = seeds.into_iter().filter(|s| !s.is_empty()).collect();
    }
    if let Some(p) = args.internal_port {
        config.cluster.internal_port = p;
    }
    if let Some(name) = args.cluster_name {
        config.cluster.name = name;
    }
    if let Err(e) = config.validate() {
        let s = &config.security;
        let no_tls = !config.node.bind.is_loopback() && s.tls_cert.is_none() && !s.allow_insecure;
        let hint = if no_tls {
            " (flags: --tls-cert FILE --tls-key FILE, or --insecure)"
        } else {
            ""
        };
        anyhow::bail!("{e}{hint}");
    }
    init_logging(&config)?;
    let settings = settings_from(&config)?;
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let node = Node::start(settings).await?;
    let (tls, http) = match (&config.security.tls_cert, &config.security.tls_ca) {
        (None, _) => ("", "HTTP"),
        (Some(_), None) => (" with TLS", "HTTPS"),
        (Some(_), Some(_)) => (" with mutual TLS", "HTTPS"),
    };
    eprintln!(
        "swarmmq node {} serving clients on {}{tls} and {http} on {}",
        config.node.id,
        node.client_addr(),
        node.http_addr()
    );
    loop {
        tokio::select! {
            _ = term.recv() => break tracing::info!(signal = "SIGTERM", "stopping"),
            _ = int.recv() => break tracing::info!(signal = "SIGINT", "stopping"),
            _ = hup.recv() => {
                node.reload_tls();
            }
        }
    }
    node.shutdown();
    node.wait().await?;
    Ok(())
}
