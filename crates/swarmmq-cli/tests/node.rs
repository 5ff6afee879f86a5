//! The Foundation acceptance flows, with the real binary in separate processes.

mod common;

use std::collections::{BTreeMap, HashSet};

use common::*;

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[test]
fn kill9_restart_consume_returns_every_acknowledged_message_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut node = NodeProcess::start(&data);
    let addr = node.addr();
    ok(&swarmmq(
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--node",
            &addr,
        ],
        None,
    ));

    let input: String = (0..10_000).map(|i| format!("message-{i:05}\n")).collect();
    let produced = ok(&swarmmq(
        &[
            "produce",
            "--node",
            &addr,
            "--destination",
            "orders",
            "--format",
            "json",
        ],
        Some(input.as_bytes()),
    ));
    let receipts = json_lines(&produced);
    assert_eq!(
        receipts.len(),
        10_000,
        "one receipt per acknowledged message"
    );
    let partitions: HashSet<u64> = receipts
        .iter()
        .map(|r| r["partition"].as_u64().unwrap())
        .collect();
    assert!(
        partitions.len() > 1,
        "keyless messages are spread over partitions: {partitions:?}"
    );

    node.kill9();
    node.start_again();

    let consumed = ok(&swarmmq(
        &[
            "consume",
            "--node",
            &addr,
            "--destination",
            "orders",
            "--group",
            "g",
            "--format",
            "json",
        ],
        None,
    ));
    let messages = json_lines(&consumed);
    assert_eq!(
        messages.len(),
        10_000,
        "every acknowledged message, nothing more"
    );
    let payloads: HashSet<&str> = messages
        .iter()
        .map(|m| m["payload"].as_str().unwrap())
        .collect();
    assert_eq!(payloads.len(), 10_000, "each message exactly once");
    for i in 0..10_000 {
        assert!(payloads.contains(format!("message-{i:05}").as_str()));
    }
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    for m in &messages {
        let (p, o) = (
            m["partition"].as_u64().unwrap(),
            m["offset"].as_u64().unwrap(),
        );
        if let Some(prev) = last.insert(p, o) {
            assert!(
                o > prev,
                "offset order within partition {p}: {prev} then {o}"
            );
        }
        assert_eq!(m["delivery_attempt"], 1);
    }
    let ids: HashSet<String> = receipts
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let got: HashSet<String> = messages
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, got, "consumed ids are the acknowledged ids");

    // Everything was acknowledged by the consume above: nothing is delivered again.
    let again = ok(&swarmmq(
        &[
            "consume",
            "--node",
            &addr,
            "--destination",
            "orders",
            "--group",
            "g",
        ],
        None,
    ));
    assert!(again.is_empty(), "acked messages came back: {again}");
}

#[test]
fn acks_survive_kill9_and_unacked_messages_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::start(&dir.path().join("data"));
    let addr = node.addr();
    let input: String = (0..100).map(|i| format!("m{i}\n")).collect();
    ok(&swarmmq(
        &["produce", "--node", &addr, "--destination", "q"],
        Some(input.as_bytes()),
    ));
    let first = ok(&swarmmq(
        &[
            "consume",
            "--node",
            &addr,
            "--destination",
            "q",
            "--group",
            "g",
            "--max",
            "40",
        ],
        None,
    ));
    assert_eq!(first.lines().count(), 40);
    node.kill9();
    node.start_again();
    let rest = ok(&swarmmq(
        &[
            "consume",
            "--node",
            &addr,
            "--destination",
            "q",
            "--group",
            "g",
        ],
        None,
    ));
    let rest: Vec<&str> = rest.lines().collect();
    assert_eq!(
        rest.len(),
        60,
        "the 60 unacknowledged, not the 40 acknowledged"
    );
    let first: HashSet<&str> = first.lines().collect();
    assert!(rest.iter().all(|m| !first.contains(m)));
}

#[test]
fn marker_payload_is_never_stored_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut node = NodeProcess::start(&data);
    let addr = node.addr();
    let marker = format!("PLAINTEXT-MARKER-{}", std::process::id());
    // Keys and headers are authenticated metadata (plaintext by design); payloads are sealed.
    ok(&swarmmq(
        &[
            "produce",
            "--node",
            &addr,
            "--destination",
            "secret",
            "--message",
            &marker,
            "--count",
            "50",
        ],
        None,
    ));
    ok(&swarmmq(
        &[
            "consume",
            "--node",
            &addr,
            "--destination",
            "secret",
            "--max",
            "10",
        ],
        None,
    ));
    assert_eq!(node.terminate(), Some(0));
    let files = files_under(&data);
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "log")),
        "segments exist"
    );
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !contains(&bytes, marker.as_bytes()),
            "marker found in plaintext in {}",
            f.display()
        );
    }
    // The generated master key is private to its owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("master.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        node.log_text().contains("generated a new one"),
        "the key generation is logged"
    );
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn health_is_200_and_metrics_move_with_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("data"));
    let (status, body) = http_get(node.http(), "/health").unwrap();
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    let (_, before) = http_get(node.http(), "/metrics").unwrap();
    assert_eq!(
        metric(&before, "swarmmq_messages_in_total", "destination=\"m\""),
        0.0
    );
    ok(&swarmmq(
        &[
            "produce",
            "--node",
            &node.addr(),
            "--destination",
            "m",
            "--message",
            "x",
            "--count",
            "25",
        ],
        None,
    ));
    ok(&swarmmq(
        &["consume", "--node", &node.addr(), "--destination", "m"],
        None,
    ));
    let (status, after) = http_get(node.http(), "/metrics").unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        metric(&after, "swarmmq_messages_in_total", "destination=\"m\""),
        25.0
    );
    assert_eq!(
        metric(&after, "swarmmq_messages_out_total", "destination=\"m\""),
        25.0
    );
    assert_eq!(
        metric(&after, "swarmmq_messages_acked_total", "destination=\"m\""),
        25.0
    );
    assert!(
        metric(
            &after,
            "swarmmq_payload_in_bytes_total",
            "destination=\"m\""
        ) >= 25.0
    );
    assert!(metric(&after, "swarmmq_stored_bytes", "destination=\"m\"") > 0.0);
    assert!(metric(&after, "swarmmq_publish_latency_seconds_count", "") >= 1.0);
    assert!(metric(&after, "swarmmq_pull_latency_seconds_count", "") >= 1.0);
    assert!(after.contains("swarmmq_open_connections"));
}

#[test]
fn sigterm_finishes_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::start(&dir.path().join("data"));
    ok(&swarmmq(
        &[
            "produce",
            "--node",
            &node.addr(),
            "--destination",
            "d",
            "--message",
            "x",
        ],
        None,
    ));
    assert_eq!(node.terminate(), Some(0));
    assert!(node.log_text().contains("node stopped"));
}
