//! The SDK producer across a node crash: every message gets a receipt, receipts keep
//! send order per partition, and each receipt points at its own message.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use swarmmq_client::{Consumer, ConsumerConfig, Message, Producer, ProducerConfig};

#[test]
fn producer_survives_a_kill9_without_reordering_acknowledged_results() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::start(&dir.path().join("data"));
    let addr = node.addr();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let acked = Arc::new(AtomicUsize::new(0));
    let total = 4000usize;

    let sender = {
        let (addr, acked) = (addr.clone(), Arc::clone(&acked));
        rt.spawn(async move {
            let config = ProducerConfig {
                max_batch_messages: 20,
                max_in_flight: 8,
                retry_timeout: Duration::from_secs(60),
                ..ProducerConfig::default()
            };
            let producer = Producer::connect(&addr, config).await.unwrap();
            let mut receipts = Vec::new();
            for i in 0..total {
                let key = format!("k{}", i % 4);
                let m = Message::new(format!("msg-{i:05}")).with_key(key);
                receipts.push(producer.send("crash", m).await.unwrap());
                if i % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            let mut out = Vec::new();
            for (i, r) in receipts.into_iter().enumerate() {
                let r = r
                    .await
                    .unwrap_or_else(|e| panic!("message {i} was not acknowledged: {e}"));
                acked.fetch_add(1, Ordering::Relaxed);
                out.push((i, r.partition, r.offset));
            }
            out
        })
    };
    // Crash the node while messages are in flight, then bring it back on the same port.
    while acked.load(Ordering::Relaxed) < 500 && !sender.is_finished() {
        std::thread::sleep(Duration::from_millis(5));
    }
    node.kill9();
    std::thread::sleep(Duration::from_millis(300));
    node.start_again();
    let receipts = rt.block_on(sender).unwrap();
    assert_eq!(receipts.len(), total);

    // Per partition, receipts come back in send order with increasing offsets.
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    for (i, p, o) in &receipts {
        if let Some(prev) = last.insert(*p, *o) {
            assert!(
                o > &prev,
                "message {i}: offset {o} after {prev} in partition {p}"
            );
        }
    }
    // Each receipt names the offset holding that very message (duplicates of a batch
    // resent after the crash may exist at other offsets: at-least-once).
    let stored: HashMap<(u32, u64), String> = rt.block_on(async {
        let mut cfg = ConsumerConfig::new("crash", "check");
        cfg.max_wait = Duration::from_millis(300);
        let mut c = Consumer::connect(&addr, cfg).await.unwrap();
        let mut all = HashMap::new();
        loop {
            let batch = c.pull().await.unwrap();
            if batch.is_empty() {
                return all;
            }
            c.ack(&batch).await.unwrap();
            for m in batch {
                all.insert(
                    (m.partition, m.offset),
                    String::from_utf8_lossy(&m.payload).to_string(),
                );
            }
        }
    });
    for (i, p, o) in &receipts {
        assert_eq!(
            stored.get(&(*p, *o)),
            Some(&format!("msg-{i:05}")),
            "receipt of message {i}"
        );
    }
}
