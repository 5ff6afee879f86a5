//! Writes the small seed corpus under `fuzz/seeds/<target>/`: valid inputs of each
//! target's format, built with the real encoders and the real log, so the fuzzer starts
//! from the shapes that matter. Run from `fuzz/`: `cargo run --example make_seeds`.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use swarmmq_fuzz::segments::{File, pack};
use swarmmq_protocol::*;
use swarmmq_storage::{
    BatchBuilder, FsyncPolicy, IoMode, LogConfig, PartitionLog, RecordHeaderRef, RecordInput,
};
use swarmmq_types::{ErrorCode, Limits, MessageId};

const L: Limits = Limits::DEFAULT;

fn write(root: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn body(mut frame: BytesMut) -> Vec<u8> {
    frame.split_off(HEADER_LEN).to_vec()
}

fn requests() -> Vec<(&'static str, Request)> {
    let ranges = vec![OffsetRange {
        partition: 0,
        start: 3,
        end: 9,
    }];
    vec![
        (
            "publish",
            Request::Publish(PublishRequest {
                destination: "orders".into(),
                acks: Acks::All,
                partition: Some(1),
                messages: vec![
                    PublishMessage {
                        id: Some(MessageId::Uuid([7; 16])),
                        key: Some(Bytes::from_static(b"k1")),
                        headers: vec![Header {
                            name: "ct".into(),
                            value: Bytes::from_static(b"json"),
                        }],
                        priority: 9,
                        deliver_at_ms: Some(1_700_000_000_000),
                        ttl_ms: Some(60_000),
                        payload: Bytes::from_static(b"{\"n\":1}"),
                    },
                    PublishMessage {
                        id: Some(MessageId::text("id-2").unwrap()),
                        key: None,
                        headers: vec![],
                        priority: 5,
                        deliver_at_ms: None,
                        ttl_ms: None,
                        payload: Bytes::from_static(b"two"),
                    },
                ],
            }),
        ),
        (
            "pull",
            Request::Pull(PullRequest {
                destination: "orders".into(),
                group: "g".into(),
                consumer_id: "c1".into(),
                max_messages: 100,
                max_bytes: 1 << 20,
                max_wait_ms: 500,
                partition: Some(0),
                auto_ack: false,
                generation: 2,
            }),
        ),
        (
            "ack",
            Request::Ack(AckRequest {
                destination: "orders".into(),
                group: "g".into(),
                consumer_id: "c1".into(),
                ranges: ranges.clone(),
                generation: 0,
            }),
        ),
        (
            "nack",
            Request::Nack(NackRequest {
                destination: "orders".into(),
                group: "g".into(),
                consumer_id: "c1".into(),
                ranges: ranges.clone(),
                delay_ms: 100,
                generation: 0,
                reason: "boom".into(),
            }),
        ),
        (
            "create",
            Request::CreateDestination(CreateDestinationRequest {
                name: "orders".into(),
                partitions: 4,
                config: DestinationConfig {
                    retention_ms: Some(1000),
                    max_message_bytes: Some(4096),
                    dlq_enabled: Some(true),
                    priority_aging_ms: Some(5),
                    ..Default::default()
                },
            }),
        ),
        ("health", Request::Health),
        (
            "join",
            Request::JoinGroup(JoinGroupRequest {
                destination: "orders".into(),
                group: "g".into(),
                consumer_id: "c1".into(),
                mode: Some(GroupMode::Ordered),
                session_timeout_ms: 10_000,
            }),
        ),
        (
            "seek",
            Request::Seek(SeekRequest {
                destination: "orders".into(),
                group: "g".into(),
                partition: None,
                position: SeekPosition::Timestamp(1_700_000_000_000),
            }),
        ),
        (
            "commit",
            Request::CommitOffsets(CommitOffsetsRequest {
                destination: "orders".into(),
                group: "g".into(),
                consumer_id: "c1".into(),
                generation: 3,
                offsets: vec![PartitionOffset {
                    partition: 1,
                    offset: 10,
                }],
            }),
        ),
    ]
}

fn responses() -> Vec<(&'static str, Opcode, Response)> {
    let info = DestinationInfo {
        name: "orders".into(),
        partitions: vec![PartitionInfo {
            partition: 0,
            leader: "node-1".into(),
            start_offset: 0,
            end_offset: 10,
            size_bytes: 999,
        }],
        config: DestinationConfig {
            ack_timeout_ms: Some(30_000),
            ..Default::default()
        },
    };
    vec![
        (
            "publish",
            Opcode::Publish,
            Response::Publish(PublishResponse {
                runs: vec![PublishRun {
                    partition: 0,
                    base_offset: 5,
                    count: 2,
                    duplicate: false,
                }],
            }),
        ),
        (
            "pull",
            Opcode::Pull,
            Response::Pull(PullResponse {
                messages: vec![DeliveredMessage {
                    partition: 0,
                    offset: 5,
                    timestamp_ms: 1_700_000_000_000,
                    priority: 5,
                    delivery_attempt: 1,
                    id: Some(MessageId::Uuid([1; 16])),
                    key: Some(Bytes::from_static(b"k")),
                    headers: vec![Header {
                        name: "h".into(),
                        value: Bytes::from_static(b"v"),
                    }],
                    payload: Bytes::from_static(b"hello"),
                }],
            }),
        ),
        (
            "describe",
            Opcode::DescribeDestination,
            Response::DescribeDestination(info.clone()),
        ),
        (
            "metadata",
            Opcode::Metadata,
            Response::Metadata(MetadataResponse {
                cluster_name: "swarmmq".into(),
                nodes: vec![NodeInfo {
                    id: "node-1".into(),
                    host: "127.0.0.1".into(),
                    port: 9001,
                }],
                destinations: vec![info],
            }),
        ),
        (
            "heartbeat",
            Opcode::Heartbeat,
            Response::Heartbeat(HeartbeatResponse {
                generation: 4,
                assignment: vec![0, 2],
                revoked: vec![1],
                rebalancing: true,
            }),
        ),
        (
            "error",
            Opcode::Pull,
            Response::Error(ErrorResponse {
                code: ErrorCode::UnknownDestination,
                message: "no such destination".into(),
            }),
        ),
    ]
}

fn protocol_seeds(root: &Path) {
    let mut stream = vec![0u8, 0x34, 0x12];
    for (i, (name, req)) in requests().into_iter().enumerate() {
        let mut frame = BytesMut::new();
        encode_request(i as u32 + 1, &req, &L, &mut frame).unwrap();
        stream.extend_from_slice(&frame);
        let opcode = req.opcode().as_u8();
        let mut input = vec![opcode, 0];
        input.extend(body(frame));
        write(root, "request", name, &input);
    }
    write(root, "frame_decoder", "requests", &stream);
    let mut stream = vec![2u8, 0x01, 0x00];
    for (i, (name, opcode, resp)) in responses().into_iter().enumerate() {
        let mut frame = BytesMut::new();
        match &resp {
            Response::Error(e) => encode_error(i as u32, opcode.as_u8(), e, &L, &mut frame),
            _ => encode_response(i as u32, opcode, &resp, &L, &mut frame),
        }
        .unwrap();
        stream.extend_from_slice(&frame);
        let flags = if matches!(resp, Response::Error(_)) {
            0b110
        } else {
            0b010
        };
        let mut input = vec![opcode.as_u8(), flags];
        input.extend(body(frame));
        write(root, "response", name, &input);
    }
    write(root, "frame_decoder", "responses", &stream);
    // A header announcing more than the frame limit, and one cut short.
    let mut big = vec![1u8, 7, 7];
    big.extend_from_slice(
        &FrameHeader {
            version: VERSION,
            opcode: 1,
            flags: Flags::NONE,
            correlation_id: 1,
            body_len: u32::MAX,
        }
        .to_bytes(),
    );
    write(root, "frame_decoder", "oversized", &big);
}

fn encoded_batch(
    ring: &swarmmq_crypto::KeyRing,
    first: u32,
    n: u32,
) -> swarmmq_storage::EncodedBatch {
    let mut b = BatchBuilder::new(ring, 9, 1024).unwrap();
    for i in first..first + n {
        let id = MessageId::Uuid([i as u8; 16]);
        let payload = format!("payload-{i}");
        b.push(RecordInput {
            timestamp_ms: 1_700_000_000_000 + i64::from(i),
            priority: (i % 10 + 1) as u8,
            id: Some(&id),
            key: (i % 2 == 0).then_some(&b"key"[..]),
            headers: &[RecordHeaderRef {
                name: "h",
                value: b"v",
            }],
            deliver_at_ms: (i % 3 == 0).then_some(1_700_000_100_000),
            expires_at_ms: None,
            payload: payload.as_bytes(),
        })
        .unwrap();
    }
    b.finish()
}

fn storage_seeds(root: &Path) {
    let ring = swarmmq_fuzz::batch::ring();
    let a = encoded_batch(&ring, 0, 3).into_batch(0, 1).unwrap();
    let b = encoded_batch(&ring, 3, 1).into_batch(3, 1).unwrap();
    let mut input = vec![1u8];
    input.extend_from_slice(a.as_bytes());
    input.extend_from_slice(b.as_bytes());
    write(root, "batch", "two_batches", &input);

    // A real log of three small segments, packed; and the same with a torn tail.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let config = LogConfig {
        segment_max_bytes: 1024,
        index_interval_bytes: 256,
        fsync: FsyncPolicy::Never,
        io: IoMode::Buffered,
        ..LogConfig::default()
    };
    let (mut log, _) = PartitionLog::open(&dir, config).unwrap();
    let mut n = 0;
    while log.segment_count() < 3 {
        log.append(&mut [encoded_batch(&ring, n, 2)], 1).unwrap();
        n += 2;
    }
    log.close().unwrap();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let bases: Vec<u64> = names
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| p.file_stem().unwrap().to_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(bases.len(), 3);
    assert_eq!(bases[0], 0);
    let contents: Vec<(u8, Vec<u8>)> = names
        .iter()
        .map(|p| {
            let base: u64 = p
                .file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .split('.')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let slot = bases.iter().position(|b| *b == base).unwrap() as u8;
            let ext = match p.extension().unwrap().to_str().unwrap() {
                "log" => 0,
                "index" => 1,
                _ => 2,
            };
            (slot << 2 | ext, std::fs::read(p).unwrap())
        })
        .collect();
    let files: Vec<File<'_>> = contents
        .iter()
        .map(|(kind, bytes)| File { kind: *kind, bytes })
        .collect();
    let (b1, b2) = (bases[1] as u32, bases[2] as u32);
    write(
        root,
        "segment_recovery",
        "three_segments",
        &pack(2, b1, b2, &files),
    );
    let mut torn = contents.clone();
    for (kind, bytes) in &mut torn {
        if *kind == 2 << 2 {
            let half = bytes.len() / 2;
            bytes.truncate(half.max(1));
            bytes.extend_from_slice(&[0; 100]);
        }
    }
    let files: Vec<File<'_>> = torn
        .iter()
        .map(|(kind, bytes)| File { kind: *kind, bytes })
        .collect();
    write(
        root,
        "segment_recovery",
        "torn_tail",
        &pack(1, b1, b2, &files),
    );
}

fn config_seeds(root: &Path) {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    for entry in std::fs::read_dir(configs).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        write(root, "config", &name, &std::fs::read(&path).unwrap());
    }
    write(
        root,
        "config",
        "env_overrides",
        b"performance:\n  max_connections: 10\nstorage:\n  fsync: never\n\0SWARMMQ_PERFORMANCE_MAX_FRAME_SIZE=4MiB\0SWARMMQ_LOG_LEVEL=debug\0SWARMMQ_MASTER_KEY=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    );
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    protocol_seeds(&root);
    storage_seeds(&root);
    config_seeds(&root);
    println!("seeds written under {}", root.display());
}
