//! Where each node of a dev cluster lives: ports, directories, its config file, and
//! the `cluster.json` that scripts read.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Ports per node: node i (1-based) uses `base + i*10 + 0..=3`.
pub const PORT_STRIDE: u16 = 10;
const HTTP: u16 = 0;
const CLIENT: u16 = 1;
const INTERNAL: u16 = 2;
const GRPC: u16 = 3;

/// One node of the dev cluster.
#[derive(Clone, Debug)]
pub struct NodeLayout {
    pub id: String,
    pub client: SocketAddr,
    pub http: SocketAddr,
    pub internal: SocketAddr,
    pub grpc_port: u16,
    /// `DIR/node-i`: config.yaml, node.log and data/.
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

/// The layout of `n` nodes under `dir` from `base`; refuses ports past 65535.
pub fn layout(dir: &Path, n: u8, base: u16) -> anyhow::Result<Vec<NodeLayout>> {
    let last = u32::from(base) + u32::from(n) * u32::from(PORT_STRIDE) + u32::from(GRPC);
    if last > u32::from(u16::MAX) {
        anyhow::bail!(
            "--base-port {base} with {n} nodes needs ports up to {last}; the most is 65535"
        );
    }
    Ok((1..=n)
        .map(|i| {
            // Cannot overflow: checked against the last port above.
            let first = base + u16::from(i) * PORT_STRIDE;
            let at = |offset: u16| SocketAddr::from(([127, 0, 0, 1], first + offset));
            let node_dir = dir.join(format!("node-{i}"));
            NodeLayout {
                id: format!("node-{i}"),
                client: at(CLIENT),
                http: at(HTTP),
                internal: at(INTERNAL),
                grpc_port: first + GRPC,
                data_dir: node_dir.join("data"),
                config: node_dir.join("config.yaml"),
                log: node_dir.join("node.log"),
                dir: node_dir,
            }
        })
        .collect())
}

/// Refuses to start when a port is taken (often: a dev cluster still running there).
pub fn check_ports_free(nodes: &[NodeLayout], dir: &Path) -> anyhow::Result<()> {
    for n in nodes {
        for (what, addr) in [
            ("client", n.client),
            ("HTTP", n.http),
            ("internal", n.internal),
        ] {
            let taken = TcpListener::bind(addr).is_err()
                || (what == "internal" && UdpSocket::bind(addr).is_err());
            if taken {
                anyhow::bail!(
                    "port {} ({} {what}) is in use; stop what holds it (another `swarmmq dev` \
                     in {}? its pids are in cluster.json there) or pick another --base-port",
                    addr.port(),
                    n.id,
                    dir.display()
                );
            }
        }
    }
    Ok(())
}

/// A YAML double-quoted scalar: JSON string escapes are valid YAML ones.
fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// The config file of `node`: its ports and data dir, and every node of the cluster
/// in `cluster.nodes` (so each one bootstraps the metadata group with the same voters).
pub fn config_yaml(
    node: &NodeLayout,
    all: &[NodeLayout],
    cluster: &str,
    partitions: Option<u32>,
) -> anyhow::Result<String> {
    let data_dir = node
        .data_dir
        .to_str()
        .with_context(|| format!("{} is not UTF-8", node.data_dir.display()))?;
    let mut yaml = format!(
        "# Written by `swarmmq dev` at every start; edits are overwritten.\n\
         node:\n  id: {}\n  bind: 127.0.0.1\n  port: {}\n  http_port: {}\n  grpc_port: {}\n\
         cluster:\n  name: {}\n  internal_port: {}\n  nodes:\n",
        node.id,
        node.client.port(),
        node.http.port(),
        node.grpc_port,
        quoted(cluster),
        node.internal.port(),
    );
    for n in all {
        yaml.push_str(&format!(
            "    - {{ id: {}, address: \"{}\" }}\n",
            n.id, n.internal
        ));
    }
    yaml.push_str(&format!("storage:\n  data_dir: {}\n", quoted(data_dir)));
    if let Some(p) = partitions {
        yaml.push_str(&format!("  default_partitions: {p}\n"));
    }
    Ok(yaml)
}

/// `cluster.json`: what scripts need to find every node. Never holds the master key.
pub fn cluster_json(
    cluster: &str,
    dir: &Path,
    key_file: &Path,
    nodes: &[(NodeLayout, u32)],
) -> serde_json::Value {
    serde_json::json!({
        "cluster": cluster,
        "dir": dir,
        "master_key_file": key_file,
        "nodes": nodes.iter().map(|(n, pid)| serde_json::json!({
            "id": n.id,
            "pid": pid,
            "client": n.client.to_string(),
            "http": n.http.to_string(),
            "internal": n.internal.to_string(),
            "data_dir": n.data_dir,
            "config": n.config,
            "log": n.log,
        })).collect::<Vec<_>>(),
    })
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader never
/// sees half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_do_not_collide_and_configs_validate() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = layout(dir.path(), 7, 19000).unwrap();
        let mut ports: Vec<u16> = nodes
            .iter()
            .flat_map(|n| {
                [
                    n.client.port(),
                    n.http.port(),
                    n.internal.port(),
                    n.grpc_port,
                ]
            })
            .collect();
        assert_eq!(nodes[0].client.port(), 19011);
        assert_eq!(nodes[0].http.port(), 19010);
        assert_eq!(nodes[0].internal.port(), 19012);
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 28);
        for n in &nodes {
            let yaml = config_yaml(n, &nodes, "swarmmq-dev", Some(6)).unwrap();
            let c = swarmmq_config::Config::from_yaml_str(&yaml).unwrap();
            c.validate().unwrap();
            assert_eq!(c.node.id.as_str(), n.id);
            assert_eq!(c.cluster.nodes.len(), 7);
            assert_eq!(c.storage.default_partitions, 6);
            assert_eq!(c.storage.data_dir, n.data_dir);
        }
        assert!(layout(dir.path(), 7, 65500).is_err());
    }
}
