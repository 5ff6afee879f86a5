//! The smart producer against a real in-process node: it routes every message to the
//! partition the node itself would pick, and when its map goes stale (a destination
//! deleted and re-created with another partition count) it notices, refreshes and keeps
//! every message acknowledged exactly once.

use std::collections::HashMap;
use std::time::Duration;

use swarmmq_client::{
    Admin, Consumer, ConsumerConfig, DestinationConfig, Message, MessageId, Producer,
    ProducerConfig, Receipt,
};
use swarmmq_server::{Node, NodeSettings, RunningNode};
use swarmmq_types::{key_hash, partition_for_key};

async fn start_node(dir: &std::path::Path) -> RunningNode {
    let settings = NodeSettings::for_test(dir.to_path_buf());
    Node::start(settings).await.expect("node starts")
}

fn smart_config() -> ProducerConfig {
    ProducerConfig {
        linger: Duration::from_millis(2),
        max_batch_messages: 40,
        ..ProducerConfig::default()
    }
    .smart(true)
}

/// Every message of the destination as (partition, offset) -> payload.
async fn consume_all(addr: &str, destination: &str) -> HashMap<(u32, u64), String> {
    let mut cfg = ConsumerConfig::new(destination, "check");
    cfg.max_wait = Duration::from_millis(300);
    let mut c = Consumer::connect(addr, cfg).await.unwrap();
    let mut all = HashMap::new();
    loop {
        let batch = c.pull().await.unwrap();
        if batch.is_empty() {
            return all;
        }
        c.ack(&batch).await.unwrap();
        for m in batch {
            let text = String::from_utf8_lossy(&m.payload).to_string();
            assert!(
                all.insert((m.partition, m.offset), text).is_none(),
                "delivered twice"
            );
        }
    }
}

/// Sends `payloads` (with an optional key each) and waits for every receipt.
async fn send_all(
    producer: &Producer,
    destination: &str,
    messages: Vec<(Option<String>, String)>,
) -> Vec<Receipt> {
    let mut futures = Vec::new();
    for (key, payload) in messages {
        let mut m = Message::new(payload);
        if let Some(k) = key {
            m = m.with_key(k);
        }
        futures.push(producer.send(destination, m).await.unwrap());
    }
    let mut out = Vec::new();
    for (i, f) in futures.into_iter().enumerate() {
        out.push(f.await.unwrap_or_else(|e| panic!("message {i}: {e}")));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_producer_puts_each_message_where_the_node_would() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let addr = node.client_addr().to_string();
    let admin = Admin::connect(addr.as_str()).await.unwrap();
    admin
        .create_destination("orders", 6, DestinationConfig::default())
        .await
        .unwrap();
    let meta = admin.metadata().await.unwrap();
    let health = admin.health().await.unwrap();
    assert_eq!(meta.nodes.len(), 1);
    assert_eq!(meta.nodes[0].port, node.client_addr().port());
    let orders = meta
        .destinations
        .iter()
        .find(|d| d.name == "orders")
        .unwrap();
    assert_eq!(orders.partitions.len(), 6);
    assert!(orders.partitions.iter().all(|p| p.leader == health.node_id));

    let producer = Producer::connect(addr.as_str(), smart_config())
        .await
        .unwrap();
    // Keyed: partition_for_key over the 6 partitions.
    let keyed: Vec<(Option<String>, String)> = (0..400)
        .map(|i| (Some(format!("customer-{}", i % 23)), format!("keyed-{i}")))
        .collect();
    let receipts = send_all(&producer, "orders", keyed.clone()).await;
    for ((key, _), r) in keyed.iter().zip(&receipts) {
        let key = key.as_deref().unwrap_or_default();
        assert_eq!(r.partition, partition_for_key(key.as_bytes(), 6), "{key}");
    }

    // Keyless: a whole batch goes to hash(first id) mod partitions. Batches of exactly
    // 5 (full batches seal at once; the long linger never fires).
    let batched = Producer::connect(
        addr.as_str(),
        ProducerConfig {
            linger: Duration::from_secs(5),
            max_batch_messages: 5,
            ..ProducerConfig::default()
        }
        .smart(true),
    )
    .await
    .unwrap();
    let mut partitions_used = std::collections::HashSet::new();
    for b in 0..12u8 {
        let mut futures = Vec::new();
        let first = MessageId::Uuid([b; 16]);
        for i in 0..5u8 {
            let m = Message::new(format!("keyless-{b}-{i}")).with_id(MessageId::Uuid([
                b, i, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
            ]));
            let m = if i == 0 { m.with_id(first.clone()) } else { m };
            futures.push(batched.send("orders", m).await.unwrap());
        }
        let want = (key_hash(&[b; 16]) % 6) as u32;
        partitions_used.insert(want);
        for f in futures {
            assert_eq!(f.await.unwrap().partition, want, "batch {b}");
        }
    }
    assert!(partitions_used.len() > 1, "ids spread batches");
    batched.close().await.unwrap();
    producer.close().await.unwrap();

    // Each receipt names the offset that holds its own message.
    let stored = consume_all(&addr, "orders").await;
    assert_eq!(stored.len(), 400 + 60);
    for ((_, payload), r) in keyed.iter().zip(&receipts) {
        assert_eq!(stored.get(&(r.partition, r.offset)), Some(payload));
    }
    node.shutdown();
}

/// Phase 1 fills the producer's map; the destination is then re-created under it.
/// Phase 2 must land every message once, and keyed messages from `settled_from` on by
/// the new partition count.
async fn recreate_under_a_running_producer(
    before: u32,
    after: u32,
    config: ProducerConfig,
    settled_from: usize,
) {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let addr = node.client_addr().to_string();
    let admin = Admin::connect(addr.as_str()).await.unwrap();
    admin
        .create_destination("events", before, DestinationConfig::default())
        .await
        .unwrap();
    let producer = Producer::connect(addr.as_str(), config).await.unwrap();
    let phase1: Vec<(Option<String>, String)> = (0..200)
        .map(|i| (Some(format!("k{}", i % 17)), format!("one-{i}")))
        .collect();
    for ((key, _), r) in phase1
        .iter()
        .zip(send_all(&producer, "events", phase1.clone()).await)
    {
        let key = key.as_deref().unwrap_or_default();
        assert_eq!(r.partition, partition_for_key(key.as_bytes(), before));
    }

    admin.delete_destination("events").await.unwrap();
    admin
        .create_destination("events", after, DestinationConfig::default())
        .await
        .unwrap();
    // Past the map's max age (when the test sets a short one).
    tokio::time::sleep(Duration::from_millis(400)).await;

    let phase2: Vec<(Option<String>, String)> = (0..600)
        .map(|i| {
            let key = (i % 3 != 0).then(|| format!("k{}", i % 17));
            (key, format!("two-{i}"))
        })
        .collect();
    // In two halves: the second is sent after the first is answered (and so after any
    // error the first met).
    let mut receipts = send_all(&producer, "events", phase2[..300].to_vec()).await;
    receipts.extend(send_all(&producer, "events", phase2[300..].to_vec()).await);
    producer.close().await.unwrap();
    let mut seen = std::collections::HashSet::new();
    for (i, ((key, payload), r)) in phase2.iter().zip(&receipts).enumerate() {
        assert!(
            r.partition < after,
            "{payload} on partition {}",
            r.partition
        );
        if let (Some(key), true) = (key, i >= settled_from) {
            assert_eq!(
                r.partition,
                partition_for_key(key.as_bytes(), after),
                "{payload}"
            );
        }
        assert!(
            seen.insert((r.partition, r.offset)),
            "{payload}: receipt reused"
        );
        assert!(!r.duplicate, "{payload}");
    }
    let stored = consume_all(&addr, "events").await;
    assert_eq!(stored.len(), phase2.len(), "each message stored once");
    for ((_, payload), r) in phase2.iter().zip(&receipts) {
        assert_eq!(stored.get(&(r.partition, r.offset)), Some(payload));
    }
    node.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_recreated_with_fewer_partitions_is_noticed_by_its_errors() {
    // The map says 8; the node has 3: parts for 3..8 are refused (UNKNOWN_PARTITION),
    // routed again by a fresh map, and nothing is lost or stored twice. Parts the stale
    // map sent to partitions 0..3 were accepted where they went (no error can tell),
    // so only messages sent after the first answers must follow the new count.
    recreate_under_a_running_producer(8, 3, smart_config(), 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_recreated_with_more_partitions_is_noticed_by_the_map_age() {
    // No error reveals this one; the map's age does.
    let config = ProducerConfig {
        metadata_max_age: Duration::from_millis(300),
        ..smart_config()
    };
    recreate_under_a_running_producer(2, 5, config, 0).await;
}
