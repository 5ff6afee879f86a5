//! [`ClusterHarness`]: N real `swarmmq node` processes on 127.0.0.1, each with its own
//! ports, config, data dir and log, sharing one master key; and the process faults the
//! chaos run injects (SIGKILL and restart, SIGSTOP/SIGCONT, SIGTERM and restart), all
//! by the PIDs it started. With `netns`, each node runs in its own network namespace
//! at its own address instead (see [`NetnsLab`]), and partitions become possible.
//! Dropping it kills every node it still runs, then deletes the namespaces.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::ChaosError;
use crate::http;
use crate::netns::NetnsLab;
use crate::process::{NodeProcess, NodeSpec};

/// Probes of `/health` and `/v1/admin/cluster` give up after this (a paused node).
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);
const POLL: Duration = Duration::from_millis(100);
/// Most nodes a harness runs (the metadata group has at most 5 voters; 7 is the most a
/// dev cluster runs too).
pub const MAX_NODES: usize = 7;

/// What to start.
#[derive(Clone, Debug)]
pub struct HarnessConfig {
    /// The `swarmmq` executable (`env!("CARGO_BIN_EXE_swarmmq")` in tests,
    /// `std::env::current_exe()` in `swarmmq chaos`).
    pub binary: PathBuf,
    /// 1 to [`MAX_NODES`].
    pub nodes: usize,
    /// `node-i/` (config.yaml, node.log, data/) goes under it.
    pub dir: PathBuf,
    pub cluster_name: String,
    /// Longest wait for health after a (re)start, and for the cluster to form.
    pub start_timeout: Duration,
    /// Run each node in its own network namespace (needs root and `ip`), which makes
    /// [`ClusterHarness::partition`] possible.
    pub netns: bool,
}

impl HarnessConfig {
    pub fn new(binary: impl Into<PathBuf>, dir: impl Into<PathBuf>, nodes: usize) -> Self {
        HarnessConfig {
            binary: binary.into(),
            nodes,
            dir: dir.into(),
            cluster_name: "swarmmq-chaos".to_string(),
            start_timeout: Duration::from_secs(60),
            netns: false,
        }
    }
}

/// One node's `/v1/admin/cluster` answer, the parts the harness uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterView {
    /// The node that answered.
    pub observer: String,
    /// The metadata leader it knows of.
    pub leader: Option<String>,
    /// The metadata Raft term it is in.
    pub term: u64,
    /// `(id, state)` of every member it lists.
    pub states: Vec<(String, String)>,
}

impl ClusterView {
    pub fn parse(body: &str) -> Option<ClusterView> {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        let states = v
            .get("nodes")?
            .as_array()?
            .iter()
            .map(|n| {
                (
                    n.get("id")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    n.get("state")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        Some(ClusterView {
            observer: v.get("node")?.as_str()?.to_string(),
            leader: v
                .get("leader")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string),
            term: v
                .get("term")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            states,
        })
    }

    /// Whether it sees every one of `ids` alive, and a leader.
    pub fn complete(&self, ids: &[String]) -> bool {
        self.leader.is_some()
            && ids
                .iter()
                .all(|id| self.states.iter().any(|(i, s)| i == id && s == "alive"))
    }
}

/// Asks one node for its view of the cluster.
pub async fn cluster_view(http_addr: SocketAddr) -> Option<ClusterView> {
    match http::get(http_addr, "/v1/admin/cluster", PROBE_TIMEOUT).await {
        Some((200, body)) => ClusterView::parse(&body),
        _ => None,
    }
}

/// A running local cluster.
pub struct ClusterHarness {
    config: HarnessConfig,
    key_b64: String,
    // Fields drop in order: the nodes are killed before their namespaces go.
    nodes: Vec<NodeProcess>,
    netns: Option<NetnsLab>,
}

impl ClusterHarness {
    /// Writes every node's config, starts them all, and waits until each is healthy and
    /// every node sees all N alive with a metadata leader.
    pub async fn start(config: HarnessConfig) -> Result<ClusterHarness, ChaosError> {
        if config.nodes == 0 || config.nodes > MAX_NODES {
            return Err(ChaosError::Config(format!(
                "nodes must be 1 to {MAX_NODES}, not {}",
                config.nodes
            )));
        }
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| ChaosError::io(format!("cannot create {}", config.dir.display()), e))?;
        let key =
            swarmmq_crypto::MasterKey::generate().map_err(|e| ChaosError::Key(e.to_string()))?;
        let key_b64 = key.to_base64().as_str().to_string();
        let lab = if config.netns {
            Some(NetnsLab::create(config.nodes)?)
        } else {
            None
        };
        let specs = match &lab {
            Some(lab) => layout_netns(&config.dir, lab),
            None => layout(&config.dir, config.nodes)?,
        };
        for spec in &specs {
            write_config(spec, &specs, &config.cluster_name)?;
        }
        let mut harness = ClusterHarness {
            nodes: specs
                .into_iter()
                .map(|s| NodeProcess::new(s, &config.binary))
                .collect(),
            netns: lab,
            config,
            key_b64,
        };
        for i in 0..harness.nodes.len() {
            harness.spawn(i)?;
        }
        for i in 0..harness.nodes.len() {
            harness.wait_healthy(i).await?;
        }
        harness.wait_formed().await?;
        Ok(harness)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn nodes(&self) -> &[NodeProcess] {
        &self.nodes
    }

    pub fn ids(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.id().to_string()).collect()
    }

    /// The network namespaces, in a `netns` run.
    pub fn netns(&self) -> Option<&NetnsLab> {
        self.netns.as_ref()
    }

    /// Cuts `minority` (0-based node indexes) off from the other nodes and from the
    /// harness's own clients (the root namespace stays with the majority). Only in a
    /// `netns` run.
    pub fn partition(&mut self, minority: &[usize]) -> Result<(), ChaosError> {
        self.netns
            .as_mut()
            .ok_or_else(|| {
                ChaosError::Config("a partition needs network namespaces (--netns)".into())
            })?
            .partition(minority)
    }

    /// Ends a partition: every node can reach every other again.
    pub fn heal_partition(&mut self) -> Result<(), ChaosError> {
        match self.netns.as_mut() {
            Some(lab) => lab.heal(),
            None => Ok(()),
        }
    }

    /// Every node's client address (`127.0.0.1:port`, or its namespace's address), in
    /// node order.
    pub fn client_addrs(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| n.spec().client.to_string())
            .collect()
    }

    /// Every node's HTTP address, in node order.
    pub fn http_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.spec().http).collect()
    }

    fn node_mut(&mut self, i: usize) -> Result<&mut NodeProcess, ChaosError> {
        let n = self.nodes.len();
        self.nodes
            .get_mut(i)
            .ok_or_else(|| ChaosError::Config(format!("no node #{i} (the cluster has {n})")))
    }

    fn spawn(&mut self, i: usize) -> Result<(), ChaosError> {
        let key = self.key_b64.clone();
        self.node_mut(i)?.spawn(&key)
    }

    fn exited(node: &mut NodeProcess) -> Option<ChaosError> {
        let pid = node.pid().unwrap_or(0);
        node.poll_exit().map(|status| ChaosError::NodeExited {
            node: node.id().to_string(),
            pid,
            status: status.to_string(),
            log: node.spec().log.clone(),
        })
    }

    /// Until node `i` answers `/health` with 200. Fails when it exits meanwhile or
    /// `start_timeout` passes.
    pub async fn wait_healthy(&mut self, i: usize) -> Result<(), ChaosError> {
        let deadline = Instant::now() + self.config.start_timeout;
        loop {
            let node = self.node_mut(i)?;
            if let Some(e) = Self::exited(node) {
                return Err(e);
            }
            if node.pid().is_none() {
                return Err(ChaosError::Config(format!("{} is not running", node.id())));
            }
            let addr = node.spec().http;
            if http::get(addr, "/health", PROBE_TIMEOUT).await.map(|a| a.0) == Some(200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ChaosError::Timeout(format!(
                    "{} not healthy after {:?}",
                    self.nodes[i].id(),
                    self.config.start_timeout
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Until every node sees all N nodes alive and a metadata leader.
    pub async fn wait_formed(&mut self) -> Result<(), ChaosError> {
        let ids = self.ids();
        let deadline = Instant::now() + self.config.start_timeout;
        loop {
            let mut missing = Vec::new();
            for node in self.nodes.iter_mut() {
                if let Some(e) = Self::exited(node) {
                    return Err(e);
                }
                match cluster_view(node.spec().http).await {
                    Some(v) if v.complete(&ids) => {}
                    Some(v) => missing.push(format!("{} sees {:?}", node.id(), v)),
                    None => missing.push(format!("{} does not answer", node.id())),
                }
            }
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ChaosError::Timeout(format!(
                    "the cluster has not formed after {:?}: {}",
                    self.config.start_timeout,
                    missing.join("; ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The metadata leader's index, as the first answering running node sees it.
    pub async fn leader(&mut self) -> Option<usize> {
        for node in self.nodes.iter_mut() {
            if !node.is_running() || node.is_paused() {
                continue;
            }
            if let Some(leader) = cluster_view(node.spec().http).await.and_then(|v| v.leader) {
                return self.nodes.iter().position(|n| n.id() == leader);
            }
        }
        None
    }

    /// SIGKILL node `i` by its PID; returns the PID killed, if it was running.
    pub fn kill9(&mut self, i: usize) -> Result<Option<u32>, ChaosError> {
        let node = self.node_mut(i)?;
        let pid = node.pid();
        node.kill9();
        Ok(pid)
    }

    /// Starts node `i` again (same ports, same data) and waits for its health.
    pub async fn restart(&mut self, i: usize) -> Result<u32, ChaosError> {
        self.spawn(i)?;
        self.wait_healthy(i).await?;
        Ok(self.nodes[i].pid().unwrap_or(0))
    }

    /// SIGSTOP node `i`; returns its PID when the signal was sent.
    pub fn pause(&mut self, i: usize) -> Result<Option<u32>, ChaosError> {
        let node = self.node_mut(i)?;
        Ok(node.pause().then(|| node.pid()).flatten())
    }

    /// SIGCONT node `i`.
    pub fn resume(&mut self, i: usize) -> Result<bool, ChaosError> {
        Ok(self.node_mut(i)?.resume())
    }

    /// SIGTERM node `i`, up to `grace` for it to finish (then SIGKILL), then start it
    /// again and wait for its health. Returns whether it stopped by itself in time.
    pub async fn graceful_restart(
        &mut self,
        i: usize,
        grace: Duration,
    ) -> Result<bool, ChaosError> {
        let graceful = self.node_mut(i)?.terminate(grace).await;
        self.restart(i).await?;
        Ok(graceful)
    }

    /// After faults: end any partition, SIGCONT every paused node, start every node
    /// that is not running, and wait until the cluster is whole again. Returns the
    /// nodes it had to start.
    pub async fn heal(&mut self) -> Result<Vec<String>, ChaosError> {
        self.heal_partition()?;
        let mut started = Vec::new();
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_paused() {
                self.nodes[i].resume();
            }
            if !self.nodes[i].is_running() {
                started.push(self.nodes[i].id().to_string());
                self.restart(i).await?;
            }
        }
        self.wait_formed().await?;
        Ok(started)
    }

    /// Nodes that ended without the harness ending them (a crash), reaped now.
    pub fn crashed(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for node in self.nodes.iter_mut() {
            let pid = node.pid();
            if let Some(status) = node.poll_exit() {
                out.push(format!(
                    "{} (pid {}) exited with {status}",
                    node.id(),
                    pid.unwrap_or(0)
                ));
            }
        }
        out
    }

    /// SIGTERM to every node, up to `grace` for each to finish, SIGKILL for the rest;
    /// then the namespaces, veths and bridges are deleted. Returns the deletions that
    /// failed.
    pub async fn shutdown(&mut self, grace: Duration) -> Vec<String> {
        for node in self.nodes.iter_mut() {
            node.terminate(grace).await;
        }
        self.netns
            .take()
            .map(|mut lab| lab.cleanup())
            .unwrap_or_default()
    }
}

/// Picks free 127.0.0.1 ports for every node (TCP for client, HTTP and gRPC; TCP and
/// UDP for the internal port). All listeners are held until every port is chosen, so
/// no two nodes get the same one.
fn layout(dir: &Path, n: usize) -> Result<Vec<NodeSpec>, ChaosError> {
    let mut held = Vec::new();
    let mut held_udp = Vec::new();
    let mut take = || -> Result<u16, ChaosError> {
        let l = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| ChaosError::io("cannot find a free port on 127.0.0.1", e))?;
        let port = l
            .local_addr()
            .map_err(|e| ChaosError::io("cannot find a free port on 127.0.0.1", e))?
            .port();
        held.push(l);
        Ok(port)
    };
    let mut specs = Vec::with_capacity(n);
    for i in 1..=n {
        let client = take()?;
        let http = take()?;
        let grpc = take()?;
        // The internal port carries gossip over UDP as well: it must be free for both.
        let internal = loop {
            let p = take()?;
            if let Ok(u) = UdpSocket::bind(("127.0.0.1", p)) {
                held_udp.push(u);
                break p;
            }
        };
        let node_dir = dir.join(format!("node-{i}"));
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        specs.push(NodeSpec {
            id: format!("node-{i}"),
            client: at(client),
            http: at(http),
            internal: at(internal),
            grpc_port: grpc,
            data_dir: node_dir.join("data"),
            config: node_dir.join("config.yaml"),
            log: node_dir.join("node.log"),
            netns: None,
        });
    }
    Ok(specs)
}

/// Ports inside every namespace: each node has its own address, so all can share them.
const NETNS_PORTS: (u16, u16, u16, u16) = (7001, 7002, 7003, 7000);

/// Every node at its namespace's address, on the same fixed ports.
fn layout_netns(dir: &Path, lab: &NetnsLab) -> Vec<NodeSpec> {
    let (client, http, grpc, internal) = NETNS_PORTS;
    (0..lab.len())
        .map(|i| {
            let ip = IpAddr::V4(lab.node_ip(i));
            let node_dir = dir.join(format!("node-{}", i + 1));
            NodeSpec {
                id: format!("node-{}", i + 1),
                client: SocketAddr::new(ip, client),
                http: SocketAddr::new(ip, http),
                internal: SocketAddr::new(ip, internal),
                grpc_port: grpc,
                data_dir: node_dir.join("data"),
                config: node_dir.join("config.yaml"),
                log: node_dir.join("node.log"),
                netns: Some(lab.namespace(i)),
            }
        })
        .collect()
}

/// A YAML double-quoted scalar: JSON string escapes are valid YAML ones.
fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

fn write_config(spec: &NodeSpec, all: &[NodeSpec], cluster: &str) -> Result<(), ChaosError> {
    let dir = spec.config.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| ChaosError::io(format!("cannot create {}", dir.display()), e))?;
    let data_dir = spec
        .data_dir
        .to_str()
        .ok_or_else(|| ChaosError::Config(format!("{} is not UTF-8", spec.data_dir.display())))?;
    let bind = spec.client.ip();
    let mut yaml = format!(
        "# Written by the swarmmq chaos harness.\n\
         node:\n  id: {}\n  bind: {bind}\n  port: {}\n  http_port: {}\n  grpc_port: {}\n\
         cluster:\n  name: {}\n  internal_port: {}\n  nodes:\n",
        spec.id,
        spec.client.port(),
        spec.http.port(),
        spec.grpc_port,
        quoted(cluster),
        spec.internal.port(),
    );
    for n in all {
        yaml.push_str(&format!(
            "    - {{ id: {}, address: \"{}\" }}\n",
            n.id, n.internal
        ));
    }
    yaml.push_str(&format!("storage:\n  data_dir: {}\n", quoted(data_dir)));
    if !bind.is_loopback() {
        // A namespace's private link, reachable only from this host: TLS would add
        // nothing the run checks.
        yaml.push_str("security:\n  allow_insecure: true\n");
    }
    std::fs::write(&spec.config, yaml)
        .map_err(|e| ChaosError::io(format!("cannot write {}", spec.config.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_gives_distinct_ports_and_a_view_parses() {
        let dir = tempfile::tempdir().unwrap();
        let specs = layout(dir.path(), 5).unwrap();
        let mut ports: Vec<u16> = specs
            .iter()
            .flat_map(|s| {
                [
                    s.client.port(),
                    s.http.port(),
                    s.internal.port(),
                    s.grpc_port,
                ]
            })
            .collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 20);
        write_config(&specs[1], &specs, "c").unwrap();
        let text = std::fs::read_to_string(&specs[1].config).unwrap();
        assert!(text.contains("id: node-2"), "{text}");
        assert!(text.contains(&format!("internal_port: {}", specs[1].internal.port())));

        assert!(text.contains("bind: 127.0.0.1") && !text.contains("allow_insecure"));

        // A namespace's address: bound there, and allowed without TLS.
        let mut ns = specs.clone();
        for (i, spec) in ns.iter_mut().enumerate() {
            let ip: IpAddr = format!("10.213.9.{}", i + 1).parse().unwrap();
            spec.client = SocketAddr::new(ip, 7001);
            spec.internal = SocketAddr::new(ip, 7000);
        }
        write_config(&ns[1], &ns, "c").unwrap();
        let text = std::fs::read_to_string(&ns[1].config).unwrap();
        assert!(text.contains("bind: 10.213.9.2"), "{text}");
        assert!(text.contains("allow_insecure: true"), "{text}");
        assert!(text.contains("address: \"10.213.9.3:7000\""), "{text}");

        let v = ClusterView::parse(
            r#"{"node":"node-1","leader":"node-2","term":3,"nodes":[
            {"id":"node-1","state":"alive"},{"id":"node-2","state":"dead"}]}"#,
        )
        .unwrap();
        assert_eq!(v.leader.as_deref(), Some("node-2"));
        assert_eq!(v.term, 3);
        assert!(v.complete(&["node-1".to_string()]));
        assert!(!v.complete(&["node-1".to_string(), "node-2".to_string()]));
    }
}
