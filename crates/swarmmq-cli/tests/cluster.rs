//! A real 5-node cluster of separate `swarmmq node` processes on 127.0.0.1: formation,
//! metadata on every node, routing from any node, failure detection, rejoin, leader
//! failover, and the refusals of nodes that must not join.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{NodeProcess, free_port, http_get, ok, swarmmq};
use serde_json::Value;

const KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

struct TestCluster {
    _dir: tempfile::TempDir,
    root: PathBuf,
    nodes: Vec<NodeProcess>,
    internal: Vec<u16>,
}

fn config_text(id: usize, internal: &[u16], cluster: &str) -> String {
    let mut s = format!(
        "node:\n  id: node-{id}\ncluster:\n  name: {cluster}\n  internal_port: {}\n  nodes:\n",
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

impl TestCluster {
    fn start(n: usize) -> TestCluster {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let internal: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for id in 1..=n {
            let cfg = root.join(format!("node-{id}.yaml"));
            std::fs::write(&cfg, config_text(id, &internal, "test")).unwrap();
            nodes.push(NodeProcess::start_with(
                &root.join(format!("node-{id}")),
                &["--config", cfg.to_str().unwrap()],
                &[("SWARMMQ_MASTER_KEY", KEY)],
            ));
        }
        TestCluster {
            _dir: dir,
            root,
            nodes,
            internal,
        }
    }

    fn node(&self, id: usize) -> &NodeProcess {
        &self.nodes[id - 1]
    }

    fn addr(&self, id: usize) -> String {
        self.node(id).addr()
    }

    fn status(&self, id: usize) -> Option<Value> {
        let out = swarmmq(
            &[
                "cluster",
                "status",
                "--node",
                &self.addr(id),
                "--format",
                "json",
            ],
            None,
        );
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Waits until `check` holds for node `id`'s status; returns how long it took.
    fn wait_status(&self, id: usize, what: &str, check: impl Fn(&Value) -> bool) -> Duration {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(60);
        loop {
            if let Some(s) = self.status(id)
                && check(&s)
            {
                return started.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "node-{id}: {what} never happened; last status {:?}\nlog:\n{}",
                self.status(id),
                self.node(id).log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn states(status: &Value) -> HashMap<String, String> {
    status["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .map(|n| {
                    (
                        n["id"].as_str().unwrap_or_default().to_string(),
                        n["state"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn all_alive(status: &Value, n: usize) -> bool {
    let s = states(status);
    s.len() == n && s.values().all(|v| v == "alive") && !status["leader"].is_null()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn describe(c: &TestCluster, id: usize, name: &str) -> Value {
    let out = ok(&swarmmq(
        &["topic", "describe", name, "--node", &c.addr(id), "--json"],
        None,
    ));
    serde_json::from_str(&out).unwrap()
}

/// Runs a node that must refuse to start; returns its stderr.
fn refused_start(root: &Path, name: &str, config: &str) -> String {
    let cfg = root.join(format!("{name}.yaml"));
    std::fs::write(&cfg, config).unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["node", "--config", cfg.to_str().unwrap()])
        .args(["--port", &free_port().to_string()])
        .args(["--http-port", &free_port().to_string()])
        .arg("--data-dir")
        .arg(root.join(name))
        .env("SWARMMQ_MASTER_KEY", KEY)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{name} started but must not");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn a_five_node_cluster_routes_from_any_node_and_survives_node_and_leader_loss() {
    let mut c = TestCluster::start(5);
    let formed = c.wait_status(1, "5 alive nodes and a leader", |s| all_alive(s, 5));
    eprintln!("cluster formed (5 alive + leader seen by node-1) {formed:?} after the last start");
    // /health reports the cluster (a just-joined node may be `suspect` for a moment).
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        let (code, body) = http_get(c.node(2).http(), "/health").unwrap();
        assert_eq!(code, 200);
        let health: Value = serde_json::from_str(&body).unwrap();
        if health["cluster"]["state"] == "ok" || Instant::now() > deadline {
            break health;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(health["cluster"]["state"], "ok", "{health}");
    assert_eq!(health["cluster"]["alive"], 5, "{health}");
    assert!(health["cluster"]["leader"].is_string(), "{health}");

    // A destination created through node 1 is visible, with its placement, on all.
    ok(&swarmmq(
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "6",
            "--node",
            &c.addr(1),
        ],
        None,
    ));
    for id in 1..=5 {
        let d = describe(&c, id, "orders");
        let parts = d["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), 6, "node-{id}: {d}");
        assert!(
            parts
                .iter()
                .all(|p| p["leader"].as_str().unwrap().starts_with("node-"))
        );
    }
    let d = describe(&c, 1, "orders");
    let leaders: HashSet<&str> = d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["leader"].as_str().unwrap())
        .collect();
    assert!(
        leaders.len() >= 3,
        "6 partitions spread over 5 nodes: {leaders:?}"
    );

    // 10,000 messages published to node 1 are consumed exactly once through node 5.
    let input: String = (0..10_000).map(|i| format!("m-{i:05}\n")).collect();
    let receipts = json_lines(&ok(&swarmmq(
        &[
            "produce",
            "--node",
            &c.addr(1),
            "-d",
            "orders",
            "--format",
            "json",
        ],
        Some(input.as_bytes()),
    )));
    assert_eq!(receipts.len(), 10_000);
    let consumed = json_lines(&ok(&swarmmq(
        &[
            "consume",
            "--node",
            &c.addr(5),
            "-d",
            "orders",
            "--format",
            "json",
            "--max",
            "10000",
            "--wait",
            "5s",
        ],
        None,
    )));
    let mut payloads: Vec<String> = consumed
        .iter()
        .map(|m| m["payload"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(payloads.len(), 10_000, "every message once");
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), 10_000, "no message twice");
    // Nothing is left for the group (all acknowledged).
    let rest = ok(&swarmmq(
        &[
            "consume",
            "--node",
            &c.addr(3),
            "-d",
            "orders",
            "--format",
            "json",
            "--wait",
            "1s",
        ],
        None,
    ));
    assert_eq!(rest.trim(), "", "acknowledged messages came back");

    // The route of a message is recorded when asked for: entry, forward hop, owner.
    for (dest, smart) in [("routes-plain", false), ("routes-smart", true)] {
        ok(&swarmmq(
            &[
                "topic",
                "create",
                dest,
                "--partitions",
                "6",
                "--node",
                &c.addr(1),
            ],
            None,
        ));
        let owners: Vec<String> = describe(&c, 1, dest)["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["leader"].as_str().unwrap().to_string())
            .collect();
        let input: String = (0..60).map(|i| format!("r-{i}\n")).collect();
        for i in 0..6 {
            // Keyed, so that several partitions (and owners) get some.
            let key = format!("k{i}");
            let entry = c.addr(1);
            let mut args = vec![
                "produce",
                "--node",
                &entry,
                "-d",
                dest,
                "-H",
                "x-swarmmq-route=yes",
                "-k",
                &key,
            ];
            if smart {
                args.push("--smart");
            }
            ok(&swarmmq(&args, Some(input.as_bytes())));
        }
        let got = json_lines(&ok(&swarmmq(
            &[
                "consume",
                "--node",
                &c.addr(2),
                "-d",
                dest,
                "--format",
                "json",
                "--max",
                "360",
                "--wait",
                "3s",
            ],
            None,
        )));
        assert_eq!(got.len(), 360);
        let mut forwarded_seen = 0;
        for m in &got {
            let route = m["headers"]["x-swarmmq-route"]
                .as_str()
                .unwrap()
                .to_string();
            let owner = &owners[m["partition"].as_u64().unwrap() as usize];
            let expected = if smart || owner == "node-1" {
                // Entered at the owner: the smart producer sends straight to it.
                format!("entry={owner};owner={owner}")
            } else {
                forwarded_seen += 1;
                format!("entry=node-1;forward=node-1>{owner};owner={owner}")
            };
            assert_eq!(route, expected, "{dest}: partition owned by {owner}");
        }
        if !smart {
            eprintln!("{dest}: {forwarded_seen} of 360 messages were forwarded by node-1");
        }
    }

    // A SIGKILLed node is marked dead by every other node.
    let victim = 3;
    c.nodes[victim - 1].kill9();
    let killed = Instant::now();
    for id in [1, 2, 4, 5] {
        c.wait_status(id, "node-3 dead", |s| {
            states(s).get("node-3").map(String::as_str) == Some("dead")
        });
    }
    eprintln!(
        "node-3 SIGKILLed: marked dead by all four others within {:?}",
        killed.elapsed()
    );
    // Partitions with a replica on node-3 are reported under-replicated.
    let s = c.status(1).unwrap();
    assert!(
        s["under_replicated_partitions"].as_u64().unwrap() > 0,
        "{s}"
    );
    let text = ok(&swarmmq(&["cluster", "status", "--node", &c.addr(1)], None));
    assert!(text.contains("under-replicated partitions"), "{text}");
    // Publishes for partitions node-3 did not own keep succeeding; keyless ones route
    // around it.
    let d = describe(&c, 1, "orders");
    let alive_partitions: Vec<u64> = d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["leader"] != "node-3")
        .map(|p| p["partition"].as_u64().unwrap())
        .collect();
    for entry in [1, 2, 4, 5] {
        let out = ok(&swarmmq(
            &[
                "produce",
                "--node",
                &c.addr(entry),
                "-d",
                "orders",
                "-m",
                "after",
                "--count",
                "50",
                "--format",
                "json",
            ],
            None,
        ));
        for r in json_lines(&out) {
            assert!(
                alive_partitions.contains(&r["partition"].as_u64().unwrap()),
                "{r}"
            );
        }
    }

    // It rejoins after a restart.
    c.nodes[victim - 1].start_again();
    for id in [1, 2, 4, 5] {
        c.wait_status(id, "node-3 alive again", |s| all_alive(s, 5));
    }

    c.wait_status(
        1,
        "no under-replicated partition once node-3 is back",
        |s| s["under_replicated_partitions"] == 0,
    );
    let (_, metrics) = http_get(c.node(1).http(), "/metrics").unwrap();
    assert!(
        metrics.contains("swarmmq_under_replicated_partitions 0"),
        "{metrics}"
    );

    // The metadata leader dies; a new one takes over and admin keeps working.
    let status = c.status(1).unwrap();
    let leader = status["leader"].as_str().unwrap().to_string();
    let term = status["term"].as_u64().unwrap();
    let leader_id: usize = leader.trim_start_matches("node-").parse().unwrap();
    c.nodes[leader_id - 1].kill9();
    let killed = Instant::now();
    let other = if leader_id == 1 { 2 } else { 1 };
    c.wait_status(other, "a new metadata leader", |s| {
        s["leader"].as_str().is_some_and(|l| l != leader) && s["term"].as_u64() > Some(term)
    });
    eprintln!(
        "metadata leader {leader} SIGKILLed: new leader after {:?}",
        killed.elapsed()
    );
    ok(&swarmmq(
        &[
            "topic",
            "create",
            "after-failover",
            "--partitions",
            "2",
            "--node",
            &c.addr(other),
        ],
        None,
    ));
    let d = describe(&c, other, "after-failover");
    assert_eq!(d["partitions"].as_array().unwrap().len(), 2);

    // Nodes that must not join are refused with a clear reason.
    let seed = c.internal[other - 1];
    let stranger = |id: &str, cluster: &str, seeds: &str| {
        format!(
            "node:\n  id: {id}\ncluster:\n  name: {cluster}\n  internal_port: {}\n  join_timeout: 2s\n  seeds: [\"{seeds}\"]\n",
            free_port()
        )
    };
    let err = refused_start(
        &c.root,
        "other-cluster",
        &stranger("node-9", "prod", &format!("127.0.0.1:{seed}")),
    );
    assert!(err.contains("cluster name mismatch"), "{err}");
    let live = if leader_id == 2 { 4 } else { 2 };
    let err = refused_start(
        &c.root,
        "duplicate",
        &stranger(
            &format!("node-{live}"),
            "test",
            &format!("127.0.0.1:{seed}"),
        ),
    );
    assert!(err.contains("duplicate node id"), "{err}");
    let err = refused_start(
        &c.root,
        "bad-seed",
        &stranger("node-9", "test", &format!("127.0.0.1:{}", free_port())),
    );
    assert!(err.contains("no seed answered"), "{err}");
    let (code, body) = http_get(c.node(other).http(), "/v1/admin/cluster").unwrap();
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["nodes"].as_array().unwrap().len(),
        5,
        "refused nodes never joined: {v}"
    );
}
