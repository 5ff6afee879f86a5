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
    });
    golden_request(
        2,
        req,
        "
        53 51 01 02 00 00 00 00 00 00 00 02 00 00 00 1e
        00 06 6f 72 64 65 72 73 00 02 67 31 00 02 63 31
        00 00 00 0a 00 01 00 00 00 00 01 f4 00 01
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
    });
    golden_request(
        3,
        req,
        "
        53 51 01 03 00 00 00 00 00 00 00 03 00 00 00 28
        00 06 6f 72 64 65 72 73 00 02 67 31 00 02 63 31
        00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 05
        00 00 00 00 00 00 00 07
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
    });
    golden_request(
        4,
        req,
        "
        53 51 01 04 00 00 00 00 00 00 00 04 00 00 00 2c
        00 06 6f 72 64 65 72 73 00 02 67 31 00 02 63 31
        00 00 00 01 00 00 00 01 00 00 00 00 00 00 00 00
        00 00 00 00 00 00 00 01 00 00 03 e8
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
