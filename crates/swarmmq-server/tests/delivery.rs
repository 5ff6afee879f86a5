//! Pull with acknowledgement over real TCP, through the SDK.

mod support;

use std::time::Duration;

use support::*;
use swarmmq_client::{
    Admin, Consumer, ConsumerConfig, DestinationConfig, Message, Producer, ProducerConfig,
};

async fn consumer(addr: &str, dest: &str, group: &str, wait_ms: u64) -> Consumer {
    let mut c = ConsumerConfig::new(dest, group);
    c.max_wait = Duration::from_millis(wait_ms);
    Consumer::connect(addr, c).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_messages_come_back_after_the_ack_timeout_and_acked_ones_never() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |_| {}).await;
    let addr = node.client_addr().to_string();
    let admin = Admin::connect(&addr).await.unwrap();
    admin
        .create_destination(
            "q",
            1,
            DestinationConfig {
                ack_timeout_ms: Some(300),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let p = Producer::connect(&addr, ProducerConfig::default())
        .await
        .unwrap();
    for i in 0..4 {
        p.send("q", Message::new(format!("m{i}")))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut c = consumer(&addr, "q", "g", 0).await;
    let first = c.pull().await.unwrap();
    assert_eq!(first.len(), 4);
    assert!(first.iter().all(|m| m.delivery_attempt == 1));
    c.ack(&first[..2]).await.unwrap();
    assert!(
        c.pull().await.unwrap().is_empty(),
        "leased messages are invisible"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = c.pull().await.unwrap();
    let offsets: Vec<u64> = again.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, vec![2, 3], "only the unacked ones return");
    assert!(again.iter().all(|m| m.delivery_attempt == 2));
    assert_eq!(c.ack(&again).await.unwrap(), 2);
    assert_eq!(
        c.ack(&again).await.unwrap(),
        0,
        "acking twice changes nothing"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(c.pull().await.unwrap().is_empty());
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_redelivers_after_its_delay_and_groups_are_independent() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |_| {}).await;
    let addr = node.client_addr().to_string();
    let p = Producer::connect(&addr, ProducerConfig::default())
        .await
        .unwrap();
    p.send("n", Message::new("only"))
        .await
        .unwrap()
        .await
        .unwrap();
    let mut a = consumer(&addr, "n", "a", 0).await;
    let mut b = consumer(&addr, "n", "b", 0).await;
    let got = a.pull().await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        b.pull().await.unwrap().len(),
        1,
        "another group sees its own copy"
    );
    assert_eq!(a.nack(&got, Duration::from_millis(200)).await.unwrap(), 1);
    assert!(
        a.pull().await.unwrap().is_empty(),
        "not before the nack delay"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    let back = a.pull().await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].delivery_attempt, 2);
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_pull_returns_the_message_published_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |_| {}).await;
    let addr = node.client_addr().to_string();
    Admin::connect(&addr)
        .await
        .unwrap()
        .create_destination("lp", 2, Default::default())
        .await
        .unwrap();
    let mut c = consumer(&addr, "lp", "g", 10_000).await;
    let waiting = tokio::spawn(async move { c.pull().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let p = Producer::connect(&addr, ProducerConfig::default())
        .await
        .unwrap();
    p.send("lp", Message::new("wake"))
        .await
        .unwrap()
        .await
        .unwrap();
    let got = waiting.await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].payload[..], b"wake");
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_receipts_are_dense_and_in_send_order_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |_| {}).await;
    let addr = node.client_addr().to_string();
    let config = ProducerConfig {
        max_batch_messages: 7,
        max_in_flight: 32,
        ..Default::default()
    };
    let p = Producer::connect(&addr, config).await.unwrap();
    let mut futs = Vec::new();
    for i in 0..2000u32 {
        let key = format!("k{}", i % 5);
        futs.push(
            p.send(
                "ordered",
                Message::new(i.to_be_bytes().to_vec()).with_key(key),
            )
            .await
            .unwrap(),
        );
    }
    let mut per_partition: std::collections::BTreeMap<u32, Vec<u64>> = Default::default();
    for f in futs {
        let r = f.await.unwrap();
        per_partition.entry(r.partition).or_default().push(r.offset);
    }
    for offsets in per_partition.values() {
        let expected: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(offsets, &expected, "dense, and in the order sent");
    }
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_messages_and_acks() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |_| {}).await;
    let addr = node.client_addr().to_string();
    let p = Producer::connect(&addr, ProducerConfig::default())
        .await
        .unwrap();
    for i in 0..10 {
        p.send("r", Message::new(format!("{i}"))).await.unwrap();
    }
    p.flush().await.unwrap();
    let mut c = consumer(&addr, "r", "g", 0).await;
    let got = c.pull().await.unwrap();
    c.ack(&got[..6]).await.unwrap();
    node.shutdown();
    node.wait().await.unwrap();

    let node = start(dir.path(), |_| {}).await;
    let addr = node.client_addr().to_string();
    let mut c = consumer(&addr, "r", "g", 0).await;
    let rest: Vec<String> = c
        .pull()
        .await
        .unwrap()
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).to_string())
        .collect();
    assert_eq!(rest, vec!["6", "7", "8", "9"]);
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_message_id_is_answered_with_the_first_offset_even_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |s| s.dedup_window = Duration::from_secs(60)).await;
    let addr = node.client_addr().to_string();
    let p = Producer::connect(&addr, ProducerConfig::default())
        .await
        .unwrap();
    let id = swarmmq_client::MessageId::text("order-1").unwrap();
    let first = p
        .send("dd", Message::new("a").with_id(id.clone()))
        .await
        .unwrap()
        .await
        .unwrap();
    let other = p
        .send("dd", Message::new("b"))
        .await
        .unwrap()
        .await
        .unwrap();
    let again = p
        .send("dd", Message::new("a2").with_id(id.clone()))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(
        (again.partition, again.offset),
        (first.partition, first.offset)
    );
    assert_eq!(
        other.offset,
        first.offset + 1,
        "the duplicate was not stored"
    );
    node.shutdown();
    node.wait().await.unwrap();

    let node = start(dir.path(), |s| s.dedup_window = Duration::from_secs(60)).await;
    let addr = node.client_addr().to_string();
    let p = Producer::connect(&addr, ProducerConfig::default())
        .await
        .unwrap();
    let after = p
        .send("dd", Message::new("a3").with_id(id))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(after.duplicate, "the window survives a restart");
    assert_eq!(after.offset, first.offset);

    // Outside the window the id is new again.
    Admin::connect(&addr)
        .await
        .unwrap()
        .create_destination(
            "dd2",
            1,
            DestinationConfig {
                dedup_window_ms: Some(50),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let id = swarmmq_client::MessageId::text("order-1").unwrap();
    let once = p
        .send("dd2", Message::new("x").with_id(id.clone()))
        .await
        .unwrap()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let late = p
        .send("dd2", Message::new("y").with_id(id))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(!late.duplicate);
    assert_eq!(late.offset, once.offset + 1);
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extending_a_lease_keeps_a_message_invisible() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |_| {}).await;
    let addr = node.client_addr().to_string();
    Admin::connect(&addr)
        .await
        .unwrap()
        .create_destination(
            "ext",
            1,
            DestinationConfig {
                ack_timeout_ms: Some(300),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let p = Producer::connect(&addr, ProducerConfig::default())
        .await
        .unwrap();
    p.send("ext", Message::new("slow job"))
        .await
        .unwrap()
        .await
        .unwrap();
    let mut c = consumer(&addr, "ext", "g", 0).await;
    let got = c.pull().await.unwrap();
    assert_eq!(
        c.extend(&got, Duration::from_millis(1500)).await.unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        c.pull().await.unwrap().is_empty(),
        "still leased after the original timeout"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let back = c.pull().await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].delivery_attempt, 2);
    node.shutdown();
    node.wait().await.unwrap();
}
