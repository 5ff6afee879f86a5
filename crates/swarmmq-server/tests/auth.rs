//! API-key authentication on an in-process node over real TCP: what a connection
//! without a key, with a good key, a revoked key or a stream of wrong keys gets.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::*;
use swarmmq_auth::KeyStore;
use swarmmq_protocol::{AuthenticateRequest, AuthenticateResponse, Request, Response};
use swarmmq_server::RunningNode;
use swarmmq_types::ErrorCode;

fn authenticate(key: &str) -> Request {
    Request::Authenticate(AuthenticateRequest {
        api_key: key.to_string(),
    })
}

fn create_key(dir: &Path, name: &str, perms: &[&str]) -> String {
    let path = dir.join("api-keys.json");
    let key = KeyStore::update(&path, |s| s.create_key(name, perms)).unwrap();
    key.key.to_string()
}

async fn auth_node(dir: &Path) -> RunningNode {
    start(dir, |s| s.auth_enabled = true).await
}

fn error(resp: &Response) -> (ErrorCode, String) {
    match resp {
        Response::Error(e) => (e.code, e.message.clone()),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_only_health_answers() {
    let dir = tempfile::tempdir().unwrap();
    let node = auth_node(dir.path()).await;
    let mut c = Raw::connect(&node).await;
    assert!(matches!(
        c.call(1, &Request::Health).await,
        Response::Health(_)
    ));
    let (code, msg) = error(&c.call(2, &Request::ListDestinations).await);
    assert_eq!(code, ErrorCode::Unauthenticated);
    assert!(
        msg.contains("--api-key") && msg.contains("SWARMMQ_API_KEY"),
        "{msg}"
    );
    let (code, _) = error(&c.call(3, &publish_one("a.x", "hi")).await);
    assert_eq!(code, ErrorCode::Unauthenticated);
    // No key file yet: every key is refused, and the connection stays usable.
    let (code, msg) = error(&c.call(4, &authenticate("smq_nope")).await);
    assert_eq!(
        (code, msg.as_str()),
        (ErrorCode::Unauthenticated, "invalid API key")
    );
    assert!(matches!(
        c.call(5, &Request::Health).await,
        Response::Health(_)
    ));
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_pipelined_behind_authenticate_run_as_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path(), "producer", &["produce:a.*"]);
    let node = auth_node(dir.path()).await;
    let mut c = Raw::connect(&node).await;
    // Sent back to back, without waiting for the Authenticate answer.
    c.send(1, &authenticate(&key)).await;
    c.send(2, &publish_one("a.x", "hi")).await;
    c.send(3, &publish_one("b.x", "hi")).await;
    c.send(4, &Request::ListDestinations).await;
    c.send(5, &Request::DeleteDestination { name: "a.x".into() })
        .await;
    let mut answers = std::collections::BTreeMap::new();
    for _ in 0..5 {
        let (corr, _, resp) = c.recv().await.unwrap();
        answers.insert(corr, resp);
    }
    assert_eq!(
        answers[&1],
        Response::Authenticate(AuthenticateResponse {
            principal: "producer".into()
        })
    );
    assert!(
        matches!(answers[&2], Response::Publish(_)),
        "{:?}",
        answers[&2]
    );
    let (code, msg) = error(&answers[&3]);
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(msg.contains("may not produce \"b.x\""), "{msg}");
    assert!(matches!(answers[&4], Response::ListDestinations(_)));
    let (code, msg) = error(&answers[&5]);
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(msg.contains("admin"), "{msg}");
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_an_open_connection() {
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path(), "producer", &["produce:*"]);
    let node = auth_node(dir.path()).await;
    let mut c = Raw::connect(&node).await;
    assert!(matches!(
        c.call(1, &authenticate(&key)).await,
        Response::Authenticate(_)
    ));
    assert!(matches!(
        c.call(2, &publish_one("t", "hi")).await,
        Response::Publish(_)
    ));
    KeyStore::update(&dir.path().join("api-keys.json"), |s| s.revoke("producer")).unwrap();
    let revoked_at = Instant::now();
    let mut corr = 3;
    let msg = loop {
        match c.call(corr, &publish_one("t", "hi")).await {
            Response::Publish(_) => {}
            other => {
                let (code, msg) = error(&other);
                assert_eq!(code, ErrorCode::Unauthenticated);
                break msg;
            }
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(10),
            "still accepted long after the revocation"
        );
        corr += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(msg.contains("revoked"), "{msg}");
    // The key cannot authenticate again either.
    let (code, _) = error(&c.call(1000, &authenticate(&key)).await);
    assert_eq!(code, ErrorCode::Unauthenticated);
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_created_after_start_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let node = auth_node(dir.path()).await;
    let key = create_key(dir.path(), "admin", &["admin"]);
    let started = Instant::now();
    let mut corr = 1;
    loop {
        let mut c = Raw::connect(&node).await;
        if let Response::Authenticate(a) = c.call(corr, &authenticate(&key)).await {
            assert_eq!(a.principal, "admin");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "key never accepted"
        );
        corr += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_keys_block_the_address_but_not_health() {
    let dir = tempfile::tempdir().unwrap();
    let good = create_key(dir.path(), "admin", &["admin"]);
    let node = auth_node(dir.path()).await;
    let mut c = Raw::connect(&node).await;
    // Same id as the good key, wrong secret; then garbage.
    let forged = format!("{}{}", &good[..17], "A".repeat(43));
    for i in 0..6 {
        let key = if i % 2 == 0 {
            forged.as_str()
        } else {
            "garbage"
        };
        let (code, msg) = error(&c.call(i + 1, &authenticate(key)).await);
        assert_eq!(
            (code, msg.as_str()),
            (ErrorCode::Unauthenticated, "invalid API key")
        );
    }
    // Blocked now: even the right key is refused, and the connection is closed.
    let (code, msg) = error(&c.call(7, &authenticate(&good)).await);
    assert_eq!(code, ErrorCode::Unauthenticated);
    assert!(msg.contains("too many failed attempts"), "{msg}");
    assert!(c.recv().await.is_none(), "the node closes the connection");
    // Health still answers from the same address.
    let mut h = Raw::connect(&node).await;
    assert!(matches!(
        h.call(1, &Request::Health).await,
        Response::Health(_)
    ));
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_off_answers_authenticate_as_anonymous() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |_| {}).await;
    let mut c = Raw::connect(&node).await;
    assert!(matches!(
        c.call(1, &publish_one("t", "hi")).await,
        Response::Publish(_)
    ));
    assert_eq!(
        c.call(2, &authenticate("anything")).await,
        Response::Authenticate(AuthenticateResponse {
            principal: "anonymous".into()
        })
    );
    assert!(matches!(
        c.call(3, &publish_one("t", "hi")).await,
        Response::Publish(_)
    ));
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_authenticates_on_connect_and_reports_a_refused_key() {
    use swarmmq_client::{Admin, ClientError, ConnectOptions, Message, Producer, ProducerConfig};
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path(), "producer", &["produce:a.*"]);
    let node = auth_node(dir.path()).await;
    let addr = node.client_addr().to_string();
    let with_key = ConnectOptions::new(addr.clone()).with_api_key(key);

    let producer = Producer::connect(&with_key, ProducerConfig::default())
        .await
        .unwrap();
    let receipt = producer
        .send("a.x", Message::new(Bytes::from_static(b"m")))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(receipt.offset, 0);
    let err = producer
        .send("b.x", Message::new(Bytes::from_static(b"m")))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");

    let wrong = ConnectOptions::new(addr.clone()).with_api_key("smq_wrong".into());
    let err = Admin::connect(wrong).await.err().expect("refused");
    assert!(matches!(err, ClientError::AuthRefused { .. }), "{err}");
    assert_eq!(err.code(), Some(ErrorCode::Unauthenticated));
    assert!(err.to_string().contains("refused the API key"), "{err}");

    // Without a key the connect works (Health needs none) but requests are refused.
    let anonymous = Admin::connect(addr.as_str()).await.unwrap();
    assert!(anonymous.health().await.is_ok());
    let err = anonymous.list_destinations().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unauthenticated));
    node.shutdown();
    node.wait().await.unwrap();
}
