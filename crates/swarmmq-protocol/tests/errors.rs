//! Body-level refusals through the public API: what the node sees for each kind of bad
//! request, and what an encoder refuses to write.

use bytes::{BufMut, Bytes, BytesMut};
use swarmmq_protocol::*;
use swarmmq_types::{ErrorCode, Limits, MessageId};

const L: Limits = Limits::DEFAULT;

fn frame(opcode: u8, flags: Flags, cid: u32, body: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_slice(
        &FrameHeader {
            version: VERSION,
            opcode,
            flags,
            correlation_id: cid,
            body_len: body.len() as u32,
        }
        .to_bytes(),
    );
    b.put_slice(body);
    b
}

fn decode_req(
    mut bytes: BytesMut,
    limits: &Limits,
) -> (FrameHeader, Result<Request, ProtocolError>) {
    let f = FrameDecoder::new(limits)
        .decode(&mut bytes)
        .unwrap()
        .unwrap();
    (f.header, decode_request(&f.header, f.body, limits))
}

fn message(payload: &'static [u8]) -> PublishMessage {
    PublishMessage {
        id: None,
        key: None,
        headers: vec![],
        priority: 5,
        deliver_at_ms: None,
        ttl_ms: None,
        payload: Bytes::from_static(payload),
    }
}

fn publish(messages: Vec<PublishMessage>) -> Request {
    Request::Publish(PublishRequest {
        destination: "d".into(),
        acks: Acks::All,
        partition: None,
        messages,
    })
}

fn encoded(req: &Request) -> BytesMut {
    let mut out = BytesMut::new();
    encode_request(77, req, &L, &mut out).unwrap();
    out
}

#[test]
fn unknown_opcode_keeps_header_for_the_answer() {
    let (header, res) = decode_req(frame(200, Flags::NONE, 4242, b"whatever"), &L);
    let err = res.unwrap_err();
    assert_eq!(err, ProtocolError::UnknownOpcode(200));
    assert_eq!(err.code(), ErrorCode::UnknownOpcode);
    assert!(!err.is_fatal());
    assert_eq!((header.correlation_id, header.opcode), (4242, 200));
    // The node answers under the raw opcode and the same correlation id.
    let mut out = BytesMut::new();
    let answer = ErrorResponse {
        code: err.code(),
        message: err.to_string(),
    };
    encode_error(header.correlation_id, header.opcode, &answer, &L, &mut out).unwrap();
    let f = FrameDecoder::new(&L).decode(&mut out).unwrap().unwrap();
    assert_eq!((f.header.correlation_id, f.header.opcode), (4242, 200));
    assert_eq!(
        decode_response(&f.header, f.body, &L).unwrap(),
        Response::Error(answer)
    );
}

#[test]
fn response_flags_on_a_request_are_refused() {
    let (_, res) = decode_req(frame(9, Flags::RESPONSE, 1, b""), &L);
    assert_eq!(
        res,
        Err(ProtocolError::UnexpectedFlags {
            flags: 1,
            expected: "request"
        })
    );
    let h = FrameHeader {
        version: VERSION,
        opcode: 9,
        flags: Flags::NONE,
        correlation_id: 1,
        body_len: 0,
    };
    assert!(matches!(
        decode_response(&h, Bytes::new(), &L),
        Err(ProtocolError::UnexpectedFlags { flags: 0, .. })
    ));
}

#[test]
fn the_direct_flag_is_a_request_flag_and_other_bits_stay_reserved() {
    let (_, res) = decode_req(frame(9, Flags::DIRECT, 1, b""), &L);
    assert_eq!(res, Ok(Request::Health));
    let mut out = BytesMut::new();
    swarmmq_protocol::encode_request_flags(3, &Request::Health, Flags::DIRECT, &L, &mut out)
        .unwrap();
    let f = FrameDecoder::new(&L).decode(&mut out).unwrap().unwrap();
    assert_eq!(f.header.flags, Flags::DIRECT);
    // A response never carries it.
    let h = FrameHeader {
        version: VERSION,
        opcode: 9,
        flags: Flags(Flags::RESPONSE.0 | Flags::DIRECT.0),
        correlation_id: 1,
        body_len: 0,
    };
    assert!(decode_response(&h, Bytes::new(), &L).is_err());
}

#[test]
fn trailing_bytes_after_a_body_are_refused() {
    let (_, res) = decode_req(frame(9, Flags::NONE, 1, b"\x00"), &L);
    assert_eq!(res, Err(ProtocolError::TrailingBytes(1)));
    let mut bytes = encoded(&Request::DeleteDestination { name: "ab".into() }).to_vec();
    bytes.push(0);
    bytes[15] += 1;
    let (_, res) = decode_req(BytesMut::from(&bytes[..]), &L);
    assert_eq!(res, Err(ProtocolError::TrailingBytes(1)));
}

#[test]
fn truncated_body_names_the_field() {
    // A Delete whose name claims 5 bytes but carries 2.
    let (_, res) = decode_req(frame(6, Flags::NONE, 1, b"\x00\x05ab"), &L);
    assert_eq!(
        res,
        Err(ProtocolError::Truncated {
            field: "destination name",
            needed: 5,
            remaining: 2
        })
    );
    assert_eq!(res.unwrap_err().code(), ErrorCode::MalformedFrame);
}

#[test]
fn invalid_utf8_is_refused() {
    let (_, res) = decode_req(frame(6, Flags::NONE, 1, b"\x00\x02\xc3\x28"), &L);
    assert_eq!(
        res,
        Err(ProtocolError::InvalidUtf8 {
            field: "destination name"
        })
    );
}

#[test]
fn priority_outside_one_to_ten_is_refused_both_ways() {
    let mut bytes = encoded(&publish(vec![message(b"x")])).to_vec();
    // header 16, destination 3, acks 1, partition presence 1, count 4: priority next.
    let at = 16 + 3 + 1 + 1 + 4;
    assert_eq!(bytes[at], 5);
    for bad in [0u8, 11, 255] {
        bytes[at] = bad;
        let (_, res) = decode_req(BytesMut::from(&bytes[..]), &L);
        assert_eq!(
            res,
            Err(ProtocolError::OutOfRange {
                field: "priority",
                value: u64::from(bad)
            })
        );
        let mut m = message(b"x");
        m.priority = bad;
        let mut out = BytesMut::new();
        assert!(encode_request(1, &publish(vec![m]), &L, &mut out).is_err());
        assert!(out.is_empty(), "a refused encode writes nothing");
    }
}

#[test]
fn bad_presence_and_enum_bytes_are_refused() {
    let mut bytes = encoded(&publish(vec![])).to_vec();
    bytes[16 + 3] = 2; // acks
    assert_eq!(
        decode_req(BytesMut::from(&bytes[..]), &L).1,
        Err(ProtocolError::InvalidTag {
            field: "acks",
            value: 2
        })
    );
    bytes[16 + 3] = 0;
    bytes[16 + 4] = 7; // partition presence
    assert_eq!(
        decode_req(BytesMut::from(&bytes[..]), &L).1,
        Err(ProtocolError::InvalidTag {
            field: "partition",
            value: 7
        })
    );
}

#[test]
fn payload_past_max_message_bytes_is_message_too_large() {
    let limits = Limits {
        max_message_bytes: 4,
        ..Limits::DEFAULT
    };
    let bytes = encoded(&publish(vec![message(b"12345")]));
    let (_, res) = decode_req(bytes, &limits);
    let err = res.unwrap_err();
    assert_eq!(err, ProtocolError::MessageTooLarge { len: 5, limit: 4 });
    assert_eq!(err.code(), ErrorCode::MessageTooLarge);
    let mut out = BytesMut::new();
    assert_eq!(
        encode_request(1, &publish(vec![message(b"12345")]), &limits, &mut out),
        Err(ProtocolError::MessageTooLarge { len: 5, limit: 4 })
    );
}

#[test]
fn batch_over_max_batch_messages_is_refused_both_ways() {
    let limits = Limits {
        max_batch_messages: 2,
        ..Limits::DEFAULT
    };
    let three = publish(vec![message(b""), message(b""), message(b"")]);
    let expected = ProtocolError::CountOverLimit {
        field: "messages",
        count: 3,
        limit: 2,
    };
    assert_eq!(
        decode_req(encoded(&three), &limits).1,
        Err(expected.clone())
    );
    let mut out = BytesMut::new();
    assert_eq!(encode_request(1, &three, &limits, &mut out), Err(expected));
}

#[test]
fn too_many_ack_ranges_are_refused() {
    let limits = Limits {
        max_ack_ranges: 1,
        ..Limits::DEFAULT
    };
    let range = OffsetRange {
        partition: 0,
        start: 0,
        end: 1,
    };
    let req = Request::Ack(AckRequest {
        destination: "d".into(),
        group: "g".into(),
        consumer_id: "c".into(),
        ranges: vec![range; 2],
        generation: 0,
    });
    assert!(matches!(
        decode_req(encoded(&req), &limits).1,
        Err(ProtocolError::CountOverLimit {
            field: "ranges",
            count: 2,
            limit: 1
        })
    ));
}

#[test]
fn create_past_max_partitions_is_refused() {
    let req = Request::CreateDestination(CreateDestinationRequest {
        name: "d".into(),
        partitions: L.max_partitions + 1,
        config: DestinationConfig::default(),
    });
    let mut out = BytesMut::new();
    assert!(matches!(
        encode_request(1, &req, &L, &mut out),
        Err(ProtocolError::CountOverLimit {
            field: "partitions",
            ..
        })
    ));
    let mut body = vec![0, 1, b'd'];
    body.extend((L.max_partitions + 1).to_be_bytes());
    body.extend([0, 0]);
    assert!(matches!(
        decode_req(frame(5, Flags::NONE, 1, &body), &L).1,
        Err(ProtocolError::CountOverLimit {
            field: "partitions",
            ..
        })
    ));
}

#[test]
fn encoder_refuses_what_the_wire_cannot_carry() {
    let long = "x".repeat(usize::from(u16::MAX) + 1);
    let big_text = Limits {
        max_text_bytes: u32::MAX,
        ..Limits::DEFAULT
    };
    let mut out = BytesMut::new();
    assert_eq!(
        encode_request(
            1,
            &Request::DescribeDestination { name: long },
            &big_text,
            &mut out
        ),
        Err(ProtocolError::TooLong {
            field: "destination name",
            len: 65_536,
            limit: 65_535
        })
    );
    let text_id = MessageId::Text("x".repeat(129));
    let mut m = message(b"");
    m.id = Some(text_id);
    assert!(matches!(
        encode_request(1, &publish(vec![m]), &L, &mut out),
        Err(ProtocolError::OutOfRange {
            field: "message id length",
            value: 129
        })
    ));
    let reversed = OffsetRange {
        partition: 0,
        start: 2,
        end: 1,
    };
    let nack = Request::Nack(NackRequest {
        destination: "d".into(),
        group: "g".into(),
        consumer_id: "c".into(),
        ranges: vec![reversed],
        delay_ms: 0,
        generation: 0,
        reason: String::new(),
    });
    assert!(matches!(
        encode_request(1, &nack, &L, &mut out),
        Err(ProtocolError::OutOfRange { .. })
    ));
    assert!(out.is_empty());
}

#[test]
fn encoder_refuses_a_frame_past_max_frame_bytes() {
    let limits = Limits {
        max_frame_bytes: 64,
        ..Limits::DEFAULT
    };
    let mut out = BytesMut::from(&b"keep"[..]);
    let req = publish(vec![message(&[0; 40])]);
    assert!(matches!(
        encode_request(1, &req, &limits, &mut out),
        Err(ProtocolError::FrameTooLarge { limit: 64, .. })
    ));
    let messages = (0..10)
        .map(|_| DeliveredMessage {
            partition: 0,
            offset: 0,
            timestamp_ms: 0,
            priority: 5,
            delivery_attempt: 1,
            id: None,
            key: None,
            headers: vec![],
            payload: Bytes::new(),
        })
        .collect();
    assert!(matches!(
        encode_response(
            1,
            Opcode::Pull,
            &Response::Pull(PullResponse { messages }),
            &limits,
            &mut out
        ),
        Err(ProtocolError::FrameTooLarge { .. })
    ));
    assert_eq!(&out[..], b"keep");
}

#[test]
fn response_under_the_wrong_opcode_is_refused() {
    let mut out = BytesMut::new();
    assert_eq!(
        encode_response(
            1,
            Opcode::Ack,
            &Response::Health(HealthResponse {
                status: "ok".into(),
                node_id: "n".into(),
                version: "v".into(),
                uptime_ms: 0,
            }),
            &L,
            &mut out
        ),
        Err(ProtocolError::OpcodeMismatch { opcode: 3, body: 9 })
    );
    assert!(out.is_empty());
}

#[test]
fn unknown_error_code_reads_as_internal() {
    let body = b"\x03\xe7\x00\x02hi";
    let mut bytes = frame(1, Flags::RESPONSE | Flags::ERROR, 5, body);
    let f = FrameDecoder::new(&L).decode(&mut bytes).unwrap().unwrap();
    assert_eq!(
        decode_response(&f.header, f.body, &L).unwrap(),
        Response::Error(ErrorResponse {
            code: ErrorCode::Internal,
            message: "hi".into()
        })
    );
}

#[test]
fn non_error_response_under_unknown_opcode_is_refused() {
    let mut bytes = frame(99, Flags::RESPONSE, 5, b"");
    let f = FrameDecoder::new(&L).decode(&mut bytes).unwrap().unwrap();
    assert_eq!(
        decode_response(&f.header, f.body, &L),
        Err(ProtocolError::UnknownOpcode(99))
    );
}

#[test]
fn publish_payloads_are_slices_of_the_frame() {
    let req = publish(vec![PublishMessage {
        key: Some(Bytes::from_static(b"key")),
        headers: vec![Header {
            name: "h".into(),
            value: Bytes::from_static(b"value"),
        }],
        ..message(b"payload")
    }]);
    let mut bytes = encoded(&req);
    let f = FrameDecoder::new(&L).decode(&mut bytes).unwrap().unwrap();
    let range = f.body.as_ptr_range();
    let Request::Publish(p) = decode_request(&f.header, f.body.clone(), &L).unwrap() else {
        panic!("not a publish")
    };
    let m = &p.messages[0];
    for b in [&m.payload, m.key.as_ref().unwrap(), &m.headers[0].value] {
        assert!(range.contains(&b.as_ptr()), "{b:?} was copied");
    }
}

fn join(mode: Option<GroupMode>) -> Request {
    Request::JoinGroup(JoinGroupRequest {
        destination: "d".into(),
        group: "g".into(),
        consumer_id: "c".into(),
        mode,
        session_timeout_ms: 0,
    })
}

#[test]
fn unknown_group_mode_and_seek_tags_are_refused() {
    let mut bytes = encoded(&join(Some(GroupMode::Ordered))).to_vec();
    // header 16, three one-byte strings 9, presence 1: the mode byte.
    let at = 16 + 9 + 1;
    assert_eq!(bytes[at], 1);
    bytes[at] = 2;
    assert_eq!(
        decode_req(BytesMut::from(&bytes[..]), &L).1,
        Err(ProtocolError::InvalidTag {
            field: "group mode",
            value: 2
        })
    );
    bytes[at - 1] = 2; // the presence byte itself
    assert_eq!(
        decode_req(BytesMut::from(&bytes[..]), &L).1,
        Err(ProtocolError::InvalidTag {
            field: "group mode",
            value: 2
        })
    );

    let seek = Request::Seek(SeekRequest {
        destination: "d".into(),
        group: "g".into(),
        partition: None,
        position: SeekPosition::Earliest,
    });
    let mut bytes = encoded(&seek).to_vec();
    let last = bytes.len() - 1;
    bytes[last] = 4;
    let (_, res) = decode_req(BytesMut::from(&bytes[..]), &L);
    let err = res.unwrap_err();
    assert_eq!(
        err,
        ProtocolError::InvalidTag {
            field: "seek position",
            value: 4
        }
    );
    assert_eq!(err.code(), ErrorCode::MalformedFrame);
    // An offset seek whose value is cut short.
    bytes[last] = 2;
    assert!(matches!(
        decode_req(BytesMut::from(&bytes[..]), &L).1,
        Err(ProtocolError::Truncated {
            field: "seek offset",
            ..
        })
    ));
}

/// A peer that still sends the pre-group Pull, Ack and Nack bodies (without the
/// generation and reason) is refused as malformed, never misread.
#[test]
fn pre_group_pull_ack_and_nack_bodies_are_refused() {
    let range = OffsetRange {
        partition: 0,
        start: 0,
        end: 1,
    };
    let requests = [
        Request::Pull(PullRequest {
            destination: "d".into(),
            group: "g".into(),
            consumer_id: "c".into(),
            max_messages: 1,
            max_bytes: 1,
            max_wait_ms: 0,
            partition: None,
            auto_ack: false,
            generation: 0,
        }),
        Request::Ack(AckRequest {
            destination: "d".into(),
            group: "g".into(),
            consumer_id: "c".into(),
            ranges: vec![range],
            generation: 0,
        }),
        Request::Nack(NackRequest {
            destination: "d".into(),
            group: "g".into(),
            consumer_id: "c".into(),
            ranges: vec![range],
            delay_ms: 0,
            generation: 0,
            reason: String::new(),
        }),
    ];
    for (req, new_bytes) in requests.iter().zip([4usize, 4, 4 + 2]) {
        let mut bytes = encoded(req).to_vec();
        bytes.truncate(bytes.len() - new_bytes);
        let body_len = (bytes.len() - HEADER_LEN) as u32;
        bytes[12..16].copy_from_slice(&body_len.to_be_bytes());
        let (_, res) = decode_req(BytesMut::from(&bytes[..]), &L);
        let err = res.unwrap_err();
        assert!(
            matches!(
                err,
                ProtocolError::Truncated {
                    field: "generation",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.code(), ErrorCode::MalformedFrame);
    }
}

#[test]
fn nack_reason_past_max_text_bytes_is_refused_both_ways() {
    let limits = Limits {
        max_text_bytes: 8,
        ..Limits::DEFAULT
    };
    let nack = Request::Nack(NackRequest {
        destination: "d".into(),
        group: "g".into(),
        consumer_id: "c".into(),
        ranges: vec![],
        delay_ms: 0,
        generation: 0,
        reason: "123456789".into(),
    });
    let expected = ProtocolError::TooLong {
        field: "nack reason",
        len: 9,
        limit: 8,
    };
    let mut out = BytesMut::new();
    assert_eq!(
        encode_request(1, &nack, &limits, &mut out),
        Err(expected.clone())
    );
    assert!(out.is_empty());
    let (_, res) = decode_req(encoded(&nack), &limits);
    assert_eq!(res, Err(expected));
}

#[test]
fn group_lists_past_their_limits_are_refused_both_ways() {
    let limits = Limits {
        max_partitions: 1,
        max_ack_ranges: 1,
        max_groups: 1,
        ..Limits::DEFAULT
    };
    let offset = PartitionOffset {
        partition: 0,
        offset: 0,
    };
    let commit = Request::CommitOffsets(CommitOffsetsRequest {
        destination: "d".into(),
        group: "g".into(),
        consumer_id: "c".into(),
        generation: 1,
        offsets: vec![offset; 2],
    });
    let over = |field, count| ProtocolError::CountOverLimit {
        field,
        count,
        limit: 1,
    };
    let mut out = BytesMut::new();
    assert_eq!(
        encode_request(1, &commit, &limits, &mut out),
        Err(over("offsets", 2))
    );
    assert_eq!(
        decode_req(encoded(&commit), &limits).1,
        Err(over("offsets", 2))
    );

    let summary = GroupSummary {
        group: "g".into(),
        destination: "d".into(),
        mode: GroupMode::Shared,
        members: 0,
    };
    let responses = [
        (
            Opcode::Heartbeat,
            Response::Heartbeat(HeartbeatResponse {
                generation: 1,
                assignment: vec![0],
                revoked: vec![1, 2],
                rebalancing: false,
            }),
            over("revoked", 2),
        ),
        (
            Opcode::Seek,
            Response::Seek(SeekResponse {
                offsets: vec![offset; 2],
            }),
            over("offsets", 2),
        ),
        (
            Opcode::ListGroups,
            Response::ListGroups(vec![summary; 2]),
            over("groups", 2),
        ),
    ];
    for (opcode, resp, expected) in responses {
        assert_eq!(
            encode_response(1, opcode, &resp, &limits, &mut out),
            Err(expected.clone())
        );
        assert!(out.is_empty());
        encode_response(1, opcode, &resp, &L, &mut out).unwrap();
        let f = FrameDecoder::new(&L).decode(&mut out).unwrap().unwrap();
        assert_eq!(decode_response(&f.header, f.body, &limits), Err(expected));
    }
}

#[test]
fn stale_generation_is_a_retriable_error_answer() {
    let answer = ErrorResponse {
        code: ErrorCode::StaleGeneration,
        message: "generation 3 is past; current is 4".into(),
    };
    let mut out = BytesMut::new();
    encode_response(
        7,
        Opcode::Ack,
        &Response::Error(answer.clone()),
        &L,
        &mut out,
    )
    .unwrap();
    let f = FrameDecoder::new(&L).decode(&mut out).unwrap().unwrap();
    assert_eq!((f.header.opcode, f.header.correlation_id), (3, 7));
    let Response::Error(got) = decode_response(&f.header, f.body, &L).unwrap() else {
        panic!("not an error")
    };
    assert_eq!(got, answer);
    assert!(got.code.is_retriable());
    assert_eq!(got.code.name(), "STALE_GENERATION");
}

#[test]
fn api_keys_past_256_bytes_are_refused_both_ways() {
    let long = Request::Authenticate(AuthenticateRequest {
        api_key: "k".repeat(257),
    });
    let too_long = ProtocolError::TooLong {
        field: "api key",
        len: 257,
        limit: 256,
    };
    let mut out = BytesMut::new();
    assert_eq!(
        encode_request(1, &long, &L, &mut out),
        Err(too_long.clone())
    );
    assert!(out.is_empty());
    // A hand-made frame with a 257-byte key: refused before the key is read.
    let mut body = BytesMut::new();
    body.put_u16(257);
    body.put_slice(&[b'k'; 257]);
    let (_, res) = decode_req(frame(19, Flags::NONE, 5, &body), &L);
    let err = res.unwrap_err();
    assert_eq!(err, too_long);
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    assert!(!err.is_fatal());
    // Exactly 256 bytes is fine.
    let max = Request::Authenticate(AuthenticateRequest {
        api_key: "k".repeat(256),
    });
    assert_eq!(decode_req(encoded(&max), &L).1, Ok(max));
}

#[test]
fn an_api_key_never_shows_in_debug_output() {
    let req = Request::Authenticate(AuthenticateRequest {
        api_key: "smq_0123456789ab_topsecret".into(),
    });
    let text = format!("{req:?}");
    assert!(!text.contains("topsecret"), "{text}");
    assert!(text.contains("redacted"), "{text}");
}

#[test]
fn cluster_status_json_is_checked_utf8_bounded_by_the_frame() {
    // Longer than max_text_bytes: the JSON is not a `string` field.
    let json = format!("{{\"pad\":\"{}\"}}", "x".repeat(L.max_text_bytes as usize));
    let resp = Response::ClusterStatus { json };
    let mut out = BytesMut::new();
    encode_response(5, Opcode::ClusterStatus, &resp, &L, &mut out).unwrap();
    let f = FrameDecoder::new(&L).decode(&mut out).unwrap().unwrap();
    assert_eq!(decode_response(&f.header, f.body, &L).unwrap(), resp);

    let bad = frame(23, Flags::RESPONSE, 5, b"\x00\x00\x00\x02\xc3\x28");
    let f = FrameDecoder::new(&L)
        .decode(&mut bad.clone())
        .unwrap()
        .unwrap();
    assert_eq!(
        decode_response(&f.header, f.body, &L),
        Err(ProtocolError::InvalidUtf8 {
            field: "cluster status"
        })
    );
    // A length past the frame limit is refused before anything is copied.
    let big = frame(23, Flags::RESPONSE, 5, b"\xff\xff\xff\xff");
    let f = FrameDecoder::new(&L)
        .decode(&mut big.clone())
        .unwrap()
        .unwrap();
    assert!(matches!(
        decode_response(&f.header, f.body, &L),
        Err(ProtocolError::TooLong {
            field: "cluster status",
            ..
        })
    ));
}
