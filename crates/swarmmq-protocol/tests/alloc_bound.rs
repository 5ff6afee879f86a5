//! Decoding must never allocate much past the frame it reads, however large the counts
//! and lengths a hostile frame claims. A counting global allocator measures the bytes
//! requested on the decoding thread.

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use bytes::{BufMut, Bytes, BytesMut};
use counting_alloc::allocated_by;
use swarmmq_protocol::*;
use swarmmq_types::Limits;

/// Limits as loose as a config could make them, so only the frame bounds allocation.
fn loose() -> Limits {
    Limits {
        max_batch_messages: u32::MAX,
        max_pull_messages: u32::MAX,
        max_headers: u32::MAX,
        max_header_name_bytes: u32::MAX,
        max_header_bytes: u32::MAX,
        max_key_bytes: u32::MAX,
        max_text_bytes: u32::MAX,
        max_ack_ranges: u32::MAX,
        max_destinations: u32::MAX,
        max_partitions: u32::MAX,
        max_groups: u32::MAX,
        max_message_bytes: u32::MAX,
        ..Limits::DEFAULT
    }
}

fn header(opcode: u8, flags: Flags, body: &[u8]) -> FrameHeader {
    FrameHeader {
        version: VERSION,
        opcode,
        flags,
        correlation_id: 1,
        body_len: body.len() as u32,
    }
}

/// Frames that claim far more than they carry, as (name, opcode, flags, body).
fn hostile() -> Vec<(&'static str, u8, Flags, Vec<u8>)> {
    let huge = u32::MAX.to_be_bytes();
    let mut out = Vec::new();
    // Publish: destination "d", acks 0, no partition, then a count.
    let publish_head = [0, 1, b'd', 0, 0];
    for count in [u32::MAX, 100_000, 1_000] {
        let mut b = publish_head.to_vec();
        b.extend(count.to_be_bytes());
        b.extend([0u8; 64]);
        out.push(("publish message count", 1, Flags::NONE, b));
    }
    // One message claiming u32::MAX headers, then one claiming a huge payload.
    let mut b = publish_head.to_vec();
    b.extend(1u32.to_be_bytes());
    b.extend([5, 0, 0, 0, 0]);
    b.extend(huge);
    b.extend([0u8; 64]);
    out.push(("publish header count", 1, Flags::NONE, b));
    let mut b = publish_head.to_vec();
    b.extend(1u32.to_be_bytes());
    b.extend([5, 0, 0, 0, 0, 0, 0, 0, 0]);
    b.extend(huge);
    b.extend([0u8; 64]);
    out.push(("publish payload length", 1, Flags::NONE, b));
    // Strings claiming 65535 bytes.
    out.push((
        "destination name length",
        6,
        Flags::NONE,
        vec![0xff, 0xff, b'a'],
    ));
    // Ack with u32::MAX ranges.
    let mut b = vec![0, 1, b'd', 0, 1, b'g', 0, 1, b'c'];
    b.extend(huge);
    b.extend([0u8; 40]);
    out.push(("ack range count", 3, Flags::NONE, b));
    // Responses: pull, publish runs, list, metadata nodes, partitions, config entries.
    let mut b = huge.to_vec();
    b.extend([0u8; 64]);
    out.push(("pull message count", 2, Flags::RESPONSE, b.clone()));
    out.push(("publish run count", 1, Flags::RESPONSE, b.clone()));
    out.push(("destination count", 7, Flags::RESPONSE, b));
    let mut b = vec![0, 0];
    b.extend(huge);
    b.extend([0u8; 64]);
    out.push(("metadata node count", 10, Flags::RESPONSE, b));
    let mut b = vec![0, 1, b'd'];
    b.extend(huge);
    b.extend([0u8; 64]);
    out.push(("partition count", 8, Flags::RESPONSE, b));
    out.push((
        "config entry count",
        8,
        Flags::RESPONSE,
        vec![0, 1, b'd', 0, 0, 0, 0, 0xff, 0xff, 0, 0],
    ));
    out.push((
        "error message length",
        1,
        Flags::RESPONSE | Flags::ERROR,
        vec![0, 1, 0xff, 0xff, b'x'],
    ));
    out.extend(hostile_group_frames());
    out
}

/// The consumer-group bodies' lists and strings, each claiming far more than it carries.
fn hostile_group_frames() -> Vec<(&'static str, u8, Flags, Vec<u8>)> {
    let huge = u32::MAX.to_be_bytes();
    let padded = |prefix: &[u8]| {
        let mut b = prefix.to_vec();
        b.extend(huge);
        b.extend([0u8; 64]);
        b
    };
    // destination "d", group "g", consumer id "c".
    let member = [0, 1, b'd', 0, 1, b'g', 0, 1, b'c'];
    let mut nack = member.to_vec();
    nack.extend(0u32.to_be_bytes()); // no ranges
    nack.extend([0; 8]); // delay, generation
    nack.extend([0xff, 0xff, b'x']); // reason claiming 65535 bytes
    let mut commit = member.to_vec();
    commit.extend(0u32.to_be_bytes()); // generation
    // group "g", destination "d", mode shared, generation 0.
    let describe_head = [0, 1, b'g', 0, 1, b'd', 0, 0, 0, 0, 0];
    let mut one_member = describe_head.to_vec();
    one_member.extend(1u32.to_be_bytes());
    one_member.extend([0, 1, b'c']);
    let mut no_members = describe_head.to_vec();
    no_members.extend(0u32.to_be_bytes());
    vec![
        ("nack reason length", 4, Flags::NONE, nack),
        ("commit offset count", 14, Flags::NONE, padded(&commit)),
        ("extend lease range count", 16, Flags::NONE, padded(&member)),
        (
            "join assignment count",
            11,
            Flags::RESPONSE,
            padded(&[1, 0, 0, 0, 1]),
        ),
        (
            "heartbeat assignment count",
            12,
            Flags::RESPONSE,
            padded(&[0, 0, 0, 1]),
        ),
        (
            "heartbeat revoked count",
            12,
            Flags::RESPONSE,
            padded(&[0, 0, 0, 1, 0, 0, 0, 0]),
        ),
        ("seek offset count", 15, Flags::RESPONSE, padded(&[])),
        ("group count", 17, Flags::RESPONSE, padded(&[])),
        ("member count", 18, Flags::RESPONSE, padded(&describe_head)),
        (
            "member partition count",
            18,
            Flags::RESPONSE,
            padded(&one_member),
        ),
        (
            "group partition count",
            18,
            Flags::RESPONSE,
            padded(&no_members),
        ),
    ]
}

fn decode(h: &FrameHeader, body: Bytes, limits: &Limits) -> bool {
    if h.flags.is_response() {
        decode_response(h, body, limits).is_ok()
    } else {
        decode_request(h, body, limits).is_ok()
    }
}

#[test]
fn hostile_counts_and_lengths_allocate_almost_nothing() {
    for limits in [Limits::DEFAULT, loose()] {
        for (name, opcode, flags, body) in hostile() {
            let frame_len = HEADER_LEN + body.len();
            let h = header(opcode, flags, &body);
            let body = Bytes::from(body);
            let (bytes, ok) = allocated_by(|| decode(&h, body, &limits));
            assert!(!ok, "{name}: hostile frame decoded");
            let bound = frame_len * 4 + 64 * 1024;
            assert!(
                bytes <= bound,
                "{name}: {bytes} bytes allocated for a {frame_len}-byte frame"
            );
        }
    }
}

#[test]
fn framer_does_not_reserve_the_announced_body() {
    let mut buf = BytesMut::new();
    buf.put_slice(
        &FrameHeader {
            version: VERSION,
            opcode: 1,
            flags: Flags::NONE,
            correlation_id: 1,
            body_len: Limits::DEFAULT.max_frame_bytes - HEADER_LEN as u32,
        }
        .to_bytes(),
    );
    let mut dec = FrameDecoder::new(&Limits::DEFAULT);
    let (bytes, res) = allocated_by(|| dec.decode(&mut buf));
    assert!(matches!(res, Ok(None)));
    assert_eq!(bytes, 0);
}

/// Valid frames packed with the smallest possible elements show the real worst case:
/// every element exists, so memory is the in-memory size of the decoded values. The
/// bound below is the documented amplification (docs/protocol.md, "Limits").
#[test]
fn densest_valid_frames_stay_within_the_documented_amplification() {
    let limits = loose();
    let empty_message = PublishMessage {
        id: None,
        key: None,
        headers: vec![],
        priority: 5,
        deliver_at_ms: None,
        ttl_ms: None,
        payload: Bytes::new(),
    };
    let empty_header = Header {
        name: String::new(),
        value: Bytes::new(),
    };
    let many_messages = Request::Publish(PublishRequest {
        destination: String::new(),
        acks: Acks::All,
        partition: None,
        messages: vec![empty_message.clone(); 50_000],
    });
    let many_headers = Request::Publish(PublishRequest {
        destination: String::new(),
        acks: Acks::All,
        partition: None,
        messages: vec![
            PublishMessage {
                headers: vec![empty_header; 64],
                ..empty_message
            };
            1_000
        ],
    });
    let ranges = Request::Ack(AckRequest {
        destination: String::new(),
        group: String::new(),
        consumer_id: String::new(),
        ranges: vec![
            OffsetRange {
                partition: 0,
                start: 0,
                end: 0
            };
            50_000
        ],
        generation: 0,
    });
    for req in [many_messages, many_headers, ranges] {
        let mut out = BytesMut::new();
        encode_request(1, &req, &limits, &mut out).unwrap();
        let frame = FrameDecoder::new(&limits)
            .decode(&mut out)
            .unwrap()
            .unwrap();
        let frame_len = HEADER_LEN + frame.body.len();
        let (bytes, decoded) = allocated_by(|| decode_request(&frame.header, frame.body, &limits));
        assert_eq!(decoded.unwrap(), req);
        let bound = frame_len * 13 + 64 * 1024;
        assert!(
            bytes <= bound,
            "{bytes} bytes allocated for a {frame_len}-byte frame"
        );
        eprintln!(
            "{:?}: {frame_len} frame bytes -> {bytes} bytes allocated ({:.1}x)",
            req.opcode(),
            bytes as f64 / frame_len as f64
        );
    }
}

/// The same for the consumer-group bodies with the most elements per byte.
#[test]
fn densest_group_frames_stay_within_the_documented_amplification() {
    let limits = loose();
    let commit = Request::CommitOffsets(CommitOffsetsRequest {
        destination: String::new(),
        group: String::new(),
        consumer_id: String::new(),
        generation: 0,
        offsets: vec![
            PartitionOffset {
                partition: 0,
                offset: 0
            };
            50_000
        ],
    });
    let mut out = BytesMut::new();
    encode_request(1, &commit, &limits, &mut out).unwrap();
    let responses = [
        (
            Opcode::ListGroups,
            Response::ListGroups(vec![
                GroupSummary {
                    group: String::new(),
                    destination: String::new(),
                    mode: GroupMode::Shared,
                    members: 0,
                };
                50_000
            ]),
        ),
        (
            Opcode::DescribeGroup,
            Response::DescribeGroup(GroupDescription {
                group: String::new(),
                destination: String::new(),
                mode: GroupMode::Ordered,
                generation: 0,
                members: vec![
                    MemberInfo {
                        consumer_id: String::new(),
                        partitions: vec![],
                        last_seen_ms: 0,
                    };
                    50_000
                ],
                partitions: vec![],
                dlq_moved: 0,
                expired: 0,
            }),
        ),
        (
            Opcode::Heartbeat,
            Response::Heartbeat(HeartbeatResponse {
                generation: 0,
                assignment: (0..100_000).collect(),
                revoked: vec![],
                rebalancing: false,
            }),
        ),
    ];
    for (opcode, resp) in &responses {
        encode_response(1, *opcode, resp, &limits, &mut out).unwrap();
    }
    let mut framer = FrameDecoder::new(&limits);
    while let Some(frame) = framer.decode(&mut out).unwrap() {
        let frame_len = HEADER_LEN + frame.body.len();
        let (bytes, ok) = allocated_by(|| match frame.header.flags.is_response() {
            true => decode_response(&frame.header, frame.body, &limits)
                .map(|r| responses.iter().any(|(_, want)| *want == r)),
            false => decode_request(&frame.header, frame.body, &limits).map(|r| r == commit),
        });
        assert_eq!(ok, Ok(true), "opcode {}", frame.header.opcode);
        let bound = frame_len * 13 + 64 * 1024;
        assert!(
            bytes <= bound,
            "opcode {}: {bytes} bytes allocated for a {frame_len}-byte frame",
            frame.header.opcode
        );
        eprintln!(
            "opcode {}: {frame_len} frame bytes -> {bytes} bytes allocated ({:.1}x)",
            frame.header.opcode,
            bytes as f64 / frame_len as f64
        );
    }
}
