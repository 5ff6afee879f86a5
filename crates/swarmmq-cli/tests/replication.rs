//! Per-partition Raft replication with real processes (`cluster.replication: raft`): a
//! 3-node cluster, one partition with 3 replicas, publishes acknowledged by a majority,
//! SIGKILL of the partition leader in the middle, publishes carrying on after the new
//! leader is elected, every message consumed exactly once through another node, and
//! the three partition logs byte-identical once the killed node is back.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{NodeProcess, free_port, ok, swarmmq};
use serde_json::Value;
use swarmmq_client::Connection;
use swarmmq_protocol::{Acks, PublishMessage, PublishRequest, Request, Response};
use swarmmq_storage::{LogConfig, PartitionLog};
use swarmmq_types::MessageId;

const KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
const DEST: &str = "replicated";
const TOTAL: usize = 1200;
const PER_REQUEST: usize = 10;

fn config_text(id: usize, internal: &[u16]) -> String {
    let mut s = format!(
        "node:\n  id: node-{id}\ncluster:\n  name: repl\n  replication: raft\n  replication_factor: 3\n  internal_port: {}\n  nodes:\n",
        internal[id - 1]
    );
    for (i, p) in internal.iter().enumerate() {
        s.push_str(&format!(
            "    - id: node-{}\n      address: \"127.0.0.1:{p}\"\n",
            i + 1
        ));
    }
    s
}

fn describe(node: &NodeProcess) -> Option<Value> {
    let out = swarmmq(
        &["topic", "describe", DEST, "--node", &node.addr(), "--json"],
        None,
    );
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn leader_seen_by(node: &NodeProcess) -> Option<String> {
    describe(node)?["partitions"][0]["leader"]
        .as_str()
        .map(str::to_string)
}

fn request(first: usize) -> Request {
    Request::Publish(PublishRequest {
        destination: DEST.to_string(),
        acks: Acks::All,
        partition: None,
        messages: (first..first + PER_REQUEST)
            .map(|i| PublishMessage {
                id: Some(MessageId::Text(format!("id-{i:05}"))),
                key: None,
                headers: Vec::new(),
                priority: 5,
                deliver_at_ms: None,
                ttl_ms: None,
                payload: Bytes::from(format!("m-{i:05}")),
            })
            .collect(),
    })
}

/// Publishes one request, retrying (same ids: the dedup window makes a retry of a
/// stored message a duplicate answer, not a second copy) until it is acknowledged.
/// Returns when it was acknowledged.
async fn publish_until_acked(conn: &mut Connection, addr: &str, first: usize) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(20);
    let req = request(first);
    loop {
        if conn.is_closed() {
            *conn = Connection::connect(addr).await.unwrap();
        }
        match conn.call(&req).await {
            Ok(Response::Publish(r)) => {
                let n: u32 = r.runs.iter().map(|r| r.count).sum();
                assert_eq!(n as usize, PER_REQUEST);
                return Instant::now();
            }
            Ok(other) => panic!("publish answered {other:?}"),
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "publish of {first} never acknowledged: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The partition's segment files, concatenated.
fn log_bytes(data_dir: &Path) -> Vec<u8> {
    let dir = data_dir
        .join("destinations")
        .join(DEST)
        .join("partitions/0");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap_or_default())
        .collect()
}

/// Every batch below `upto`, as stored, read with the storage crate.
fn batches(data_dir: &Path, upto: u64) -> Vec<Bytes> {
    let dir = data_dir
        .join("destinations")
        .join(DEST)
        .join("partitions/0");
    let (log, _) = PartitionLog::open(&dir, LogConfig::default()).unwrap();
    let reader = log.reader();
    let mut out = Vec::new();
    let mut off = reader.start_offset();
    while off < upto {
        let got = reader.read(off, 1 << 20, upto).unwrap();
        let Some(next) = got.next_offset() else { break };
        out.extend(got.batches.into_iter().map(|b| b.into_bytes()));
        off = next;
    }
    out
}

#[test]
fn a_replicated_partition_survives_sigkill_of_its_leader_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let internal: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut nodes: Vec<NodeProcess> = (1..=3)
        .map(|id| {
            let cfg = root.join(format!("node-{id}.yaml"));
            std::fs::write(&cfg, config_text(id, &internal)).unwrap();
            NodeProcess::start_with(
                &root.join(format!("node-{id}")),
                &["--config", cfg.to_str().unwrap()],
                &[("SWARMMQ_MASTER_KEY", KEY)],
            )
        })
        .collect();
    let started = Instant::now();
    // Creating the destination needs the metadata leader; retry until the cluster formed.
    loop {
        let out = swarmmq(
            &[
                "topic",
                "create",
                DEST,
                "--partitions",
                "1",
                "--node",
                &nodes[0].addr(),
            ],
            None,
        );
        if out.status.success() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "topic create failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            nodes[0].log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();

    // The first publishes go through node-1 until the group has a leader.
    let entry0 = nodes[0].addr();
    rt.block_on(async {
        let mut conn = Connection::connect(entry0.as_str()).await.unwrap();
        for first in (0..TOTAL / 4).step_by(PER_REQUEST) {
            publish_until_acked(&mut conn, &entry0, first).await;
        }
    });
    let leader = leader_seen_by(&nodes[0]).expect("a partition leader");
    let leader_ix: usize = leader.trim_start_matches("node-").parse::<usize>().unwrap() - 1;
    let entry_ix = (leader_ix + 1) % 3;
    let other_ix = (leader_ix + 2) % 3;
    eprintln!(
        "formed, destination created and {} messages acknowledged in {:?}; partition leader {leader}",
        TOTAL / 4,
        started.elapsed()
    );

    // Publish the rest through a follower; SIGKILL the leader half way.
    let entry = nodes[entry_ix].addr();
    let (mut killed_at, mut served_after, mut longest_gap) = (None, None, Duration::ZERO);
    rt.block_on(async {
        let mut conn = Connection::connect(entry.as_str()).await.unwrap();
        let mut last = Instant::now();
        for first in (TOTAL / 4..TOTAL).step_by(PER_REQUEST) {
            if first == TOTAL / 2 {
                nodes[leader_ix].kill9();
                killed_at = Some(Instant::now());
            }
            let acked = publish_until_acked(&mut conn, &entry, first).await;
            if let Some(k) = killed_at {
                served_after.get_or_insert(acked - k);
            }
            longest_gap = longest_gap.max(acked - last);
            last = acked;
        }
    });
    let window = served_after.unwrap();
    let new_leader = leader_seen_by(&nodes[entry_ix]).unwrap();
    assert_ne!(new_leader, leader, "a new leader was elected");
    eprintln!(
        "leader {leader} SIGKILLed: first publish acknowledged {window:?} later (new leader \
         {new_leader}); longest gap between acknowledgements {longest_gap:?}"
    );
    assert!(window < Duration::from_secs(10), "failover took {window:?}");

    // Everything is consumed exactly once, through the node that was not the entry.
    let consumed: Vec<Value> = ok(&swarmmq(
        &[
            "consume",
            "--node",
            &nodes[other_ix].addr(),
            "-d",
            DEST,
            "--format",
            "json",
            "--max",
            &TOTAL.to_string(),
            "--wait",
            "5s",
        ],
        None,
    ))
    .lines()
    .filter(|l| !l.trim().is_empty())
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    let payloads: Vec<String> = consumed
        .iter()
        .map(|m| m["payload"].as_str().unwrap().to_string())
        .collect();
    let unique: HashSet<&String> = payloads.iter().collect();
    assert_eq!(unique.len(), TOTAL, "every acknowledged message consumed");
    assert_eq!(payloads.len(), TOTAL, "no message consumed twice");
    let committed_end = consumed
        .iter()
        .map(|m| m["offset"].as_u64().unwrap() + 1)
        .max()
        .unwrap();
    assert_eq!(committed_end, TOTAL as u64, "no duplicate stored");

    // The killed node restarts and catches up from the leader's log.
    nodes[leader_ix].start_again();
    let caught_up = Instant::now();
    loop {
        let lens: Vec<usize> = nodes.iter().map(|n| log_bytes(&n.data_dir).len()).collect();
        if lens.iter().all(|l| *l == lens[0]) {
            break;
        }
        assert!(
            caught_up.elapsed() < Duration::from_secs(15),
            "the restarted replica did not catch up: log sizes {lens:?}\n{}",
            nodes[leader_ix].log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("restarted {leader} caught up in {:?}", caught_up.elapsed());
    for n in &mut nodes {
        assert_eq!(n.terminate(), Some(0), "graceful stop:\n{}", n.log_text());
    }
    // The three logs hold the same batches, byte for byte, up to the commit point.
    let logs: Vec<Vec<Bytes>> = nodes
        .iter()
        .map(|n| batches(&n.data_dir, committed_end))
        .collect();
    assert_eq!(logs[0].len(), TOTAL / PER_REQUEST, "one batch per publish");
    assert!(
        logs[0] == logs[1] && logs[0] == logs[2],
        "replica logs differ"
    );
    eprintln!("whole test took {:?}", started.elapsed());
}
