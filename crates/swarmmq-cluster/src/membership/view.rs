//! What one node knows about the others: published state read back from chitchat, and
//! liveness derived from chitchat's failure detector plus observed heartbeat progress.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use chitchat::{Chitchat, ChitchatId, NodeState};
use serde::{Deserialize, Serialize};

use super::config::NodeAddrs;

const KEY_CLIENT: &str = "addr.client";
const KEY_HTTP: &str = "addr.http";
const KEY_INTERNAL: &str = "addr.internal";
const KEY_VERSION: &str = "version";
pub(crate) const KEY_LOAD: &str = "load";

/// A node's load, published through gossip about once a second. Hints for placement
/// and clients; never a basis for correctness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Messages published per second.
    pub publish_rate: f64,
    /// 99th percentile publish latency, milliseconds.
    pub publish_p99_ms: f64,
    /// Messages waiting for delivery.
    pub queue_depth: u64,
    /// Bytes used in the data dir.
    pub disk_used: u64,
    /// Partitions this node leads.
    pub partitions_led: u32,
}

/// How a member looks from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// The failure detector considers it live and its heartbeat moves.
    Alive,
    /// Live for the failure detector, but no heartbeat progress for a while; or joined
    /// so recently that the detector has no opinion yet.
    Suspect,
    /// The failure detector declared it dead.
    Dead,
}

impl MemberState {
    /// `"alive"`, `"suspect"` or `"dead"` (the admin JSON's `state`).
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
        }
    }
}

/// One member as seen by this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberView {
    /// Node id.
    pub id: String,
    /// Published addresses.
    pub addrs: NodeAddrs,
    /// Published software version.
    pub version: String,
    /// Liveness as seen from here.
    pub state: MemberState,
    /// Last published load.
    pub load: LoadReport,
    /// Milliseconds since this node last saw the member's heartbeat advance (0 for self).
    pub last_seen_ms: u64,
    /// Whether this is the local node.
    pub is_self: bool,
}

/// The key/values a node publishes about itself.
pub(crate) fn published_key_values(
    addrs: &NodeAddrs,
    version: &str,
    load: &LoadReport,
) -> Vec<(String, String)> {
    vec![
        (KEY_CLIENT.into(), addrs.client.to_string()),
        (KEY_HTTP.into(), addrs.http.to_string()),
        (KEY_INTERNAL.into(), addrs.internal.to_string()),
        (KEY_VERSION.into(), version.to_string()),
        (KEY_LOAD.into(), encode_load(load)),
    ]
}

pub(crate) fn encode_load(load: &LoadReport) -> String {
    // Plain numbers always serialise; a non-finite float becomes null and reads back as
    // the default, which is the right reading for a broken rate anyway.
    serde_json::to_string(load).unwrap_or_default()
}

/// What a peer published, if its key/values have arrived and parse.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    pub(crate) addrs: NodeAddrs,
    pub(crate) version: String,
    pub(crate) load: LoadReport,
}

fn parse_published(state: &NodeState) -> Option<Published> {
    let addr = |key: &str| state.get(key)?.parse().ok();
    let addrs = NodeAddrs {
        client: addr(KEY_CLIENT)?,
        http: addr(KEY_HTTP)?,
        internal: addr(KEY_INTERNAL)?,
    };
    let version = state.get(KEY_VERSION)?.to_string();
    // A load that does not parse (a newer peer's format) still leaves the node usable.
    let load = state
        .get(KEY_LOAD)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    Some(Published {
        addrs,
        version,
        load,
    })
}

/// One peer as last observed.
#[derive(Debug, Clone)]
pub(crate) struct Observed {
    pub(crate) id: String,
    pub(crate) generation: u64,
    pub(crate) published: Published,
    pub(crate) state: MemberState,
    pub(crate) last_progress: Instant,
}

/// Heartbeat progress of one chitchat identity (node id + generation).
struct Progress {
    heartbeat: u64,
    last_progress: Instant,
    first_seen: Instant,
    ever_live: bool,
}

/// Turns chitchat's state into [`Observed`] peers. Kept across observations because
/// "no heartbeat progress for a while" needs memory of when it last moved.
pub(crate) struct Observer {
    progress: HashMap<ChitchatId, Progress>,
    suspect_after: Duration,
}

impl Observer {
    pub(crate) fn new(suspect_after: Duration) -> Self {
        Observer {
            progress: HashMap::new(),
            suspect_after,
        }
    }

    /// Every peer (not self), one entry per node id: the newest generation whose
    /// published state has arrived, preferring any generation not dead (so a restart
    /// whose clock went backwards is not hidden behind its dead predecessor).
    pub(crate) fn observe(&mut self, chitchat: &Chitchat, now: Instant) -> Vec<Observed> {
        let self_id = chitchat.self_chitchat_id();
        let live: HashSet<&ChitchatId> = chitchat.live_nodes().collect();
        let dead: HashSet<&ChitchatId> = chitchat.dead_nodes().collect();
        // chitchat bounds its node map (dead nodes are forgotten after the grace), and
        // this map follows it.
        self.progress
            .retain(|id, _| chitchat.node_states().contains_key(id));

        let mut newest: BTreeMap<&str, Observed> = BTreeMap::new();
        for (id, node_state) in chitchat.node_states() {
            if id.node_id == self_id.node_id {
                // Our own older generations: we know better than gossip.
                continue;
            }
            let is_live = live.contains(id);
            let heartbeat = u64::from(node_state.heartbeat());
            let progress = self.progress.entry(id.clone()).or_insert(Progress {
                heartbeat,
                last_progress: now,
                first_seen: now,
                ever_live: false,
            });
            if heartbeat > progress.heartbeat {
                progress.heartbeat = heartbeat;
                progress.last_progress = now;
            }
            progress.ever_live |= is_live;
            let silent = now.saturating_duration_since(progress.last_progress);
            let state = if is_live {
                if silent > self.suspect_after {
                    MemberState::Suspect
                } else {
                    MemberState::Alive
                }
            } else if dead.contains(id)
                && (progress.ever_live
                    || now.saturating_duration_since(progress.first_seen) > self.suspect_after)
            {
                MemberState::Dead
            } else {
                // chitchat marks a node dead until it has seen two heartbeats; a node
                // that just joined is "not confirmed yet", not dead.
                MemberState::Suspect
            };
            let Some(published) = parse_published(node_state) else {
                continue;
            };
            let candidate = Observed {
                id: id.node_id.to_string(),
                generation: id.generation_id,
                published,
                state,
                last_progress: progress.last_progress,
            };
            let rank = |o: &Observed| (o.state != MemberState::Dead, o.generation);
            match newest.get(&*id.node_id) {
                Some(seen) if rank(seen) >= rank(&candidate) => {}
                _ => {
                    newest.insert(&id.node_id, candidate);
                }
            }
        }
        newest.into_values().collect()
    }
}
