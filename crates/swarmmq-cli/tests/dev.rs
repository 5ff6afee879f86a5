//! `swarmmq dev` with real processes: it starts N healthy nodes, describes them in
//! `cluster.json`, answers `cluster status`, and on SIGTERM stops every node it started
//! and exits 0; with 5 nodes every node sees 5 alive and one metadata leader.

mod common;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A base port whose whole dev layout (`P+10 ..= P+10n+9`) is free right now, picked
/// pseudo-randomly from 20000..60000 so parallel runs rarely meet.
fn free_base_port(nodes: u16) -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id();
    for attempt in 0..200u32 {
        let base = 20_000 + ((seed.wrapping_add(attempt * 7919)) % 400) as u16 * 100;
        let free = (base + 10..=base + nodes * 10 + 9).all(|p| {
            TcpListener::bind(("127.0.0.1", p)).is_ok() && UdpSocket::bind(("127.0.0.1", p)).is_ok()
        });
        if free {
            return base;
        }
    }
    panic!("no free port range");
}

fn alive(pid: u64) -> bool {
    // A reaped process has no /proc entry; a zombie would still say "Z" in stat.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

fn send(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// The `dev` process; killed (with its nodes, by their pids) if the test fails midway.
struct Dev {
    child: Option<Child>,
    pids: Vec<u64>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for pid in &self.pids {
            if alive(*pid) {
                send(*pid as u32, "KILL");
            }
        }
    }
}

fn wait_for_cluster_json(dev: &mut Dev, file: &Path, err_log: &Path) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            return serde_json::from_str(&text).unwrap();
        }
        if let Some(status) = dev.child.as_mut().unwrap().try_wait().unwrap() {
            panic!(
                "dev exited early with {status}: {}",
                std::fs::read_to_string(err_log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "no cluster.json after 90 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn dev_starts_five_nodes_and_stops_them_all_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let base = free_base_port(5);
    let err_log = tmp.path().join("dev.err");
    let child = Command::new(BIN)
        .args([
            "dev",
            "--nodes",
            "5",
            "--base-port",
            &base.to_string(),
            "--dir",
        ])
        .arg(&dir)
        .env_remove("SWARMMQ_NODE")
        .env_remove("SWARMMQ_MASTER_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_log).unwrap())
        .spawn()
        .unwrap();
    let mut dev = Dev {
        child: Some(child),
        pids: Vec::new(),
    };

    let json = wait_for_cluster_json(&mut dev, &dir.join("cluster.json"), &err_log);
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 5);
    dev.pids = nodes.iter().map(|n| n["pid"].as_u64().unwrap()).collect();
    assert!(
        !json.to_string().contains(
            std::fs::read_to_string(dir.join("master.key"))
                .unwrap()
                .trim()
        )
    );
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n["id"], format!("node-{}", i + 1));
        let pid = n["pid"].as_u64().unwrap();
        assert!(alive(pid), "node {i} pid {pid} not running");
        let http: SocketAddr = n["http"].as_str().unwrap().parse().unwrap();
        assert_eq!(http.port(), base + (i as u16 + 1) * 10);
        let (status, body) = http_get(http, "/health").unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(Path::new(n["data_dir"].as_str().unwrap()).is_dir());
        assert!(Path::new(n["log"].as_str().unwrap()).is_file());
    }
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("master.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);

    // The status command answers through any node; with the cluster runtime every node
    // sees all five alive and a leader.
    let client = nodes[1]["client"].as_str().unwrap();
    let status = ok(&swarmmq(
        &["cluster", "status", "--node", client, "--format", "json"],
        None,
    ));
    let status: serde_json::Value = serde_json::from_str(status.trim()).unwrap();
    assert_eq!(status["cluster"], "swarmmq-dev");
    assert_eq!(status["node"], "node-2");
    let text = ok(&swarmmq(&["cluster", "status", "--node", client], None));
    assert!(
        text.starts_with("cluster swarmmq-dev  metadata leader "),
        "{text}"
    );
    // Every node sees all five alive and one metadata leader (a node that has just
    // joined may be `suspect` for a moment, hence the short wait).
    for n in nodes {
        let http: SocketAddr = n["http"].as_str().unwrap().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (code, body) = http_get(http, "/v1/admin/cluster").unwrap();
            assert_eq!(code, 200, "{body}");
            let cluster: serde_json::Value = serde_json::from_str(&body).unwrap();
            let alive_nodes = cluster["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["state"] == "alive")
                .count();
            if alive_nodes == 5 && cluster["leader"].is_string() {
                break;
            }
            assert!(Instant::now() < deadline, "{body}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    let pid = dev.child.as_ref().unwrap().id();
    send(pid, "TERM");
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(s) = dev.child.as_mut().unwrap().try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "dev did not stop within 40 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    dev.child = None;
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(&err_log).unwrap()
    );
    for pid in &dev.pids {
        assert!(
            !alive(*pid),
            "node pid {pid} still running after dev stopped"
        );
    }
    let err = std::fs::read_to_string(&err_log).unwrap();
    assert!(err.contains("every node stopped"), "{err}");
    // Nothing is removed: a restart finds its data and key.
    assert!(dir.join("node-1/data").is_dir() && dir.join("master.key").is_file());
}

#[test]
fn dev_refuses_a_taken_port_and_bad_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let base = free_base_port(1);
    let holder = TcpListener::bind(("127.0.0.1", base + 11)).unwrap();
    let out = swarmmq(
        &[
            "dev",
            "--nodes",
            "1",
            "--base-port",
            &base.to_string(),
            "--dir",
            tmp.path().to_str().unwrap(),
        ],
        None,
    );
    drop(holder);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("port {} (node-1 client) is in use", base + 11)),
        "{err}"
    );
    assert!(!tmp.path().join("cluster.json").exists());

    let out = swarmmq(&["dev", "--nodes", "8"], None);
    assert_eq!(out.status.code(), Some(2));
    let out = swarmmq(
        &[
            "dev",
            "--nodes",
            "7",
            "--base-port",
            "65500",
            "--dir",
            tmp.path().to_str().unwrap(),
        ],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the most is 65535"), "{err}");
}

#[test]
fn a_node_that_dies_at_startup_stops_the_others_and_fails_dev() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    // node-2's data dir is a file: that node cannot start.
    std::fs::create_dir_all(dir.join("node-2")).unwrap();
    std::fs::write(dir.join("node-2/data"), b"not a directory").unwrap();
    let base = free_base_port(2);
    let out = swarmmq(
        &[
            "dev",
            "--nodes",
            "2",
            "--base-port",
            &base.to_string(),
            "--dir",
            dir.to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("node-2 (pid"), "{err}");
    assert!(err.contains("exited during startup"), "{err}");
    assert!(err.contains("--- last lines of"), "{err}");
    assert!(!dir.join("cluster.json").exists());
    // node-1 was stopped: its client port is free again.
    assert!(TcpListener::bind(("127.0.0.1", base + 11)).is_ok());
}
