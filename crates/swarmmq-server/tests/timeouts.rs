//! Connection deadlines over real TCP: a frame started and not finished within
//! `frame_timeout` (slow-loris), a connection idle past `idle_timeout`, and a peer that
//! sends requests but never reads the answers are all cut off, while a long poll that
//! outlives the idle timeout is answered.

mod support;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use support::*;
use swarmmq_protocol::{HEADER_LEN, PullRequest, Request, Response, encode_request};
use swarmmq_server::RunningNode;
use swarmmq_types::{ErrorCode, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FRAME: Duration = Duration::from_millis(400);
const IDLE: Duration = Duration::from_millis(700);

async fn node(dir: &std::path::Path) -> RunningNode {
    start(dir, |s| {
        s.frame_timeout = FRAME;
        s.idle_timeout = IDLE;
    })
    .await
}

async fn still_healthy(node: &RunningNode) {
    let mut c = Raw::connect(node).await;
    assert!(matches!(
        c.call(77, &Request::Health).await,
        Response::Health(_)
    ));
}

fn health_frame(corr: u32) -> BytesMut {
    let mut out = BytesMut::new();
    encode_request(corr, &Request::Health, &Limits::DEFAULT, &mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_sent_a_byte_at_a_time_is_cut_off_with_a_timeout_error() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path()).await;
    let mut c = Raw::connect(&node).await;
    // A whole request first: the connection works, and its idle clock restarts.
    assert!(matches!(
        c.call(1, &Request::Health).await,
        Response::Health(_)
    ));
    let frame = health_frame(2);
    let started = Instant::now();
    // Dribble the next header, one byte per 100 ms: it never completes in time.
    let dribble = async {
        for b in &frame[..HEADER_LEN - 1] {
            if c.stream.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    dribble.await;
    let (corr, _, resp) = c.recv().await.expect("a TIMEOUT error before the close");
    assert_eq!(corr, 0, "connection-level errors use correlation id 0");
    assert_eq!(error_code(&resp), Some(ErrorCode::Timeout));
    assert!(
        c.recv().await.is_none(),
        "then the node closes the connection"
    );
    let took = started.elapsed();
    assert!(
        took >= FRAME,
        "cut after {took:?}, before the frame timeout"
    );
    assert!(
        took < FRAME * 2 + Duration::from_secs(1),
        "cut only after {took:?}"
    );
    still_healthy(&node).await;
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_steady_sender_of_whole_frames_is_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path()).await;
    let mut c = Raw::connect(&node).await;
    // Each frame takes 150 ms (well under the frame timeout), frames keep coming for
    // far longer than both timeouts.
    for corr in 1..=12u32 {
        let frame = health_frame(corr);
        c.write(&frame[..8]).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        c.write(&frame[8..]).await;
        let (got, _, resp) = c.recv().await.expect("an answer");
        assert_eq!(got, corr);
        assert!(matches!(resp, Response::Health(_)));
    }
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_but_a_long_poll_is_not_idle() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path()).await;

    // Connected and silent: closed after the idle timeout, without an error frame.
    let mut silent = Raw::connect(&node).await;
    let started = Instant::now();
    assert!(silent.recv().await.is_none());
    let took = started.elapsed();
    assert!(took >= IDLE, "closed after {took:?}");
    assert!(
        took < IDLE * 2 + Duration::from_secs(1),
        "closed only after {took:?}"
    );

    // A pull that waits twice the idle timeout is still answered.
    let mut c = Raw::connect(&node).await;
    let create = Request::CreateDestination(swarmmq_protocol::CreateDestinationRequest {
        name: "d".into(),
        partitions: 1,
        config: Default::default(),
    });
    assert!(matches!(
        c.call(1, &create).await,
        Response::CreateDestination(_)
    ));
    let pull = Request::Pull(PullRequest {
        destination: "d".into(),
        group: "g".into(),
        consumer_id: "c".into(),
        max_messages: 10,
        max_bytes: 1 << 20,
        max_wait_ms: (IDLE * 2).as_millis() as u32,
        partition: None,
        auto_ack: false,
        generation: 0,
    });
    let started = Instant::now();
    let resp = c.call(2, &pull).await;
    assert!(
        matches!(&resp, Response::Pull(p) if p.messages.is_empty()),
        "{resp:?}"
    );
    assert!(started.elapsed() >= IDLE * 2 - Duration::from_millis(50));
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_its_answers_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path()).await;
    // A tiny receive buffer so the node's answers back up quickly.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(node.client_addr()).await.unwrap();
    let mut burst = BytesMut::new();
    for corr in 0..4096u32 {
        burst.extend_from_slice(&health_frame(corr));
    }
    // Keep sending, never read: once the node gives up on the stalled writer it
    // closes the connection and our writes fail.
    let started = Instant::now();
    let mut sent = 0u64;
    let cut = loop {
        match tokio::time::timeout(Duration::from_secs(15), stream.write_all(&burst)).await {
            Ok(Ok(())) => sent += burst.len() as u64,
            Ok(Err(_)) => break true,
            Err(_) => break false,
        }
        if started.elapsed() > Duration::from_secs(20) {
            break false;
        }
    };
    assert!(cut, "the node kept a non-reading peer after {sent} bytes");
    // Whatever the node wrote before it gave up is still readable; then EOF or reset.
    let mut sink = vec![0u8; 1 << 16];
    let drained = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), drained)
        .await
        .expect("the connection is closed");
    still_healthy(&node).await;
    node.shutdown();
    node.wait().await.unwrap();
}
