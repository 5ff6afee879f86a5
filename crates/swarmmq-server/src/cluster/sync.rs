//! The loop that keeps a node in step with its cluster: gossip's liveness verdicts and
//! the metadata's topology for routing, the local registry mirroring the cluster's
//! destinations, this node's registration, the leader's duty of adding registered
//! nodes to the Raft group, and the load this node gossips.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use swarmmq_cluster::membership::LoadReport;
use swarmmq_cluster::metadata::{ClusterState, MetaCommand, NodeRecord};
use swarmmq_types::ErrorCode;
use tokio_util::sync::CancellationToken;

use super::{ClusterRuntime, DestTopology, NodeAddrs, Topology};
use crate::broker::Broker;
use crate::destination::DestinationSpec;

const TICK: Duration = Duration::from_millis(250);
const LOAD_EVERY: Duration = Duration::from_secs(1);

fn topology_from(state: &ClusterState) -> Topology {
    let nodes = state
        .nodes
        .iter()
        .map(|(id, r)| {
            (
                id.clone(),
                NodeAddrs {
                    client: r.client_addr,
                    http: r.http_addr,
                    internal: r.internal_addr,
                },
            )
        })
        .collect();
    let mut destinations = BTreeMap::new();
    for (name, d) in &state.destinations {
        match serde_json::from_value::<DestinationSpec>(d.spec.clone()) {
            Ok(spec) => {
                destinations.insert(
                    name.clone(),
                    DestTopology {
                        spec,
                        replicas: d.partitions.iter().map(|p| p.replicas.clone()).collect(),
                    },
                );
            }
            Err(e) => {
                tracing::warn!(destination = %name, error = %e, "cluster metadata holds destination settings this node cannot read; skipped");
            }
        }
    }
    Topology {
        nodes,
        destinations,
    }
}

/// Creates and deletes local destinations so the registry mirrors the cluster's.
async fn mirror(broker: &Broker, before: &Topology, now: &Topology) {
    for (name, d) in &now.destinations {
        if let Err(e) = broker.get(name) {
            if e.code != ErrorCode::UnknownDestination {
                continue;
            }
            if let Err(e) = broker.create_with_spec(name, d.spec.clone()).await {
                tracing::warn!(destination = %name, code = %e.code, error = %e.message, "could not mirror a cluster destination locally");
            }
        }
    }
    for name in before.destinations.keys() {
        if !now.destinations.contains_key(name) && broker.get(name).is_ok() {
            match broker.delete(name).await {
                Ok(()) => tracing::info!(destination = %name, "destination deleted by the cluster"),
                Err(e) => {
                    tracing::warn!(destination = %name, error = %e.message, "could not delete a destination the cluster deleted")
                }
            }
        }
    }
}

/// Publish rate and latency over the last report period.
struct LoadMeter {
    at: Instant,
    published: u64,
}

impl LoadMeter {
    fn report(&mut self, broker: &Broker, rt: &ClusterRuntime) -> LoadReport {
        let published = broker.metrics.published_total();
        let secs = self.at.elapsed().as_secs_f64().max(0.001);
        let rate = published.saturating_sub(self.published) as f64 / secs;
        self.at = Instant::now();
        self.published = published;
        LoadReport {
            publish_rate: rate,
            publish_p99_ms: broker.metrics.take_publish_p99_ms(),
            queue_depth: broker.queue_depth(),
            disk_used: broker.disk_used(),
            partitions_led: rt.topology().partitions_led(&rt.node_id),
        }
    }
}

fn spawn_once(flag: &Arc<AtomicBool>, fut: impl Future<Output = ()> + Send + 'static) {
    if flag.swap(true, Ordering::AcqRel) {
        return;
    }
    let flag = Arc::clone(flag);
    tokio::spawn(async move {
        fut.await;
        flag.store(false, Ordering::Release);
    });
}

/// Waits for a gossip change; forever once gossip has stopped.
async fn changed(rx: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    match rx {
        Some(r) => {
            if r.changed().await.is_err() {
                *rx = None;
            }
        }
        None => std::future::pending().await,
    }
}

pub(crate) async fn run(broker: Weak<Broker>, rt: Arc<ClusterRuntime>, stop: CancellationToken) {
    let mut states = rt.meta.subscribe();
    let mut tick = tokio::time::interval(TICK);
    let mut membership = rt.membership_changes();
    let mut before = Topology::default();
    let mut meter = LoadMeter {
        at: Instant::now(),
        published: 0,
    };
    let mut last_load = Instant::now() - LOAD_EVERY;
    let registering = Arc::new(AtomicBool::new(false));
    let adding = Arc::new(AtomicBool::new(false));
    let me = NodeRecord {
        id: rt.node_id.clone(),
        client_addr: rt.addrs.client,
        http_addr: rt.addrs.http,
        internal_addr: rt.addrs.internal,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    loop {
        tokio::select! {
            _ = states.changed() => {}
            _ = changed(&mut membership) => {}
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let Some(broker) = broker.upgrade() else {
            return;
        };
        let liveness: HashMap<_, _> = rt.members().into_iter().map(|m| (m.id, m.state)).collect();
        rt.set_liveness(liveness);
        let state = states.borrow_and_update().clone();
        let now = topology_from(&state);
        rt.set_topology(now.clone());
        mirror(&broker, &before, &now).await;
        super::replicas::ensure_groups(&broker, &rt, &now);
        before = now;

        if state.nodes.get(&rt.node_id) != Some(&me) {
            let (rt2, me) = (Arc::clone(&rt), me.clone());
            spawn_once(&registering, async move {
                match rt2.propose(MetaCommand::RegisterNode(me)).await {
                    Ok(_) => tracing::info!("registered in the cluster metadata"),
                    Err(e) => {
                        tracing::debug!(error = %e.message, "registration not committed yet; retrying")
                    }
                }
            });
        }
        let status = rt.meta.status();
        if status.leader.as_deref() == Some(rt.node_id.as_str()) {
            let missing: Vec<(String, std::net::SocketAddr)> = state
                .nodes
                .values()
                .filter(|n| !status.voters.contains(&n.id) && !status.learners.contains(&n.id))
                .map(|n| (n.id.clone(), n.internal_addr))
                .collect();
            if !missing.is_empty() {
                let rt2 = Arc::clone(&rt);
                spawn_once(&adding, async move {
                    for (id, addr) in missing {
                        match rt2.meta.add_node(id.clone(), addr).await {
                            Ok(()) => {
                                tracing::info!(node = %id, "node added to the metadata group")
                            }
                            Err(e) => {
                                tracing::warn!(node = %id, error = %e, "could not add a node to the metadata group")
                            }
                        }
                    }
                });
            }
        }
        broker
            .metrics
            .under_replicated
            .set(super::under_replicated(&rt) as i64);
        if last_load.elapsed() >= LOAD_EVERY {
            last_load = Instant::now();
            rt.set_load(meter.report(&broker, &rt));
        }
    }
}
