//! Master key rotation and retirement on a running node, over real TCP: usage per key
//! id from batch headers (dead-letter queues included), refusals, and rotations and
//! retirements racing with publishes never leave a batch without its key.

mod support;

use std::time::Duration;

use support::*;
use swarmmq_client::{
    Admin, ClientError, Connection, Consumer, ConsumerConfig, DestinationConfig, ErrorCode,
    Message, Producer, ProducerConfig, Request, Response,
};
use swarmmq_protocol::KeysStatusResponse;

async fn status(conn: &Connection) -> KeysStatusResponse {
    match conn.call(&Request::KeysStatus).await.unwrap() {
        Response::KeysStatus(s) => s,
        other => panic!("unexpected {other:?}"),
    }
}

async fn rotate(conn: &Connection) -> u32 {
    match conn.call(&Request::KeysRotate).await.unwrap() {
        Response::KeysRotate(r) => r.new_id,
        other => panic!("unexpected {other:?}"),
    }
}

async fn retire(conn: &Connection, id: u32) -> Result<(), ClientError> {
    conn.call(&Request::KeysRetire { id }).await.map(|_| ())
}

async fn send_all(p: &Producer, dest: &str, range: std::ops::Range<u32>) {
    let mut receipts = Vec::new();
    for i in range {
        receipts.push(p.send(dest, Message::new(format!("m{i}"))).await.unwrap());
    }
    for r in receipts {
        r.await.unwrap();
    }
}

/// Pulls and acks until nothing comes; returns the payloads.
async fn drain(addr: &str, dest: &str) -> Vec<String> {
    let mut c = ConsumerConfig::new(dest, "drain");
    c.max_wait = Duration::from_millis(200);
    let mut c = Consumer::connect(addr, c).await.unwrap();
    let mut out = Vec::new();
    loop {
        let got = c.pull().await.unwrap();
        if got.is_empty() {
            return out;
        }
        out.extend(
            got.iter()
                .map(|m| String::from_utf8(m.payload.to_vec()).unwrap()),
        );
        c.ack(&got).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_every_partition_and_dlq_and_retire_refuses_used_keys() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |_| {}).await;
    let addr = node.client_addr().to_string();
    let conn = Connection::connect(&addr).await.unwrap();
    let admin = Admin::connect(&addr).await.unwrap();
    let config = DestinationConfig {
        max_delivery_attempts: Some(1),
        ..Default::default()
    };
    admin.create_destination("orders", 3, config).await.unwrap();
    let p = Producer::connect(&addr, ProducerConfig::default())
        .await
        .unwrap();
    send_all(&p, "orders", 0..30).await;

    let s = status(&conn).await;
    assert_eq!(s.active_id, 1);
    assert_eq!(s.keys.len(), 1);
    assert!(s.keys[0].bytes > 0 && s.keys[0].batches > 0);
    assert_eq!(s.keys[0].fingerprint.len(), 32);

    assert_eq!(rotate(&conn).await, 2);
    assert!(dir.path().join("master-2.key").exists());
    send_all(&p, "orders", 30..40).await;
    // One message to the DLQ, written under key 2 by the dead-letter mover.
    let mut c = ConsumerConfig::new("orders", "g");
    c.max_wait = Duration::from_millis(200);
    c.max_messages = 1;
    let mut c = Consumer::connect(&addr, c).await.unwrap();
    let one = c.pull().await.unwrap();
    assert_eq!(one.len(), 1);
    c.nack_with_reason(&one, Duration::ZERO, "poison")
        .await
        .unwrap();
    let mut dlq_seen = false;
    for _ in 0..50 {
        if admin
            .list_destinations()
            .await
            .unwrap()
            .iter()
            .any(|d| d.name == "orders.dlq" && d.partitions.iter().any(|p| p.end_offset > 0))
        {
            dlq_seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(dlq_seen, "the nacked message reached the DLQ");

    let s = status(&conn).await;
    assert_eq!(s.active_id, 2);
    let ids: Vec<u32> = s.keys.iter().map(|k| k.id).collect();
    assert_eq!(ids, vec![1, 2]);
    assert!(s.keys.iter().all(|k| k.bytes > 0 && !k.retired));
    let stored: u64 = admin
        .list_destinations()
        .await
        .unwrap()
        .iter()
        .flat_map(|d| d.partitions.iter().map(|p| p.size_bytes))
        .sum();
    assert_eq!(
        s.keys.iter().map(|k| k.bytes).sum::<u64>(),
        stored,
        "every stored byte is under some key, DLQ included"
    );
    assert_eq!(
        status(&conn).await,
        s,
        "a repeated call gives the same answer"
    );

    let err = retire(&conn, 1).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidRequest));
    let text = err.to_string();
    assert!(
        text.contains(&format!("{} bytes", s.keys[0].bytes)),
        "names the bytes: {text}"
    );
    let err = retire(&conn, 2).await.unwrap_err();
    assert!(err.to_string().contains("active"), "{err}");
    let err = retire(&conn, 9).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidRequest));

    // Two rotations leave id 3 without data: it can go, and never comes back.
    assert_eq!(rotate(&conn).await, 3);
    assert_eq!(rotate(&conn).await, 4);
    retire(&conn, 3).await.unwrap();
    assert!(!dir.path().join("master-3.key").exists());
    let err = retire(&conn, 3).await.unwrap_err();
    assert!(err.to_string().contains("already retired"), "{err}");
    let s = status(&conn).await;
    let k3 = s.keys.iter().find(|k| k.id == 3).unwrap();
    assert!(k3.retired && k3.bytes == 0);
    assert_eq!(rotate(&conn).await, 5, "retired ids are not reused");

    let mut got = drain(&addr, "orders").await;
    got.sort();
    assert_eq!(got.len(), 40, "every message, under either key, reads back");
    node.shutdown();
    node.wait().await.unwrap();
}

/// Rotations and retirements while producers publish: a retire either finds data
/// under the id (refused) or none at all, even for batches built under the old ring
/// and still on their way to a partition queue. Afterwards everything decrypts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_and_retiring_under_load_never_strands_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |_| {}).await;
    let addr = node.client_addr().to_string();
    Admin::connect(&addr)
        .await
        .unwrap()
        .create_destination("load", 2, Default::default())
        .await
        .unwrap();
    const TOTAL: u32 = 4000;
    let producer_addr = addr.clone();
    let producer = tokio::spawn(async move {
        let p = Producer::connect(&producer_addr, ProducerConfig::default())
            .await
            .unwrap();
        // Bursts with pauses, so some rotations see traffic in between and some none.
        for chunk in 0..TOTAL / 20 {
            send_all(&p, "load", chunk * 20..chunk * 20 + 20).await;
            if chunk % 4 == 0 {
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }
        p.close().await.unwrap();
    });
    let conn = Connection::connect(&addr).await.unwrap();
    let mut retired = 0;
    let mut refused = 0;
    // Bounded: every cycle may leave two keys in the ring.
    for _ in 0..150 {
        if producer.is_finished() {
            break;
        }
        let old = status(&conn).await.active_id;
        rotate(&conn).await;
        rotate(&conn).await;
        // `old + 1` was active only between the two rotations.
        match retire(&conn, old + 1).await {
            Ok(()) => retired += 1,
            Err(e) => {
                assert!(e.to_string().contains("bytes"), "{e}");
                refused += 1;
            }
        }
    }
    producer.await.unwrap();
    eprintln!("retired {retired}, refused {refused}");
    assert!(retired + refused > 0, "the loop ran during the load");
    let got = drain(&addr, "load").await;
    assert_eq!(got.len(), TOTAL as usize, "every batch still has its key");
    node.shutdown();
    node.wait().await.unwrap();
}
