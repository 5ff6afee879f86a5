//! defaults <- YAML file <- environment <- flags, with real files and a literal environment.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use swarmmq_config::{ByteSize, Config, FsyncPolicy};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn file(yaml: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    f.write_all(yaml.as_bytes()).unwrap();
    f
}

#[test]
fn file_overrides_defaults_and_keeps_the_rest() {
    let f = file("storage:\n  data_dir: /srv/mq\n  fsync: never\n");
    let c = Config::load(Some(f.path()), []).unwrap();
    assert_eq!(c.storage.data_dir, PathBuf::from("/srv/mq"));
    assert_eq!(c.storage.fsync, FsyncPolicy::Never);
    assert_eq!(c.storage.segment_size, ByteSize::mib(128));
    assert_eq!(c.node, Config::default().node);
}

#[test]
fn env_sets_every_kind_of_value_from_text() {
    let c = Config::load(
        None,
        env(&[
            ("SWARMMQ_STORAGE_DATA_DIR", "/x"),
            ("SWARMMQ_PERFORMANCE_MAX_MESSAGE_SIZE", "2MiB"),
            ("SWARMMQ_PERFORMANCE_BATCH_SIZE", "77"),
            ("SWARMMQ_PERFORMANCE_ACK_TIMEOUT", "90s"),
            ("SWARMMQ_PERFORMANCE_FRAME_TIMEOUT", "1500ms"),
            ("SWARMMQ_PERFORMANCE_IDLE_TIMEOUT", "2m"),
            ("SWARMMQ_NODE_PORT", "9101"),
            ("SWARMMQ_NODE_BIND", "::1"),
            ("SWARMMQ_NODE_ID", "node-7"),
            ("SWARMMQ_STORAGE_AUTO_CREATE_DESTINATIONS", "false"),
            ("SWARMMQ_STORAGE_FSYNC", "interval"),
            ("SWARMMQ_STORAGE_MAX_DISK_USAGE", "10GB"),
            ("SWARMMQ_STORAGE_RETENTION_AGE", "null"),
            ("SWARMMQ_SECURITY_AUTH_ENABLED", "TRUE"),
            ("SWARMMQ_SECURITY_TLS_CERT", "/etc/c.pem"),
            ("SWARMMQ_LOG_FORMAT", "json"),
            ("SWARMMQ_LOG_LEVEL", "debug,hyper=warn"),
            ("SWARMMQ_CLUSTER_NAME", "blue"),
        ]),
    )
    .unwrap();
    assert_eq!(c.storage.data_dir, PathBuf::from("/x"));
    assert_eq!(c.performance.max_message_size, ByteSize::mib(2));
    assert_eq!(c.performance.batch_size, 77);
    assert_eq!(c.performance.ack_timeout, Duration::from_secs(90));
    assert_eq!(c.performance.frame_timeout, Duration::from_millis(1500));
    assert_eq!(c.performance.idle_timeout, Duration::from_secs(120));
    assert_eq!(c.node.port, 9101);
    assert!(c.node.bind.is_loopback() && c.node.bind.is_ipv6());
    assert_eq!(c.node.id.as_str(), "node-7");
    assert!(!c.storage.auto_create_destinations);
    assert_eq!(c.storage.fsync, FsyncPolicy::Interval);
    assert_eq!(c.storage.max_disk_usage, Some(ByteSize::gb(10)));
    assert_eq!(c.storage.retention_age, None);
    assert!(c.security.auth_enabled);
    assert_eq!(c.security.tls_cert, Some(PathBuf::from("/etc/c.pem")));
    assert_eq!(c.log.format, swarmmq_config::LogFormat::Json);
    assert_eq!(c.log.level, "debug,hyper=warn");
    assert_eq!(c.cluster.name, "blue");
}

#[test]
fn env_wins_over_file() {
    let f = file("storage:\n  data_dir: /from-file\n  fsync: never\nnode:\n  port: 9100\n");
    let c = Config::load(
        Some(f.path()),
        env(&[
            ("SWARMMQ_STORAGE_DATA_DIR", "/from-env"),
            ("SWARMMQ_NODE_HTTP_PORT", "8181"),
        ]),
    )
    .unwrap();
    assert_eq!(c.storage.data_dir, PathBuf::from("/from-env"));
    // Keys the environment does not name keep the file's values.
    assert_eq!(c.storage.fsync, FsyncPolicy::Never);
    assert_eq!(c.node.port, 9100);
    assert_eq!(c.node.http_port, 8181);
}

#[test]
fn env_fills_a_section_the_file_left_empty() {
    let f = file("storage:\n");
    let c = Config::load(Some(f.path()), env(&[("SWARMMQ_STORAGE_FSYNC", "never")])).unwrap();
    assert_eq!(c.storage.fsync, FsyncPolicy::Never);
}

#[test]
fn flags_win_by_mutating_the_loaded_struct_then_validating() {
    let f = file("node:\n  port: 9100\n");
    let mut c = Config::load(Some(f.path()), env(&[("SWARMMQ_NODE_PORT", "9200")])).unwrap();
    assert_eq!(c.node.port, 9200);
    // What the CLI does with `--port 9300`:
    c.node.port = 9300;
    c.validate().unwrap();
    assert_eq!(c.node.port, 9300);
    // A flag that breaks an invariant is caught by the same validation.
    c.node.port = c.node.http_port;
    assert!(c.validate().is_err());
}

#[test]
fn variables_of_other_sections_and_prefixes_are_ignored() {
    let c = Config::load(
        None,
        env(&[
            ("SWARMMQ_API_KEY", "client-secret"),
            ("SWARMMQ_URL", "127.0.0.1:9001"),
            // The clients' node address and TLS CA.
            ("SWARMMQ_NODE", "127.0.0.1:9001"),
            ("SWARMMQ_TLS_CA", "/etc/ca.pem"),
            ("SWARMMQ", "x"),
            ("HOME", "/root"),
            ("STORAGE_DATA_DIR", "/nope"),
        ]),
    )
    .unwrap();
    assert_eq!(c, Config::default());
}

#[test]
fn master_key_alias_and_full_name_both_work() {
    let key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    for name in ["SWARMMQ_MASTER_KEY", "SWARMMQ_SECURITY_MASTER_KEY"] {
        let c = Config::load(None, env(&[(name, key)])).unwrap();
        assert_eq!(
            c.security.master_key.unwrap().as_bytes(),
            &[1u8; 32],
            "{name}"
        );
    }
    // Same value under both names is fine.
    let c = Config::load(
        None,
        env(&[
            ("SWARMMQ_MASTER_KEY", key),
            ("SWARMMQ_SECURITY_MASTER_KEY", key),
        ]),
    )
    .unwrap();
    assert!(c.security.master_key.is_some());
}

#[test]
fn env_master_key_overrides_the_file_one() {
    let file_key = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
    let env_key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let f = file(&format!("security:\n  master_key: {file_key}\n"));
    let c = Config::load(Some(f.path()), []).unwrap();
    assert_eq!(c.security.master_key.unwrap().as_bytes(), &[2u8; 32]);
    let c = Config::load(Some(f.path()), env(&[("SWARMMQ_MASTER_KEY", env_key)])).unwrap();
    assert_eq!(c.security.master_key.unwrap().as_bytes(), &[1u8; 32]);
}

#[test]
fn the_environment_order_does_not_matter() {
    let a = [
        ("SWARMMQ_LOG_LEVEL", "warn"),
        ("SWARMMQ_STORAGE_FSYNC", "never"),
    ];
    let b = [a[1], a[0]];
    assert_eq!(
        Config::load(None, env(&a)).unwrap(),
        Config::load(None, env(&b)).unwrap()
    );
}

#[test]
fn process_env_passes_the_utf8_environment_through() {
    // The test process's environment is UTF-8, so the adapter must drop nothing.
    let ours: Vec<_> = swarmmq_config::process_env().collect();
    let std: Vec<_> = std::env::vars().collect();
    assert_eq!(ours, std);
}

#[test]
fn api_keys_file_defaults_into_the_data_dir_and_env_overrides_it() {
    let c = Config::load(None, env(&[("SWARMMQ_STORAGE_DATA_DIR", "/srv/mq")])).unwrap();
    assert_eq!(c.security.api_keys_file, None);
    assert_eq!(c.api_keys_file(), PathBuf::from("/srv/mq/api-keys.json"));
    let f = file("security:\n  api_keys_file: /etc/swarmmq/keys.json\n");
    let c = Config::load(Some(f.path()), []).unwrap();
    assert_eq!(c.api_keys_file(), PathBuf::from("/etc/swarmmq/keys.json"));
    let c = Config::load(
        Some(f.path()),
        env(&[("SWARMMQ_SECURITY_API_KEYS_FILE", "/run/keys.json")]),
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.api_keys_file(), PathBuf::from("/run/keys.json"));
}
