//! Every CLI failure is one `error: ...` line on stderr and a non-zero exit.

mod common;

use common::*;

fn one_error_line(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn node_down_and_bad_address() {
    let port = free_port();
    let err = one_error_line(&swarmmq(
        &[
            "produce",
            "--node",
            &format!("127.0.0.1:{port}"),
            "-d",
            "x",
            "-m",
            "hi",
        ],
        None,
    ));
    assert!(err.contains("cannot reach a node"), "{err}");
    let err = one_error_line(&swarmmq(
        &["consume", "--node", "no-such-host.invalid:1", "-d", "x"],
        None,
    ));
    assert!(err.contains("cannot reach a node"), "{err}");
    let err = one_error_line(&swarmmq(
        &["topic", "list", "--node", "not an address"],
        None,
    ));
    assert!(err.contains("cannot reach"), "{err}");
}

#[test]
fn unknown_destination_and_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("data"));
    let addr = node.addr();
    let err = one_error_line(&swarmmq(
        &["consume", "--node", &addr, "-d", "missing"],
        None,
    ));
    assert!(err.contains("UNKNOWN_DESTINATION"), "{err}");
    let err = one_error_line(&swarmmq(
        &["topic", "describe", "missing", "--node", &addr],
        None,
    ));
    assert!(err.contains("UNKNOWN_DESTINATION"), "{err}");
    let err = one_error_line(&swarmmq(
        &["produce", "--node", &addr, "-d", "bad name", "-m", "x"],
        None,
    ));
    assert!(err.contains("INVALID_NAME"), "{err}");
    let err = one_error_line(&swarmmq(
        &[
            "topic",
            "create",
            "t",
            "--partitions",
            "5000",
            "--node",
            &addr,
        ],
        None,
    ));
    assert!(err.contains("partitions"), "{err}");
    ok(&swarmmq(
        &["topic", "create", "t", "--partitions", "2", "--node", &addr],
        None,
    ));
    let err = one_error_line(&swarmmq(
        &["topic", "create", "t", "--partitions", "3", "--node", &addr],
        None,
    ));
    assert!(err.contains("DESTINATION_EXISTS"), "{err}");
}

#[test]
fn bad_flags_are_refused_by_the_parser() {
    let out = swarmmq(&["produce", "--priority", "11", "-d", "x", "-m", "y"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error:"));
    let out = swarmmq(&["node", "--no-such-flag"], None);
    assert_eq!(out.status.code(), Some(2));
    let help = ok(&swarmmq(&["consume", "--help"], None));
    assert!(help.contains("--follow") && help.contains("--group"));
}

#[test]
fn bad_config_is_refused_with_the_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(&cfg, "storage:\n  fsync: sometimes\n").unwrap();
    let out = swarmmq(&["node", "--config", cfg.to_str().unwrap()], None);
    let err = one_error_line(&out);
    assert!(err.contains("storage.fsync"), "{err}");
    std::fs::write(&cfg, "storage:\n  data_dri: /tmp/x\n").unwrap();
    let err = one_error_line(&swarmmq(&["node", "--config", cfg.to_str().unwrap()], None));
    assert!(err.contains("data_dri"), "{err}");
    let out = std::process::Command::new(BIN)
        .args(["node", "--bind", "0.0.0.0", "--data-dir"])
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    let err = one_error_line(&out);
    assert!(err.contains("TLS") || err.contains("insecure"), "{err}");
}

#[test]
fn cluster_status_of_an_unreachable_node_is_one_error_line() {
    let err = one_error_line(&swarmmq(
        &["cluster", "status", "--node", "127.0.0.1:1"],
        None,
    ));
    assert!(err.contains("cannot reach a node at 127.0.0.1:1"), "{err}");
    let err = one_error_line(&swarmmq(
        &[
            "cluster",
            "status",
            "--node",
            "127.0.0.1:1",
            "--format",
            "json",
        ],
        None,
    ));
    assert!(err.contains("cannot reach"), "{err}");
}

#[test]
fn bad_cluster_flags_and_seeds_are_refused_with_the_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let data = data.to_str().unwrap();
    let err = one_error_line(&swarmmq(
        &["node", "--data-dir", data, "--seeds", "127.0.0.1:7001,foo"],
        None,
    ));
    assert!(
        err.contains(r#"cluster.seeds[1]: "foo" is not host:port"#),
        "{err}"
    );
    let err = one_error_line(&swarmmq(
        &[
            "node",
            "--data-dir",
            data,
            "--seeds",
            "no-such-host.invalid:7001",
            "--internal-port",
            &free_port().to_string(),
        ],
        None,
    ));
    assert!(
        err.contains(r#"cluster.seeds[0]: cannot resolve "no-such-host.invalid:7001""#),
        "{err}"
    );
    let err = one_error_line(&swarmmq(
        &["node", "--data-dir", data, "--cluster-name", "my cluster"],
        None,
    ));
    assert!(err.contains("cluster.name"), "{err}");
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "cluster:\n  nodes:\n    - { id: node-1, address: \"127.0.0.1:7101\" }\n    - { id: node-2, address: \"127.0.0.1:7102\" }\n",
    )
    .unwrap();
    let err = one_error_line(&swarmmq(
        &[
            "node",
            "--config",
            cfg.to_str().unwrap(),
            "--data-dir",
            data,
            "--internal-port",
            "7102",
        ],
        None,
    ));
    assert!(
        err.contains("cluster.internal_port: 7102 differs from the port of this node's own entry cluster.nodes[0]"),
        "{err}"
    );
}
