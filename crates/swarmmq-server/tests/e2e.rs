//! End-to-end encryption through a real node: the node only ever holds and delivers
//! ciphertext, the right key opens every message (after a move to the dead-letter
//! queue too), and anything else is a per-message error.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::*;
use swarmmq_client::{
    Admin, ClientError, Consumer, ConsumerConfig, DestinationConfig, E2E_HEADER, E2eError, E2eKey,
    Message, Producer, ProducerConfig,
};

const SECRET: &str = "plaintext-marker-7f3a9c";

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn consumer(addr: &str, dest: &str, group: &str, key: Option<&Arc<E2eKey>>) -> Consumer {
    let mut c = ConsumerConfig::new(dest, group);
    c.max_wait = Duration::from_millis(300);
    c.e2e_key = key.cloned();
    Consumer::connect(addr, c).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_never_sees_plaintext_and_only_the_key_opens() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |_| {}).await;
    let addr = node.client_addr().to_string();
    let config = DestinationConfig {
        max_delivery_attempts: Some(1),
        ..Default::default()
    };
    Admin::connect(&addr)
        .await
        .unwrap()
        .create_destination("vault", 1, config)
        .await
        .unwrap();
    let key = Arc::new(E2eKey::generate().unwrap());
    let other = Arc::new(E2eKey::generate().unwrap());
    let p = Producer::connect(
        &addr,
        ProducerConfig {
            e2e_key: Some(Arc::clone(&key)),
            assign_ids: false,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for i in 0..3 {
        let m = Message::new(format!("{SECRET}-{i}"))
            .with_key(format!("k{i}"))
            .with_header("app", "kept");
        p.send("vault", m).await.unwrap().await.unwrap();
    }

    // Without a key: per-message errors, the payload as delivered is ciphertext.
    let mut plain = consumer(&addr, "vault", "nokey", None).await;
    let got = plain.pull_opened().await.unwrap();
    assert_eq!(got.len(), 3);
    for r in &got {
        let f = r.as_ref().unwrap_err();
        assert!(matches!(f.error, E2eError::NoKey { .. }), "{:?}", f.error);
        assert!(f.message.id.is_some(), "e2e messages always get an id");
        assert!(
            !contains(&f.message.payload, SECRET),
            "node delivered plaintext"
        );
        assert!(f.message.headers.iter().any(|h| h.name == E2E_HEADER));
    }
    // `pull` refuses the batch rather than hand out ciphertext as payloads.
    let mut plain = consumer(&addr, "vault", "nokey2", None).await;
    match plain.pull().await {
        Err(ClientError::E2e { offset, reason, .. }) => {
            assert_eq!(offset, 0);
            assert!(reason.contains("end-to-end"), "{reason}");
        }
        other => panic!("expected an e2e error, got {other:?}"),
    }

    // The wrong key: per-message errors too.
    let mut wrong = consumer(&addr, "vault", "wrong", Some(&other)).await;
    for r in wrong.pull_opened().await.unwrap() {
        assert!(matches!(r.unwrap_err().error, E2eError::WrongKey { .. }));
    }

    // The right key opens everything, marker removed, other headers kept.
    let mut right = consumer(&addr, "vault", "right", Some(&key)).await;
    let opened = right.pull().await.unwrap();
    let payloads: Vec<String> = opened
        .iter()
        .map(|m| String::from_utf8(m.payload.to_vec()).unwrap())
        .collect();
    assert_eq!(
        payloads,
        (0..3).map(|i| format!("{SECRET}-{i}")).collect::<Vec<_>>()
    );
    assert!(
        opened
            .iter()
            .all(|m| m.headers.len() == 1 && m.headers[0].name == "app")
    );

    // A nack after the one allowed attempt moves the message to the DLQ; the copy there
    // still opens (its id and key are what the envelope binds).
    right
        .nack_with_reason(&opened[..1], Duration::ZERO, "boom")
        .await
        .unwrap();
    let mut dlq = consumer(&addr, "vault.dlq", "ops", Some(&key)).await;
    let mut moved = Vec::new();
    for _ in 0..50 {
        // The DLQ destination appears when the mover first writes to it.
        moved = dlq.pull().await.unwrap_or_default();
        if !moved.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(moved.len(), 1);
    assert_eq!(&moved[0].payload[..], format!("{SECRET}-0").as_bytes());
    assert!(
        moved[0]
            .headers
            .iter()
            .any(|h| h.name == "x-swarmmq-last-error")
    );

    node.shutdown();
    node.wait().await.unwrap();
    // Nothing the node wrote holds the plaintext (it never had it).
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                assert!(
                    !contains(&std::fs::read(&path).unwrap(), SECRET),
                    "{path:?}"
                );
            }
        }
    }
}
