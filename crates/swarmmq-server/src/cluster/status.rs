//! The cluster as one node sees it, for `/v1/admin/cluster`, the ClusterStatus
//! request (`swarmmq cluster status`) and `/health`.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use swarmmq_cluster::membership::MemberState;

use super::ClusterRuntime;

/// One object: nodes (gossip's view joined with the registry), the metadata leader and
/// term, and whether every registered node is alive under a leader.
pub(crate) fn status_json(rt: &ClusterRuntime) -> Value {
    let members = rt.members();
    let raft = rt.meta.status();
    let topo = rt.topology();
    let mut nodes: BTreeMap<String, Value> = BTreeMap::new();
    for m in &members {
        let led = topo.partitions_led(&m.id);
        nodes.insert(
            m.id.clone(),
            json!({
                "id": m.id,
                "addr": m.addrs.client.to_string(),
                "http": m.addrs.http.to_string(),
                "internal": m.addrs.internal.to_string(),
                "state": m.state.as_str(),
                "version": m.version,
                "last_seen_ms": m.last_seen_ms,
                "voter": raft.voters.contains(&m.id),
                "partitions_led": led,
                "load": {
                    "publish_rate": m.load.publish_rate,
                    "publish_p99_ms": m.load.publish_p99_ms,
                    "queue_depth": m.load.queue_depth,
                    "disk_used": m.load.disk_used,
                    "partitions_led": m.load.partitions_led,
                },
            }),
        );
    }
    // Registered but never heard from by gossip: listed, and not alive.
    for (id, a) in &topo.nodes {
        nodes.entry(id.clone()).or_insert_with(|| {
            json!({
                "id": id,
                "addr": a.client.to_string(),
                "http": a.http.to_string(),
                "internal": a.internal.to_string(),
                "state": "dead",
                "version": "",
                "last_seen_ms": null,
                "voter": raft.voters.contains(id),
                "partitions_led": topo.partitions_led(id),
                "load": null,
            })
        });
    }
    let alive = members
        .iter()
        .filter(|m| m.state == MemberState::Alive)
        .count();
    let healthy = raft.leader.is_some() && alive == nodes.len();
    // What a re-placement over the live nodes would move (executed once partitions
    // replicate; until then shown so an operator sees the effect of a lost node).
    let live = rt.live_nodes();
    let planned_moves: usize = topo
        .destinations
        .iter()
        .map(|(name, d)| {
            let rf = d.replicas.first().map_or(1, Vec::len);
            swarmmq_cluster::placement::plan(name, &d.replicas, &live, rf).len()
        })
        .sum();
    let under_replicated = under_replicated(rt);
    json!({
        "cluster": rt.cluster_name,
        "node": rt.node_id,
        "leader": raft.leader,
        "term": raft.term,
        "healthy": healthy,
        "voters": raft.voters,
        "learners": raft.learners,
        "planned_moves": planned_moves,
        "under_replicated_partitions": under_replicated,
        "nodes": nodes.into_values().collect::<Vec<_>>(),
    })
}

/// The `cluster` part of `/health`.
pub(crate) fn health_json(rt: &ClusterRuntime) -> Value {
    let members = rt.members();
    let raft = rt.meta.status();
    let alive = members
        .iter()
        .filter(|m| m.state == MemberState::Alive)
        .count();
    let known = members.len().max(rt.topology().nodes.len());
    let state = match (&raft.leader, alive == known) {
        (None, _) => "no_leader",
        (Some(_), true) => "ok",
        (Some(_), false) => "degraded",
    };
    json!({
        "name": rt.cluster_name,
        "state": state,
        "leader": raft.leader,
        "term": raft.term,
        "alive": alive,
        "nodes": known,
    })
}

/// Partitions with a replica on a node gossip does not call alive: with replication on,
/// they run on fewer copies than placed; without it, those whose owner is down are
/// unavailable.
pub(crate) fn under_replicated(rt: &ClusterRuntime) -> usize {
    let topo = rt.topology();
    topo.destinations
        .values()
        .flat_map(|d| d.replicas.iter())
        .filter(|set| set.iter().any(|n| !rt.is_alive(n)))
        .count()
}
