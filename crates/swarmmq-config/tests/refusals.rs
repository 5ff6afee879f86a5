//! Every refusal names the key's full path (and where it came from) and the reason.
//! The texts are snapshots: changing one is a user-visible change.

use std::io::Write;

use insta::assert_snapshot;
use swarmmq_config::{Config, ConfigError};

fn yaml_err(yaml: &str) -> String {
    Config::from_yaml_str(yaml).unwrap_err().to_string()
}

fn env_err(pairs: &[(&str, &str)]) -> String {
    let env = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    Config::load(None, env).unwrap_err().to_string()
}

/// Parses fine, then fails validation.
fn invalid(yaml: &str) -> String {
    Config::from_yaml_str(yaml)
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string()
}

// ---- values the file gets wrong ----

#[test]
fn unknown_enum_value() {
    assert_snapshot!(yaml_err("storage:\n  fsync: sometimes\n"), @r#"storage.fsync: unknown value "sometimes", expected one of always, interval, never"#);
    assert_snapshot!(yaml_err("log:\n  format: xml\n"), @r#"log.format: unknown value "xml", expected one of text, json"#);
}

#[test]
fn not_a_size() {
    assert_snapshot!(yaml_err("performance:\n  max_message_size: 12XB\n"), @r#"performance.max_message_size: "12XB" is not a size (use e.g. 1MiB, 512KB, 1048576)"#);
    assert_snapshot!(yaml_err("storage:\n  retention_bytes: -5\n"), @r#"storage.retention_bytes: "-5" is not a size (use e.g. 1MiB, 512KB, 1048576)"#);
    assert_snapshot!(yaml_err("storage:\n  segment_size: 99999999TiB\n"), @r#"storage.segment_size: "99999999TiB" is too large a size (at most 16EiB - 1)"#);
}

#[test]
fn unknown_keys_list_the_known_ones() {
    assert_snapshot!(yaml_err("storage:\n  data_dri: /x\n"), @r#"unknown key "storage.data_dri" (known keys in storage: data_dir, max_disk_usage, fsync, fsync_interval, segment_size, segment_age, retention_age, retention_bytes, default_partitions, auto_create_destinations, read_cache_size)"#);
    assert_snapshot!(yaml_err("stroage:\n  data_dir: /x\n"), @r#"unknown key "stroage" (known sections: node, cluster, performance, storage, delivery, security, log)"#);
    assert_snapshot!(yaml_err("cluster:\n  nodes:\n    - id: a\n      address: h:1\n    - id: b\n      adress: h:2\n"), @r#"unknown key "cluster.nodes[1].adress" (known keys in cluster.nodes[1]: id, address, roles)"#);
}

#[test]
fn wrong_types_and_ranges() {
    assert_snapshot!(yaml_err("node:\n  port: 99999\n"), @"node.port: invalid value: integer `99999`, expected u16");
    assert_snapshot!(yaml_err("node:\n  port: \"9001\"\n"), @r#"node.port: invalid type: string "9001", expected u16"#);
    assert_snapshot!(yaml_err("storage:\n  auto_create_destinations: yes\n"), @"storage.auto_create_destinations: expected true or false, found a string");
    assert_snapshot!(yaml_err("storage: fast\n"), @"storage: expected a mapping, found a string");
    assert_snapshot!(yaml_err("- a\n- b\n"), @"expected a mapping, found a list");
    assert_snapshot!(yaml_err("cluster:\n  nodes: node-1\n"), @"cluster.nodes: expected a list, found a string");
    assert_snapshot!(yaml_err("storage:\n  data_dir: 12\n"), @"storage.data_dir: invalid type: integer `12`, expected path string");
}

#[test]
fn bad_durations() {
    assert_snapshot!(yaml_err("performance:\n  ack_timeout: soon\n"), @r#"performance.ack_timeout: invalid value: string "soon", expected a duration"#);
    assert_snapshot!(yaml_err("performance:\n  ack_timeout: 30\n"), @"performance.ack_timeout: invalid type: integer `30`, expected a duration");
}

#[test]
fn bad_node_ids_and_bind_address() {
    assert_snapshot!(yaml_err("node:\n  id: node 1\n"), @r#"node.id: node id name "node 1" has the character ' '; allowed are a-z A-Z 0-9 . _ -"#);
    assert_snapshot!(yaml_err("node:\n  id: \"\"\n"), @"node.id: node id name is empty");
    assert_snapshot!(yaml_err("cluster:\n  nodes:\n    - id: n/1\n      address: h:1\n"), @r#"cluster.nodes[0].id: node id name "n/1" has the character '/'; allowed are a-z A-Z 0-9 . _ -"#);
    assert_snapshot!(yaml_err("node:\n  bind: localhost\n"), @r#"node.bind: "localhost" is not an IP address (use e.g. 127.0.0.1, 0.0.0.0 or ::1)"#);
}

#[test]
fn bad_cluster_node_entries() {
    assert_snapshot!(yaml_err("cluster:\n  nodes:\n    - id: a\n"), @"cluster.nodes[0]: missing field `address`");
    assert_snapshot!(yaml_err("cluster:\n  nodes:\n    - id: a\n      address: h:1\n      roles: [producer, broker]\n"), @r#"cluster.nodes[0].roles[1]: unknown value "broker", expected one of producer, consumer, router"#);
}

#[test]
fn bad_master_key_is_refused_without_echoing_it() {
    let err = yaml_err("security:\n  master_key: c2VjcmV0\n");
    assert!(!err.contains("c2VjcmV0"));
    assert_snapshot!(err, @"security.master_key: not the base64 of 32 bytes (it decodes to 6 bytes)");
    let err = env_err(&[("SWARMMQ_MASTER_KEY", "hunter2!")]);
    assert!(!err.contains("hunter2"));
    assert_snapshot!(err, @"env SWARMMQ_MASTER_KEY: security.master_key: not the base64 of 32 bytes (not valid base64)");
    assert_snapshot!(env_err(&[("SWARMMQ_MASTER_KEY", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="), ("SWARMMQ_SECURITY_MASTER_KEY", "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=")]), @"env SWARMMQ_MASTER_KEY and env SWARMMQ_SECURITY_MASTER_KEY are both set and differ; set only one");
}

// ---- the environment ----

#[test]
fn env_errors_name_the_variable_and_the_key() {
    assert_snapshot!(env_err(&[("SWARMMQ_STORAGE_FSYNC", "sometimes")]), @r#"env SWARMMQ_STORAGE_FSYNC: storage.fsync: unknown value "sometimes", expected one of always, interval, never"#);
    assert_snapshot!(env_err(&[("SWARMMQ_PERFORMANCE_MAX_MESSAGE_SIZE", "12XB")]), @r#"env SWARMMQ_PERFORMANCE_MAX_MESSAGE_SIZE: performance.max_message_size: "12XB" is not a size (use e.g. 1MiB, 512KB, 1048576)"#);
    assert_snapshot!(env_err(&[("SWARMMQ_NODE_PORT", "abc")]), @r#"env SWARMMQ_NODE_PORT: node.port: "abc" is not an integer"#);
    assert_snapshot!(env_err(&[("SWARMMQ_NODE_PORT", "70000")]), @"env SWARMMQ_NODE_PORT: node.port: invalid value: integer `70000`, expected u16");
    assert_snapshot!(env_err(&[("SWARMMQ_SECURITY_AUTH_ENABLED", "yes")]), @r#"env SWARMMQ_SECURITY_AUTH_ENABLED: security.auth_enabled: "yes" is not a boolean (use true or false)"#);
    assert_snapshot!(env_err(&[("SWARMMQ_DELIVERY_DEDUP_WINDOW", "2 fortnights")]), @r#"env SWARMMQ_DELIVERY_DEDUP_WINDOW: delivery.dedup_window: invalid value: string "2 fortnights", expected a duration"#);
    assert_snapshot!(env_err(&[("SWARMMQ_CLUSTER_NODES", "a,b")]), @"env SWARMMQ_CLUSTER_NODES: cluster.nodes: is a list and cannot be set from the environment; set it in the config file");
}

#[test]
fn env_unknown_key_in_a_known_section() {
    assert_snapshot!(env_err(&[("SWARMMQ_STORAGE_DATA_DRI", "/x")]), @r#"env SWARMMQ_STORAGE_DATA_DRI: unknown key "storage.data_dri" (known keys in storage: data_dir, max_disk_usage, fsync, fsync_interval, segment_size, segment_age, retention_age, retention_bytes, default_partitions, auto_create_destinations, read_cache_size)"#);
    assert_snapshot!(env_err(&[("SWARMMQ_LOG", "debug")]), @r#"env SWARMMQ_LOG: unknown key "log." (known keys in log: level, format)"#);
}

// ---- the file itself ----

#[test]
fn missing_file() {
    let err = Config::load(Some(std::path::Path::new("/x.yaml")), []).unwrap_err();
    assert_snapshot!(err.to_string(), @"config file /x.yaml: cannot read: No such file or directory");
}

#[test]
fn errors_in_a_file_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.yaml");
    std::fs::write(&path, "storage:\n  fsync: sometimes\n").unwrap();
    let err = Config::load(Some(&path), []).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "config file {}: storage.fsync: unknown value \"sometimes\", expected one of always, interval, never",
            path.display()
        )
    );
}

#[test]
fn yaml_syntax_errors_have_line_and_column() {
    let err = Config::from_yaml_str("node:\n  port: 9001\n bind: [1, 2\n").unwrap_err();
    assert!(matches!(err, ConfigError::Yaml { line: 3, .. }), "{err:?}");
    assert_snapshot!(err.to_string(), @"YAML error at line 3, column 2: while parsing a block mapping, did not find expected key");
    assert_snapshot!(yaml_err("node:\n  port: 1\n  port: 2\n"), @"YAML error at line 3, column 3: duplicate mapping key: port, set DuplicateKeyPolicy in Options if acceptable");
}

#[test]
fn oversized_and_unreadable_files() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    let line = "# padding padding padding padding padding padding padding padding\n";
    for _ in 0..(swarmmq_config::MAX_FILE_BYTES as usize / line.len() + 1) {
        f.write_all(line.as_bytes()).unwrap();
    }
    let err = Config::load(Some(f.path()), []).unwrap_err();
    assert!(matches!(err, ConfigError::TooLarge { .. }), "{err}");
    assert!(
        err.to_string()
            .ends_with("bytes long; the limit is 1048576"),
        "{err}"
    );

    let text = "#".repeat(swarmmq_config::MAX_FILE_BYTES as usize + 1);
    assert_snapshot!(yaml_err(&text), @"YAML text is 1048577 bytes long; the limit is 1048576");

    let dir = tempfile::tempdir().unwrap();
    let err = Config::load(Some(dir.path()), []).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "config file {}: cannot read: Is a directory",
            dir.path().display()
        )
    );

    let bin = dir.path().join("bin.yaml");
    std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
    let err = Config::load(Some(&bin), []).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "config file {}: cannot read: stream did not contain valid UTF-8",
            bin.display()
        )
    );
}

// ---- validation of the merged struct ----

#[test]
fn ports_non_zero_and_distinct() {
    assert_snapshot!(invalid("node:\n  port: 0\n"), @"node.port: must not be 0");
    assert_snapshot!(invalid("cluster:\n  internal_port: 0\n"), @"cluster.internal_port: must not be 0");
    assert_snapshot!(invalid("node:\n  http_port: 9001\n"), @"node.http_port: 9001 is also node.port; every port must differ");
    assert_snapshot!(invalid("cluster:\n  internal_port: 9000\n"), @"cluster.internal_port: 9000 is also node.grpc_port; every port must differ");
}

#[test]
fn message_must_fit_in_a_frame() {
    assert_snapshot!(invalid("performance:\n  max_message_size: 16MiB\n"), @"performance.max_message_size: 16MiB does not fit in a frame: it must be at most performance.max_frame_size (16MiB) less 64KiB of framing, i.e. 16320KiB");
    assert!(
        Config::from_yaml_str("performance:\n  max_message_size: 16320KiB\n")
            .unwrap()
            .validate()
            .is_ok()
    );
    assert_snapshot!(invalid("performance:\n  max_message_size: 0\n"), @"performance.max_message_size: must be more than 0");
    assert_snapshot!(invalid("performance:\n  max_frame_size: 64KiB\n"), @"performance.max_frame_size: 64KiB leaves no room for a message; it must be more than 64KiB");
    assert_snapshot!(invalid("performance:\n  max_frame_size: 5GiB\n  max_inflight_bytes: 8GiB\n"), @"performance.max_frame_size: 5GiB is more than the most, 60MiB");
    assert_snapshot!(invalid("performance:\n  max_frame_size: 61MiB\n  max_inflight_bytes: 64MiB\n"), @"performance.max_frame_size: 61MiB is more than the most, 60MiB");
    assert!(
        Config::from_yaml_str("performance:\n  max_frame_size: 60MiB\n")
            .unwrap()
            .validate()
            .is_ok()
    );
    assert_snapshot!(invalid("performance:\n  max_inflight_bytes: 1MiB\n"), @"performance.max_inflight_bytes: 1MiB is less than performance.max_frame_size (16MiB); one frame must fit");
}

#[test]
fn counts_in_range() {
    assert_snapshot!(invalid("performance:\n  batch_size: 0\n"), @"performance.batch_size: 0 is out of range 1..=100000");
    assert_snapshot!(invalid("performance:\n  batch_size: 100001\n"), @"performance.batch_size: 100001 is out of range 1..=100000");
    assert_snapshot!(invalid("performance:\n  max_connections: 0\n"), @"performance.max_connections: must be at least 1");
    assert_snapshot!(invalid("performance:\n  ack_timeout: 0s\n"), @"performance.ack_timeout: must be more than 0s");
    assert_snapshot!(invalid("performance:\n  frame_timeout: 0s\n"), @"performance.frame_timeout: must be more than 0s");
    assert_snapshot!(invalid("performance:\n  idle_timeout: 0s\n"), @"performance.idle_timeout: must be more than 0s");
    assert_snapshot!(invalid("performance:\n  idle_timeout: 8d\n"), @"performance.idle_timeout: must be at most 7d");
    assert_snapshot!(invalid("performance:\n  frame_timeout: 300000000y\n"), @"performance.frame_timeout: must be at most 7d");
    assert_snapshot!(invalid("storage:\n  default_partitions: 0\n"), @"storage.default_partitions: 0 is out of range 1..=1024");
    assert_snapshot!(invalid("storage:\n  default_partitions: 1025\n"), @"storage.default_partitions: 1025 is out of range 1..=1024");
    assert_snapshot!(invalid("delivery:\n  max_delivery_attempts: 0\n"), @"delivery.max_delivery_attempts: must be at least 1");
}

#[test]
fn storage_durations_and_sizes() {
    assert_snapshot!(invalid("storage:\n  fsync: interval\n  fsync_interval: 0s\n"), @"storage.fsync_interval: must be more than 0s when storage.fsync is interval");
    // A zero interval is harmless when it is not used.
    assert!(
        Config::from_yaml_str("storage:\n  fsync: always\n  fsync_interval: 0s\n")
            .unwrap()
            .validate()
            .is_ok()
    );
    assert_snapshot!(invalid("storage:\n  retention_age: 0s\n"), @"storage.retention_age: must be more than 0s");
    assert_snapshot!(invalid("storage:\n  retention_bytes: 0\n"), @"storage.retention_bytes: must be more than 0 (leave it out for no limit)");
    assert_snapshot!(invalid("storage:\n  segment_size: 4GiB\n"), @"storage.segment_size: 4GiB is more than the most, 4032MiB");
    assert_snapshot!(invalid("storage:\n  segment_size: 18446744073709551615\n"), @"storage.segment_size: 18446744073709551615B is more than the most, 4032MiB");
    assert!(
        Config::from_yaml_str("storage:\n  segment_size: 4032MiB\n")
            .unwrap()
            .validate()
            .is_ok()
    );
    assert_snapshot!(invalid("storage:\n  max_disk_usage: 0B\n"), @"storage.max_disk_usage: must be more than 0 (leave it out for no limit)");
    assert_snapshot!(invalid("storage:\n  segment_size: 0\n"), @"storage.segment_size: must be more than 0 (leave it out for no limit)");
    assert_snapshot!(invalid("storage:\n  segment_age: 0s\n"), @"storage.segment_age: must be more than 0s");
    assert_snapshot!(invalid("storage:\n  data_dir: \"\"\n"), @"storage.data_dir: must not be empty");
}

#[test]
fn cluster_nodes_well_formed() {
    let two = |a: &str, b: &str, c: &str, d: &str| {
        invalid(&format!(
            "cluster:\n  nodes:\n    - {{ id: {a}, address: \"{b}\" }}\n    - {{ id: {c}, address: \"{d}\" }}\n"
        ))
    };
    assert_snapshot!(two("n1", "h:1", "n1", "h:2"), @r#"cluster.nodes[1].id: "n1" is listed twice"#);
    assert_snapshot!(two("n1", "h:1", "n2", "h:1"), @r#"cluster.nodes[1].address: "h:1" is listed twice"#);
    assert_snapshot!(two("n1", "h:1", "n2", "h"), @r#"cluster.nodes[1].address: "h" is not host:port (no port)"#);
    assert_snapshot!(two("n1", "h:1", "n2", ":9001"), @r#"cluster.nodes[1].address: ":9001" is not host:port (no host)"#);
    assert_snapshot!(two("n1", "h:1", "n2", "h:0"), @r#"cluster.nodes[1].address: "h:0" is not host:port (the port must be 1 to 65535)"#);
    assert_snapshot!(two("n1", "h:1", "n2", "h:http"), @r#"cluster.nodes[1].address: "h:http" is not host:port (the port must be 1 to 65535)"#);
    assert_snapshot!(two("n1", "h:1", "n2", "::1:9001"), @r#"cluster.nodes[1].address: "::1:9001" is not host:port (put an IPv6 address in brackets, e.g. [::1]:9001)"#);
    assert!(
        Config::from_yaml_str("cluster:\n  nodes:\n    - { id: n1, address: \"[::1]:9001\" }\n")
            .unwrap()
            .validate()
            .is_ok()
    );
    assert_snapshot!(invalid("cluster:\n  nodes:\n    - { id: n1, address: \"h:1\", roles: [] }\n"), @"cluster.nodes[0].roles: must name at least one role");
    assert_snapshot!(invalid("cluster:\n  name: my cluster\n"), @r#"cluster.name: "my cluster" has the character ' '; allowed are a-z A-Z 0-9 . _ -"#);
}

#[test]
fn cluster_seeds_are_host_port() {
    assert_snapshot!(invalid("cluster:\n  seeds: [\"127.0.0.1:7001\", foo]\n"), @r#"cluster.seeds[1]: "foo" is not host:port (no port)"#);
    assert_snapshot!(invalid("cluster:\n  seeds: [\"h:99999\"]\n"), @r#"cluster.seeds[0]: "h:99999" is not host:port (the port must be 1 to 65535)"#);
    assert_snapshot!(invalid("cluster:\n  seeds: [\":7000\"]\n"), @r#"cluster.seeds[0]: ":7000" is not host:port (no host)"#);
    assert_snapshot!(yaml_err("cluster:\n  seeds: [7000]\n"), @"cluster.seeds[0]: invalid type: integer `7000`, expected a string");
    assert_snapshot!(env_err(&[("SWARMMQ_CLUSTER_SEEDS", "h:1")]), @"env SWARMMQ_CLUSTER_SEEDS: cluster.seeds: is a list and cannot be set from the environment; set it in the config file");
    let c =
        Config::from_yaml_str("cluster:\n  seeds: [\"localhost:7001\", \"[::1]:7002\"]\n").unwrap();
    c.validate().unwrap();
    assert!(c.cluster.is_enabled());
}

#[test]
fn cluster_replication_and_join_timeout_in_range() {
    assert_snapshot!(invalid("cluster:\n  replication_factor: 0\n"), @"cluster.replication_factor: 0 is out of range 1..=7");
    assert_snapshot!(invalid("cluster:\n  replication_factor: 8\n"), @"cluster.replication_factor: 8 is out of range 1..=7");
    assert_snapshot!(invalid("cluster:\n  join_timeout: 0s\n"), @"cluster.join_timeout: must be more than 0s");
    assert_snapshot!(invalid("cluster:\n  join_timeout: 30d\n"), @"cluster.join_timeout: must be at most 7d");
    assert_snapshot!(yaml_err("cluster:\n  join_timeout: soon\n"), @r#"cluster.join_timeout: invalid value: string "soon", expected a duration"#);
    let c =
        Config::from_yaml_str("cluster:\n  replication_factor: 7\n  join_timeout: 1m\n").unwrap();
    c.validate().unwrap();
    assert_eq!(c.cluster.replication_factor, Some(7));
    assert_eq!(c.cluster.join_timeout, std::time::Duration::from_secs(60));
}

#[test]
fn cluster_replication_is_a_word_and_raft_needs_cluster_mode() {
    assert_snapshot!(yaml_err("cluster:\n  replication: paxos\n"), @r#"cluster.replication: unknown value "paxos", expected one of none, raft"#);
    assert_snapshot!(env_err(&[("SWARMMQ_CLUSTER_REPLICATION", "Raft")]), @r#"env SWARMMQ_CLUSTER_REPLICATION: cluster.replication: unknown value "Raft", expected one of none, raft"#);
    assert_snapshot!(invalid("cluster:\n  replication: raft\n"), @"cluster.replication: raft needs cluster mode: list cluster.nodes or cluster.seeds");
    let c = Config::from_yaml_str(
        "cluster:\n  replication: raft\n  replication_factor: 3\n  seeds: [\"127.0.0.1:7001\"]\n",
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.cluster.replication, swarmmq_config::ReplicationMode::Raft);
    let c = Config::load(
        None,
        [("SWARMMQ_CLUSTER_REPLICATION".to_owned(), "none".to_owned())],
    )
    .unwrap();
    assert_eq!(c.cluster.replication, swarmmq_config::ReplicationMode::None);
}

#[test]
fn own_cluster_entry_names_the_internal_port() {
    let nodes = "  nodes:\n    - { id: node-1, address: \"127.0.0.1:7001\" }\n    - { id: node-2, address: \"127.0.0.1:7002\" }\n";
    assert_snapshot!(invalid(&format!("cluster:\n{nodes}")), @r#"cluster.internal_port: 7000 differs from the port of this node's own entry cluster.nodes[0] (node-1 at "127.0.0.1:7001"); set cluster.internal_port to 7001"#);
    assert_snapshot!(invalid(&format!("node:\n  id: node-2\ncluster:\n  internal_port: 7001\n{nodes}")), @r#"cluster.internal_port: 7001 differs from the port of this node's own entry cluster.nodes[1] (node-2 at "127.0.0.1:7002"); set cluster.internal_port to 7002"#);
    Config::from_yaml_str(&format!(
        "node:\n  id: node-2\ncluster:\n  internal_port: 7002\n{nodes}"
    ))
    .unwrap()
    .validate()
    .unwrap();
    // A node not listed joins through them; its own port is free to choose.
    Config::from_yaml_str(&format!("node:\n  id: node-9\ncluster:\n{nodes}"))
        .unwrap()
        .validate()
        .unwrap();
}

#[test]
fn non_loopback_bind_needs_tls_or_an_explicit_opt_out() {
    assert_snapshot!(invalid("node:\n  bind: 0.0.0.0\n"), @"node.bind: 0.0.0.0 is not a loopback address and TLS is not configured; set security.tls_cert and security.tls_key, or security.allow_insecure: true");
    for ok in [
        "node:\n  bind: 0.0.0.0\nsecurity:\n  allow_insecure: true\n",
        "node:\n  bind: 0.0.0.0\nsecurity:\n  tls_cert: /c.pem\n  tls_key: /k.pem\n",
        "node:\n  bind: ::1\n",
    ] {
        Config::from_yaml_str(ok).unwrap().validate().unwrap();
    }
}

#[test]
fn tls_files_come_in_pairs() {
    assert_snapshot!(invalid("security:\n  tls_cert: /c.pem\n"), @"security.tls_key: is required when security.tls_cert is set");
    assert_snapshot!(invalid("security:\n  tls_key: /k.pem\n"), @"security.tls_cert: is required when security.tls_key is set");
    assert_snapshot!(invalid("security:\n  tls_ca: /ca.pem\n"), @"security.tls_ca: needs security.tls_cert and security.tls_key (mutual TLS is on top of TLS)");
}

#[test]
fn log_level_not_empty() {
    assert_snapshot!(invalid("log:\n  level: \"\"\n"), @"log.level: must not be empty (e.g. info, or swarmmq=debug,info)");
}

#[test]
fn api_keys_file_names_a_file() {
    assert_snapshot!(invalid("security:\n  api_keys_file: \"\"\n"), @"security.api_keys_file: must not be empty (leave it out for <storage.data_dir>/api-keys.json)");
    assert_snapshot!(invalid("security:\n  api_keys_file: /etc/swarmmq/\n"), @"security.api_keys_file: /etc/swarmmq/ names a directory; name the file");
}
