//! End-to-end encryption with the real binary: `keys new-e2e`, `produce --e2e-key`,
//! `consume --e2e-key`. The right key prints plaintext; another key or none prints one
//! error line per message and no payload, nacks (so the messages reach the DLQ) and
//! exits non-zero; the node only ever delivers and stores ciphertext.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use swarmmq_client::{Consumer, ConsumerConfig, E2eError};

const SECRET: &str = "e2e-plaintext-marker-51c0de";

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn consume(addr: &str, dest: &str, group: &str, key: Option<&str>) -> std::process::Output {
    let mut args = vec!["consume", "--node", addr, "-d", dest, "-g", group];
    if let Some(k) = key {
        args.extend(["--e2e-key", k]);
    }
    swarmmq(&args, None)
}

/// The `error: partition P offset O: ...` lines, as (partition, offset, line).
fn error_lines(stderr: &str) -> Vec<(u32, u64, String)> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("error: partition ")?;
            let (p, rest) = rest.split_once(" offset ")?;
            let (o, _) = rest.split_once(':')?;
            Some((p.parse().ok()?, o.parse().ok()?, l.to_string()))
        })
        .collect()
}

#[test]
fn only_the_right_key_prints_plaintext_and_failures_are_reported_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let k1 = dir.path().join("k1.key");
    let k2 = dir.path().join("k2.key");
    let (k1s, k2s) = (k1.to_str().unwrap(), k2.to_str().unwrap());

    let out = ok(&swarmmq(&["keys", "new-e2e", k1s], None));
    assert!(out.contains("fingerprint"), "{out}");
    ok(&swarmmq(&["keys", "new-e2e", k2s], None));
    assert_eq!(
        std::fs::metadata(&k1).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let before = std::fs::read(&k1).unwrap();
    let again = swarmmq(&["keys", "new-e2e", k1s], None);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read(&k1).unwrap(),
        before,
        "the key file is untouched"
    );

    let node = NodeProcess::start(&data);
    let addr = node.addr();
    ok(&swarmmq(
        &[
            "topic",
            "create",
            "vault",
            "-p",
            "1",
            "--max-attempts",
            "2",
            "--node",
            &addr,
        ],
        None,
    ));
    ok(&swarmmq(
        &[
            "produce",
            "--node",
            &addr,
            "-d",
            "vault",
            "-m",
            SECRET,
            "--count",
            "3",
            "--e2e-key",
            k1s,
        ],
        None,
    ));

    // The right key: plaintext, exit 0.
    let out = ok(&consume(&addr, "vault", "right", Some(k1s)));
    assert_eq!(out.lines().collect::<Vec<_>>(), vec![SECRET; 3]);

    // Another key: nothing on stdout, one error line per message, non-zero exit.
    let out = consume(&addr, "vault", "wrong", Some(k2s));
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "no garbage printed: {:?}",
        out.stdout
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors = error_lines(&stderr);
    let offsets: Vec<u64> = errors.iter().map(|e| e.1).collect();
    assert_eq!(offsets, vec![0, 1, 2], "one line per message:\n{stderr}");
    assert!(
        errors.iter().all(|e| e.2.contains("not with this key")),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: 3 messages could not be decrypted"),
        "{stderr}"
    );

    // Nacked until the attempts ran out: the sealed copies are in the DLQ, and the
    // right key still opens them there.
    let mut dlq = String::new();
    for _ in 0..50 {
        dlq = ok(&consume(&addr, "vault.dlq", "ops", Some(k1s)));
        if !dlq.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(dlq.lines().collect::<Vec<_>>(), vec![SECRET; 3]);

    // No key at all: reported as end-to-end encrypted, nothing printed.
    let out = consume(&addr, "vault", "nokey", None);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 3, "{stderr}");
    assert!(
        errors
            .iter()
            .all(|e| e.2.contains("end-to-end encrypted") && e.2.contains("--e2e-key")),
        "{stderr}"
    );

    // What the node hands out is ciphertext: the plaintext is not in it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = ConsumerConfig::new("vault", "raw");
        c.max_wait = Duration::from_millis(500);
        let mut c = Consumer::connect(&addr, c).await.unwrap();
        let got = c.pull_opened().await.unwrap();
        assert_eq!(got.len(), 3);
        for r in got {
            let f = r.unwrap_err();
            assert!(matches!(f.error, E2eError::NoKey { .. }));
            assert!(!contains(&f.message.payload, SECRET));
        }
    });

    // And no file of the node holds it.
    drop(node);
    for f in files_under(&data) {
        assert!(!contains(&std::fs::read(&f).unwrap(), SECRET), "{f:?}");
    }
}

/// An ordered group cannot skip: consumption stops before the message it cannot open,
/// every run, and never prints what comes after it.
#[test]
fn an_ordered_group_stops_at_a_message_it_cannot_open() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.key");
    let keys = key.to_str().unwrap();
    ok(&swarmmq(&["keys", "new-e2e", keys], None));
    let node = NodeProcess::start(&dir.path().join("data"));
    let addr = node.addr();
    ok(&swarmmq(
        &["topic", "create", "s", "-p", "1", "--node", &addr],
        None,
    ));
    let send = |extra: &[&str], text: &str| {
        let mut args = vec!["produce", "--node", &addr, "-d", "s", "-m", text];
        args.extend(extra);
        ok(&swarmmq(&args, None));
    };
    send(&[], "plain-0");
    send(&[], "plain-1");
    send(&["--e2e-key", keys], SECRET);
    send(&[], "plain-3");
    let run = || {
        swarmmq(
            &[
                "consume", "--node", &addr, "-d", "s", "-g", "stream", "--mode", "ordered",
            ],
            None,
        )
    };
    for expected in [vec!["plain-0", "plain-1"], vec![]] {
        let out = run();
        assert!(!out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.lines().collect::<Vec<_>>(), expected);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors = error_lines(&stderr);
        assert_eq!(errors.len(), 1, "{stderr}");
        assert_eq!((errors[0].0, errors[0].1), (0, 2), "{stderr}");
    }
}
