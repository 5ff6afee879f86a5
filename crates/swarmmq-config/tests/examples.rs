//! The example files in `configs/` load and validate, and say what they claim to.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use swarmmq_config::{ByteSize, Config, FsyncPolicy, LogFormat, NodeRole};

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(name)
}

fn load(name: &str) -> Config {
    let config = Config::load(Some(&example(name)), []).unwrap();
    config.validate().unwrap();
    config
}

#[test]
fn every_example_file_loads_and_validates() {
    let dir = example("");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let config =
                Config::load(Some(&path), []).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            config
                .validate()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(
        seen >= 3,
        "found only {seen} example files in {}",
        dir.display()
    );
}

#[test]
fn single_node_example_spells_out_the_embedded_defaults() {
    assert_eq!(load("single-node.yaml"), Config::default());
}

#[test]
fn mvp_cluster_example_has_the_seed_shape() {
    let config = load("mvp-cluster.yaml");
    assert_eq!(config.cluster.name, "mvp-cluster");
    // The file as is runs node-1, whose entry names its internal port.
    assert_eq!(config.cluster.internal_port, 7001);
    assert!(config.cluster.is_enabled());
    let nodes = &config.cluster.nodes;
    assert_eq!(nodes.len(), 5);
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(node.id.as_str(), format!("node-{}", i + 1));
        assert_eq!(node.address, format!("localhost:{}", 7001 + i));
        assert_eq!(node.roles, NodeRole::ALL);
    }
    assert_eq!(config.performance.max_message_size, ByteSize(1_000_000));
    assert_eq!(config.performance.batch_size, 1000);
    assert_eq!(config.performance.ack_timeout, Duration::from_secs(5));
    assert_eq!(config.storage.data_dir, PathBuf::from("/var/lib/swarmMQ"));
    assert_eq!(config.storage.max_disk_usage, Some(ByteSize::gb(10)));
    assert_eq!(config.security.master_key, None);
    assert_eq!(config.security.tls_cert, None);
}

#[test]
fn production_example_is_hardened() {
    let config = load("production.yaml");
    assert_eq!(config.node.bind, "0.0.0.0".parse::<IpAddr>().unwrap());
    assert_eq!(config.storage.fsync, FsyncPolicy::Always);
    assert!(config.security.auth_enabled);
    assert_eq!(
        config.api_keys_file(),
        PathBuf::from("/etc/swarmmq/api-keys.json")
    );
    assert!(!config.security.allow_insecure);
    assert!(config.security.tls_cert.is_some());
    assert!(config.security.tls_key.is_some());
    assert!(config.security.tls_ca.is_some());
    assert_eq!(config.log.format, LogFormat::Json);
    // Production without its TLS files would bind every interface in the clear.
    let mut insecure = config.clone();
    insecure.security.tls_cert = None;
    insecure.security.tls_key = None;
    insecure.security.tls_ca = None;
    assert!(insecure.validate().is_err());
}
