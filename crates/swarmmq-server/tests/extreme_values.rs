//! Requests that decode fine but carry extreme values (times at the ends of `i64`,
//! `u64::MAX` sizes and durations, partitions and offsets past anything stored): the
//! node answers each one with a result or a documented error (never INTERNAL, never
//! STORAGE_FAILURE on a healthy disk, never by dropping the connection), and stays
//! healthy through its housekeeping.

mod support;

use bytes::Bytes;
use support::*;
use swarmmq_protocol::*;
use swarmmq_types::{ErrorCode, MessageId};

fn message(deliver_at_ms: Option<i64>, ttl_ms: Option<u64>) -> PublishMessage {
    PublishMessage {
        id: Some(MessageId::Uuid(rand_id())),
        key: Some(Bytes::from_static(b"k")),
        headers: vec![],
        priority: 10,
        deliver_at_ms,
        ttl_ms,
        payload: Bytes::from_static(b"x"),
    }
}

fn rand_id() -> [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&N.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    id
}

fn publish(dest: &str, partition: Option<u32>, messages: Vec<PublishMessage>) -> Request {
    Request::Publish(PublishRequest {
        destination: dest.into(),
        acks: Acks::All,
        partition,
        messages,
    })
}

fn pull(dest: &str, group: &str, partition: Option<u32>, generation: u32) -> Request {
    Request::Pull(PullRequest {
        destination: dest.into(),
        group: group.into(),
        consumer_id: "c".into(),
        max_messages: u32::MAX,
        max_bytes: u32::MAX,
        max_wait_ms: 0,
        partition,
        auto_ack: false,
        generation,
    })
}

/// Destination configs with one setting at an extreme each (the rest defaults), so
/// that each is accepted on its own and then exercised.
fn extreme_configs() -> Vec<(String, DestinationConfig)> {
    let d = DestinationConfig::default;
    let mut out = Vec::new();
    for (label, v) in [
        ("max", u64::MAX),
        ("big", i64::MAX as u64),
        ("zero", 0),
        ("one", 1),
    ] {
        let v32 = u32::try_from(v).unwrap_or(u32::MAX);
        out.extend([
            (
                format!("retention-ms-{label}"),
                DestinationConfig {
                    retention_ms: Some(v),
                    ..d()
                },
            ),
            (
                format!("retention-bytes-{label}"),
                DestinationConfig {
                    retention_bytes: Some(v),
                    ..d()
                },
            ),
            (
                format!("max-message-{label}"),
                DestinationConfig {
                    max_message_bytes: Some(v32),
                    ..d()
                },
            ),
            (
                format!("ack-timeout-{label}"),
                DestinationConfig {
                    ack_timeout_ms: Some(v),
                    ..d()
                },
            ),
            (
                format!("attempts-{label}"),
                DestinationConfig {
                    max_delivery_attempts: Some(v32),
                    ..d()
                },
            ),
            (
                format!("dedup-{label}"),
                DestinationConfig {
                    dedup_window_ms: Some(v),
                    ..d()
                },
            ),
            (
                format!("ttl-{label}"),
                DestinationConfig {
                    default_ttl_ms: Some(v),
                    expired_to_dlq: Some(true),
                    ..d()
                },
            ),
            (
                format!("aging-{label}"),
                DestinationConfig {
                    priority_aging_ms: Some(v),
                    ..d()
                },
            ),
        ]);
    }
    out
}

fn ranges() -> Vec<OffsetRange> {
    vec![
        OffsetRange {
            partition: 0,
            start: 0,
            end: u64::MAX,
        },
        OffsetRange {
            partition: u32::MAX,
            start: u64::MAX,
            end: u64::MAX,
        },
    ]
}

fn requests() -> Vec<Request> {
    let mut out = Vec::new();
    for (name, config) in extreme_configs() {
        let name = name.as_str();
        out.push(Request::CreateDestination(CreateDestinationRequest {
            name: name.into(),
            partitions: 2,
            config,
        }));
        for (deliver_at, ttl) in [
            (Some(i64::MAX), None),
            (Some(i64::MIN), None),
            (None, Some(u64::MAX)),
            (Some(0), Some(0)),
            (Some(-1), Some(1)),
            (None, None),
            (None, None),
        ] {
            out.push(publish(name, None, vec![message(deliver_at, ttl)]));
        }
        // The same id twice: the second is a dedup hit within the window.
        let twice = message(None, None);
        out.push(publish(name, None, vec![twice.clone()]));
        out.push(publish(name, None, vec![twice]));
        out.push(publish(name, Some(u32::MAX), vec![message(None, None)]));
        out.push(publish(
            name,
            Some(1),
            vec![message(Some(i64::MAX - 1), Some(u64::MAX - 1))],
        ));
        for generation in [0, u32::MAX] {
            out.push(pull(name, "g", None, generation));
            out.push(pull(name, "g", Some(u32::MAX), generation));
        }
        out.push(Request::Ack(AckRequest {
            destination: name.into(),
            group: "g".into(),
            consumer_id: "c".into(),
            ranges: ranges(),
            generation: 0,
        }));
        out.push(Request::Nack(NackRequest {
            destination: name.into(),
            group: "g".into(),
            consumer_id: "c".into(),
            ranges: ranges(),
            delay_ms: u32::MAX,
            generation: u32::MAX,
            reason: "r".repeat(4096),
        }));
        out.push(Request::ExtendLease(ExtendLeaseRequest {
            destination: name.into(),
            group: "g".into(),
            consumer_id: "c".into(),
            ranges: ranges(),
            extend_ms: u32::MAX,
        }));
        for position in [
            SeekPosition::Offset(u64::MAX),
            SeekPosition::Timestamp(i64::MIN),
            SeekPosition::Timestamp(i64::MAX),
            SeekPosition::Earliest,
            SeekPosition::Latest,
        ] {
            for partition in [None, Some(0), Some(u32::MAX)] {
                out.push(Request::Seek(SeekRequest {
                    destination: name.into(),
                    group: "g".into(),
                    partition,
                    position,
                }));
            }
        }
        out.push(Request::JoinGroup(JoinGroupRequest {
            destination: name.into(),
            group: "o".into(),
            consumer_id: "c".into(),
            mode: Some(GroupMode::Ordered),
            session_timeout_ms: u32::MAX,
        }));
        out.push(Request::JoinGroup(JoinGroupRequest {
            destination: name.into(),
            group: "o".into(),
            consumer_id: "d".into(),
            mode: Some(GroupMode::Shared),
            session_timeout_ms: 0,
        }));
        out.push(Request::Heartbeat(HeartbeatRequest {
            destination: name.into(),
            group: "o".into(),
            consumer_id: "c".into(),
            generation: u32::MAX,
        }));
        out.push(Request::CommitOffsets(CommitOffsetsRequest {
            destination: name.into(),
            group: "o".into(),
            consumer_id: "c".into(),
            generation: 1,
            offsets: vec![
                PartitionOffset {
                    partition: 0,
                    offset: u64::MAX,
                },
                PartitionOffset {
                    partition: u32::MAX,
                    offset: 0,
                },
            ],
        }));
        out.push(pull(name, "o", None, 1));
        out.push(pull(name, "o", None, u32::MAX));
        out.push(Request::DescribeGroup(DescribeGroupRequest {
            destination: name.into(),
            group: "o".into(),
        }));
        out.push(Request::DescribeGroup(DescribeGroupRequest {
            destination: name.into(),
            group: "g".into(),
        }));
        out.push(Request::DescribeDestination { name: name.into() });
    }
    out.push(Request::CreateDestination(CreateDestinationRequest {
        name: "many".into(),
        partitions: 1024,
        config: Default::default(),
    }));
    out.push(Request::CreateDestination(CreateDestinationRequest {
        name: "none".into(),
        partitions: 0,
        config: Default::default(),
    }));
    out.push(Request::ListGroups);
    out.push(Request::ListDestinations);
    out.push(Request::Metadata);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_values_get_answers_not_internal_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |s| {
        s.fsync = swarmmq_storage::FsyncPolicy::Never
    })
    .await;
    let mut c = Raw::connect(&node).await;
    let mut wrong = Vec::new();
    for (i, req) in requests().into_iter().enumerate() {
        let resp = c.call(i as u32 + 1, &req).await;
        // The disk is healthy and nothing here is a bug: neither code may appear.
        if matches!(
            error_code(&resp),
            Some(ErrorCode::Internal | ErrorCode::StorageFailure)
        ) {
            wrong.push(format!("{req:?}\n  -> {resp:?}"));
        }
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    // Let the housekeeping tick run over the extreme state, then check health.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let mut c = Raw::connect(&node).await;
    assert!(matches!(
        c.call(1, &Request::Health).await,
        Response::Health(_)
    ));
    node.shutdown();
    node.wait().await.unwrap();
}

/// Regression (found by this suite): `performance.max_inflight_bytes` validates up to
/// 16 EiB, but the session's byte budget is a tokio semaphore, which panics past 2^61
/// permits, so every connection's task panicked before reading a byte. The budget is
/// now clamped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inflight_byte_limit_past_the_semaphore_maximum_does_not_kill_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |s| {
        s.limits.max_inflight_bytes_per_connection = u64::MAX;
    })
    .await;
    let mut c = Raw::connect(&node).await;
    assert!(matches!(
        c.call(1, &Request::Health).await,
        Response::Health(_)
    ));
    node.shutdown();
    node.wait().await.unwrap();
}

/// The SDK's producer has the same kind of budget (`max_buffered_bytes`): past the
/// semaphore maximum it panicked at connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_buffer_past_the_semaphore_maximum_still_sends() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |_| {}).await;
    let config = swarmmq_client::ProducerConfig {
        max_buffered_bytes: usize::MAX,
        ..Default::default()
    };
    let p = swarmmq_client::Producer::connect(node.client_addr().to_string(), config)
        .await
        .unwrap();
    let receipt = p
        .send("big", swarmmq_client::Message::new("x"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(receipt.offset, 0);
    node.shutdown();
    node.wait().await.unwrap();
}

/// Regression (found by this suite): a frame packed with empty messages encodes to a
/// record batch larger than the frame (a record costs more on disk than on the wire:
/// GCM tag, varints), but partitions took batches only up to the frame limit. The append
/// was refused, and the refusal failed the partition for good: one well-formed publish
/// broke it for every client. Partitions now take what a frame can turn into, and a
/// refused append no longer fails the partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_of_empty_messages_larger_on_disk_than_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), |s| {
        s.fsync = swarmmq_storage::FsyncPolicy::Never;
        s.limits.max_frame_bytes = 100 * 1024;
        s.limits.max_batch_messages = 100_000;
    })
    .await;
    let mut c = Raw::connect(&node).await;
    let empty = PublishMessage {
        id: None,
        key: None,
        headers: vec![],
        priority: 5,
        deliver_at_ms: None,
        ttl_ms: None,
        payload: Bytes::new(),
    };
    let resp = c
        .call(1, &publish("packed", Some(0), vec![empty.clone(); 7000]))
        .await;
    assert!(
        matches!(&resp, Response::Publish(r) if r.runs.iter().map(|r| r.count).sum::<u32>() == 7000),
        "{resp:?}"
    );
    let resp = c.call(2, &publish("packed", Some(0), vec![empty])).await;
    assert!(matches!(resp, Response::Publish(_)), "{resp:?}");
    node.shutdown();
    node.wait().await.unwrap();
}
