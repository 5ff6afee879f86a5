//! Gossip membership over real UDP on 127.0.0.1, with short gossip intervals.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use swarmmq_cluster::membership::{
    LoadReport, MemberState, MemberView, Membership, MembershipConfig, NodeAddrs,
};
use swarmmq_crypto::{ChannelKey, MasterKey};

const CLUSTER: &str = "test-cluster";
/// Test tuning: 2x faster rounds than production, same threshold.
const GOSSIP: Duration = Duration::from_millis(100);
const WAIT: Duration = Duration::from_secs(10);

fn key(master: u8) -> Arc<ChannelKey> {
    let master = MasterKey::from_bytes([master; 32]);
    Arc::new(ChannelKey::derive(&master, CLUSTER.as_bytes(), b"swarmmq/v1/gossip").unwrap())
}

fn addrs(i: u16) -> NodeAddrs {
    NodeAddrs {
        client: SocketAddr::from(([127, 0, 0, 1], 9000 + i)),
        http: SocketAddr::from(([127, 0, 0, 1], 8000 + i)),
        internal: SocketAddr::from(([127, 0, 0, 1], 7000 + i)),
    }
}

fn load(i: u16) -> LoadReport {
    LoadReport {
        publish_rate: f64::from(i) * 10.5,
        publish_p99_ms: f64::from(i) + 0.25,
        queue_depth: u64::from(i) * 100,
        disk_used: u64::from(i) << 20,
        partitions_led: u32::from(i),
    }
}

async fn node(
    i: u16,
    key: Arc<ChannelKey>,
    gossip_addr: SocketAddr,
    seeds: Vec<SocketAddr>,
) -> Membership {
    let mut cfg = MembershipConfig::new(CLUSTER, format!("node-{i}"), gossip_addr, addrs(i), key);
    cfg.seeds = seeds;
    cfg.gossip_interval = GOSSIP;
    cfg.version = format!("0.1.{i}");
    Membership::start(cfg).await.unwrap()
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Starts `n` nodes, all seeded with node 0 only.
async fn cluster(n: u16) -> Vec<Membership> {
    let seed = node(0, key(1), any_port(), vec![]).await;
    let seed_addr = seed.gossip_addr();
    let mut nodes = vec![seed];
    for i in 1..n {
        nodes.push(node(i, key(1), any_port(), vec![seed_addr]).await);
    }
    nodes
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

fn find<'a>(members: &'a [MemberView], id: &str) -> Option<&'a MemberView> {
    members.iter().find(|m| m.id == id)
}

fn all_alive(node: &Membership, n: usize) -> bool {
    let members = node.members();
    members.len() == n && members.iter().all(|m| m.state == MemberState::Alive)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_join_through_one_seed_and_see_each_others_addresses_and_load() {
    let nodes = cluster(5).await;
    for (i, n) in (0u16..).zip(&nodes) {
        n.set_load(load(i));
    }
    wait_until(
        "every node sees 5 alive members with their published state",
        || {
            nodes.iter().all(|n| {
                let members = n.members();
                all_alive(n, 5)
                    && (0u16..5).all(|i| {
                        find(&members, &format!("node-{i}")).is_some_and(|m| {
                            m.addrs == addrs(i)
                                && m.load == load(i)
                                && m.version == format!("0.1.{i}")
                        })
                    })
            })
        },
    )
    .await;

    for (i, n) in (0u16..).zip(&nodes) {
        let members = n.members();
        let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            ids,
            ["node-0", "node-1", "node-2", "node-3", "node-4"],
            "sorted by id"
        );
        let me: Vec<&MemberView> = members.iter().filter(|m| m.is_self).collect();
        assert_eq!(me.len(), 1);
        assert_eq!(me[0].id, format!("node-{i}"));
        assert_eq!(me[0].last_seen_ms, 0);
        assert!(members.iter().all(|m| m.last_seen_ms < 2_000));
        assert_eq!(n.rejected_datagrams(), 0, "same key: nothing rejected");
    }
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_set_on_one_node_reaches_all_and_bumps_no_watch() {
    let nodes = cluster(4).await;
    wait_until("4 alive everywhere", || {
        nodes.iter().all(|n| all_alive(n, 4))
    })
    .await;
    let changes = nodes[1].subscribe();
    let before = *changes.borrow();

    let new_load = LoadReport {
        publish_rate: 1234.5,
        publish_p99_ms: 7.5,
        queue_depth: 42,
        disk_used: 1 << 30,
        partitions_led: 3,
    };
    nodes[3].set_load(new_load);
    let took = wait_until("the new load reaches every node", || {
        nodes
            .iter()
            .all(|n| find(&n.members(), "node-3").is_some_and(|m| m.load == new_load))
    })
    .await;
    assert!(took < Duration::from_secs(2), "load took {took:?}");
    // A load change is not a liveness change.
    assert_eq!(*changes.borrow(), before);
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_is_dead_everywhere_and_alive_again_after_a_restart() {
    let mut nodes = cluster(4).await;
    wait_until("4 alive everywhere", || {
        nodes.iter().all(|n| all_alive(n, 4))
    })
    .await;
    let mut changes = nodes[0].subscribe();
    changes.borrow_and_update();

    let victim = nodes.pop().unwrap();
    let victim_addr = victim.gossip_addr();
    let old_generation = victim.generation();
    victim.shutdown().await;
    let took = wait_until("node-3 dead on every other node", || {
        nodes
            .iter()
            .all(|n| find(&n.members(), "node-3").is_some_and(|m| m.state == MemberState::Dead))
    })
    .await;
    eprintln!("dead detected everywhere after {took:?} (gossip every {GOSSIP:?})");
    assert!(changes.has_changed().unwrap(), "death bumps the watch");
    for n in &nodes {
        let members = n.members();
        assert_eq!(members.len(), 4, "a dead node stays listed");
        let dead = find(&members, "node-3").unwrap();
        assert_eq!(dead.addrs, addrs(3));
        assert!(
            dead.last_seen_ms >= 200,
            "silent for a while: {}",
            dead.last_seen_ms
        );
        assert!(
            members
                .iter()
                .filter(|m| m.id != "node-3")
                .all(|m| m.state == MemberState::Alive),
            "no false positive among the survivors"
        );
    }

    // Same id, same address: a new generation that must win over the dead one.
    let seed = nodes[0].gossip_addr();
    let restarted = node(3, key(1), victim_addr, vec![seed]).await;
    assert!(restarted.generation() > old_generation);
    nodes.push(restarted);
    changes.borrow_and_update();
    wait_until("node-3 alive again everywhere", || {
        nodes.iter().all(|n| all_alive(n, 4))
    })
    .await;
    assert!(changes.has_changed().unwrap(), "revival bumps the watch");
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_key_never_appears_and_its_datagrams_are_rejected() {
    let nodes = cluster(3).await;
    wait_until("3 alive everywhere", || {
        nodes.iter().all(|n| all_alive(n, 3))
    })
    .await;
    let seed = nodes[0].gossip_addr();
    let stranger = node(9, key(2), any_port(), vec![seed]).await;

    wait_until("the seed rejects the stranger's gossip", || {
        nodes[0].rejected_datagrams() >= 5
    })
    .await;
    // Give it many more rounds to sneak in.
    tokio::time::sleep(GOSSIP * 10).await;
    for n in &nodes {
        let members = n.members();
        assert!(find(&members, "node-9").is_none(), "stranger listed");
        assert_eq!(members.len(), 3);
    }
    let seen_by_stranger = stranger.members();
    assert_eq!(seen_by_stranger.len(), 1, "the stranger learns nothing");
    assert!(seen_by_stranger[0].is_self);
    stranger.shutdown().await;
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_are_rejected_and_counted_and_the_node_keeps_working() {
    let nodes = cluster(2).await;
    wait_until("2 alive", || nodes.iter().all(|n| all_alive(n, 2))).await;
    let target = nodes[0].gossip_addr();
    let before = nodes[0].rejected_datagrams();

    let attacker = tokio::net::UdpSocket::bind(any_port()).await.unwrap();
    // Right header and length, wrong key.
    let mut forged = vec![0x53, 0x47, 0x01];
    forged.extend_from_slice(&[7u8; 12 + 100]);
    // Sealed with the right key, but the plaintext is not a chitchat message: exercises
    // the path where the payload opens and then fails to parse.
    let mut sealed_junk = b"not a chitchat message".to_vec();
    let nonce = [3u8; 12];
    key(1)
        .seal(nonce, &[0x53, 0x47, 0x01], &mut sealed_junk)
        .unwrap();
    let mut authentic_junk = vec![0x53, 0x47, 0x01];
    authentic_junk.extend_from_slice(&nonce);
    authentic_junk.extend_from_slice(&sealed_junk);
    let datagrams: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"hello".to_vec(),
        vec![0xff; 1500],
        vec![0u8; 65_507],
        forged,
        authentic_junk,
    ];
    // Round by round: a burst of 64 KiB datagrams would overflow the socket's receive
    // buffer, and the kernel (not the node) would drop them uncounted.
    let mut expected = before;
    for _ in 0..10 {
        for d in &datagrams {
            attacker.send_to(d, target).await.unwrap();
        }
        expected += datagrams.len() as u64;
        wait_until("every garbage datagram counted", || {
            nodes[0].rejected_datagrams() >= expected
        })
        .await;
        // Valid gossip is never counted, so the count is exact.
        assert_eq!(nodes[0].rejected_datagrams(), expected);
    }

    let fresh = LoadReport {
        queue_depth: 777,
        ..LoadReport::default()
    };
    nodes[1].set_load(fresh);
    wait_until("gossip still flows after the garbage", || {
        find(&nodes[0].members(), "node-1").is_some_and(|m| m.load == fresh)
    })
    .await;
    assert!(nodes.iter().all(|n| all_alive(n, 2)));
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn unusable_configs_are_refused() {
    let base = || MembershipConfig::new(CLUSTER, "node-1", any_port(), addrs(1), key(1));
    let mut cfg = base();
    cfg.gossip_addr = SocketAddr::from(([0, 0, 0, 0], 0));
    assert!(
        Membership::start(cfg).await.is_err(),
        "unspecified advertise IP"
    );
    let mut cfg = base();
    cfg.node_id = String::new();
    assert!(Membership::start(cfg).await.is_err(), "empty node id");
    let mut cfg = base();
    cfg.node_id = "x".repeat(500);
    assert!(Membership::start(cfg).await.is_err(), "oversize node id");
    let mut cfg = base();
    cfg.phi_threshold = f64::NAN;
    assert!(Membership::start(cfg).await.is_err(), "NaN threshold");
    let mut cfg = base();
    cfg.dead_grace = Duration::from_millis(100);
    assert!(
        Membership::start(cfg).await.is_err(),
        "grace shorter than 20 rounds"
    );
    let m = Membership::start(base()).await.unwrap();
    assert_ne!(m.gossip_addr().port(), 0, "port 0 resolved");
    assert_eq!(m.members().len(), 1);
    m.shutdown().await;
}
