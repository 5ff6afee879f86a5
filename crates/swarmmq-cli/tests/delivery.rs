//! Delivery semantics with the real binary: priority, dead letters, delay, TTL, dedup.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[test]
fn shared_mode_delivers_higher_priorities_first() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("data"));
    let addr = node.addr();
    for (text, prio) in [("low", "1"), ("high", "10"), ("mid", "5")] {
        ok(&swarmmq(
            &[
                "produce",
                "--node",
                &addr,
                "-d",
                "prio",
                "-m",
                text,
                "--priority",
                prio,
            ],
            None,
        ));
    }
    let out = ok(&swarmmq(
        &[
            "consume", "--node", &addr, "-d", "prio", "--mode", "shared", "--format", "json",
        ],
        None,
    ));
    let got: Vec<(String, u64)> = json_lines(&out)
        .iter()
        .map(|m| {
            (
                m["payload"].as_str().unwrap().to_string(),
                m["priority"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![("high".into(), 10), ("mid".into(), 5), ("low".into(), 1)]
    );
}

#[test]
fn a_message_nacked_five_times_lands_in_the_dlq_with_its_headers() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("data"));
    let addr = node.addr();
    ok(&swarmmq(
        &[
            "produce",
            "--node",
            &addr,
            "-d",
            "jobs",
            "-m",
            "poison",
            "-H",
            "trace=abc",
        ],
        None,
    ));
    for attempt in 1..=5 {
        let out = ok(&swarmmq(
            &[
                "consume", "--node", &addr, "-d", "jobs", "-g", "workers", "--nack", "--max", "1",
                "--format", "json",
            ],
            None,
        ));
        let m = json_lines(&out);
        assert_eq!(m.len(), 1, "attempt {attempt} delivers it");
        assert_eq!(m[0]["delivery_attempt"], attempt);
    }
    // The sixth delivery does not happen: the message moved to jobs.dlq.
    let deadline = Instant::now() + Duration::from_secs(10);
    let dlq = loop {
        let out = swarmmq(
            &[
                "consume", "--node", &addr, "-d", "jobs.dlq", "-g", "ops", "--format", "json",
            ],
            None,
        );
        let lines = if out.status.success() {
            json_lines(&String::from_utf8_lossy(&out.stdout))
        } else {
            Vec::new()
        };
        if !lines.is_empty() || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(dlq.len(), 1, "moved exactly once");
    let m = &dlq[0];
    assert_eq!(m["payload"], "poison");
    let h = &m["headers"];
    assert_eq!(h["trace"], "abc", "original headers kept");
    assert_eq!(h["x-swarmmq-original-destination"], "jobs");
    assert_eq!(h["x-swarmmq-original-partition"], "0");
    assert_eq!(h["x-swarmmq-original-offset"], "0");
    assert_eq!(h["x-swarmmq-delivery-attempts"], "5");
    assert!(
        h["x-swarmmq-last-error"].as_str().unwrap().contains("nack"),
        "{h}"
    );
    let again = ok(&swarmmq(
        &["consume", "--node", &addr, "-d", "jobs", "-g", "workers"],
        None,
    ));
    assert!(again.is_empty(), "never delivered a sixth time: {again}");
    let desc = ok(&swarmmq(
        &["group", "describe", "workers", "--node", &addr, "--json"],
        None,
    ));
    let desc: serde_json::Value = serde_json::from_str(&desc).unwrap();
    assert_eq!(desc[0]["dlq_moved"], 1);
}

#[test]
fn a_delayed_message_is_never_early() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("data"));
    let addr = node.addr();
    let sent = Instant::now();
    ok(&swarmmq(
        &[
            "produce", "--node", &addr, "-d", "later", "-m", "wake", "--delay", "3s",
        ],
        None,
    ));
    let early = ok(&swarmmq(
        &["consume", "--node", &addr, "-d", "later", "--wait", "1s"],
        None,
    ));
    assert!(early.is_empty(), "delivered early: {early}");
    let out = ok(&swarmmq(
        &[
            "consume", "--node", &addr, "-d", "later", "--follow", "--max", "1",
        ],
        None,
    ));
    assert_eq!(out.trim(), "wake");
    assert!(
        sent.elapsed() >= Duration::from_secs(3),
        "not before 3 s: {:?}",
        sent.elapsed()
    );
}

#[test]
fn an_expired_message_is_never_delivered_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("data"));
    let addr = node.addr();
    ok(&swarmmq(
        &[
            "produce", "--node", &addr, "-d", "fresh", "-m", "stale", "--ttl", "1s",
        ],
        None,
    ));
    ok(&swarmmq(
        &["produce", "--node", &addr, "-d", "fresh", "-m", "keeps"],
        None,
    ));
    std::thread::sleep(Duration::from_millis(1300));
    let out = ok(&swarmmq(
        &["consume", "--node", &addr, "-d", "fresh", "-g", "g"],
        None,
    ));
    assert_eq!(out.trim(), "keeps");
    let desc = ok(&swarmmq(
        &[
            "group", "describe", "g", "-d", "fresh", "--node", &addr, "--json",
        ],
        None,
    ));
    let desc: serde_json::Value = serde_json::from_str(&desc).unwrap();
    assert_eq!(desc[0]["expired"], 1);
    let (_, metrics) = http_get(node.http(), "/metrics").unwrap();
    assert_eq!(
        metric(
            &metrics,
            "swarmmq_messages_expired_total",
            "destination=\"fresh\""
        ),
        1.0
    );
}

#[test]
fn a_repeated_id_returns_the_first_offset() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("data"));
    let addr = node.addr();
    let first = json_lines(&ok(&swarmmq(
        &[
            "produce", "--node", &addr, "-d", "d", "-m", "a", "--id", "pay-7", "--format", "json",
        ],
        None,
    )));
    ok(&swarmmq(
        &["produce", "--node", &addr, "-d", "d", "-m", "other"],
        None,
    ));
    let second = json_lines(&ok(&swarmmq(
        &[
            "produce", "--node", &addr, "-d", "d", "-m", "a", "--id", "pay-7", "--format", "json",
        ],
        None,
    )));
    assert_eq!(first[0]["offset"], 0);
    assert_eq!(second[0]["offset"], 0, "the first offset, not a new one");
    assert_eq!(second[0]["duplicate"], true);
    let all = ok(&swarmmq(&["consume", "--node", &addr, "-d", "d"], None));
    assert_eq!(
        all.lines().collect::<Vec<_>>(),
        vec!["a", "other"],
        "stored once"
    );
}

#[test]
fn expired_messages_can_go_to_the_dlq_instead() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("data"));
    let addr = node.addr();
    ok(&swarmmq(
        &[
            "topic",
            "create",
            "t",
            "--ttl",
            "500ms",
            "--expired-to-dlq",
            "--node",
            &addr,
        ],
        None,
    ));
    ok(&swarmmq(
        &["produce", "--node", &addr, "-d", "t", "-m", "too late"],
        None,
    ));
    std::thread::sleep(Duration::from_millis(700));
    let out = ok(&swarmmq(
        &["consume", "--node", &addr, "-d", "t", "-g", "g"],
        None,
    ));
    assert!(out.is_empty(), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let dlq = loop {
        let out = swarmmq(
            &[
                "consume", "--node", &addr, "-d", "t.dlq", "--format", "json",
            ],
            None,
        );
        let lines = if out.status.success() {
            json_lines(&String::from_utf8_lossy(&out.stdout))
        } else {
            Vec::new()
        };
        if !lines.is_empty() || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["payload"], "too late");
    assert!(
        dlq[0]["headers"]["x-swarmmq-last-error"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[test]
fn from_earliest_replays_and_from_latest_skips() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("data"));
    let addr = node.addr();
    let input: String = (0..10).map(|i| format!("e{i}\n")).collect();
    ok(&swarmmq(
        &["produce", "--node", &addr, "-d", "log"],
        Some(input.as_bytes()),
    ));
    for mode in ["ordered", "shared"] {
        let group = format!("g-{mode}");
        let first = ok(&swarmmq(
            &[
                "consume", "--node", &addr, "-d", "log", "-g", &group, "--mode", mode,
            ],
            None,
        ));
        assert_eq!(first.lines().count(), 10, "{mode}");
        let nothing = ok(&swarmmq(
            &[
                "consume", "--node", &addr, "-d", "log", "-g", &group, "--mode", mode,
            ],
            None,
        ));
        assert!(
            nothing.is_empty(),
            "{mode}: acked messages came back: {nothing}"
        );
        let replay = ok(&swarmmq(
            &[
                "consume", "--node", &addr, "-d", "log", "-g", &group, "--mode", mode, "--from",
                "earliest",
            ],
            None,
        ));
        assert_eq!(replay.lines().count(), 10, "{mode}: replay from earliest");
        let from_offset = ok(&swarmmq(
            &[
                "consume", "--node", &addr, "-d", "log", "-g", &group, "--mode", mode, "--from",
                "7",
            ],
            None,
        ));
        assert_eq!(
            from_offset.lines().collect::<Vec<_>>(),
            vec!["e7", "e8", "e9"],
            "{mode}"
        );
        let latest = ok(&swarmmq(
            &[
                "consume", "--node", &addr, "-d", "log", "-g", &group, "--mode", mode, "--from",
                "latest",
            ],
            None,
        ));
        assert!(latest.is_empty(), "{mode}");
        let by_time = ok(&swarmmq(
            &[
                "consume",
                "--node",
                &addr,
                "-d",
                "log",
                "-g",
                &group,
                "--mode",
                mode,
                "--from",
                "2001-01-01T00:00:00Z",
            ],
            None,
        ));
        assert_eq!(
            by_time.lines().count(),
            10,
            "{mode}: every message is newer than 2001"
        );
    }
    let list = ok(&swarmmq(
        &["group", "list", "--node", &addr, "--json"],
        None,
    ));
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let modes: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["group"].as_str().unwrap().to_string(),
                g["mode"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        modes,
        vec![
            ("g-ordered".into(), "ordered".into()),
            ("g-shared".into(), "shared".into())
        ]
    );
    let err = swarmmq(
        &[
            "consume",
            "--node",
            &addr,
            "-d",
            "log",
            "-g",
            "g-ordered",
            "--mode",
            "shared",
        ],
        None,
    );
    assert!(!err.status.success(), "a group's mode is fixed at creation");
}
