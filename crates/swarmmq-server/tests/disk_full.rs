//! A full disk (the configured budget, and a real ENOSPC on a small tmpfs): publishes
//! fail with DISK_FULL, the node stays up, and everything acknowledged stays readable.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;
use swarmmq_client::{
    Admin, ClientError, Consumer, ConsumerConfig, ErrorCode, Message, Producer, ProducerConfig,
};

async fn fill_until_full(addr: &str) -> (Vec<Vec<u8>>, ClientError) {
    let config = ProducerConfig {
        retry_timeout: Duration::from_millis(1),
        ..Default::default()
    };
    let p = Producer::connect(addr, config).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..100_000u32 {
        let mut payload = i.to_be_bytes().to_vec();
        payload.resize(4096, (i % 251) as u8);
        match p
            .send("fill", Message::new(payload.clone()))
            .await
            .unwrap()
            .await
        {
            Ok(_) => acked.push(payload),
            Err(e) => return (acked, e),
        }
    }
    panic!("the disk never filled");
}

async fn read_all(addr: &str) -> Vec<Vec<u8>> {
    let mut cfg = ConsumerConfig::new("fill", "check");
    cfg.max_wait = Duration::from_millis(200);
    let mut c = Consumer::connect(addr, cfg).await.unwrap();
    let mut out = Vec::new();
    loop {
        // No acks: on a full disk the group's ack log cannot grow either; leases (30 s)
        // keep what was read from coming back during the test.
        let batch = c.pull().await.unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch.into_iter().map(|m| m.payload.to_vec()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_disk_usage_refuses_publishes_and_keeps_acknowledged_data() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |s| s.max_disk_usage = Some(256 * 1024)).await;
    let addr = node.client_addr().to_string();
    let (acked, err) = fill_until_full(&addr).await;
    assert_eq!(err.code(), Some(ErrorCode::DiskFull), "{err}");
    assert!(err.to_string().contains("max_disk_usage"), "{err}");
    assert!(!acked.is_empty());
    Admin::connect(&addr).await.unwrap().health().await.unwrap();
    assert_eq!(read_all(&addr).await, acked);
    node.shutdown();
    node.wait().await.unwrap();
}

/// Mounts a small tmpfs at `dir` (needs root or an unprivileged mount namespace);
/// returns false when this machine does not allow it.
fn mount_tmpfs(dir: &std::path::Path, size: &str) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_full_disk_fails_publishes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("small");
    std::fs::create_dir(&mount).unwrap();
    if !mount_tmpfs(&mount, "2m") {
        eprintln!(
            "skipping: cannot mount a tmpfs here (not root); the max_disk_usage test covers the node path"
        );
        return;
    }
    let data = mount.join("data");
    let node = start(&data, |s| s.segment_bytes = 512 * 1024).await;
    let addr = node.client_addr().to_string();
    let (acked, err) = fill_until_full(&addr).await;
    assert_eq!(err.code(), Some(ErrorCode::DiskFull), "{err}");
    assert!(!acked.is_empty());
    Admin::connect(&addr).await.unwrap().health().await.unwrap();
    assert_eq!(
        read_all(&addr).await,
        acked,
        "every acknowledged message is intact"
    );
    node.shutdown();
    let _ = node.wait().await;
    let _ = Command::new("umount").arg(&mount).status();
}
