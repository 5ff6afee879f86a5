//! The `cluster` section of a validated config turned into the node's
//! [`ClusterSettings`]: host names resolved once, at startup, so that a typo in a seed
//! stops the node with the key that holds it rather than failing later in gossip.

use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::Context;
use swarmmq_config::Config;
use swarmmq_server::{ClusterSettings, ReplicationMode};

/// `None` for a single node (no `cluster.nodes`, no seeds); otherwise the internal
/// address (`node.bind:cluster.internal_port`), the seeds (`cluster.seeds` then the
/// other `cluster.nodes` entries, without repeats or this node), and the bootstrap
/// voters (every `cluster.nodes` entry).
pub fn cluster_settings(config: &Config) -> anyhow::Result<Option<ClusterSettings>> {
    let c = &config.cluster;
    if !c.is_enabled() {
        return Ok(None);
    }
    let internal_addr = SocketAddr::new(config.node.bind, c.internal_port);
    let mut bootstrap = Vec::with_capacity(c.nodes.len());
    for (i, node) in c.nodes.iter().enumerate() {
        let addr = resolve(&format!("cluster.nodes[{i}].address"), &node.address)?;
        bootstrap.push((node.id.clone(), addr));
    }
    let mut seeds: Vec<SocketAddr> = Vec::with_capacity(c.seeds.len() + c.nodes.len());
    for (i, seed) in c.seeds.iter().enumerate() {
        seeds.push(resolve(&format!("cluster.seeds[{i}]"), seed)?);
    }
    seeds.extend(
        bootstrap
            .iter()
            .filter(|(id, _)| *id != config.node.id)
            .map(|(_, addr)| *addr),
    );
    let mut unique = Vec::with_capacity(seeds.len());
    for addr in seeds {
        if addr != internal_addr && !unique.contains(&addr) {
            unique.push(addr);
        }
    }
    Ok(Some(ClusterSettings {
        internal_addr,
        seeds: unique,
        bootstrap,
        replication_factor: c.replication_factor,
        join_timeout: c.join_timeout,
        replication: match c.replication {
            swarmmq_config::ReplicationMode::None => ReplicationMode::None,
            swarmmq_config::ReplicationMode::Raft => ReplicationMode::Raft,
        },
    }))
}

/// The first address `host:port` resolves to; an error names the key and the text.
fn resolve(key: &str, text: &str) -> anyhow::Result<SocketAddr> {
    let text = text.trim();
    text.to_socket_addrs()
        .with_context(|| format!("{key}: cannot resolve {text:?}"))?
        .next()
        .with_context(|| format!("{key}: {text:?} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        let c = Config::from_yaml_str(yaml).unwrap();
        c.validate().unwrap();
        c
    }

    #[test]
    fn single_node_has_no_cluster_settings() {
        assert!(cluster_settings(&Config::default()).unwrap().is_none());
    }

    #[test]
    fn nodes_become_bootstrap_and_the_others_seeds() {
        let c = config(
            "node:\n  id: node-2\ncluster:\n  internal_port: 7002\n  seeds: [\"127.0.0.1:7009\", \"127.0.0.1:7001\"]\n  \
             replication_factor: 2\n  join_timeout: 3s\n  nodes:\n    \
             - { id: node-1, address: \"127.0.0.1:7001\" }\n    \
             - { id: node-2, address: \"127.0.0.1:7002\" }\n    \
             - { id: node-3, address: \"localhost:7003\" }\n",
        );
        let s = cluster_settings(&c).unwrap().unwrap();
        assert_eq!(s.internal_addr, "127.0.0.1:7002".parse().unwrap());
        let ids: Vec<_> = s.bootstrap.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["node-1", "node-2", "node-3"]);
        assert_eq!(s.bootstrap[1].1, "127.0.0.1:7002".parse().unwrap());
        assert_eq!(s.bootstrap[2].1.port(), 7003);
        assert!(s.bootstrap[2].1.ip().is_loopback());
        // --seeds first, then the other nodes; this node and repeats are left out.
        let ports: Vec<u16> = s.seeds.iter().map(SocketAddr::port).collect();
        assert_eq!(ports, [7009, 7001, 7003]);
        assert_eq!(s.replication_factor, Some(2));
        assert_eq!(s.join_timeout, std::time::Duration::from_secs(3));
        assert_eq!(s.replication, ReplicationMode::None);
    }

    #[test]
    fn replication_raft_reaches_the_node_settings() {
        let c = config(
            "cluster:\n  replication: raft\n  seeds: [\"127.0.0.1:7001\"]\n  replication_factor: 3\n",
        );
        let s = cluster_settings(&c).unwrap().unwrap();
        assert_eq!(s.replication, ReplicationMode::Raft);
        assert_eq!(s.replication_factor, Some(3));
    }

    #[test]
    fn seeds_alone_turn_cluster_mode_on() {
        let c = config("cluster:\n  seeds: [\"127.0.0.1:7001\"]\n");
        let s = cluster_settings(&c).unwrap().unwrap();
        assert!(s.bootstrap.is_empty());
        assert_eq!(s.seeds, ["127.0.0.1:7001".parse::<SocketAddr>().unwrap()]);
        assert_eq!(s.internal_addr, "127.0.0.1:7000".parse().unwrap());
    }

    #[test]
    fn an_unresolvable_seed_names_its_key() {
        let c = config("cluster:\n  seeds: [\"127.0.0.1:7001\", \"no-such-host.invalid:7000\"]\n");
        let e = format!("{:#}", cluster_settings(&c).unwrap_err());
        assert!(
            e.starts_with("cluster.seeds[1]: cannot resolve \"no-such-host.invalid:7000\""),
            "{e}"
        );
    }
}
