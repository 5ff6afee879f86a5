//! Golden byte vectors: one per request and response variant. A change in any of them
//! is a wire format change and needs a version decision (see docs/protocol.md).
//! The vectors are literal on purpose; on a mismatch the test prints the new bytes
//! formatted like the literals, ready to paste after review.

use bytes::{Bytes, BytesMut};
use swarmmq_protocol::*;
use swarmmq_types::{ErrorCode, Limits, MessageId};

/// Hex digits, with whitespace ignored and `#` starting a comment to the end of line.
fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .lines()
        .flat_map(|l| l.split('#').next().unwrap_or_default().bytes())
        .filter(u8::is_ascii_hexdigit)
        .collect();
    assert_eq!(digits.len() % 2, 0, "odd number of hex digits");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// The header on one line, then the body 16 bytes a line.
fn pretty(b: &[u8]) -> String {
    let hex = |c: &[u8]| {
        c.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = hex(&b[..16.min(b.len())]);
    for line in b.get(16..).unwrap_or_default().chunks(16) {
        s.push('\n');
        s.push_str(&hex(line));
    }
    s
}

fn assert_bytes(got: &[u8], expected_hex: &str) {
    let expected = unhex(expected_hex);
    assert!(
        got == expected.as_slice(),
        "encoding changed; got:\n{}\nexpected:\n{}",
        pretty(got),
        pretty(&expected)
    );
}

fn golden_request(cid: u32, req: Request, expected_hex: &str) {
    let limits = Limits::DEFAULT;
    let mut out = BytesMut::new();
    encode_request(cid, &req, &limits, &mut out).unwrap();
    assert_bytes(&out, expected_hex);
    let frame = FrameDecoder::new(&limits)
        .decode(&mut out)
        .unwrap()
        .unwrap();
    assert_eq!(frame.header.correlation_id, cid);
    assert_eq!(
        decode_request(&frame.header, frame.body, &limits).unwrap(),
        req
    );
}

fn golden_response(cid: u32, opcode: Opcode, resp: Response, expected_hex: &str) {
    let limits = Limits::DEFAULT;
    let mut out = BytesMut::new();
    encode_response(cid, opcode, &resp, &limits, &mut out).unwrap();
    assert_bytes(&out, expected_hex);
    let frame = FrameDecoder::new(&limits)
        .decode(&mut out)
        .unwrap()
        .unwrap();
    assert_eq!(frame.header.correlation_id, cid);
    assert_eq!(frame.header.opcode, opcode.as_u8());
    assert_eq!(
        decode_response(&frame.header, frame.body, &limits).unwrap(),
        resp
    );
}

fn header(name: &str, value: &'static [u8]) -> Header {
    Header {
        name: name.into(),
        value: Bytes::from_static(value),
    }
}

fn orders_info() -> DestinationInfo {
    DestinationInfo {
        name: "orders".into(),
        partitions: vec![PartitionInfo {
            partition: 0,
            leader: "node-1".into(),
            start_offset: 0,
            end_offset: 42,
            size_bytes: 4096,
        }],
        config: DestinationConfig {
            max_delivery_attempts: Some(5),
            ..DestinationConfig::default()
        },
    }
}

#[test]
fn publish_request() {
    let req = Request::Publish(PublishRequest {
        destination: "orders".into(),
        acks: Acks::Leader,
        partition: Some(2),
        messages: vec![
            PublishMessage {
                id: Some(MessageId::Text("m1".into())),
                key: Some(Bytes::from_static(b"k")),
                headers: vec![header("h", b"v")],
                priority: 5,
                deliver_at_ms: None,
                ttl_ms: Some(60_000),
                payload: Bytes::from_static(b"hi"),
            },
            PublishMessage {
                id: Some(MessageId::Uuid([0x11; 16])),
                key: None,
                headers: vec![],
                priority: 10,
                deliver_at_ms: Some(1_700_000_000_000),
                ttl_ms: None,
                payload: Bytes::new(),
            },
        ],
    });
    golden_request(
        1,
        req,
        "
        53 51 01 01 0000 0000 00000001 0000005e  # header: Publish, request, cid 1, 94 bytes
        0006 6f7264657273                        # destination 'orders'
        01                                       # acks: leader
        01 00000002                              # partition: Some(2)
        00000002                                 # 2 messages
        05                                       # [0] priority 5
        00                                       #     deliver_at: None
        01 000000000000ea60                      #     ttl: Some(60000)
        02 02 6d31                               #     id: text 'm1'
        01 00000001 6b                           #     key: Some('k')
        00000001 0001 68 00000001 76             #     headers: h=v
        00000002 6869                            #     payload 'hi'
        0a                                       # [1] priority 10
        01 0000018bcfe56800                      #     deliver_at: Some(1700000000000)
        00                                       #     ttl: None
        01 11111111111111111111111111111111      #     id: uuid
        00                                       #     key: None
        00000000                                 #     no headers
        00000000                                 #     empty payload
    ",
    );
}

#[test]
fn pull_request() {
    let req = Request::Pull(PullRequest {
        destination: "orders".into(),
        group: "g1".into(),
        consumer_id: "c1".into(),
        max_messages: 10,
        max_bytes: 65_536,
        max_wait_ms: 500,
        partition: None,
        auto_ack: true,
        generation: 7,
    });
    golden_request(
        2,
        req,
        "
        53 51 01 02 0000 0000 00000002 00000022  # header: Pull, request, cid 2, 34 bytes
        0006 6f7264657273                        # destination 'orders'
        0002 6731                                # group 'g1'
        0002 6331                                # consumer id 'c1'
        0000000a                                 # max messages 10
        00010000                                 # max bytes 65536
        000001f4                                 # max wait 500 ms
        00                                       # partition: None
        01                                       # auto ack
        00000007                                 # generation 7
    ",
    );
}

#[test]
fn ack_request() {
    let req = Request::Ack(AckRequest {
        destination: "orders".into(),
        group: "g1".into(),
        consumer_id: "c1".into(),
        ranges: vec![OffsetRange {
            partition: 0,
            start: 5,
            end: 7,
        }],
        generation: 7,
    });
    golden_request(
        3,
        req,
        "
        53 51 01 03 0000 0000 00000003 0000002c  # header: Ack, request, cid 3, 44 bytes
        0006 6f7264657273                        # destination 'orders'
        0002 6731                                # group 'g1'
        0002 6331                                # consumer id 'c1'
        00000001                                 # 1 range
        00000000                                 #   partition 0
        0000000000000005                         #   start 5
        0000000000000007                         #   end 7 (exclusive)
        00000007                                 # generation 7
    ",
    );
}

#[test]
fn nack_request() {
    let req = Request::Nack(NackRequest {
        destination: "orders".into(),
        group: "g1".into(),
        consumer_id: "c1".into(),
        ranges: vec![OffsetRange {
            partition: 1,
            start: 0,
            end: 1,
        }],
        delay_ms: 1000,
        generation: 0,
        reason: "boom".into(),
    });
    golden_request(
        4,
        req,
        "
        53 51 01 04 0000 0000 00000004 00000036  # header: Nack, request, cid 4, 54 bytes
        0006 6f7264657273                        # destination 'orders'
        0002 6731                                # group 'g1'
        0002 6331                                # consumer id 'c1'
        00000001                                 # 1 range
        00000001                                 #   partition 1
        0000000000000000                         #   start 0
        0000000000000001                         #   end 1 (exclusive)
        000003e8                                 # delay 1000 ms
        00000000                                 # generation 0 (shared mode)
        0004 626f6f6d                            # reason 'boom'
    ",
    );
}

#[test]
fn create_destination_request() {
    let req = Request::CreateDestination(CreateDestinationRequest {
        name: "orders".into(),
        partitions: 3,
        config: DestinationConfig {
            retention_ms: Some(86_400_000),
            dlq_enabled: Some(true),
            ..DestinationConfig::default()
        },
    });
    golden_request(
        5,
        req,
        "
        53 51 01 05 0000 0000 00000005 0000001f  # header: CreateDestination, cid 5, 31 bytes
        0006 6f7264657273                        # name 'orders'
        00000003                                 # 3 partitions
        0002                                     # 2 config entries
        0001 0008 0000000005265c00               # tag 1 retention_ms = 86400000
        0007 0001 01                             # tag 7 dlq_enabled = true
    ",
    );
}

/// The config tags added for consumer groups: 9 expired_to_dlq, 10 priority_aging_ms.
#[test]
fn create_destination_request_with_group_config_tags() {
    let req = Request::CreateDestination(CreateDestinationRequest {
        name: "q".into(),
        partitions: 1,
        config: DestinationConfig {
            expired_to_dlq: Some(true),
            priority_aging_ms: Some(30_000),
            ..DestinationConfig::default()
        },
    });
    golden_request(
        13,
        req,
        "
        53 51 01 05 0000 0000 0000000d 0000001a  # header: CreateDestination, cid 13, 26 bytes
        0001 71                                  # name 'q'
        00000001                                 # 1 partition
        0002                                     # 2 config entries
        0009 0001 01                             # tag 9 expired_to_dlq = true
        000a 0008 0000000000007530               # tag 10 priority_aging_ms = 30000
    ",
    );
}

#[test]
fn delete_destination_request() {
    golden_request(
        6,
        Request::DeleteDestination {
            name: "orders".into(),
        },
        "
        53 51 01 06 00 00 00 00 00 00 00 06 00 00 00 08
        00 06 6f 72 64 65 72 73
    ",
    );
}

#[test]
fn list_destinations_request() {
    golden_request(
        7,
        Request::ListDestinations,
        "
        53 51 01 07 00 00 00 00 00 00 00 07 00 00 00 00
    ",
    );
}

#[test]
fn describe_destination_request() {
    golden_request(
        8,
        Request::DescribeDestination {
            name: "orders".into(),
        },
        "
        53 51 01 08 00 00 00 00 00 00 00 08 00 00 00 08
        00 06 6f 72 64 65 72 73
    ",
    );
}

#[test]
fn health_request() {
    golden_request(
        9,
        Request::Health,
        "
        53 51 01 09 00 00 00 00 00 00 00 09 00 00 00 00
    ",
    );
}

#[test]
fn metadata_request() {
    golden_request(
        10,
        Request::Metadata,
        "
        53 51 01 0a 00 00 00 00 00 00 00 0a 00 00 00 00
    ",
    );
}

#[test]
fn publish_response() {
    let resp = Response::Publish(PublishResponse {
        runs: vec![PublishRun {
            partition: 2,
            base_offset: 40,
            count: 2,
            duplicate: false,
        }],
    });
    golden_response(
        1,
        Opcode::Publish,
        resp,
        "
        53 51 01 01 00 01 00 00 00 00 00 01 00 00 00 15
        00 00 00 01 00 00 00 02 00 00 00 00 00 00 00 28
        00 00 00 02 00
    ",
    );
}

#[test]
fn pull_response() {
    let resp = Response::Pull(PullResponse {
        messages: vec![DeliveredMessage {
            partition: 0,
            offset: 41,
            timestamp_ms: 1_700_000_000_000,
            priority: 5,
            delivery_attempt: 1,
            id: Some(MessageId::Text("m1".into())),
            key: Some(Bytes::from_static(b"k")),
            headers: vec![header("h", b"v")],
            payload: Bytes::from_static(b"hi"),
        }],
    });
    golden_response(
        2,
        Opcode::Pull,
        resp,
        "
        53 51 01 02 0001 0000 00000002 00000039  # header: Pull, response, cid 2, 57 bytes
        00000001                                 # 1 message
        00000000                                 # partition 0
        0000000000000029                         # offset 41
        0000018bcfe56800                         # timestamp 1700000000000
        05                                       # priority 5
        00000001                                 # delivery attempt 1
        02 02 6d31                               # id: text 'm1'
        01 00000001 6b                           # key: Some('k')
        00000001 0001 68 00000001 76             # headers: h=v
        00000002 6869                            # payload 'hi'
    ",
    );
}

#[test]
fn ack_response() {
    golden_response(
        3,
        Opcode::Ack,
        Response::Ack(AckResponse { count: 3 }),
        "
        53 51 01 03 00 01 00 00 00 00 00 03 00 00 00 08
        00 00 00 00 00 00 00 03
    ",
    );
}

#[test]
fn nack_response() {
    golden_response(
        4,
        Opcode::Nack,
        Response::Nack(AckResponse { count: 1 }),
        "
        53 51 01 04 00 01 00 00 00 00 00 04 00 00 00 08
        00 00 00 00 00 00 00 01
    ",
    );
}

#[test]
fn create_destination_response() {
    golden_response(
        5,
        Opcode::CreateDestination,
        Response::CreateDestination(orders_info()),
        "
        53 51 01 05 0001 0000 00000005 0000003a  # header: response, 58 bytes
        0006 6f7264657273                        # name 'orders'
        00000001                                 # 1 partition
        00000000                                 #   partition 0
        0006 6e6f64652d31                        #   leader 'node-1'
        0000000000000000                         #   start offset 0
        000000000000002a                         #   end offset 42
        0000000000001000                         #   size 4096 bytes
        0001                                     # 1 config entry
        0005 0004 00000005                       # tag 5 max_delivery_attempts = 5
    ",
    );
}

#[test]
fn delete_destination_response() {
    golden_response(
        6,
        Opcode::DeleteDestination,
        Response::DeleteDestination,
        "
        53 51 01 06 00 01 00 00 00 00 00 06 00 00 00 00
    ",
    );
}

#[test]
fn list_destinations_response() {
    let list = vec![DestinationInfo {
        name: "a".into(),
        partitions: vec![],
        config: DestinationConfig::default(),
    }];
    golden_response(
        7,
        Opcode::ListDestinations,
        Response::ListDestinations(list),
        "
        53 51 01 07 00 01 00 00 00 00 00 07 00 00 00 0d
        00 00 00 01 00 01 61 00 00 00 00 00 00
    ",
    );
}

#[test]
fn describe_destination_response() {
    golden_response(
        8,
        Opcode::DescribeDestination,
        Response::DescribeDestination(orders_info()),
        "
        53 51 01 08 0001 0000 00000008 0000003a  # header: response, 58 bytes
        0006 6f7264657273                        # name 'orders'
        00000001                                 # 1 partition
        00000000                                 #   partition 0
        0006 6e6f64652d31                        #   leader 'node-1'
        0000000000000000                         #   start offset 0
        000000000000002a                         #   end offset 42
        0000000000001000                         #   size 4096 bytes
        0001                                     # 1 config entry
        0005 0004 00000005                       # tag 5 max_delivery_attempts = 5
    ",
    );
}

#[test]
fn health_response() {
    let resp = Response::Health(HealthResponse {
        status: "ok".into(),
        node_id: "node-1".into(),
        version: "0.1.0".into(),
        uptime_ms: 1234,
    });
    golden_response(
        9,
        Opcode::Health,
        resp,
        "
        53 51 01 09 0001 0000 00000009 0000001b  # header: Health, response, cid 9, 27 bytes
        0002 6f6b                                # status 'ok'
        0006 6e6f64652d31                        # node id 'node-1'
        0005 302e312e30                          # version '0.1.0'
        00000000000004d2                         # uptime 1234 ms
    ",
    );
}

#[test]
fn metadata_response() {
    let resp = Response::Metadata(MetadataResponse {
        cluster_name: "dev".into(),
        nodes: vec![NodeInfo {
            id: "node-1".into(),
            host: "127.0.0.1".into(),
            port: 9001,
        }],
        destinations: vec![],
    });
    golden_response(
        10,
        Opcode::Metadata,
        resp,
        "
        53 51 01 0a 0001 0000 0000000a 00000022  # header: Metadata, response, cid 10, 34 bytes
        0003 646576                              # cluster name 'dev'
        00000001                                 # 1 node
        0006 6e6f64652d31                        #   id 'node-1'
        0009 3132372e302e302e31                  #   host '127.0.0.1'
        2329                                     #   port 9001
        00000000                                 # no destinations
    ",
    );
}

#[test]
fn error_response() {
    let resp = Response::Error(ErrorResponse {
        code: ErrorCode::UnknownDestination,
        message: "no such destination: x".into(),
    });
    golden_response(
        11,
        Opcode::Publish,
        resp,
        "
        53 51 01 01 0003 0000 0000000b 0000001a  # header: Publish, RESPONSE|ERROR, cid 11, 26 bytes
        0007                                     # code 7 UNKNOWN_DESTINATION
        0016 6e6f20737563682064657374696e6174696f6e3a2078  # 'no such destination: x'
    ",
    );
}

#[test]
fn stale_generation_error_response() {
    let resp = Response::Error(ErrorResponse {
        code: ErrorCode::StaleGeneration,
        message: "gen 3".into(),
    });
    golden_response(
        14,
        Opcode::CommitOffsets,
        resp,
        "
        53 51 01 0e 0003 0000 0000000e 00000009  # header: CommitOffsets, RESPONSE|ERROR, cid 14, 9 bytes
        0016                                     # code 22 STALE_GENERATION
        0005 67656e2033                          # 'gen 3'
    ",
    );
}

/// An opcode this build does not know is answered under its own raw byte.
#[test]
fn error_under_unknown_opcode() {
    let err = ErrorResponse {
        code: ErrorCode::UnknownOpcode,
        message: "opcode 99".into(),
    };
    let limits = Limits::DEFAULT;
    let mut out = BytesMut::new();
    encode_error(12, 99, &err, &limits, &mut out).unwrap();
    assert_bytes(
        &out,
        "
        53 51 01 63 00 03 00 00 00 00 00 0c 00 00 00 0d
        00 03 00 09 6f 70 63 6f 64 65 20 39 39
    ",
    );
    let frame = FrameDecoder::new(&limits)
        .decode(&mut out)
        .unwrap()
        .unwrap();
    assert_eq!(
        decode_response(&frame.header, frame.body, &limits).unwrap(),
        Response::Error(err)
    );
}

/// The worked example in docs/protocol.md is real: its three code blocks are the
/// encodings of a Health request, its response, and an UNKNOWN_OPCODE error.
#[test]
fn docs_worked_example_matches_the_codec() {
    let doc = include_str!("../../../docs/protocol.md");
    let example = doc.split("## Worked example").nth(1).unwrap();
    let example = example.split("\n## ").next().unwrap();
    // Each line's leading two-digit hex tokens; annotation lines have none.
    let blocks: Vec<Vec<u8>> = example
        .split("```")
        .skip(1)
        .step_by(2)
        .map(|block| {
            let hex: String = block
                .lines()
                .flat_map(|l| {
                    l.split_whitespace()
                        .take_while(|t| t.len() == 2 && t.bytes().all(|b| b.is_ascii_hexdigit()))
                })
                .collect();
            unhex(&hex)
        })
        .collect();
    assert_eq!(blocks.len(), 3);

    let limits = Limits::DEFAULT;
    let mut out = BytesMut::new();
    encode_request(9, &Request::Health, &limits, &mut out).unwrap();
    assert_eq!(&out[..], &blocks[0][..]);
    out.clear();
    let health = Response::Health(HealthResponse {
        status: "ok".into(),
        node_id: "node-1".into(),
        version: "0.1.0".into(),
        uptime_ms: 1234,
    });
    encode_response(9, Opcode::Health, &health, &limits, &mut out).unwrap();
    assert_eq!(&out[..], &blocks[1][..]);
    out.clear();
    let err = ErrorResponse {
        code: ErrorCode::UnknownOpcode,
        message: "opcode 9".into(),
    };
    encode_error(9, 9, &err, &limits, &mut out).unwrap();
    assert_eq!(&out[..], &blocks[2][..]);
}

/// The error code table in docs/protocol.md lists every code with its number, name and
/// retriability exactly as `ErrorCode` defines them.
#[test]
fn docs_error_table_matches_error_codes() {
    let doc = include_str!("../../../docs/protocol.md");
    let section = doc.split("## Error codes").nth(1).unwrap();
    let rows: Vec<(u16, String, bool)> = section
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let code = cells.get(1)?.parse().ok()?;
            Some((code, cells[2].to_string(), cells[4] == "yes"))
        })
        .collect();
    let expected: Vec<(u16, String, bool)> = ErrorCode::ALL
        .iter()
        .map(|c| (c.as_u16(), c.name().to_string(), c.is_retriable()))
        .collect();
    assert_eq!(rows, expected);
}

// Consumer groups (opcodes 11..=18).

#[test]
fn join_group_request() {
    let req = Request::JoinGroup(JoinGroupRequest {
        destination: "orders".into(),
        group: "g1".into(),
        consumer_id: "c1".into(),
        mode: Some(GroupMode::Ordered),
        session_timeout_ms: 30_000,
    });
    golden_request(
        11,
        req,
        "
        53 51 01 0b 0000 0000 0000000b 00000016  # header: JoinGroup, request, cid 11, 22 bytes
        0006 6f7264657273                        # destination 'orders'
        0002 6731                                # group 'g1'
        0002 6331                                # consumer id 'c1'
        01 01                                    # mode: Some(ordered)
        00007530                                 # session timeout 30000 ms
    ",
    );
    let shared_default = Request::JoinGroup(JoinGroupRequest {
        destination: "q".into(),
        group: "w".into(),
        consumer_id: "c".into(),
        mode: None,
        session_timeout_ms: 0,
    });
    golden_request(
        11,
        shared_default,
        "
        53 51 01 0b 0000 0000 0000000b 0000000e  # header: JoinGroup, request, cid 11, 14 bytes
        0001 71 0001 77 0001 63                  # destination 'q', group 'w', consumer 'c'
        00                                       # mode: None (the group's, or shared)
        00000000                                 # session timeout 0 (node default)
    ",
    );
}

#[test]
fn join_group_response() {
    let resp = Response::JoinGroup(JoinGroupResponse {
        mode: GroupMode::Ordered,
        generation: 3,
        assignment: vec![0, 2],
        heartbeat_interval_ms: 3000,
    });
    golden_response(
        11,
        Opcode::JoinGroup,
        resp,
        "
        53 51 01 0b 0001 0000 0000000b 00000015  # header: JoinGroup, response, cid 11, 21 bytes
        01                                       # mode ordered
        00000003                                 # generation 3
        00000002 00000000 00000002               # assignment: partitions 0 and 2
        00000bb8                                 # heartbeat interval 3000 ms
    ",
    );
}

#[test]
fn heartbeat_request() {
    let req = Request::Heartbeat(HeartbeatRequest {
        destination: "orders".into(),
        group: "g1".into(),
        consumer_id: "c1".into(),
        generation: 3,
    });
    golden_request(
        12,
        req,
        "
        53 51 01 0c 0000 0000 0000000c 00000014  # header: Heartbeat, request, cid 12, 20 bytes
        0006 6f7264657273                        # destination 'orders'
        0002 6731                                # group 'g1'
        0002 6331                                # consumer id 'c1'
        00000003                                 # generation 3
    ",
    );
}

#[test]
fn heartbeat_response() {
    let resp = Response::Heartbeat(HeartbeatResponse {
        generation: 4,
        assignment: vec![0],
        revoked: vec![2],
        rebalancing: true,
    });
    golden_response(
        12,
        Opcode::Heartbeat,
        resp,
        "
        53 51 01 0c 0001 0000 0000000c 00000015  # header: Heartbeat, response, cid 12, 21 bytes
        00000004                                 # generation 4
        00000001 00000000                        # assignment: partition 0
        00000001 00000002                        # revoked: partition 2
        01                                       # rebalancing
    ",
    );
}

#[test]
fn leave_group_request_and_response() {
    let req = Request::LeaveGroup(LeaveGroupRequest {
        destination: "orders".into(),
        group: "g1".into(),
        consumer_id: "c1".into(),
    });
    golden_request(
        13,
        req,
        "
        53 51 01 0d 0000 0000 0000000d 00000010  # header: LeaveGroup, request, cid 13, 16 bytes
        0006 6f7264657273                        # destination 'orders'
        0002 6731                                # group 'g1'
        0002 6331                                # consumer id 'c1'
    ",
    );
    golden_response(
        13,
        Opcode::LeaveGroup,
        Response::LeaveGroup,
        "
        53 51 01 0d 0001 0000 0000000d 00000000  # header: LeaveGroup, response, empty body
    ",
    );
}

#[test]
fn commit_offsets_request_and_response() {
    let req = Request::CommitOffsets(CommitOffsetsRequest {
        destination: "orders".into(),
        group: "g1".into(),
        consumer_id: "c1".into(),
        generation: 4,
        offsets: vec![PartitionOffset {
            partition: 0,
            offset: 42,
        }],
    });
    golden_request(
        14,
        req,
        "
        53 51 01 0e 0000 0000 0000000e 00000024  # header: CommitOffsets, request, cid 14, 36 bytes
        0006 6f7264657273                        # destination 'orders'
        0002 6731                                # group 'g1'
        0002 6331                                # consumer id 'c1'
        00000004                                 # generation 4
        00000001                                 # 1 offset
        00000000 000000000000002a                #   partition 0: next offset 42
    ",
    );
    golden_response(
        14,
        Opcode::CommitOffsets,
        Response::CommitOffsets,
        "
        53 51 01 0e 0001 0000 0000000e 00000000  # header: CommitOffsets, response, empty body
    ",
    );
}

#[test]
fn seek_request() {
    let req = Request::Seek(SeekRequest {
        destination: "orders".into(),
        group: "g1".into(),
        partition: Some(1),
        position: SeekPosition::Timestamp(1_700_000_000_000),
    });
    golden_request(
        15,
        req,
        "
        53 51 01 0f 0000 0000 0000000f 0000001a  # header: Seek, request, cid 15, 26 bytes
        0006 6f7264657273                        # destination 'orders'
        0002 6731                                # group 'g1'
        01 00000001                              # partition: Some(1)
        03 0000018bcfe56800                      # position: timestamp 1700000000000
    ",
    );
    let every_partition = |position| {
        Request::Seek(SeekRequest {
            destination: "q".into(),
            group: "w".into(),
            partition: None,
            position,
        })
    };
    golden_request(
        15,
        every_partition(SeekPosition::Earliest),
        "
        53 51 01 0f 0000 0000 0000000f 00000008  # header: Seek, request, cid 15, 8 bytes
        0001 71 0001 77                          # destination 'q', group 'w'
        00                                       # partition: None (every partition)
        00                                       # position: earliest
    ",
    );
    golden_request(
        15,
        every_partition(SeekPosition::Latest),
        "
        53 51 01 0f 0000 0000 0000000f 00000008  # header: Seek, request, cid 15, 8 bytes
        0001 71 0001 77 00                       # 'q', 'w', every partition
        01                                       # position: latest
    ",
    );
    golden_request(
        15,
        every_partition(SeekPosition::Offset(100)),
        "
        53 51 01 0f 0000 0000 0000000f 00000010  # header: Seek, request, cid 15, 16 bytes
        0001 71 0001 77 00                       # 'q', 'w', every partition
        02 0000000000000064                      # position: offset 100
    ",
    );
}

#[test]
fn seek_response() {
    let resp = Response::Seek(SeekResponse {
        offsets: vec![PartitionOffset {
            partition: 1,
            offset: 17,
        }],
    });
    golden_response(
        15,
        Opcode::Seek,
        resp,
        "
        53 51 01 0f 0001 0000 0000000f 00000010  # header: Seek, response, cid 15, 16 bytes
        00000001                                 # 1 offset
        00000001 0000000000000011                #   partition 1 now at offset 17
    ",
    );
}

#[test]
fn extend_lease_request_and_response() {
    let req = Request::ExtendLease(ExtendLeaseRequest {
        destination: "orders".into(),
        group: "g1".into(),
        consumer_id: "c1".into(),
        ranges: vec![OffsetRange {
            partition: 0,
            start: 5,
            end: 7,
        }],
        extend_ms: 30_000,
    });
    golden_request(
        16,
        req,
        "
        53 51 01 10 0000 0000 00000010 0000002c  # header: ExtendLease, request, cid 16, 44 bytes
        0006 6f7264657273                        # destination 'orders'
        0002 6731                                # group 'g1'
        0002 6331                                # consumer id 'c1'
        00000001                                 # 1 range
        00000000                                 #   partition 0
        0000000000000005                         #   start 5
        0000000000000007                         #   end 7 (exclusive)
        00007530                                 # extend by 30000 ms
    ",
    );
    golden_response(
        16,
        Opcode::ExtendLease,
        Response::ExtendLease(AckResponse { count: 2 }),
        "
        53 51 01 10 0001 0000 00000010 00000008  # header: ExtendLease, response, cid 16, 8 bytes
        0000000000000002                         # 2 leases extended
    ",
    );
}

#[test]
fn list_groups_request_and_response() {
    golden_request(
        17,
        Request::ListGroups,
        "
        53 51 01 11 0000 0000 00000011 00000000  # header: ListGroups, request, empty body
    ",
    );
    let resp = Response::ListGroups(vec![GroupSummary {
        group: "g1".into(),
        destination: "orders".into(),
        mode: GroupMode::Ordered,
        members: 2,
    }]);
    golden_response(
        17,
        Opcode::ListGroups,
        resp,
        "
        53 51 01 11 0001 0000 00000011 00000015  # header: ListGroups, response, cid 17, 21 bytes
        00000001                                 # 1 group
        0002 6731                                #   group 'g1'
        0006 6f7264657273                        #   destination 'orders'
        01                                       #   mode ordered
        00000002                                 #   2 members
    ",
    );
}

#[test]
fn describe_group_request() {
    let req = Request::DescribeGroup(DescribeGroupRequest {
        destination: "orders".into(),
        group: "g1".into(),
    });
    golden_request(
        18,
        req,
        "
        53 51 01 12 0000 0000 00000012 0000000c  # header: DescribeGroup, request, cid 18, 12 bytes
        0006 6f7264657273                        # destination 'orders'
        0002 6731                                # group 'g1'
    ",
    );
}

#[test]
fn describe_group_response() {
    let resp = Response::DescribeGroup(GroupDescription {
        group: "g1".into(),
        destination: "orders".into(),
        mode: GroupMode::Ordered,
        generation: 4,
        members: vec![MemberInfo {
            consumer_id: "c1".into(),
            partitions: vec![0],
            last_seen_ms: 1_700_000_000_000,
        }],
        partitions: vec![GroupPartitionInfo {
            partition: 0,
            owner: Some("c1".into()),
            committed: 40,
            end_offset: 42,
            lag: 2,
            in_flight: 1,
            pending: 1,
            delayed: 0,
        }],
        dlq_moved: 3,
        expired: 1,
    });
    golden_response(
        18,
        Opcode::DescribeGroup,
        resp,
        "
        53 51 01 12 0001 0000 00000012 00000076  # header: DescribeGroup, response, cid 18, 118 bytes
        0002 6731                                # group 'g1'
        0006 6f7264657273                        # destination 'orders'
        01                                       # mode ordered
        00000004                                 # generation 4
        00000001                                 # 1 member
        0002 6331                                #   consumer id 'c1'
        00000001 00000000                        #   owns partition 0
        0000018bcfe56800                         #   last seen 1700000000000
        00000001                                 # 1 partition
        00000000                                 #   partition 0
        01 0002 6331                             #   owner: Some('c1')
        0000000000000028                         #   committed 40
        000000000000002a                         #   end offset 42
        0000000000000002                         #   lag 2
        0000000000000001                         #   in flight 1
        0000000000000001                         #   pending 1
        0000000000000000                         #   delayed 0
        0000000000000003                         # dlq moved 3
        0000000000000001                         # expired 1
    ",
    );
}

// Authentication (opcode 19).

#[test]
fn authenticate_request_and_response() {
    let req = Request::Authenticate(AuthenticateRequest {
        api_key: "smq_0123456789ab_c2VjcmV0".into(),
    });
    golden_request(
        19,
        req,
        "
        53 51 01 13 0000 0000 00000013 0000001b  # header: Authenticate, request, cid 19, 27 bytes
        0019                                     # api key: 25 bytes
        736d715f 30313233 34353637 38396162      #   'smq_0123456789ab'
        5f 6332566a636d5630                      #   '_c2VjcmV0'
    ",
    );
    golden_response(
        19,
        Opcode::Authenticate,
        Response::Authenticate(AuthenticateResponse {
            principal: "orders-svc".into(),
        }),
        "
        53 51 01 13 0001 0000 00000013 0000000c  # header: Authenticate, response, cid 19, 12 bytes
        000a 6f72646572732d737663                # principal 'orders-svc'
    ",
    );
    let refused = Response::Error(ErrorResponse {
        code: ErrorCode::Unauthenticated,
        message: "invalid API key".into(),
    });
    golden_response(
        19,
        Opcode::Authenticate,
        refused,
        "
        53 51 01 13 0003 0000 00000013 00000013  # header: Authenticate, RESPONSE|ERROR, 19 bytes
        000e                                     # code 14 UNAUTHENTICATED
        000f 696e76616c696420415049206b6579      # 'invalid API key'
    ",
    );
}

#[test]
fn keys_status_request_and_response() {
    golden_request(
        20,
        Request::KeysStatus,
        "
        53 51 01 14 0000 0000 00000014 00000000  # header: KeysStatus, request, cid 20, empty body
    ",
    );
    let resp = Response::KeysStatus(KeysStatusResponse {
        active_id: 2,
        keys: vec![
            KeyInfo {
                id: 1,
                fingerprint: "ab12".into(),
                bytes: 4096,
                batches: 3,
                retired: false,
            },
            KeyInfo {
                id: 3,
                fingerprint: String::new(),
                bytes: 0,
                batches: 0,
                retired: true,
            },
        ],
    });
    golden_response(
        20,
        Opcode::KeysStatus,
        resp,
        "
        53 51 01 14 0001 0000 00000014 0000003a  # header: KeysStatus, response, cid 20, 58 bytes
        00000002                                 # active key id 2
        00000002                                 # 2 keys
        00000001                                 #   id 1
        0004 61623132                            #   fingerprint 'ab12'
        0000000000001000                         #   4096 bytes
        0000000000000003                         #   3 batches
        00                                       #   not retired
        00000003                                 #   id 3
        0000                                     #   fingerprint ''
        0000000000000000                         #   0 bytes
        0000000000000000                         #   0 batches
        01                                       #   retired
    ",
    );
}

#[test]
fn keys_rotate_request_and_response() {
    golden_request(
        21,
        Request::KeysRotate,
        "
        53 51 01 15 0000 0000 00000015 00000000  # header: KeysRotate, request, cid 21, empty body
    ",
    );
    golden_response(
        21,
        Opcode::KeysRotate,
        Response::KeysRotate(KeysRotateResponse { new_id: 3 }),
        "
        53 51 01 15 0001 0000 00000015 00000004  # header: KeysRotate, response, cid 21, 4 bytes
        00000003                                 # new key id 3
    ",
    );
}

#[test]
fn keys_retire_request_and_response() {
    golden_request(
        22,
        Request::KeysRetire { id: 2 },
        "
        53 51 01 16 0000 0000 00000016 00000004  # header: KeysRetire, request, cid 22, 4 bytes
        00000002                                 # key id 2
    ",
    );
    golden_response(
        22,
        Opcode::KeysRetire,
        Response::KeysRetire,
        "
        53 51 01 16 0001 0000 00000016 00000000  # header: KeysRetire, response, cid 22, empty body
    ",
    );
}

#[test]
fn cluster_status_request_and_response() {
    golden_request(
        23,
        Request::ClusterStatus,
        "
        53 51 01 17 0000 0000 00000017 00000000  # header: ClusterStatus, request, cid 23, empty body
    ",
    );
    golden_response(
        23,
        Opcode::ClusterStatus,
        Response::ClusterStatus {
            json: r#"{"term":0}"#.into(),
        },
        "
        53 51 01 17 0001 0000 00000017 0000000e  # header: ClusterStatus, response, cid 23, 14 bytes
        0000000a                                 # JSON, 10 bytes (u32 length: may pass max_text_bytes)
        7b227465726d223a307d                     # '{\"term\":0}'
    ",
    );
}
