//! API keys end to end with the real binary in separate processes: the node with
//! `security.auth_enabled`, keys made with `swarmmq auth`, clients with `--api-key`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use swarmmq_client::{Admin, ConnectOptions, ErrorCode, Message, Producer, ProducerConfig};

fn auth_node(data: &Path) -> NodeProcess {
    NodeProcess::start_with(data, &[], &[("SWARMMQ_SECURITY_AUTH_ENABLED", "true")])
}

/// `swarmmq auth create-key` into the data dir's key file; returns the printed key.
fn create_key(data: &Path, name: &str, perms: &[&str]) -> String {
    let mut args = vec![
        "auth",
        "create-key",
        "--data-dir",
        data.to_str().unwrap(),
        "--name",
        name,
    ];
    for p in perms {
        args.extend(["--allow", p]);
    }
    let out = swarmmq(&args, None);
    let key = ok(&out).trim().to_string();
    assert!(key.starts_with("smq_"), "{key}");
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(note.contains("cannot be shown again"), "{note}");
    key
}

/// `swarmmq <args>` with extra environment (the helper clears SWARMMQ_API_KEY).
fn swarmmq_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("SWARMMQ_NODE")
        .env_remove("SWARMMQ_API_KEY")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run swarmmq")
}

/// The one `error:` line of a failed command.
fn one_error_line(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

fn produce(addr: &str, key: Option<&str>, dest: &str, msg: &str) -> Output {
    let mut args = vec!["produce", "--node", addr, "-d", dest, "-m", msg];
    if let Some(k) = key {
        args.extend(["--api-key", k]);
    }
    swarmmq(&args, None)
}

fn consume(addr: &str, key: &str, dest: &str) -> Output {
    swarmmq(
        &[
            "consume",
            "--node",
            addr,
            "-d",
            dest,
            "--max",
            "1",
            "--api-key",
            key,
        ],
        None,
    )
}

fn keys_file(data: &Path) -> PathBuf {
    data.join("api-keys.json")
}

#[test]
fn without_a_key_every_command_fails_with_one_unauthenticated_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = auth_node(&data);
    let addr = node.addr();
    // No key file yet: the node says how to make one.
    assert!(
        node.log_text().contains("swarmmq auth create-key"),
        "{}",
        node.log_text()
    );
    for args in [
        vec!["topic", "list", "--node", &addr],
        vec!["produce", "--node", &addr, "-d", "a.x", "-m", "hi"],
        vec!["consume", "--node", &addr, "-d", "a.x"],
        vec!["group", "list", "--node", &addr],
    ] {
        let err = one_error_line(&swarmmq(&args, None));
        assert!(err.contains("UNAUTHENTICATED"), "{args:?}: {err}");
        assert!(err.contains("--api-key"), "{args:?}: {err}");
    }
    let err = one_error_line(&produce(&addr, Some("smq_not_a_key"), "a.x", "hi"));
    assert!(err.contains("UNAUTHENTICATED"), "{err}");
    assert!(err.contains("invalid API key"), "{err}");
}

#[test]
fn each_key_can_do_what_its_permissions_say_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let producer = create_key(&data, "producer", &["produce:a.*"]);
    let consumer = create_key(&data, "consumer", &["consume:a.*"]);
    let admin = create_key(&data, "admin", &["admin"]);
    let node = auth_node(&data);
    let addr = node.addr();

    ok(&produce(&addr, Some(&producer), "a.x", "hello"));
    let err = one_error_line(&produce(&addr, Some(&producer), "b.x", "hello"));
    assert!(err.contains("FORBIDDEN"), "{err}");
    assert!(err.contains("produce \"b.x\""), "{err}");
    let err = one_error_line(&consume(&addr, &producer, "a.x"));
    assert!(err.contains("FORBIDDEN"), "{err}");
    assert!(err.contains("consume \"a.x\""), "{err}");

    // The key from the environment works like --api-key.
    let out = swarmmq_env(
        &["consume", "--node", &addr, "-d", "a.x", "--max", "1"],
        &[("SWARMMQ_API_KEY", &consumer)],
    );
    assert_eq!(ok(&out), "hello\n");
    let err = one_error_line(&produce(&addr, Some(&consumer), "a.x", "x"));
    assert!(err.contains("FORBIDDEN"), "{err}");

    let err = one_error_line(&swarmmq(
        &[
            "topic",
            "create",
            "t1",
            "--node",
            &addr,
            "--api-key",
            &producer,
        ],
        None,
    ));
    assert!(err.contains("FORBIDDEN") && err.contains("admin"), "{err}");
    ok(&swarmmq(
        &[
            "topic",
            "create",
            "t1",
            "--node",
            &addr,
            "--api-key",
            &admin,
        ],
        None,
    ));
    // Listing needs only a valid key.
    let list = ok(&swarmmq(
        &[
            "topic",
            "list",
            "--node",
            &addr,
            "--api-key",
            &consumer,
            "--json",
        ],
        None,
    ));
    assert!(
        list.contains("\"t1\"") && list.contains("\"a.x\""),
        "{list}"
    );
}

#[test]
fn the_key_file_keeps_no_secret_and_list_shows_none() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = create_key(&data, "svc", &["produce:orders.*", "consume:orders.*"]);
    let secret = &key["smq_".len() + 13..];
    let path = keys_file(&data);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(secret), "the secret is in the key file");
    assert!(!text.contains(&key), "the key is in the key file");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let list = ok(&swarmmq(
        &["auth", "list", "--data-dir", data.to_str().unwrap()],
        None,
    ));
    let id = &key["smq_".len().."smq_".len() + 12];
    assert!(list.contains(id) && list.contains("svc"), "{list}");
    assert!(list.contains("produce:orders.*,consume:orders.*"), "{list}");
    assert!(!list.contains(secret), "{list}");
    let hash = text
        .lines()
        .find(|l| l.contains("\"hash\""))
        .and_then(|l| l.split('"').nth(3))
        .unwrap();
    assert!(!list.contains(hash), "{list}");
}

#[test]
fn a_revoked_key_is_refused_on_new_and_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = create_key(&data, "svc", &["produce:*"]);
    let node = auth_node(&data);
    let addr = node.addr();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let options = ConnectOptions::new(addr.clone()).with_api_key(key.clone());
    let producer = rt
        .block_on(Producer::connect(&options, ProducerConfig::default()))
        .unwrap();
    let send = |n: u32| {
        rt.block_on(async {
            producer
                .send("t", Message::new(format!("m{n}")))
                .await?
                .await
        })
    };
    send(0).unwrap();

    let data_dir = data.to_str().unwrap();
    let out = swarmmq(&["auth", "revoke", "svc", "--data-dir", data_dir], None);
    ok(&out);
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(note.contains("revoked API key \"svc\""), "{note}");

    // The connection opened before the revocation is refused soon after it.
    let revoked_at = Instant::now();
    let mut n = 1;
    let err = loop {
        match send(n) {
            Ok(_) => {
                assert!(
                    revoked_at.elapsed() < Duration::from_secs(10),
                    "the revoked key still works on its open connection"
                );
                std::thread::sleep(Duration::from_millis(50));
                n += 1;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(err.code(), Some(ErrorCode::Unauthenticated), "{err}");
    assert!(err.to_string().contains("revoked"), "{err}");

    // New connections are refused too.
    let err = one_error_line(&produce(&addr, Some(&key), "t", "again"));
    assert!(err.contains("UNAUTHENTICATED"), "{err}");
    // Revoking twice says so.
    let err = one_error_line(&swarmmq(
        &["auth", "revoke", "svc", "--data-dir", data_dir],
        None,
    ));
    assert!(err.contains("already revoked"), "{err}");

    // SIGHUP reloads the key file at once and does not stop the node.
    node.signal(1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !node.log_text().contains("SIGHUP: API keys reloaded") {
        assert!(
            Instant::now() < deadline,
            "no reload on SIGHUP: {}",
            node.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http_get(node.http(), "/health").map(|(s, _)| s), Some(200));
}

#[test]
fn repeated_wrong_keys_get_the_address_blocked_while_health_answers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = create_key(&data, "admin", &["admin"]);
    let node = auth_node(&data);
    let addr = node.addr();
    // The real id with a wrong secret.
    let wrong = format!("{}{}", &key[..17], "A".repeat(43));
    for _ in 0..6 {
        let err = one_error_line(&swarmmq(
            &["topic", "list", "--node", &addr, "--api-key", &wrong],
            None,
        ));
        assert!(err.contains("UNAUTHENTICATED: invalid API key"), "{err}");
    }
    // Blocked: even the right key is refused for now.
    let err = one_error_line(&swarmmq(
        &["topic", "list", "--node", &addr, "--api-key", &key],
        None,
    ));
    assert!(err.contains("too many failed attempts"), "{err}");

    assert_eq!(http_get(node.http(), "/health").map(|(s, _)| s), Some(200));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let health = rt.block_on(async { Admin::connect(addr.as_str()).await?.health().await });
    assert_eq!(health.unwrap().status, "ok");

    let (_, metrics) = http_get(node.http(), "/metrics").unwrap();
    let failures = |reason: &str| {
        metric(
            &metrics,
            "swarmmq_auth_failures_total",
            &format!("reason=\"{reason}\""),
        )
    };
    assert_eq!(failures("wrong_secret"), 6.0, "{metrics}");
    assert_eq!(failures("rate_limited"), 1.0, "{metrics}");
    // Failures are logged with the key id and reason, never the secret.
    let log = node.log_text();
    assert!(
        log.contains(&key[4..16]) && log.contains("wrong_secret"),
        "{log}"
    );
    assert!(
        !log.contains(&key[17..]) && !log.contains(&wrong[17..]),
        "{log}"
    );
}

#[test]
fn with_auth_off_everything_works_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("data"));
    let addr = node.addr();
    ok(&swarmmq(&["topic", "create", "t", "--node", &addr], None));
    ok(&produce(&addr, None, "t", "one"));
    // A key, even a made-up one, is not needed and not refused.
    ok(&produce(&addr, Some("smq_whatever"), "t", "two"));
    let out = swarmmq(&["consume", "--node", &addr, "-d", "t", "--max", "2"], None);
    assert_eq!(ok(&out), "one\ntwo\n");
}

#[test]
fn auth_commands_find_the_key_file_as_the_node_does() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("elsewhere/keys.json");
    let config = dir.path().join("node.yaml");
    std::fs::write(
        &config,
        format!("security:\n  api_keys_file: {}\n", file.display()),
    )
    .unwrap();
    let config_arg = config.to_str().unwrap();
    let out = swarmmq(
        &[
            "auth",
            "create-key",
            "--config",
            config_arg,
            "--name",
            "a",
            "--allow",
            "admin",
        ],
        None,
    );
    ok(&out);
    assert!(file.exists());
    // The same file through --keys-file, and the env override through the config path.
    let list = ok(&swarmmq(
        &[
            "auth",
            "list",
            "--keys-file",
            file.to_str().unwrap(),
            "--json",
        ],
        None,
    ));
    let keys: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(keys[0]["name"], "a");
    assert_eq!(keys[0]["permissions"][0], "admin");
    assert!(keys[0]["revoked_at"].is_null());
    let id = keys[0]["id"].as_str().unwrap().to_string();
    let env_file = dir.path().join("env-keys.json");
    let out = swarmmq_env(
        &[
            "auth",
            "create-key",
            "--config",
            config_arg,
            "--name",
            "b",
            "--allow",
            "consume:x",
        ],
        &[("SWARMMQ_SECURITY_API_KEYS_FILE", env_file.to_str().unwrap())],
    );
    ok(&out);
    assert!(env_file.exists());
    // Revoke by id; bad input gets one clear error line.
    ok(&swarmmq(
        &["auth", "revoke", &id, "--config", config_arg],
        None,
    ));
    let list = ok(&swarmmq(
        &["auth", "list", "--config", config_arg, "--json"],
        None,
    ));
    let keys: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert!(keys[0]["revoked_at"].is_string(), "{list}");
    let err = one_error_line(&swarmmq(
        &[
            "auth",
            "create-key",
            "--config",
            config_arg,
            "--name",
            "c",
            "--allow",
            "produce:a b",
        ],
        None,
    ));
    assert!(err.contains("invalid permission \"produce:a b\""), "{err}");
    let err = one_error_line(&swarmmq(
        &["auth", "revoke", "nobody", "--config", config_arg],
        None,
    ));
    assert!(
        err.contains("no API key has the id or name \"nobody\""),
        "{err}"
    );
    std::fs::write(&file, "{ not json").unwrap();
    let err = one_error_line(&swarmmq(&["auth", "list", "--config", config_arg], None));
    assert!(
        err.contains(&file.display().to_string()) && err.contains("not a valid API key file"),
        "{err}"
    );
}
