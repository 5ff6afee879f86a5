//! Deterministic simulation of the metadata Raft group under turmoil.
//!
//! Five simulated hosts each run a [`MetadataRaft`] (real files in a per-host temp dir)
//! behind a tiny framed server on turmoil's simulated TCP; a client host creates
//! destinations with unique names through whichever node leads, following `NotLeader`.
//! A seeded schedule partitions node sets, holds links and crashes/restarts hosts. The
//! driver samples every node's [`RaftStatus`] after every simulation step and checks:
//!
//! - at most one leader per term (over every node's view of the leader),
//! - no node's term ever decreases (across restarts too: the vote is durable),
//! - two nodes that applied up to the same index hold the same state,
//! - after healing and settling: all nodes' states are equal, every acknowledged create is
//!   present, and nothing that was never proposed is.
//!
//! Seeds: `SWARMMQ_SIM_SEED=<n>` replays one seed, `SWARMMQ_SIM_SEEDS=<count>` runs seeds
//! `0..count` (default [`DEFAULT_SEEDS`]). Every failure names its seed.
//!
//! How the simulation fits openraft: turmoil gives each host its own current-thread tokio
//! runtime with paused time, and enters it while the host's software runs, so openraft's
//! `tokio::spawn`ed core/tick/replication tasks land on that host's runtime and its timers
//! run on simulated time. A crash drops the host's runtime (and with it every openraft task);
//! a restart reopens the node from its directory.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;
use swarmmq_cluster::ClusterError;
use swarmmq_cluster::metadata::{
    DestinationMeta, MetaCommand, MetaReply, MetadataConfig, MetadataRaft, PartitionPlacement,
    RaftTransport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::{TcpListener, TcpStream};

/// Seeds run by default (CI).
const DEFAULT_SEEDS: u64 = 16;
const NODES: usize = 5;
const PORT: u16 = 7000;
const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Simulated time per step: fine against the 100 ms heartbeat, coarse enough to be quick.
const TICK: Duration = Duration::from_millis(5);
/// Faults are injected in [FAULTS_FROM, FAULTS_UNTIL); the client proposes until then.
const FAULTS_FROM: Duration = Duration::from_secs(2);
const FAULTS_UNTIL: Duration = Duration::from_secs(10);
/// The client's pause between two creates (openraft's work, not the sim, is the cost).
const CLIENT_PACE: Duration = Duration::from_millis(60);
/// After healing, the group must converge within this much simulated time.
const SETTLE: Duration = Duration::from_secs(20);
/// How long the client keeps retrying one command before it counts as unknown.
const COMMAND_DEADLINE: Duration = Duration::from_secs(4);
/// One request of the client; longer than a propose waits for a fresh leader's lease.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Standard Raft's election safety (one leader per term). The metadata group uses
/// openraft's standard leader ids (`leader_id_std`), so it must hold. (Under openraft's
/// default "advanced" leader ids a term may legitimately have several leaders, the
/// greater id superseding; the checker's other rules, leader views only moving forward
/// and state agreement at every applied index, hold either way.)
const STANDARD_ELECTION_SAFETY: bool = true;

const KIND_RAFT: u8 = 0;
const KIND_PROPOSE: u8 = 1;
const STATUS_OK: u8 = 0;
const STATUS_ERR: u8 = 1;
const STATUS_NOT_LEADER: u8 = 2;

fn node_name(i: usize) -> String {
    format!("n{}", i + 1)
}

/// SplitMix64: the schedule's own seeded generator (turmoil's rng drives the network).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_133f_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

// ---------------------------------------------------------------------------------------
// Wire: request `[kind u8][len u32 BE][body]`, response `[status u8][len u32 BE][body]`.

async fn read_body(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = s.read_u32().await? as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other("frame too large"));
    }
    let mut buf = vec![0; len];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_msg(s: &mut TcpStream, tag: u8, body: &[u8]) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(5 + body.len());
    frame.push(tag);
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(body);
    s.write_all(&frame).await?;
    s.flush().await
}

/// One request per connection.
async fn exchange(addr: SocketAddr, kind: u8, body: &[u8]) -> std::io::Result<(u8, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).await?;
    write_msg(&mut s, kind, body).await?;
    let status = s.read_u8().await?;
    let reply = read_body(&mut s).await?;
    Ok((status, reply))
}

/// [`RaftTransport`] over turmoil's simulated TCP.
struct SimTransport;

impl RaftTransport for SimTransport {
    fn call(
        &self,
        _target: &str,
        addr: SocketAddr,
        body: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>> {
        Box::pin(async move {
            match exchange(addr, KIND_RAFT, &body).await {
                Ok((STATUS_OK, reply)) => Ok(reply),
                Ok((_, reply)) => Err(String::from_utf8_lossy(&reply).into_owned()),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

async fn serve_conn(mut s: TcpStream, raft: Arc<MetadataRaft>) {
    let Ok(kind) = s.read_u8().await else { return };
    let Ok(body) = read_body(&mut s).await else {
        return;
    };
    let (status, reply) = match kind {
        KIND_RAFT => match raft.handle_rpc(&body).await {
            Ok(b) => (STATUS_OK, b),
            Err(e) => (STATUS_ERR, e.to_string().into_bytes()),
        },
        KIND_PROPOSE => match serde_json::from_slice::<MetaCommand>(&body) {
            Err(e) => (STATUS_ERR, e.to_string().into_bytes()),
            Ok(cmd) => match raft.propose(cmd).await {
                Ok(r) => (STATUS_OK, serde_json::to_vec(&r).unwrap()),
                Err(ClusterError::NotLeader { leader }) => (
                    STATUS_NOT_LEADER,
                    leader.map(|(id, _)| id).unwrap_or_default().into_bytes(),
                ),
                Err(e) => (STATUS_ERR, e.to_string().into_bytes()),
            },
        },
        _ => (STATUS_ERR, b"unknown kind".to_vec()),
    };
    let _ = write_msg(&mut s, status, &reply).await;
}

// ---------------------------------------------------------------------------------------
// Shared between the simulated hosts and the driver (all on the test thread).

/// Live nodes by name; a host inserts itself once open, the driver removes it on crash.
type Registry = Rc<RefCell<BTreeMap<String, Arc<MetadataRaft>>>>;

#[derive(Default)]
struct ClientLog {
    /// Names whose create returned `Created` (or `AlreadyExists` after an unknown attempt).
    acked: BTreeSet<String>,
    /// Every name the client ever sent.
    attempted: BTreeSet<String>,
    /// (sim ms, event) for the trace.
    events: Vec<(u128, String)>,
    done: bool,
}

fn voters() -> Vec<(String, SocketAddr)> {
    (0..NODES)
        .map(|i| {
            let name = node_name(i);
            let ip = turmoil::lookup(name.as_str());
            (name, SocketAddr::new(ip, PORT))
        })
        .collect()
}

fn destination(name: &str) -> DestinationMeta {
    DestinationMeta {
        name: name.to_string(),
        spec: json!({"kind": "stream", "partitions": 1}),
        partitions: vec![PartitionPlacement {
            replicas: vec!["n1".to_string()],
        }],
    }
}

/// The host software: open (or reopen) the node from its dir, initialize, serve.
fn host_software(
    name: String,
    dir: PathBuf,
    registry: Registry,
) -> impl Fn() -> Pin<Box<dyn Future<Output = turmoil::Result>>> {
    move || {
        let (name, dir, registry) = (name.clone(), dir.clone(), registry.clone());
        Box::pin(async move {
            let listener = TcpListener::bind((IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT)).await?;
            let raft = MetadataRaft::open(MetadataConfig {
                node_id: name.clone(),
                dir,
                transport: Arc::new(SimTransport),
                // Production timings (MetadataConfig::new).
                heartbeat_interval: Duration::from_millis(100),
                election_timeout_min: Duration::from_millis(300),
                election_timeout_max: Duration::from_millis(600),
            })
            .await?;
            let raft = Arc::new(raft);
            // Every bootstrap node initializes with the same list; on restart it is a no-op.
            raft.initialize(voters()).await?;
            registry.borrow_mut().insert(name, raft.clone());
            loop {
                let (s, _) = listener.accept().await?;
                tokio::task::spawn_local(serve_conn(s, raft.clone()));
            }
        })
    }
}

/// The client: creates `d0, d1, ...` one at a time until the fault window ends, through
/// whichever node leads.
async fn client(log: Rc<RefCell<ClientLog>>) -> turmoil::Result {
    let nodes = voters();
    let addr_of = |id: &str| nodes.iter().find(|(n, _)| n == id).map(|(_, a)| *a);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut target = 0usize;
    let mut i = 0u64;
    while turmoil::elapsed() < FAULTS_UNTIL {
        let name = format!("d{i}");
        i += 1;
        let body = serde_json::to_vec(&MetaCommand::CreateDestination(destination(&name)))?;
        log.borrow_mut().attempted.insert(name.clone());
        let started = turmoil::elapsed();
        // Whether an earlier attempt may have been applied without our hearing of it.
        let mut unknown = false;
        loop {
            if turmoil::elapsed() - started > COMMAND_DEADLINE {
                let mut l = log.borrow_mut();
                let ms = turmoil::elapsed().as_millis();
                l.events.push((ms, format!("gave up {name}")));
                break;
            }
            let addr = nodes[target].1;
            let res =
                tokio::time::timeout(REQUEST_TIMEOUT, exchange(addr, KIND_PROPOSE, &body)).await;
            match res {
                Ok(Ok((STATUS_OK, reply))) => {
                    let reply: MetaReply = serde_json::from_slice(&reply)?;
                    let ok = match &reply {
                        MetaReply::Created(d) => d.name == name,
                        // Only an earlier attempt of ours can have created it: names are unique.
                        MetaReply::AlreadyExists(d) => unknown && d == &destination(&name),
                        _ => false,
                    };
                    if !ok {
                        return Err(format!("create {name}: unexpected reply {reply:?}").into());
                    }
                    {
                        let mut l = log.borrow_mut();
                        let ms = turmoil::elapsed().as_millis();
                        l.events
                            .push((ms, format!("acked {name} via {}", nodes[target].0)));
                        l.acked.insert(name.clone());
                    }
                    tokio::time::sleep(CLIENT_PACE).await;
                    break;
                }
                Ok(Ok((STATUS_NOT_LEADER, leader))) => {
                    // Nothing was appended: a retry cannot apply the command twice.
                    let leader = String::from_utf8_lossy(&leader).into_owned();
                    match nodes.iter().position(|(n, _)| *n == leader) {
                        Some(p) if addr_of(&leader).is_some() && p != target => target = p,
                        _ => {
                            target = (target + 1) % NODES;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                // Refused, timed out or the link broke: the entry may or may not be in a log.
                _ => {
                    unknown = true;
                    target = (target + 1) % NODES;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    log.borrow_mut().done = true;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The driver.

/// A fault currently in force and when it ends.
enum Fault {
    Partition {
        side: Vec<String>,
        until: Duration,
    },
    Hold {
        a: String,
        b: String,
        until: Duration,
    },
    Crash {
        host: String,
        until: Duration,
    },
}

struct Checker {
    /// term -> every node that some node saw as leader in it.
    leaders: BTreeMap<u64, BTreeSet<String>>,
    /// Per node: the highest (term, leader) it reported with a leader named.
    votes: BTreeMap<String, (u64, String)>,
    /// Highest term each node reported.
    terms: BTreeMap<String, u64>,
    /// Last (term, leader, applied) seen per node, to log and hash changes only.
    seen: BTreeMap<String, (u64, Option<String>, u64)>,
    /// applied index -> hash of the state at that index.
    states: BTreeMap<u64, u64>,
    trace: Vec<(u128, String)>,
}

fn hash_of(v: &impl serde::Serialize) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_vec(v).unwrap().hash(&mut h);
    h.finish()
}

impl Checker {
    fn sample(&mut self, now: Duration, registry: &Registry) -> Result<(), String> {
        for (name, raft) in registry.borrow().iter() {
            let st = raft.status();
            let prev = self.terms.entry(name.clone()).or_insert(0);
            if st.term < *prev {
                return Err(format!("{name}: term went from {prev} to {}", st.term));
            }
            *prev = st.term;
            if let Some(leader) = &st.leader {
                self.leaders
                    .entry(st.term)
                    .or_default()
                    .insert(leader.clone());
                if STANDARD_ELECTION_SAFETY && self.leaders[&st.term].len() > 1 {
                    return Err(format!(
                        "two leaders in term {}: {:?} (seen by {name})",
                        st.term, self.leaders[&st.term]
                    ));
                }
                // openraft's (term, node id) leader ids are totally ordered and a node only
                // ever grants or follows a greater one: its view may never go back.
                let view = (st.term, leader.clone());
                if let Some(old) = self.votes.get(name)
                    && view < *old
                {
                    return Err(format!(
                        "{name}: leader view went back from {old:?} to {view:?}"
                    ));
                }
                self.votes.insert(name.clone(), view);
            }
            let state = raft.state();
            let key = (st.term, st.leader.clone(), state.last_applied);
            if self.seen.get(name) == Some(&key) {
                continue;
            }
            self.trace.push((
                now.as_millis(),
                format!("{name} term={} leader={:?} applied={}", key.0, key.1, key.2),
            ));
            let applied = state.last_applied;
            let hash = hash_of(&*state);
            match self.states.get(&applied) {
                Some(h) if *h != hash => {
                    return Err(format!("{name}: state at applied index {applied} differs"));
                }
                Some(_) => {}
                None => {
                    self.states.insert(applied, hash);
                }
            }
            self.seen.insert(name.clone(), key);
        }
        Ok(())
    }

    /// Terms in which more than one node was seen leading (allowed by openraft's default
    /// leader ids; see [`STANDARD_ELECTION_SAFETY`]).
    fn shared_terms(&self) -> usize {
        self.leaders.values().filter(|l| l.len() > 1).count()
    }
}

/// What one seeded run observed.
#[derive(Debug)]
struct Outcome {
    acked: usize,
    attempted: usize,
    faults: usize,
    terms: u64,
    /// Terms with more than one leader (openraft's advanced leader-id mode allows it).
    shared_terms: usize,
    /// Hash of the (time, event) trace, for the reproducibility check.
    trace_hash: u64,
    trace: Vec<(u128, String)>,
}

fn run_seed(seed: u64) -> Result<Outcome, String> {
    let root = tempfile::Builder::new()
        .prefix("swarmmq-sim-")
        .tempdir_in(shm_or_tmp())
        .map_err(|e| e.to_string())?;
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .tick_duration(TICK)
        .simulation_duration(FAULTS_UNTIL + SETTLE + Duration::from_secs(10))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(20))
        .build();
    let registry: Registry = Rc::default();
    for i in 0..NODES {
        let name = node_name(i);
        let dir = root.path().join(&name);
        sim.host(
            name.as_str(),
            host_software(name.clone(), dir, registry.clone()),
        );
    }
    let log = Rc::new(RefCell::new(ClientLog::default()));
    sim.client("client", client(log.clone()));

    let mut rng = Rng(seed ^ 0x5eed_5eed_5eed_5eed);
    let mut checker = Checker {
        leaders: BTreeMap::new(),
        votes: BTreeMap::new(),
        terms: BTreeMap::new(),
        seen: BTreeMap::new(),
        states: BTreeMap::new(),
        trace: Vec::new(),
    };
    let names: Vec<String> = (0..NODES).map(node_name).collect();
    let mut net_fault: Option<Fault> = None;
    let mut crash_fault: Option<Fault> = None;
    let mut next_net = FAULTS_FROM + rng.millis(0, 1000);
    let mut next_crash = FAULTS_FROM + rng.millis(0, 2000);
    let mut faults = 0;
    let mut settle_until = None;

    loop {
        let now = sim.elapsed();
        let in_window = now < FAULTS_UNTIL;
        // End faults that are due (all of them once the window closes).
        if let Some(f) = &net_fault {
            let until = match f {
                Fault::Partition { until, .. } | Fault::Hold { until, .. } => *until,
                Fault::Crash { .. } => unreachable!(),
            };
            if now >= until || !in_window {
                match net_fault.take() {
                    Some(Fault::Partition { side, .. }) => {
                        for a in &side {
                            for b in names.iter().filter(|b| !side.contains(b)) {
                                sim.repair(a.as_str(), b.as_str());
                            }
                        }
                        checker
                            .trace
                            .push((now.as_millis(), format!("repair {side:?}")));
                    }
                    Some(Fault::Hold { a, b, .. }) => {
                        sim.release(a.as_str(), b.as_str());
                        checker
                            .trace
                            .push((now.as_millis(), format!("release {a}-{b}")));
                    }
                    _ => {}
                }
                next_net = now + rng.millis(100, 1500);
            }
        }
        if let Some(Fault::Crash { host, until }) = &crash_fault
            && (now >= *until || !in_window)
        {
            sim.bounce(host.as_str());
            checker
                .trace
                .push((now.as_millis(), format!("restart {host}")));
            crash_fault = None;
            next_crash = now + rng.millis(500, 3000);
        }
        // Start new faults.
        if in_window && now >= FAULTS_FROM {
            if net_fault.is_none() && now >= next_net {
                faults += 1;
                if rng.below(3) < 2 {
                    // A minority (1-2 nodes) or a majority (3 nodes) cut off from the rest.
                    let size = 1 + rng.below(3) as usize;
                    let mut side = names.clone();
                    while side.len() > size {
                        side.remove(rng.below(side.len() as u64) as usize);
                    }
                    for a in &side {
                        for b in names.iter().filter(|b| !side.contains(b)) {
                            sim.partition(a.as_str(), b.as_str());
                        }
                    }
                    checker
                        .trace
                        .push((now.as_millis(), format!("partition {side:?}")));
                    let until = now + rng.millis(300, 3000);
                    net_fault = Some(Fault::Partition { side, until });
                } else {
                    let a = names[rng.below(NODES as u64) as usize].clone();
                    let mut b = names[rng.below(NODES as u64) as usize].clone();
                    if a == b {
                        b = names[(names.iter().position(|n| *n == a).unwrap() + 1) % NODES]
                            .clone();
                    }
                    sim.hold(a.as_str(), b.as_str());
                    checker
                        .trace
                        .push((now.as_millis(), format!("hold {a}-{b}")));
                    let until = now + rng.millis(200, 2000);
                    net_fault = Some(Fault::Hold { a, b, until });
                }
            }
            if crash_fault.is_none() && now >= next_crash {
                faults += 1;
                let host = names[rng.below(NODES as u64) as usize].clone();
                // The driver forgets the node at once: its runtime, tasks and files go.
                registry.borrow_mut().remove(&host);
                sim.crash(host.as_str());
                checker
                    .trace
                    .push((now.as_millis(), format!("crash {host}")));
                let until = now + rng.millis(200, 3000);
                crash_fault = Some(Fault::Crash { host, until });
            }
        }

        sim.step().map_err(|e| format!("simulation: {e}"))?;
        let now = sim.elapsed();
        checker.sample(now, &registry)?;

        if now >= FAULTS_UNTIL && log.borrow().done {
            let deadline = *settle_until.get_or_insert(now + SETTLE);
            if converged(&registry) {
                break;
            }
            if now > deadline {
                return Err(format!(
                    "no convergence {SETTLE:?} after healing: {:?}",
                    registry
                        .borrow()
                        .iter()
                        .map(|(n, r)| (n.clone(), r.status()))
                        .collect::<Vec<_>>()
                ));
            }
        }
    }

    // Final state: all equal, every ack present, nothing invented.
    let reg = registry.borrow();
    let states: Vec<_> = reg.values().map(|r| r.state()).collect();
    let first = &states[0];
    if let Some((name, _)) = reg.iter().zip(&states).find(|(_, s)| *s != first) {
        return Err(format!("{}: final state differs", name.0));
    }
    let log = log.borrow();
    let present: BTreeSet<String> = first.destinations.keys().cloned().collect();
    if let Some(lost) = log.acked.difference(&present).next() {
        return Err(format!(
            "acknowledged create {lost} missing from the final state"
        ));
    }
    if let Some(extra) = present.difference(&log.attempted).next() {
        return Err(format!("{extra} in the final state but never proposed"));
    }
    let shared_terms = checker.shared_terms();
    let mut trace = checker.trace;
    trace.extend(log.events.iter().cloned());
    trace.sort();
    let mut h = DefaultHasher::new();
    trace.hash(&mut h);
    Ok(Outcome {
        acked: log.acked.len(),
        attempted: log.attempted.len(),
        faults,
        terms: checker.terms.values().max().copied().unwrap_or(0),
        shared_terms,
        trace_hash: h.finish(),
        trace,
    })
}

/// All five nodes up, naming the same leader in the same term, and applied to the same
/// index as far as the leader's log goes.
fn converged(registry: &Registry) -> bool {
    let reg = registry.borrow();
    if reg.len() < NODES {
        return false;
    }
    let statuses: Vec<_> = reg.values().map(|r| r.status()).collect();
    let s0 = &statuses[0];
    s0.leader.is_some()
        && s0.last_applied == s0.last_log_index
        && statuses.iter().all(|s| {
            s.leader == s0.leader
                && s.term == s0.term
                && s.last_applied == s0.last_applied
                && s.last_log_index == s0.last_log_index
        })
}

/// Raft fsyncs every write; on tmpfs that costs nothing, and the sim never crashes the OS.
fn shm_or_tmp() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("SWARMMQ_SIM_SEED") {
        return vec![s.parse().expect("SWARMMQ_SIM_SEED must be a u64")];
    }
    let n = std::env::var("SWARMMQ_SIM_SEEDS")
        .map(|s| s.parse().expect("SWARMMQ_SIM_SEEDS must be a count"))
        .unwrap_or(DEFAULT_SEEDS);
    (0..n).collect()
}

/// Runs one seed, turning a panic into a failure that names the seed.
fn run_reported(seed: u64) -> Result<Outcome, String> {
    match std::panic::catch_unwind(|| run_seed(seed)) {
        Ok(r) => r,
        Err(p) => Err(format!(
            "panicked: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    }
}

/// Runs `seeds` on a few threads (each simulation is single-threaded and self-contained).
fn run_many(seeds: Vec<u64>) -> Vec<(u64, Result<Outcome, String>)> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let queue = std::sync::Mutex::new(seeds.into_iter());
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap().next();
                    let Some(seed) = next else { break };
                    let started = std::time::Instant::now();
                    let r = run_reported(seed);
                    match &r {
                        Ok(o) => eprintln!(
                            "seed {seed}: ok, {}/{} acked, {} faults, last term {}, \
                             {} terms with 2+ leaders, trace {:016x} ({:?})",
                            o.acked,
                            o.attempted,
                            o.faults,
                            o.terms,
                            o.shared_terms,
                            o.trace_hash,
                            started.elapsed()
                        ),
                        Err(e) => {
                            eprintln!("seed {seed}: FAILED: {e} (replay: SWARMMQ_SIM_SEED={seed})")
                        }
                    }
                    results.lock().unwrap().push((seed, r));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(seed, _)| *seed);
    results
}

#[test]
fn metadata_group_keeps_acknowledged_writes_under_faults_for_many_seeds() {
    let results = run_many(seeds());
    let failed: Vec<_> = results
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(seed, _)| *seed)
        .collect();
    let acked: usize = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .map(|o| o.acked)
        .sum();
    assert!(failed.is_empty(), "failed seeds: {failed:?}");
    // The runs did real work: creates were acknowledged across the seeds.
    assert!(acked >= results.len() * 10, "only {acked} acked creates");
}

/// The same seed twice must give the same (time, event) trace. It does NOT today, which is
/// why this is ignored: openraft draws each election timeout and each node's first tick
/// phase from `AsyncRuntime::thread_rng()`, which for `TokioRuntime` is `rand::rng()`,
/// seeded from the OS. The type config would have to use
/// `openraft_rt::deterministic_rng::DeterministicRng<TokioRuntime>` (seeded per node) for
/// the runs to repeat. `cargo test -p swarmmq-cluster --test sim_metadata -- --ignored`
/// shows where two runs part.
#[test]
#[ignore = "openraft's election and tick randomness comes from an OS-seeded rng"]
fn same_seed_gives_same_trace() {
    for seed in [1, 2] {
        let a = run_reported(seed).unwrap();
        let b = run_reported(seed).unwrap();
        if a.trace != b.trace {
            let at = a.trace.iter().zip(&b.trace).position(|(x, y)| x != y);
            let at = at.unwrap_or(a.trace.len().min(b.trace.len()));
            panic!(
                "seed {seed}: traces part at event {at}: {:?} vs {:?} (common prefix: {:?})",
                a.trace.get(at),
                b.trace.get(at),
                &a.trace[at.saturating_sub(3)..at]
            );
        }
    }
}
