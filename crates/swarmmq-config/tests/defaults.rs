//! The embedded defaults are the documented ones and make a valid single node.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use swarmmq_config::{ByteSize, Config, FsyncPolicy, LogFormat};
use swarmmq_types::Limits;

#[test]
fn defaults_equal_the_documented_defaults() {
    let c = Config::default();
    assert_eq!(c.node.id.as_str(), "node-1");
    assert_eq!(c.node.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(
        (c.node.port, c.node.http_port, c.node.grpc_port),
        (9001, 8080, 9000)
    );
    assert_eq!(c.cluster.name, "swarmmq");
    assert!(c.cluster.nodes.is_empty());
    assert_eq!(c.cluster.internal_port, 7000);
    assert!(c.cluster.seeds.is_empty());
    assert_eq!(c.cluster.replication_factor, None);
    assert_eq!(c.cluster.replication, swarmmq_config::ReplicationMode::None);
    assert_eq!(c.cluster.join_timeout, Duration::from_secs(10));
    assert!(!c.cluster.is_enabled());

    let p = &c.performance;
    assert_eq!(p.max_message_size, ByteSize(1_048_576));
    assert_eq!(p.batch_size, 10_000);
    assert_eq!(p.ack_timeout, Duration::from_secs(30));
    assert_eq!(p.max_connections, 1024);
    assert_eq!(p.max_frame_size, ByteSize(16 * 1_048_576));
    assert_eq!(p.max_inflight_bytes, ByteSize(64 * 1_048_576));
    assert_eq!(p.frame_timeout, Duration::from_secs(30));
    assert_eq!(p.idle_timeout, Duration::from_secs(600));

    let s = &c.storage;
    let week = Duration::from_secs(7 * 24 * 3600);
    assert_eq!(s.data_dir, PathBuf::from("./swarmmq-data"));
    assert_eq!(s.max_disk_usage, None);
    assert_eq!(s.fsync, FsyncPolicy::Always);
    assert_eq!(s.fsync_interval, Duration::from_millis(50));
    assert_eq!(s.segment_size, ByteSize(128 * 1_048_576));
    assert_eq!(s.segment_age, week);
    assert_eq!(s.retention_age, Some(week));
    assert_eq!(s.retention_bytes, None);
    assert_eq!(s.default_partitions, 1);
    assert!(s.auto_create_destinations);

    assert_eq!(c.delivery.max_delivery_attempts, 5);
    assert_eq!(c.delivery.dedup_window, Duration::from_secs(120));
    assert_eq!(c.delivery.dedup_max_ids, 100_000);

    let sec = &c.security;
    assert!(sec.master_key.is_none());
    assert!(sec.tls_cert.is_none() && sec.tls_key.is_none() && sec.tls_ca.is_none());
    assert!(!sec.auth_enabled);
    assert!(!sec.allow_insecure);
    assert!(sec.api_keys_file.is_none());
    assert_eq!(
        c.api_keys_file(),
        std::path::PathBuf::from("./swarmmq-data/api-keys.json")
    );

    assert_eq!(c.log.level, "info");
    assert_eq!(c.log.format, LogFormat::Text);
}

#[test]
fn no_file_and_no_env_is_the_default_and_valid() {
    let c = Config::load(None, []).unwrap();
    assert_eq!(c, Config::default());
    c.validate().unwrap();
}

#[test]
fn empty_file_and_empty_sections_are_the_defaults() {
    assert_eq!(Config::from_yaml_str("").unwrap(), Config::default());
    assert_eq!(
        Config::from_yaml_str("# nothing set\nstorage:\nlog:\n").unwrap(),
        Config::default()
    );
}

#[test]
fn default_limits_are_the_shared_defaults_with_the_default_batch_size() {
    // performance.batch_size (10000) is the one default below the protocol's bound.
    let expected = Limits {
        max_batch_messages: 10_000,
        ..Limits::DEFAULT
    };
    assert_eq!(Config::default().limits(), expected);
}

#[test]
fn performance_fields_override_the_limits() {
    let c = Config::from_yaml_str(
        "performance:\n  max_message_size: 2MiB\n  batch_size: 500\n  max_connections: 10\n  \
         max_frame_size: 4MiB\n  max_inflight_bytes: 8MiB\n",
    )
    .unwrap();
    c.validate().unwrap();
    let l = c.limits();
    assert_eq!(l.max_message_bytes, 2 * 1_048_576);
    assert_eq!(l.max_batch_messages, 500);
    assert_eq!(l.max_connections, 10);
    assert_eq!(l.max_frame_bytes, 4 * 1_048_576);
    assert_eq!(l.max_inflight_bytes_per_connection, 8 * 1_048_576);
    // A pull answer still fits in the smaller frame.
    assert_eq!(l.max_pull_bytes, 4 * 1_048_576 - 64 * 1024);
    assert_eq!(l.max_partitions, Limits::DEFAULT.max_partitions);
}
