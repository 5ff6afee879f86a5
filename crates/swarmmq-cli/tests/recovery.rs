//! Damaged files and wrong keys, with the real binary: the node starts, says what it
//! found, and never hands out damaged data as if it were whole.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn segment_logs(data: &Path, dest: &str) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = files_under(&data.join("destinations").join(dest))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

/// Publishes `n` separate batches of 10 messages each (one produce call each).
fn publish_batches(addr: &str, dest: &str, n: usize) {
    for b in 0..n {
        let input: String = (0..10).map(|i| format!("b{b}-m{i}\n")).collect();
        ok(&swarmmq(
            &["produce", "--node", addr, "--destination", dest],
            Some(input.as_bytes()),
        ));
    }
}

#[test]
fn a_torn_tail_is_truncated_and_every_complete_batch_survives() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut node = NodeProcess::start(&data);
    publish_batches(&node.addr(), "torn", 5);
    assert_eq!(node.terminate(), Some(0));

    let log = segment_logs(&data, "torn").pop().expect("a segment");
    let len = std::fs::metadata(&log).unwrap().len();
    // Cut the newest segment in the middle of its last batch (each batch is the same size).
    let cut = len - (len / 5) / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(cut)
        .unwrap();

    node.start_again();
    let log_text = node.log_text();
    assert!(
        log_text.contains("torn"),
        "the truncation is logged:\n{log_text}"
    );
    let out = ok(&swarmmq(
        &["consume", "--node", &node.addr(), "--destination", "torn"],
        None,
    ));
    let got: Vec<&str> = out.lines().collect();
    let expected: Vec<String> = (0..4)
        .flat_map(|b| (0..10).map(move |i| format!("b{b}-m{i}")))
        .collect();
    assert_eq!(
        got, expected,
        "the four complete batches, intact and in order"
    );
    // The log is writable again right after the cut.
    publish_batches(&node.addr(), "torn", 1);
    let out = ok(&swarmmq(
        &["consume", "--node", &node.addr(), "--destination", "torn"],
        None,
    ));
    assert_eq!(out.lines().count(), 10);
}

#[test]
fn a_bit_flip_inside_the_log_is_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut node = NodeProcess::start(&data);
    publish_batches(&node.addr(), "flip", 4);
    publish_batches(&node.addr(), "fine", 1);
    assert_eq!(node.terminate(), Some(0));

    let log = segment_logs(&data, "flip").pop().unwrap();
    let mut bytes = std::fs::read(&log).unwrap();
    let middle = bytes.len() / 3;
    bytes[middle] ^= 0x10;
    std::fs::write(&log, &bytes).unwrap();

    node.start_again();
    let (status, body) = http_get(node.http(), "/health").unwrap();
    assert_eq!(status, 200, "the node serves the rest");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "degraded");
    assert!(
        health["failed_partitions"][0]
            .as_str()
            .unwrap()
            .starts_with("flip/0"),
        "{health}"
    );
    let out = swarmmq(
        &["consume", "--node", &node.addr(), "--destination", "flip"],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: STORAGE_FAILURE"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    let fine = ok(&swarmmq(
        &["consume", "--node", &node.addr(), "--destination", "fine"],
        None,
    ));
    assert_eq!(
        fine.lines().count(),
        10,
        "other destinations are unaffected"
    );
    assert_eq!(
        std::fs::read(&log).unwrap(),
        bytes,
        "nothing was truncated away"
    );
}

#[test]
fn a_wrong_master_key_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut node = NodeProcess::start(&data);
    publish_batches(&node.addr(), "k", 1);
    assert_eq!(node.terminate(), Some(0));
    let other = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let out = std::process::Command::new(BIN)
        .args(["node", "--data-dir"])
        .arg(&data)
        .args([
            "--port",
            &free_port().to_string(),
            "--http-port",
            &free_port().to_string(),
        ])
        .env("SWARMMQ_MASTER_KEY", other)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error: master key"), "{err}");
    assert!(err.contains("not the key that encrypted"), "{err}");
}
