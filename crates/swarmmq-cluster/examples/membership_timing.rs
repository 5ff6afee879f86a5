//! Measures gossip membership with the production defaults, all nodes in one process
//! on 127.0.0.1:
//!
//! - how long until a killed node is dead on every other node (several trials);
//! - how long a new node and a load change take to reach all of 7 nodes;
//! - whether any false "dead"/"suspect" shows up idle and with both cores kept busy.
//!
//! `cargo run -p swarmmq-cluster --example membership_timing [trials] [watch_secs] [nodes]`
//! (defaults: 5 trials, 20 s watches, 5 nodes in the detection trials).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use swarmmq_cluster::membership::{
    DEFAULT_GOSSIP_INTERVAL, DEFAULT_PHI_THRESHOLD, LoadReport, MemberState, Membership,
    MembershipConfig, NodeAddrs,
};
use swarmmq_crypto::{ChannelKey, MasterKey};

fn key() -> Arc<ChannelKey> {
    let master = MasterKey::from_bytes([7; 32]);
    Arc::new(ChannelKey::derive(&master, b"timing", b"swarmmq/v1/gossip").expect("key"))
}

async fn node(i: u16, seeds: Vec<SocketAddr>) -> Membership {
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let addrs = NodeAddrs {
        client: SocketAddr::from(([127, 0, 0, 1], 9000 + i)),
        http: SocketAddr::from(([127, 0, 0, 1], 8000 + i)),
        internal: SocketAddr::from(([127, 0, 0, 1], 7000 + i)),
    };
    let mut cfg = MembershipConfig::new("timing", format!("node-{i}"), addr, addrs, key());
    cfg.seeds = seeds;
    Membership::start(cfg).await.expect("start")
}

async fn cluster(n: u16) -> Vec<Membership> {
    let seed = node(0, vec![]).await;
    let seed_addr = seed.gossip_addr();
    let mut nodes = vec![seed];
    for i in 1..n {
        nodes.push(node(i, vec![seed_addr]).await);
    }
    nodes
}

fn all_alive(nodes: &[Membership], n: usize) -> bool {
    nodes.iter().all(|m| {
        let members = m.members();
        members.len() == n && members.iter().all(|v| v.state == MemberState::Alive)
    })
}

async fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Some(start.elapsed())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Kills the last of `n` nodes and times, per survivor, when it reports it dead.
async fn detection_trial(n: u16) -> Option<(Vec<f64>, usize)> {
    let mut nodes = cluster(n).await;
    wait_for(Duration::from_secs(10), || {
        all_alive(&nodes, usize::from(n))
    })
    .await?;
    let victim_id = format!("node-{}", n - 1);
    // Let the failure detector learn the normal heartbeat rhythm, as in a running cluster.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let victim = nodes.pop()?;
    let killed = Instant::now();
    victim.shutdown().await;
    let mut seen: Vec<Option<f64>> = vec![None; nodes.len()];
    let mut false_positives = 0;
    while seen.iter().any(Option::is_none) && killed.elapsed() < Duration::from_secs(15) {
        for (slot, m) in seen.iter_mut().zip(&nodes) {
            let members = m.members();
            if slot.is_none()
                && members
                    .iter()
                    .any(|v| v.id == victim_id && v.state == MemberState::Dead)
            {
                *slot = Some(killed.elapsed().as_secs_f64());
            }
            false_positives += members
                .iter()
                .filter(|v| v.id != victim_id && v.state == MemberState::Dead)
                .count();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for m in nodes {
        m.shutdown().await;
    }
    Some((
        seen.into_iter().collect::<Option<Vec<_>>>()?,
        false_positives,
    ))
}

/// Counts observations of a live node as suspect or dead over `secs`.
async fn watch(nodes: &[Membership], secs: u64) -> (usize, usize) {
    let (mut suspect, mut dead) = (0, 0);
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        for m in nodes {
            for v in m.members() {
                match v.state {
                    MemberState::Suspect => suspect += 1,
                    MemberState::Dead => dead += 1,
                    MemberState::Alive => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (suspect, dead)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let trials: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let watch_secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let size: u16 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5).max(2);
    println!("defaults: gossip {DEFAULT_GOSSIP_INTERVAL:?}, phi threshold {DEFAULT_PHI_THRESHOLD}");

    let mut firsts = Vec::new();
    let mut lasts = Vec::new();
    let mut all = Vec::new();
    for t in 0..trials {
        match detection_trial(size).await {
            Some((times, fp)) => {
                let first = times.iter().copied().fold(f64::INFINITY, f64::min);
                let last = times.iter().copied().fold(0.0, f64::max);
                println!(
                    "trial {t}: dead on first survivor {first:.2}s, on all {last:.2}s, \
                     per survivor {times:.2?}, false dead sightings {fp}"
                );
                firsts.push(first);
                lasts.push(last);
                all.extend(times);
            }
            None => println!("trial {t}: not detected within 15 s"),
        }
    }
    println!(
        "detection ({size} nodes, {trials} trials): median per survivor {:.2}s, \
         median until all {:.2}s, worst {:.2}s",
        median(all),
        median(lasts.clone()),
        lasts.iter().copied().fold(0.0, f64::max)
    );

    // Convergence with 7 nodes: 6 running, a 7th joins, then changes its load.
    let mut nodes = cluster(6).await;
    wait_for(Duration::from_secs(10), || all_alive(&nodes, 6)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seed = nodes[0].gossip_addr();
    let started = Instant::now();
    nodes.push(node(6, vec![seed]).await);
    let listed = wait_for(Duration::from_secs(10), || {
        nodes
            .iter()
            .all(|m| m.members().iter().any(|v| v.id == "node-6"))
    })
    .await;
    let alive = wait_for(Duration::from_secs(10), || all_alive(&nodes, 7)).await;
    println!(
        "join of a 7th node: listed (state arrived) everywhere after {:?}, alive everywhere after {:?}",
        listed.map(|_| started.elapsed()),
        alive.map(|_| started.elapsed())
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    for round in 0..5u64 {
        let load = LoadReport {
            queue_depth: 1000 + round,
            ..LoadReport::default()
        };
        nodes[6].set_load(load);
        let took = wait_for(Duration::from_secs(10), || {
            nodes.iter().all(|m| {
                m.members()
                    .iter()
                    .any(|v| v.id == "node-6" && v.load == load)
            })
        })
        .await;
        println!("load change on 1 of 7 reached all after {took:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let (s, d) = watch(&nodes, watch_secs).await;
    println!("idle {watch_secs}s, 7 nodes: suspect sightings {s}, dead sightings {d}");

    // Both cores busy: two spinning OS threads compete with the runtime's two workers.
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            })
        })
        .collect();
    let (s, d) = watch(&nodes, watch_secs).await;
    stop.store(true, Ordering::Relaxed);
    for t in spinners {
        let _ = t.join();
    }
    println!("cpu-loaded {watch_secs}s, 7 nodes: suspect sightings {s}, dead sightings {d}");
    for m in nodes {
        m.shutdown().await;
    }
}
