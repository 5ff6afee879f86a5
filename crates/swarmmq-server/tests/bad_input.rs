//! Hostile and malformed input over real TCP: each gets a clear error, and the node
//! keeps serving everyone else.

mod support;

use support::*;
use swarmmq_protocol::{HEADER_LEN, PullRequest, Request, Response};
use swarmmq_types::ErrorCode;

async fn still_healthy(node: &swarmmq_server::RunningNode) {
    let mut c = Raw::connect(node).await;
    assert!(matches!(
        c.call(77, &Request::Health).await,
        Response::Health(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_get_an_error_and_the_connection_closes() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |_| {}).await;
    let mut c = Raw::connect(&node).await;
    c.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (corr, _, resp) = c.recv().await.expect("an error answer");
    assert_eq!(corr, 0, "connection-level errors use correlation id 0");
    assert_eq!(error_code(&resp), Some(ErrorCode::MalformedFrame));
    assert!(
        c.recv().await.is_none(),
        "then the node closes the connection"
    );
    still_healthy(&node).await;
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_length_prefix_is_refused_before_any_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |_| {}).await;
    let mut c = Raw::connect(&node).await;
    let mut header = [0u8; HEADER_LEN];
    header[0..2].copy_from_slice(b"SQ");
    header[2] = 1;
    header[3] = 9; // health
    header[8..12].copy_from_slice(&5u32.to_be_bytes());
    header[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
    c.write(&header).await;
    let (_, _, resp) = c.recv().await.expect("an error answer");
    assert_eq!(error_code(&resp), Some(ErrorCode::FrameTooLarge));
    assert!(c.recv().await.is_none());
    still_healthy(&node).await;
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_opcode_is_answered_and_the_connection_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |_| {}).await;
    let mut c = Raw::connect(&node).await;
    let mut header = [0u8; HEADER_LEN];
    header[0..2].copy_from_slice(b"SQ");
    header[2] = 1;
    header[3] = 200;
    header[8..12].copy_from_slice(&42u32.to_be_bytes());
    c.write(&header).await;
    let (corr, opcode, resp) = c.recv().await.unwrap();
    assert_eq!((corr, opcode), (42, 200));
    assert_eq!(error_code(&resp), Some(ErrorCode::UnknownOpcode));
    assert!(matches!(
        c.call(43, &Request::Health).await,
        Response::Health(_)
    ));
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_names_too_large_messages_and_unknown_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |s| {
        s.limits.max_message_bytes = 1024;
        s.auto_create_destinations = true;
    })
    .await;
    let mut c = Raw::connect(&node).await;
    let r = c.call(1, &publish_one("bad/name", b"x".to_vec())).await;
    assert_eq!(error_code(&r), Some(ErrorCode::InvalidName));
    let r = c.call(2, &publish_one("..", b"x".to_vec())).await;
    assert_eq!(error_code(&r), Some(ErrorCode::InvalidName));
    let r = c.call(3, &publish_one("ok", vec![0u8; 1025])).await;
    assert_eq!(error_code(&r), Some(ErrorCode::MessageTooLarge));
    let pull = Request::Pull(PullRequest {
        destination: "missing".into(),
        group: "g".into(),
        consumer_id: "c".into(),
        max_messages: 10,
        max_bytes: 1 << 20,
        max_wait_ms: 0,
        partition: None,
        auto_ack: false,
        generation: 0,
    });
    let r = c.call(4, &pull).await;
    assert_eq!(error_code(&r), Some(ErrorCode::UnknownDestination));
    let r = c
        .call(
            5,
            &Request::DescribeDestination {
                name: "missing".into(),
            },
        )
        .await;
    assert_eq!(error_code(&r), Some(ErrorCode::UnknownDestination));
    // The connection still works after all of that.
    assert!(matches!(
        c.call(6, &publish_one("ok", b"fine".to_vec())).await,
        Response::Publish(_)
    ));
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |s| s.limits.max_connections = 2).await;
    let mut a = Raw::connect(&node).await;
    let mut b = Raw::connect(&node).await;
    assert!(matches!(
        a.call(1, &Request::Health).await,
        Response::Health(_)
    ));
    assert!(matches!(
        b.call(1, &Request::Health).await,
        Response::Health(_)
    ));
    let mut third = Raw::connect(&node).await;
    let (_, _, resp) = third.recv().await.expect("a refusal");
    assert_eq!(error_code(&resp), Some(ErrorCode::TooManyConnections));
    drop(a);
    // Once a slot frees up, new connections are served again.
    let mut ok = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut d = Raw::connect(&node).await;
        d.send(9, &Request::Health).await;
        if let Some((9, _, Response::Health(_))) = d.recv().await {
            ok = Some(());
            break;
        }
    }
    assert!(ok.is_some(), "a freed slot is reused");
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame_then_hangup_leaves_the_node_up() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |_| {}).await;
    {
        let mut c = Raw::connect(&node).await;
        let mut frame = bytes::BytesMut::new();
        swarmmq_protocol::encode_request(
            1,
            &publish_one("d", vec![1; 5000]),
            &Default::default(),
            &mut frame,
        )
        .unwrap();
        c.write(&frame[..frame.len() / 2]).await;
    }
    still_healthy(&node).await;
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auto_create_off_a_publish_to_a_missing_destination_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |s| s.auto_create_destinations = false).await;
    let mut c = Raw::connect(&node).await;
    let r = c.call(1, &publish_one("nowhere", b"x".to_vec())).await;
    assert_eq!(error_code(&r), Some(ErrorCode::UnknownDestination));
    let create = Request::CreateDestination(swarmmq_protocol::CreateDestinationRequest {
        name: "nowhere".into(),
        partitions: 2,
        config: Default::default(),
    });
    assert!(matches!(
        c.call(2, &create).await,
        Response::CreateDestination(_)
    ));
    assert!(matches!(
        c.call(3, &publish_one("nowhere", b"x".to_vec())).await,
        Response::Publish(_)
    ));
    node.shutdown();
    node.wait().await.unwrap();
}
