//! Master key rotation with the real binary: messages written before and after a
//! rotation all read back, in order, across SIGTERM and SIGKILL; retiring refuses keys
//! that still encrypt data; a node missing a key file it needs refuses to start.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

fn produce(addr: &str, dest: &str, lines: &[String]) {
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    ok(&swarmmq(
        &["produce", "--node", addr, "--destination", dest],
        Some(input.as_bytes()),
    ));
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:03}")).collect()
}

fn status(addr: &str) -> serde_json::Value {
    let out = ok(&swarmmq(
        &["keys", "status", "--node", addr, "--format", "json"],
        None,
    ));
    serde_json::from_str(&out).expect("keys status --format json is JSON")
}

fn key(s: &serde_json::Value, id: u64) -> &serde_json::Value {
    s["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap_or_else(|| panic!("no key id {id} in {s}"))
}

fn start_node_expecting_failure(data: &Path) -> String {
    let out = std::process::Command::new(BIN)
        .args(["node", "--data-dir"])
        .arg(data)
        .args([
            "--port",
            &free_port().to_string(),
            "--http-port",
            &free_port().to_string(),
        ])
        .env_remove("SWARMMQ_MASTER_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the node started");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn rotation_keeps_every_message_in_order_across_sigterm_and_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut node = NodeProcess::start(&data);
    let addr = node.addr();
    ok(&swarmmq(
        &["topic", "create", "orders", "-p", "1", "--node", &addr],
        None,
    ));
    let before = numbered("before", 40);
    produce(&addr, "orders", &before);

    let out = ok(&swarmmq(&["keys", "rotate", "--node", &addr], None));
    assert!(out.contains("key id 2 is now active"), "{out}");
    let key2 = data.join("master-2.key");
    assert_eq!(
        std::fs::metadata(&key2).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let after = numbered("after", 40);
    produce(&addr, "orders", &after);

    let s = status(&addr);
    assert_eq!(s["active_id"], 2);
    assert!(key(&s, 1)["bytes"].as_u64().unwrap() > 0);
    assert!(key(&s, 2)["bytes"].as_u64().unwrap() > 0);
    assert_eq!(key(&s, 2)["active"], true);
    let table = ok(&swarmmq(&["keys", "status", "--node", &addr], None));
    assert!(table.contains("active key id: 2"), "{table}");
    assert!(
        table.contains("FINGERPRINT") && table.contains("in use"),
        "{table}"
    );

    // SIGTERM: the rotation and the data survive a clean restart.
    assert_eq!(node.terminate(), Some(0));
    node.start_again();
    let s2 = status(&addr);
    assert_eq!(s2["active_id"], 2);
    assert_eq!(key(&s2, 1)["bytes"], key(&s, 1)["bytes"]);
    let more = numbered("more", 20);
    produce(&addr, "orders", &more);

    // SIGKILL after another rotation: still everything.
    let out = ok(&swarmmq(
        &["keys", "rotate", "--node", &addr, "--format", "json"],
        None,
    ));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["new_id"],
        3
    );
    let last = numbered("last", 20);
    produce(&addr, "orders", &last);
    node.kill9();
    node.start_again();
    assert_eq!(status(&addr)["active_id"], 3);

    let out = ok(&swarmmq(
        &[
            "consume", "--node", &addr, "-d", "orders", "--format", "json", "--max", "500",
        ],
        None,
    ));
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let payloads: Vec<&str> = lines
        .iter()
        .map(|l| l["payload"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = before
        .iter()
        .chain(&after)
        .chain(&more)
        .chain(&last)
        .map(String::as_str)
        .collect();
    assert_eq!(payloads, expected, "every message, intact and in order");
    let offsets: Vec<u64> = lines
        .iter()
        .map(|l| l["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, (0..expected.len() as u64).collect::<Vec<_>>());

    // Key 1 still encrypts the first messages: refused, with the bytes named.
    let s = status(&addr);
    let bytes_1 = key(&s, 1)["bytes"].as_u64().unwrap();
    let out = swarmmq(&["keys", "retire", "1", "--node", &addr], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("key id 1 still encrypts {bytes_1} bytes")),
        "{err}"
    );
    assert!(err.starts_with("error: "), "{err}");
    let out = swarmmq(&["keys", "retire", "3", "--node", &addr], None);
    assert!(!out.status.success(), "the active key cannot be retired");
    assert!(String::from_utf8_lossy(&out.stderr).contains("active"));

    // Two rotations leave key 4 without data: it can be retired.
    ok(&swarmmq(&["keys", "rotate", "--node", &addr], None));
    ok(&swarmmq(&["keys", "rotate", "--node", &addr], None));
    let out = ok(&swarmmq(&["keys", "retire", "4", "--node", &addr], None));
    assert!(out.contains("key id 4 retired"), "{out}");
    assert!(!data.join("master-4.key").exists());
    let s = status(&addr);
    assert_eq!(key(&s, 4)["retired"], true);
    assert_eq!(s["active_id"], 5);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("key-state.json")).unwrap())
            .unwrap();
    assert_eq!(state["active"], 5);
    assert_eq!(state["retired"], serde_json::json!([4]));

    // And the retirement survives a restart.
    assert_eq!(node.terminate(), Some(0));
    node.start_again();
    let s = status(&addr);
    assert_eq!(key(&s, 4)["retired"], true);
    assert_eq!(s["active_id"], 5);
}

#[test]
fn a_node_missing_a_key_file_it_needs_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut node = NodeProcess::start(&data);
    let addr = node.addr();
    produce(&addr, "q", &numbered("one", 5));
    ok(&swarmmq(&["keys", "rotate", "--node", &addr], None));
    produce(&addr, "q", &numbered("two", 5));
    assert_eq!(node.terminate(), Some(0));

    let key2 = data.join("master-2.key");
    let saved = dir.path().join("saved.key");
    std::fs::rename(&key2, &saved).unwrap();
    let err = start_node_expecting_failure(&data);
    assert!(err.contains("error: master key"), "{err}");
    assert!(err.contains("key id 2"), "{err}");
    assert!(err.contains("is missing"), "{err}");
    assert!(
        err.contains("master-2.key"),
        "names the file to restore: {err}"
    );

    let key1 = data.join("master.key");
    let saved1 = dir.path().join("saved1.key");
    std::fs::rename(&saved, &key2).unwrap();
    std::fs::rename(&key1, &saved1).unwrap();
    let err = start_node_expecting_failure(&data);
    assert!(
        err.contains("key id 1") && err.contains("is missing"),
        "{err}"
    );
    assert!(
        !key1.exists(),
        "no fresh key 1 is generated over existing data"
    );

    std::fs::rename(&saved1, &key1).unwrap();
    node.start_again();
    let out = ok(&swarmmq(&["consume", "--node", &addr, "-d", "q"], None));
    let got: Vec<&str> = out.lines().collect();
    let mut want = numbered("one", 5);
    want.extend(numbered("two", 5));
    assert_eq!(got, want);
}
