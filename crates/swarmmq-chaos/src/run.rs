//! One chaos run: start the cluster, create the destination, run the workload, inject
//! the seeded faults, heal, drain, check, stop. Everything is bounded in time: the
//! fault phase by `duration`, healing by the harness's start timeout, draining by
//! `drain_timeout`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use swarmmq_client::{Admin, DestinationConfig};
use tokio_util::sync::CancellationToken;

use crate::checker::{CheckInput, CheckReport, Checker, MetadataView, Observations};
use crate::error::ChaosError;
use crate::harness::{ClusterHarness, HarnessConfig, MAX_NODES, cluster_view};
use crate::history::Recorder;
use crate::schedule::{FaultKind, ScheduleConfig, ScheduledFault, schedule};
use crate::workload::{ConsumerStats, ProducerStats, Workload, WorkloadConfig};

/// Longest wait for a graceful stop before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(20);
/// Most status polls kept for the leader-per-term check.
const MAX_VIEWS: usize = 100_000;
const DESTINATION: &str = "chaos";
const GROUP: &str = "chaos-checker";

/// Everything a run is made of.
#[derive(Clone, Debug)]
pub struct ChaosConfig {
    /// The `swarmmq` executable the nodes run.
    pub binary: PathBuf,
    /// Node directories go under it.
    pub dir: PathBuf,
    pub seed: u64,
    pub nodes: usize,
    /// How long faults are injected while the workload runs.
    pub duration: Duration,
    pub fault_every: Duration,
    pub faults: Vec<FaultKind>,
    pub partitions: u32,
    pub producers: usize,
    pub consumers: usize,
    pub rate_per_producer: u32,
    /// The destination's lease (visibility timeout): how soon an unacked delivery
    /// comes back.
    pub ack_timeout: Duration,
    /// Longest drain after the faults, once the cluster is healed.
    pub drain_timeout: Duration,
    pub keyed: bool,
    /// Each node in its own network namespace (root and `ip` needed); required by
    /// [`FaultKind::Partition`].
    pub netns: bool,
}

impl ChaosConfig {
    /// The defaults of `swarmmq chaos run`.
    pub fn new(binary: impl Into<PathBuf>, dir: impl Into<PathBuf>, seed: u64) -> ChaosConfig {
        ChaosConfig {
            binary: binary.into(),
            dir: dir.into(),
            seed,
            nodes: 5,
            duration: Duration::from_secs(120),
            fault_every: Duration::from_secs(10),
            faults: FaultKind::PROCESS.to_vec(),
            partitions: 6,
            producers: 2,
            consumers: 2,
            rate_per_producer: 200,
            ack_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(60),
            keyed: false,
            netns: false,
        }
    }

    pub fn validate(&self) -> Result<(), ChaosError> {
        let bad = |m: String| Err(ChaosError::Config(m));
        if self.nodes == 0 || self.nodes > MAX_NODES {
            return bad(format!("nodes must be 1 to {MAX_NODES}"));
        }
        if self.partitions == 0 || self.partitions > 1024 {
            return bad("partitions must be 1 to 1024".into());
        }
        if self.producers == 0 || self.producers > 64 || self.consumers == 0 || self.consumers > 64
        {
            return bad("producers and consumers must be 1 to 64".into());
        }
        if self.rate_per_producer == 0 || self.rate_per_producer > 50_000 {
            return bad("the rate per producer must be 1 to 50000 messages/s".into());
        }
        if self.duration > Duration::from_secs(24 * 3600) || self.duration.is_zero() {
            return bad("duration must be more than 0 and at most 24h".into());
        }
        if self.fault_every < Duration::from_millis(500) {
            return bad("fault-every must be at least 500ms".into());
        }
        if self.ack_timeout < Duration::from_secs(1) {
            return bad("ack timeout must be at least 1s".into());
        }
        if !self.netns
            && let Some(k) = self.faults.iter().find(|k| k.needs_netns())
        {
            return bad(format!(
                "the {k} fault needs network namespaces: add --netns (root only)"
            ));
        }
        if self.faults.contains(&FaultKind::Partition) && self.nodes < 2 {
            return bad("a partition needs at least 2 nodes".into());
        }
        Ok(())
    }

    pub fn schedule(&self) -> Vec<ScheduledFault> {
        schedule(&ScheduleConfig {
            seed: self.seed,
            nodes: self.nodes,
            duration: self.duration,
            fault_every: self.fault_every,
            faults: self.faults.clone(),
        })
    }
}

/// A fault as it happened.
#[derive(Clone, Debug, Serialize)]
pub struct FaultRecord {
    /// When it started, from the start of the workload.
    pub at_ms: u64,
    pub scheduled_ms: u64,
    pub kind: FaultKind,
    pub node: String,
    /// The PID signalled (the old process for kill and restart).
    pub pid: Option<u32>,
    /// How long it took, restart included.
    pub took_ms: u64,
    /// What happened, in a few words.
    pub detail: String,
    /// False when the fault could not be carried out as planned (a node that did not
    /// come back in time, say).
    pub ok: bool,
}

/// The outcome of a run.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub seed: u64,
    pub nodes: usize,
    pub partitions: u32,
    pub duration_ms: u64,
    pub schedule: Vec<ScheduledFault>,
    pub faults: Vec<FaultRecord>,
    /// Nodes that ended by themselves during the run (not by a fault).
    pub crashes: Vec<String>,
    /// Nodes the final heal had to start.
    pub healed: Vec<String>,
    pub drain_ms: u64,
    pub drain_note: String,
    pub producers: Vec<ProducerStats>,
    pub consumers: Vec<ConsumerStats>,
    pub check: CheckReport,
    pub elapsed_ms: u64,
}

impl RunReport {
    /// Every check passed, no node crashed and every fault was carried out.
    pub fn passed(&self) -> bool {
        self.check.passed() && self.crashes.is_empty() && self.faults.iter().all(|f| f.ok)
    }
}

pub(crate) fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// Runs one chaos run. `log` gets one line per event (the seed first, then each
/// fault). `cancel` stops the run at once: every node is killed by its PID.
pub async fn run(
    config: &ChaosConfig,
    log: &(dyn Fn(&str) + Sync),
    cancel: &CancellationToken,
) -> Result<RunReport, ChaosError> {
    config.validate()?;
    log(&format!("seed {}", config.seed));
    tokio::select! {
        r = run_inner(config, log) => r,
        _ = cancel.cancelled() => Err(ChaosError::Interrupted),
    }
}

async fn run_inner(
    config: &ChaosConfig,
    log: &(dyn Fn(&str) + Sync),
) -> Result<RunReport, ChaosError> {
    let started = Instant::now();
    let plan = config.schedule();
    log(&format!(
        "{} faults planned over {:?} ({}); {} nodes, {} partitions, {} producers, {} consumers",
        plan.len(),
        config.duration,
        config
            .faults
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(","),
        config.nodes,
        config.partitions,
        config.producers,
        config.consumers
    ));
    let mut harness_config = HarnessConfig::new(&config.binary, &config.dir, config.nodes);
    harness_config.netns = config.netns;
    let mut harness = ClusterHarness::start(harness_config).await?;
    log(&format!(
        "cluster of {} formed in {:?} under {}",
        config.nodes,
        started.elapsed(),
        config.dir.display()
    ));
    if let Some(lab) = harness.netns() {
        log(&format!(
            "network namespaces {} to {}; nodes at {} to {}, this side at {}",
            lab.namespace(0),
            lab.namespace(lab.len() - 1),
            lab.node_ip(0),
            lab.node_ip(lab.len() - 1),
            lab.root_ip()
        ));
    }
    create_destination(&harness, config).await?;

    // Every task below ends when this guard drops (the run ends or is interrupted).
    let tasks = CancellationToken::new();
    let _tasks_guard = tasks.clone().drop_guard();
    let views = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(poll_views(
        harness.http_addrs(),
        Arc::clone(&views),
        tasks.clone(),
        Instant::now(),
    ));

    let per_producer = u64::from(config.rate_per_producer)
        .saturating_mul(config.duration.as_secs().saturating_add(1))
        .saturating_mul(2);
    let recorder = Recorder::new(
        usize::try_from(per_producer.saturating_mul(config.producers as u64 * 4))
            .unwrap_or(usize::MAX)
            .clamp(10_000, 50_000_000),
    );
    let wl = WorkloadConfig {
        destination: DESTINATION.into(),
        group: GROUP.into(),
        producers: config.producers,
        consumers: config.consumers,
        rate_per_producer: config.rate_per_producer,
        batch: (config.rate_per_producer as usize / 20).clamp(1, 500),
        call_timeout: Duration::from_secs(6),
        max_messages_per_producer: per_producer,
        keyed: config.keyed,
    };
    let mut workload = Workload::start(&wl, harness.client_addrs(), &recorder, &tasks);
    let t0 = Instant::now();

    let mut faults = Vec::with_capacity(plan.len());
    let mut crashes = Vec::new();
    for f in &plan {
        wait_until(&mut harness, t0 + f.at, &mut crashes, log, t0).await;
        let record = inject(&mut harness, f, t0).await;
        log(&format!(
            "+{:>7.1}s  {:<11} {:<7} {}{}",
            record.at_ms as f64 / 1000.0,
            record.kind.name(),
            record.node,
            record.detail,
            if record.ok { "" } else { "  [NOT AS PLANNED]" }
        ));
        faults.push(record);
    }
    wait_until(&mut harness, t0 + config.duration, &mut crashes, log, t0).await;

    log("faults over: healing the cluster");
    let healed = harness.heal().await?;
    if !healed.is_empty() {
        log(&format!("started again: {}", healed.join(", ")));
    }
    let producers = workload.stop_producers().await;
    log(&format!(
        "producers stopped: {} acknowledged; draining",
        producers.iter().map(|p| p.acked).sum::<u64>()
    ));
    let drain_started = Instant::now();
    let drain_note = drain(&workload, &recorder, config).await;
    let drain_ms = ms(drain_started.elapsed());
    log(&format!("drain: {drain_note} after {drain_ms} ms"));
    let consumers = workload.stop_consumers().await;
    crashes.extend(harness.crashed());

    let history = recorder.snapshot();
    let observations = Observations {
        metadata_views: views.lock().map(|v| v.clone()).unwrap_or_default(),
    };
    let check = Checker::standard().run(&CheckInput {
        history: &history,
        observations: &observations,
    });
    tasks.cancel();
    for e in harness.shutdown(STOP_GRACE).await {
        log(&format!("cleanup: {e}"));
    }
    Ok(RunReport {
        seed: config.seed,
        nodes: config.nodes,
        partitions: config.partitions,
        duration_ms: ms(config.duration),
        schedule: plan,
        faults,
        crashes,
        healed,
        drain_ms,
        drain_note,
        producers,
        consumers,
        check,
        elapsed_ms: ms(started.elapsed()),
    })
}

async fn create_destination(
    harness: &ClusterHarness,
    config: &ChaosConfig,
) -> Result<(), ChaosError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let dest = DestinationConfig {
        ack_timeout_ms: Some(ms(config.ack_timeout)),
        ..DestinationConfig::default()
    };
    let addrs = harness.client_addrs();
    let mut last = String::new();
    while Instant::now() < deadline {
        for addr in &addrs {
            let attempt = async {
                let admin = Admin::connect(addr.as_str()).await?;
                admin
                    .create_destination(DESTINATION, config.partitions, dest.clone())
                    .await
            };
            match tokio::time::timeout(Duration::from_secs(5), attempt).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = "timed out".into(),
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(ChaosError::Timeout(format!(
        "cannot create the destination: {last}"
    )))
}

/// Sleeps until `at`, noting nodes that end by themselves meanwhile.
async fn wait_until(
    harness: &mut ClusterHarness,
    at: Instant,
    crashes: &mut Vec<String>,
    log: &(dyn Fn(&str) + Sync),
    t0: Instant,
) {
    loop {
        for c in harness.crashed() {
            log(&format!(
                "+{:>7.1}s  CRASH: {c}",
                t0.elapsed().as_secs_f64()
            ));
            crashes.push(c);
        }
        let now = Instant::now();
        if now >= at {
            return;
        }
        tokio::time::sleep((at - now).min(Duration::from_millis(500))).await;
    }
}

/// Carries out one fault.
async fn inject(harness: &mut ClusterHarness, f: &ScheduledFault, t0: Instant) -> FaultRecord {
    let began = Instant::now();
    let at_ms = ms(t0.elapsed());
    let mut target = f.target.min(harness.len().saturating_sub(1));
    let mut detail = String::new();
    if f.kind == FaultKind::KillLeader {
        match harness.leader().await {
            Some(l) => target = l,
            None => detail.push_str("no leader known: the planned node instead; "),
        }
    }
    let ids = harness.ids();
    let node = if f.kind == FaultKind::Partition {
        f.minority
            .iter()
            .filter_map(|&i| ids.get(i).cloned())
            .collect::<Vec<_>>()
            .join("+")
    } else {
        ids.get(target).cloned().unwrap_or_default()
    };
    let outcome: Result<(Option<u32>, String), ChaosError> = async {
        match f.kind {
            FaultKind::Kill | FaultKind::KillLeader => {
                let pid = harness.kill9(target)?;
                tokio::time::sleep(f.hold).await;
                let new = harness.restart(target).await?;
                Ok((
                    pid,
                    format!("SIGKILL, down {} ms, restarted as pid {new}", ms(f.hold)),
                ))
            }
            FaultKind::Pause => {
                let pid = harness.pause(target)?;
                tokio::time::sleep(f.hold).await;
                harness.resume(target)?;
                Ok((pid, format!("SIGSTOP for {} ms, SIGCONT", ms(f.hold))))
            }
            FaultKind::Partition => {
                harness.partition(&f.minority)?;
                tokio::time::sleep(f.hold).await;
                harness.heal_partition()?;
                let majority: Vec<&str> = ids
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !f.minority.contains(i))
                    .map(|(_, id)| id.as_str())
                    .collect();
                Ok((
                    None,
                    format!(
                        "cut off from {} (and the clients) for {} ms, healed",
                        majority.join("+"),
                        ms(f.hold)
                    ),
                ))
            }
            FaultKind::Restart => {
                let pid = harness.nodes().get(target).and_then(|n| n.pid());
                let graceful = harness.graceful_restart(target, STOP_GRACE).await?;
                let new = harness
                    .nodes()
                    .get(target)
                    .and_then(|n| n.pid())
                    .unwrap_or(0);
                Ok((
                    pid,
                    format!(
                        "SIGTERM, {}, restarted as pid {new}",
                        if graceful {
                            "stopped gracefully"
                        } else {
                            "SIGKILL after the grace period"
                        }
                    ),
                ))
            }
        }
    }
    .await;
    let (pid, ok) = match outcome {
        Ok((pid, what)) => {
            detail.push_str(&what);
            (pid, true)
        }
        Err(e) => {
            detail.push_str(&format!("failed: {e}"));
            (None, false)
        }
    };
    let pid_text = pid.map(|p| format!("pid {p}: ")).unwrap_or_default();
    FaultRecord {
        at_ms,
        scheduled_ms: ms(f.at),
        kind: f.kind,
        node,
        pid,
        took_ms: ms(began.elapsed()),
        detail: format!("{pid_text}{detail}"),
        ok,
    }
}

/// Lets the consumers run until the history can settle no further: every acknowledged
/// message delivered, and either every one of them confirmed acked with 2 s of quiet,
/// or a lease time and 2 s of quiet (an unconfirmed ack that did apply never comes
/// back; one that did not comes back within a lease). Gives up after two lease times
/// of quiet with messages still undelivered, or at `drain_timeout`. Returns why it
/// stopped.
async fn drain(workload: &Workload, recorder: &Recorder, config: &ChaosConfig) -> String {
    let deadline = Instant::now() + config.drain_timeout;
    let quiet = Duration::from_secs(2);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let idle = workload.idle();
        let (undelivered, unconfirmed) = {
            let h = recorder.lock();
            let confirmed: HashSet<&str> = h.acks.iter().map(|a| a.id.as_str()).collect();
            let delivered: HashSet<&str> = h
                .pulls
                .iter()
                .flat_map(|p| &p.deliveries)
                .map(|d| d.id.as_str())
                .collect();
            (
                h.acked
                    .iter()
                    .filter(|a| !delivered.contains(a.id.as_str()))
                    .count(),
                h.acked
                    .iter()
                    .filter(|a| !confirmed.contains(a.id.as_str()))
                    .count(),
            )
        };
        if undelivered == 0 && unconfirmed == 0 && idle >= quiet {
            return "every acknowledged message consumed and its ack confirmed".into();
        }
        if undelivered == 0 && idle >= config.ack_timeout + quiet {
            return format!(
                "every acknowledged message consumed; {unconfirmed} acks unconfirmed and not redelivered within a lease"
            );
        }
        if idle >= config.ack_timeout * 2 + quiet {
            return format!(
                "idle for {idle:?} with {undelivered} acknowledged messages never delivered"
            );
        }
        if Instant::now() >= deadline {
            return format!(
                "drain timeout {:?} with {undelivered} acknowledged messages never delivered",
                config.drain_timeout
            );
        }
    }
}

/// Polls every node's cluster status every 500 ms for the leader-per-term check.
async fn poll_views(
    addrs: Vec<SocketAddr>,
    views: Arc<Mutex<Vec<MetadataView>>>,
    stop: CancellationToken,
    t0: Instant,
) {
    loop {
        for addr in &addrs {
            let v = tokio::select! {
                _ = stop.cancelled() => return,
                v = cluster_view(*addr) => v,
            };
            if let Some(v) = v
                && let Ok(mut all) = views.lock()
                && all.len() < MAX_VIEWS
            {
                all.push(MetadataView {
                    at_ms: ms(t0.elapsed()),
                    observer: v.observer,
                    term: v.term,
                    leader: v.leader,
                });
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}
