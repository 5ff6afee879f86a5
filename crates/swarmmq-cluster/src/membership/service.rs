//! [`Membership`]: one node's gossip membership, running in the background.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chitchat::{
    Chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, ProtocolVersion,
    spawn_chitchat,
};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{debug, warn};

use super::config::{MembershipConfig, NodeAddrs};
use super::sealed_transport::{SealedTransport, TransportStats};
use super::view::{
    KEY_LOAD, LoadReport, MemberState, MemberView, Observed, Observer, encode_load,
    published_key_values,
};
use crate::ClusterError;

/// How often the own load is re-published even if unchanged, so a node's state is
/// visibly fresh.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// Longest time between two looks at chitchat's state: bounds how stale `members()`
/// and the change notifications can be.
const OBSERVE_AT_MOST_EVERY: Duration = Duration::from_millis(100);
/// Heartbeat samples the failure detector keeps per node (its memory of "normal").
const SAMPLING_WINDOW: usize = 200;

/// State shared by the handle and the background task.
struct Shared {
    node_id: String,
    generation: u64,
    gossip_addr: SocketAddr,
    addrs: NodeAddrs,
    version: String,
    load: Mutex<LoadReport>,
    load_changed: Notify,
    peers: Mutex<Vec<Observed>>,
    changes: watch::Sender<u64>,
    stats: Arc<TransportStats>,
}

/// A lock whose holder never panics mid-update still holds consistent data, so a
/// poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One node's membership in the cluster's gossip. Dropping it stops gossiping (as does
/// [`Membership::shutdown`], which also waits for the socket to close).
pub struct Membership {
    shared: Arc<Shared>,
    chitchat: Option<ChitchatHandle>,
    task: Option<JoinHandle<()>>,
}

/// A generation id from the wall clock (microseconds), strictly increasing within the
/// process so a quick restart in the same process is still a newer generation.
fn next_generation() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let previous = LAST.fetch_max(now, Ordering::Relaxed);
    if previous >= now {
        LAST.fetch_add(1, Ordering::Relaxed) + 1
    } else {
        now
    }
}

impl Membership {
    /// Binds the gossip socket, starts chitchat and the task that publishes this node's
    /// load and watches the others.
    pub async fn start(cfg: MembershipConfig) -> Result<Membership, ClusterError> {
        cfg.validate()?;
        let transport = SealedTransport::bind(cfg.gossip_addr, cfg.key.clone()).await?;
        let gossip_addr = transport.local_addr();
        let generation = next_generation();
        let load = LoadReport::default();
        let chitchat_config = ChitchatConfig {
            chitchat_id: ChitchatId::new(cfg.node_id.clone(), generation, gossip_addr),
            // Defense in depth: the key already keeps other clusters out.
            cluster_id: cfg.cluster_name.clone(),
            gossip_interval: cfg.gossip_interval,
            listen_addr: gossip_addr,
            seed_nodes: cfg
                .seeds
                .iter()
                .filter(|seed| **seed != gossip_addr)
                .map(SocketAddr::to_string)
                .collect(),
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: cfg.phi_threshold,
                sampling_window_size: SAMPLING_WINDOW,
                // A gap this long is an outage, not a sample of normal behaviour:
                // keeping it would make detection slow for a long time after.
                max_interval: cfg.gossip_interval * 10,
                // The prior (weight 5 in chitchat) starts detection lenient, near
                // threshold x interval, until real samples arrive.
                initial_interval: cfg.gossip_interval,
                dead_node_grace_period: cfg.dead_grace,
            },
            // We never delete keys; tombstones would only come from a future version.
            marked_for_deletion_grace_period: cfg.dead_grace,
            catchup_callback: None,
            extra_liveness_predicate: None,
            // Every peer decodes V1, but V0 spends no CPU on compressing digests that
            // are tiny at our cluster sizes.
            protocol_version: ProtocolVersion::V0,
        };
        let stats = transport.stats();
        let chitchat = spawn_chitchat(
            chitchat_config,
            published_key_values(&cfg.addrs, &cfg.version, &load),
            &transport,
        )
        .await
        .map_err(|err| ClusterError::Gossip(format!("{err:#}")))?;

        let (changes, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            node_id: cfg.node_id,
            generation,
            gossip_addr,
            addrs: cfg.addrs,
            version: cfg.version,
            load: Mutex::new(load),
            load_changed: Notify::new(),
            peers: Mutex::new(Vec::new()),
            changes,
            stats,
        });
        // Suspect after ~1 s of silence: several gossip rounds without news is worth
        // flagging, well before the failure detector is sure (see module docs).
        let suspect_after = Duration::from_secs(1).max(cfg.gossip_interval * 5);
        let observe_every = cfg.gossip_interval.min(OBSERVE_AT_MOST_EVERY);
        let task = tokio::spawn(run(
            shared.clone(),
            chitchat.chitchat(),
            Observer::new(suspect_after),
            observe_every,
        ));
        Ok(Membership {
            shared,
            chitchat: Some(chitchat),
            task: Some(task),
        })
    }

    /// Publishes this node's load now (and it is re-published every second).
    pub fn set_load(&self, load: LoadReport) {
        *lock(&self.shared.load) = load;
        self.shared.load_changed.notify_one();
    }

    /// This node and every node it knows, dead ones included, sorted by id.
    pub fn members(&self) -> Vec<MemberView> {
        let now = Instant::now();
        let me = MemberView {
            id: self.shared.node_id.clone(),
            addrs: self.shared.addrs,
            version: self.shared.version.clone(),
            state: MemberState::Alive,
            load: *lock(&self.shared.load),
            last_seen_ms: 0,
            is_self: true,
        };
        let mut members: Vec<MemberView> = lock(&self.shared.peers)
            .iter()
            .map(|peer| MemberView {
                id: peer.id.clone(),
                addrs: peer.published.addrs,
                version: peer.published.version.clone(),
                state: peer.state,
                load: peer.published.load,
                last_seen_ms: u64::try_from(
                    now.saturating_duration_since(peer.last_progress)
                        .as_millis(),
                )
                .unwrap_or(u64::MAX),
                is_self: false,
            })
            .collect();
        members.push(me);
        members.sort_by(|a, b| a.id.cmp(&b.id));
        members
    }

    /// A counter that moves whenever a member appears, restarts, or changes state.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Datagrams dropped because they did not open (another key, garbage) or parse.
    pub fn rejected_datagrams(&self) -> u64 {
        self.shared.stats.rejected()
    }

    /// The bound gossip address (resolves a port-0 config).
    pub fn gossip_addr(&self) -> SocketAddr {
        self.shared.gossip_addr
    }

    /// This run's chitchat generation (start time in microseconds).
    pub fn generation(&self) -> u64 {
        self.shared.generation
    }

    /// Stops gossiping and waits until the socket is closed. Chitchat has no goodbye
    /// message: peers see this exactly as a crash and detect it by silence.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(chitchat) = self.chitchat.take()
            && let Err(err) = chitchat.shutdown().await
        {
            debug!(error = %err, "gossip stopped with an error");
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(chitchat) = self.chitchat.take() {
            chitchat.abort();
        }
    }
}

/// The background task: publish the own load, observe the others.
async fn run(
    shared: Arc<Shared>,
    chitchat: Arc<tokio::sync::Mutex<Chitchat>>,
    mut observer: Observer,
    observe_every: Duration,
) {
    let mut observe = tokio::time::interval(observe_every);
    // After a stall, one catch-up look is enough; a burst would only repeat it.
    observe.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut publish = tokio::time::interval(PUBLISH_EVERY);
    publish.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_signature: Vec<(String, u64, MemberState)> = Vec::new();
    loop {
        tokio::select! {
            _ = observe.tick() => {
                let peers = {
                    let chitchat = chitchat.lock().await;
                    observer.observe(&chitchat, Instant::now())
                };
                let signature: Vec<_> = peers
                    .iter()
                    .map(|p| (p.id.clone(), p.generation, p.state))
                    .collect();
                *lock(&shared.peers) = peers;
                if signature != last_signature {
                    log_changes(&last_signature, &signature);
                    last_signature = signature;
                    shared.changes.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
            _ = publish.tick() => publish_load(&shared, &chitchat).await,
            _ = shared.load_changed.notified() => publish_load(&shared, &chitchat).await,
        }
    }
}

async fn publish_load(shared: &Shared, chitchat: &tokio::sync::Mutex<Chitchat>) {
    let load = encode_load(&lock(&shared.load));
    // Setting an unchanged value is a no-op in chitchat, so this costs no gossip.
    chitchat.lock().await.self_node_state().set(KEY_LOAD, load);
}

fn log_changes(before: &[(String, u64, MemberState)], after: &[(String, u64, MemberState)]) {
    for (id, generation, state) in after {
        let previous = before.iter().find(|(b, _, _)| b == id);
        match previous {
            Some((_, g, s)) if g == generation && s == state => {}
            Some((_, _, s)) if *state == MemberState::Dead && *s != MemberState::Dead => {
                warn!(node = %id, "cluster member is dead");
            }
            _ => debug!(node = %id, generation, state = state.as_str(), "cluster member changed"),
        }
    }
}
