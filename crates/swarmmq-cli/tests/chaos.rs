//! The chaos harness against real `swarmmq node` processes: a short seeded run with
//! kill+restart and pause faults passes the checker; a seed replays its schedule.

use std::time::Duration;

use swarmmq_chaos::{CancellationToken, ChaosConfig, FaultKind, render_text};

const BIN: &str = env!("CARGO_BIN_EXE_swarmmq");

#[test]
fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
    let dir = std::env::temp_dir();
    let mut a = ChaosConfig::new(BIN, &dir, 7);
    a.duration = Duration::from_secs(120);
    a.fault_every = Duration::from_secs(10);
    let first = a.schedule();
    assert_eq!(first.len(), 11, "{first:#?}");
    assert_eq!(first, a.schedule(), "a seed replays its schedule");
    // Each fault after the previous one, inside the run, on a node that exists.
    for w in first.windows(2) {
        assert!(w[0].at < w[1].at);
    }
    assert!(
        first
            .iter()
            .all(|f| f.at < a.duration && f.target < a.nodes)
    );
    assert!(
        first
            .iter()
            .filter(|f| f.kind == FaultKind::Pause)
            .all(|f| f.hold >= Duration::from_secs(1) && f.hold <= Duration::from_secs(5))
    );

    let mut b = a.clone();
    b.seed = 8;
    assert_ne!(first, b.schedule(), "another seed, another schedule");

    let mut only = a.clone();
    only.faults = vec![FaultKind::Pause];
    assert!(only.schedule().iter().all(|f| f.kind == FaultKind::Pause));
}

#[test]
fn a_short_seeded_run_with_kills_and_pauses_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ChaosConfig::new(BIN, dir.path(), 42);
    config.nodes = 3;
    config.duration = Duration::from_secs(30);
    config.fault_every = Duration::from_secs(6);
    config.faults = vec![FaultKind::Kill, FaultKind::Pause];
    config.partitions = 6;
    config.rate_per_producer = 150;
    config.drain_timeout = Duration::from_secs(20);
    let planned = config.schedule();
    assert!(
        planned.iter().any(|f| f.kind == FaultKind::Kill),
        "{planned:#?}"
    );
    assert!(
        planned.iter().any(|f| f.kind == FaultKind::Pause),
        "{planned:#?}"
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let log = |line: &str| eprintln!("{line}");
    let cancel = CancellationToken::new();
    let report = runtime
        .block_on(async {
            // A hard bound on the whole run, whatever happens inside it.
            tokio::time::timeout(
                Duration::from_secs(150),
                swarmmq_chaos::run(&config, &log, &cancel),
            )
            .await
        })
        .expect("the run finished in time")
        .expect("the run completed");
    let text = render_text(&report);
    eprintln!("{text}");
    assert!(report.passed(), "{text}");
    assert_eq!(report.faults.len(), planned.len());
    assert!(
        report.faults.iter().all(|f| f.ok && f.pid.is_some()),
        "{text}"
    );
    for (done, plan) in report.faults.iter().zip(&planned) {
        assert_eq!(done.kind, plan.kind);
        assert_eq!(done.node, format!("node-{}", plan.target + 1));
    }
    let acked: u64 = report.producers.iter().map(|p| p.acked).sum();
    assert!(acked > 1000, "{text}");
    assert_eq!(
        report
            .check
            .result("no-lost-messages")
            .unwrap()
            .violation_count,
        0
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["seed"], 42);
    assert!(json["check"]["results"].as_array().unwrap().len() >= 5);
}
