//! `swarmmq dev`: a local cluster of N nodes, each a separate `swarmmq node` process
//! with its own ports, config and data dir under one directory. It waits until every
//! node is healthy (and, where the node serves `/v1/admin/cluster`, until all are alive
//! with a metadata leader), writes `DIR/cluster.json`, and stops every node on Ctrl-C,
//! SIGTERM or SIGHUP. It removes nothing: the same command again restarts the cluster
//! on the same data.
//!
//! Not for production: everything binds 127.0.0.1, without TLS or authentication.

mod children;
mod layout;
mod probe;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use swarmmq_crypto::MasterKey;
use tokio::signal::unix::{Signal, SignalKind, signal};

use children::{NodeChild, stop_all};
use layout::NodeLayout;

/// Longest wait for every node's `/health` to answer 200.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for all nodes alive with a leader, once every node is healthy.
const FORMATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the nodes to stop after SIGTERM before SIGKILL (a node's own
/// graceful shutdown waits up to 10 s for in-flight requests).
const STOP_GRACE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);
const CLUSTER_NAME: &str = "swarmmq-dev";

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Number of nodes
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=7))]
    pub nodes: u8,
    /// Directory for configs, logs, data and cluster.json (reused: a restart)
    #[arg(long, default_value = "swarmmq-dev")]
    pub dir: PathBuf,
    /// Node i listens on HTTP P+10i, client P+10i+1, internal P+10i+2 (gRPC P+10i+3)
    #[arg(long, default_value_t = 19000)]
    pub base_port: u16,
    /// Partitions of destinations created without a count (storage.default_partitions)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub partitions: Option<u32>,
}

/// SIGINT, SIGTERM and SIGHUP: each one means "stop the cluster".
struct StopSignals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl StopSignals {
    fn watch() -> anyhow::Result<StopSignals> {
        Ok(StopSignals {
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            hup: signal(SignalKind::hangup()).context("cannot watch SIGHUP")?,
        })
    }

    /// The name of the signal that arrived within `wait`, if one did.
    async fn within(&mut self, wait: Duration) -> Option<&'static str> {
        tokio::select! {
            _ = self.int.recv() => Some("SIGINT"),
            _ = self.term.recv() => Some("SIGTERM"),
            _ = self.hup.recv() => Some("SIGHUP"),
            _ = tokio::time::sleep(wait) => None,
        }
    }
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    // Watched before any child exists, so an early Ctrl-C still stops them all.
    let mut signals = StopSignals::watch()?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    let nodes = layout::layout(&dir, args.nodes, args.base_port)?;
    layout::check_ports_free(&nodes, &dir)?;
    let key_file = dir.join("master.key");
    let key = master_key(&key_file)?;
    for n in &nodes {
        write_config(n, &nodes, args.partitions)?;
    }

    let mut children: Vec<NodeChild> = Vec::with_capacity(nodes.len());
    for n in &nodes {
        match NodeChild::spawn(n, key.to_base64().as_str()) {
            Ok(c) => children.push(c),
            Err(e) => {
                stop_all(&mut children, STOP_GRACE).await;
                return Err(e);
            }
        }
    }
    eprintln!(
        "swarmmq dev: starting {} nodes in {} ...",
        nodes.len(),
        dir.display()
    );

    match wait_healthy(&mut children, &mut signals).await {
        Ok(Some(sig)) => return stop(&mut children, sig).await,
        Ok(None) => {}
        Err(e) => {
            stop_all(&mut children, STOP_GRACE).await;
            return Err(e);
        }
    }
    if let Some(sig) = wait_formed(&mut children, &mut signals).await {
        return stop(&mut children, sig).await;
    }

    let with_pids: Vec<(NodeLayout, u32)> = children
        .iter()
        .map(|c| (c.layout.clone(), c.pid()))
        .collect();
    let json = layout::cluster_json(CLUSTER_NAME, &dir, &key_file, &with_pids);
    let cluster_file = dir.join("cluster.json");
    if let Err(e) = serde_json::to_vec_pretty(&json)
        .context("cannot encode cluster.json")
        .and_then(|bytes| layout::write_atomic(&cluster_file, &bytes))
    {
        stop_all(&mut children, STOP_GRACE).await;
        return Err(e);
    }
    print_ready(&children, &dir);

    let sig = watch_running(&mut children, &mut signals).await;
    stop(&mut children, sig).await
}

/// The master key shared by every node: `DIR/master.key` (base64, mode 0600) when it
/// exists, so a restart reads its data; else a new one written there.
fn master_key(path: &Path) -> anyhow::Result<MasterKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => MasterKey::from_base64(text.trim())
            .map_err(|e| anyhow::anyhow!("{}: not a master key ({e})", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = MasterKey::generate().context("cannot generate a master key")?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            writeln!(f, "{}", key.to_base64().as_str())
                .and_then(|()| f.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes the node's config.yaml, after checking it loads and validates as the node
/// will load it.
fn write_config(
    node: &NodeLayout,
    all: &[NodeLayout],
    partitions: Option<u32>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&node.dir)
        .with_context(|| format!("cannot create {}", node.dir.display()))?;
    let yaml = layout::config_yaml(node, all, CLUSTER_NAME, partitions)?;
    layout::write_atomic(&node.config, yaml.as_bytes())?;
    let config = swarmmq_config::Config::load(Some(&node.config), [])?;
    config
        .validate()
        .with_context(|| node.config.display().to_string())?;
    Ok(())
}

/// A node that ended while it should be running: its log tail on stderr, and an error.
fn died(child: &NodeChild, status: std::process::ExitStatus, when: &str) -> anyhow::Error {
    let tail = child.log_tail(20);
    eprintln!("--- last lines of {} ---", child.layout.log.display());
    eprintln!("{tail}");
    eprintln!("---");
    anyhow::anyhow!(
        "{} (pid {}) exited {when} with {status}; its log is {}",
        child.layout.id,
        child.pid(),
        child.layout.log.display()
    )
}

/// Until every `/health` answers 200. `Ok(Some(signal))` when stopped by a signal.
async fn wait_healthy(
    children: &mut [NodeChild],
    signals: &mut StopSignals,
) -> anyhow::Result<Option<&'static str>> {
    let deadline = Instant::now() + HEALTH_TIMEOUT;
    let mut healthy = vec![false; children.len()];
    loop {
        for (i, c) in children.iter_mut().enumerate() {
            if let Some(status) = c.poll_exit() {
                return Err(died(c, status, "during startup"));
            }
            if !healthy[i] {
                healthy[i] =
                    probe::http_get(c.layout.http, "/health").await.map(|a| a.0) == Some(200);
            }
        }
        if healthy.iter().all(|h| *h) {
            return Ok(None);
        }
        if Instant::now() > deadline {
            let waiting: Vec<&str> = children
                .iter()
                .zip(&healthy)
                .filter(|(_, h)| !**h)
                .map(|(c, _)| c.layout.id.as_str())
                .collect();
            anyhow::bail!(
                "not healthy after {}s: {} (logs in node-*/node.log)",
                HEALTH_TIMEOUT.as_secs(),
                waiting.join(", ")
            );
        }
        if let Some(sig) = signals.within(POLL).await {
            return Ok(Some(sig));
        }
    }
}

/// Until every node's `/v1/admin/cluster` shows all nodes alive and a leader. Skipped
/// when a node does not serve it (a node built without the cluster runtime); past
/// [`FORMATION_TIMEOUT`] it prints what is missing and goes on. `Some(signal)` when
/// stopped by a signal.
async fn wait_formed(
    children: &mut [NodeChild],
    signals: &mut StopSignals,
) -> Option<&'static str> {
    let ids: Vec<String> = children.iter().map(|c| c.layout.id.clone()).collect();
    let deadline = Instant::now() + FORMATION_TIMEOUT;
    loop {
        let mut missing = Vec::new();
        for c in children.iter() {
            match probe::http_get(c.layout.http, "/v1/admin/cluster").await {
                Some((200, body)) => match serde_json::from_str(&body) {
                    Ok(status) => missing.extend(
                        probe::missing(&status, &ids)
                            .into_iter()
                            .map(|m| format!("{} sees {m}", c.layout.id)),
                    ),
                    Err(_) => {
                        missing.push(format!("{} answers a status that is not JSON", c.layout.id))
                    }
                },
                Some((404, _)) => {
                    eprintln!(
                        "swarmmq dev: {} does not serve /v1/admin/cluster; not waiting for the cluster to form",
                        c.layout.id
                    );
                    return None;
                }
                other => missing.push(format!(
                    "{} cluster status: {}",
                    c.layout.id,
                    other.map_or("no answer".to_string(), |(s, _)| format!("HTTP {s}"))
                )),
            }
        }
        if missing.is_empty() {
            return None;
        }
        if Instant::now() > deadline {
            eprintln!(
                "swarmmq dev: warning: the cluster has not formed after {}s; still missing: {}",
                FORMATION_TIMEOUT.as_secs(),
                missing.join("; ")
            );
            return None;
        }
        if let Some(sig) = signals.within(Duration::from_millis(250)).await {
            return Some(sig);
        }
    }
}

fn print_ready(children: &[NodeChild], dir: &Path) {
    println!(
        "swarmmq dev: {} nodes of cluster {CLUSTER_NAME} are up in {}",
        children.len(),
        dir.display()
    );
    for c in children {
        let n = &c.layout;
        println!(
            "  {}  client {}  http {}  internal {}  pid {}",
            n.id,
            n.client,
            n.http,
            n.internal,
            c.pid()
        );
    }
    if let Some(first) = children.first() {
        println!("Reach it with:");
        println!("  export SWARMMQ_NODE={}", first.layout.client);
        println!("  swarmmq cluster status");
        println!("  swarmmq produce -d demo -m hello");
    }
    println!(
        "For scripts: {}; logs: {}/node-*/node.log",
        dir.join("cluster.json").display(),
        dir.display()
    );
    println!("Ctrl-C stops every node; the data stays, and the same command restarts it.");
    let _ = std::io::stdout().flush();
}

/// Until a stop signal. A node that ends on its own is reported and the others keep
/// running; when none is left, the wait ends.
async fn watch_running(children: &mut [NodeChild], signals: &mut StopSignals) -> &'static str {
    let mut reported = vec![false; children.len()];
    loop {
        if let Some(sig) = signals.within(Duration::from_millis(500)).await {
            return sig;
        }
        for (i, c) in children.iter_mut().enumerate() {
            if !reported[i]
                && let Some(status) = c.poll_exit()
            {
                reported[i] = true;
                eprintln!(
                    "swarmmq dev: {} (pid {}) exited with {status}; see {}",
                    c.layout.id,
                    c.pid(),
                    c.layout.log.display()
                );
            }
        }
        if reported.iter().all(|r| *r) {
            return "every node exited";
        }
    }
}

async fn stop(children: &mut [NodeChild], why: &str) -> anyhow::Result<()> {
    eprintln!("swarmmq dev: {why}: stopping {} nodes ...", children.len());
    let killed = stop_all(children, STOP_GRACE).await;
    if killed.is_empty() {
        eprintln!("swarmmq dev: every node stopped");
    } else {
        eprintln!(
            "swarmmq dev: killed (SIGKILL) after {}s: {}",
            STOP_GRACE.as_secs(),
            killed.join(", ")
        );
    }
    Ok(())
}
