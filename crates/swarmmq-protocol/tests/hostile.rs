//! Hostile input against the codec: the stable-toolchain twin of the `fuzz/` targets
//! `frame_decoder`, `request` and `response` (see `docs/security/hostile.md`).
//!
//! Rules (docs/protocol.md): framing does not depend on how the stream is cut into
//! reads; a framer error is fatal, is one of the header errors, and leaves the buffer as
//! it was; an oversized length prefix is refused from the 16 header bytes alone,
//! without allocating; every strict prefix of a valid body is refused as truncated;
//! body errors are never fatal and never INTERNAL; whatever decodes re-encodes to the
//! same value under the same limits; decoding allocates at most 13x the frame plus
//! 64 KiB (`tests/alloc_bound.rs`).
//!
//! Cases per property: 256 by default; `SWARMMQ_FUZZ_CASES=200000` for a long run.

mod common;
#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use bytes::{Bytes, BytesMut};
use counting_alloc::allocated_by;
use proptest::prelude::*;
use swarmmq_protocol::*;
use swarmmq_types::{ErrorCode, Limits};

/// `default_cases`, or `SWARMMQ_FUZZ_CASES` when set.
fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("SWARMMQ_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Limits small enough that every count and length limit is reachable by short input.
const TIGHT: Limits = Limits {
    max_frame_bytes: 4096,
    max_message_bytes: 64,
    max_batch_messages: 4,
    max_pull_messages: 4,
    max_headers: 2,
    max_header_name_bytes: 8,
    max_header_bytes: 32,
    max_key_bytes: 8,
    max_text_bytes: 16,
    max_ack_ranges: 4,
    max_partitions: 4,
    max_destinations: 4,
    max_groups: 4,
    ..Limits::DEFAULT
};

fn limits(tight: bool) -> Limits {
    if tight { TIGHT } else { Limits::DEFAULT }
}

/// How a stream ended: bytes left over, or the fatal error that stopped it.
#[derive(Debug, PartialEq)]
enum End {
    Leftover(usize),
    Failed(ProtocolError),
}

fn frame_all(dec: &mut FrameDecoder, buf: &mut BytesMut, out: &mut Vec<Frame>) -> Option<End> {
    loop {
        let before = buf.clone();
        match dec.decode(buf) {
            Ok(Some(f)) => out.push(f),
            Ok(None) => {
                assert_eq!(*buf, before, "an incomplete frame consumed bytes");
                return None;
            }
            Err(e) => {
                assert!(e.is_fatal(), "framer error {e:?} is not fatal");
                assert!(
                    matches!(
                        e.code(),
                        ErrorCode::MalformedFrame
                            | ErrorCode::UnsupportedVersion
                            | ErrorCode::FrameTooLarge
                    ),
                    "framer error {e:?} maps to {}",
                    e.code()
                );
                assert_eq!(*buf, before, "a framer error changed the buffer");
                return Some(End::Failed(e));
            }
        }
    }
}

/// Frames `stream` whole and in reads of the given sizes (cycled); both must agree.
fn frame_both_ways(stream: &[u8], reads: &[usize], limits: &Limits) -> Vec<Frame> {
    let mut whole = Vec::new();
    let mut buf = BytesMut::from(stream);
    let end = frame_all(&mut FrameDecoder::new(limits), &mut buf, &mut whole)
        .unwrap_or(End::Leftover(buf.len()));

    let mut pieces = Vec::new();
    let mut dec = FrameDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut rest = stream;
    let mut sizes = reads.iter().copied().cycle();
    let mut end_pieces = None;
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(1).clamp(1, rest.len());
        let (read, tail) = rest.split_at(n);
        rest = tail;
        buf.extend_from_slice(read);
        if let Some(e) = frame_all(&mut dec, &mut buf, &mut pieces) {
            end_pieces = Some(e);
            break;
        }
    }
    assert_eq!(whole, pieces, "frames depend on the read sizes");
    assert_eq!(end, end_pieces.unwrap_or(End::Leftover(buf.len())));
    whole
}

fn check_body_error(e: &ProtocolError) {
    assert!(!e.is_fatal(), "body error {e:?} is fatal");
    assert!(
        matches!(
            e.code(),
            ErrorCode::MalformedFrame
                | ErrorCode::UnknownOpcode
                | ErrorCode::InvalidRequest
                | ErrorCode::MessageTooLarge
        ),
        "body error {e:?} maps to {}",
        e.code()
    );
}

fn one_frame(mut buf: BytesMut, limits: &Limits) -> Frame {
    let f = FrameDecoder::new(limits).decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty());
    f
}

/// Both body decoders over one frame, with every rule of the module header.
fn check_frame(h: &FrameHeader, body: Bytes, limits: &Limits) {
    let bound = (HEADER_LEN + body.len()) * 13 + 64 * 1024;
    let (bytes, req) = allocated_by(|| decode_request(h, body.clone(), limits));
    assert!(
        bytes <= bound,
        "request decode allocated {bytes} (bound {bound})"
    );
    match req {
        Ok(req) => {
            let mut out = BytesMut::new();
            encode_request(h.correlation_id, &req, limits, &mut out)
                .expect("a decoded request re-encodes");
            let again = one_frame(out, limits);
            assert_eq!(
                decode_request(&again.header, again.body, limits).unwrap(),
                req
            );
        }
        Err(e) => check_body_error(&e),
    }
    let (bytes, resp) = allocated_by(|| decode_response(h, body.clone(), limits));
    assert!(
        bytes <= bound,
        "response decode allocated {bytes} (bound {bound})"
    );
    match resp {
        Ok(resp) => {
            let mut out = BytesMut::new();
            match (&resp, h.known_opcode()) {
                (Response::Error(e), _) => {
                    encode_error(h.correlation_id, h.opcode, e, limits, &mut out)
                }
                (_, Some(op)) => encode_response(h.correlation_id, op, &resp, limits, &mut out),
                (_, None) => panic!("a non-error response under unknown opcode {}", h.opcode),
            }
            .expect("a decoded response re-encodes");
            let again = one_frame(out, limits);
            assert_eq!(
                decode_response(&again.header, again.body, limits).unwrap(),
                resp
            );
        }
        Err(e) => check_body_error(&e),
    }
}

fn encoded_request(req: &Request) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_request(7, req, &Limits::DEFAULT, &mut out).unwrap();
    out.to_vec()
}

fn encoded_response(op: Opcode, resp: &Response) -> Vec<u8> {
    let mut out = BytesMut::new();
    match resp {
        Response::Error(e) => encode_error(7, op.as_u8(), e, &Limits::DEFAULT, &mut out),
        _ => encode_response(7, op, resp, &Limits::DEFAULT, &mut out),
    }
    .unwrap();
    out.to_vec()
}

/// One change to a byte string: the kinds of damage that hit lengths and tags.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    FlipBit(usize, u8),
    SetU32(usize, u32),
    SetU16(usize, u16),
    SetU8(usize, u8),
    Insert(usize, u8),
    Remove(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let big = prop_oneof![
        Just(u32::MAX),
        Just(0x8000_0000),
        Just(0x00ff_ffff),
        Just(4096),
        Just(0),
        Just(1),
        any::<u32>()
    ];
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<usize>(), big).prop_map(|(i, v)| Mutation::SetU32(i, v)),
        (any::<usize>(), any::<u16>()).prop_map(|(i, v)| Mutation::SetU16(i, v)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::SetU8(i, v)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Insert(i, v)),
        any::<usize>().prop_map(Mutation::Remove),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let at = |i: usize, len: usize| i % len.max(1);
    let put = |bytes: &mut Vec<u8>, i: usize, v: &[u8]| {
        let start = at(i, bytes.len());
        for (k, b) in v.iter().enumerate() {
            if let Some(slot) = bytes.get_mut(start + k) {
                *slot = *b;
            }
        }
    };
    match *m {
        Mutation::Truncate(i) => bytes.truncate(at(i, bytes.len())),
        Mutation::FlipBit(i, bit) => {
            let i = at(i, bytes.len());
            if let Some(b) = bytes.get_mut(i) {
                *b ^= 1 << bit;
            }
        }
        Mutation::SetU32(i, v) => put(bytes, i, &v.to_be_bytes()),
        Mutation::SetU16(i, v) => put(bytes, i, &v.to_be_bytes()),
        Mutation::SetU8(i, v) => put(bytes, i, &[v]),
        Mutation::Insert(i, v) => {
            let i = at(i, bytes.len() + 1);
            bytes.insert(i, v);
        }
        Mutation::Remove(i) => {
            if !bytes.is_empty() {
                let i = at(i, bytes.len());
                bytes.remove(i);
            }
        }
    }
}

/// A stream: random bytes, or valid frames (requests and responses) with one
/// mutation, sometimes followed by an oversized header.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let frames = (
        prop::collection::vec(common::request(), 0..4),
        prop::collection::vec(common::response_with_opcode(), 0..3),
        prop::option::of(mutation()),
        prop::option::of(any::<u32>()),
    )
        .prop_map(|(reqs, resps, m, oversized)| {
            let mut bytes = Vec::new();
            for r in &reqs {
                bytes.extend(encoded_request(r));
            }
            for (op, r) in &resps {
                bytes.extend(encoded_response(*op, r));
            }
            if let Some(m) = m {
                apply(&mut bytes, &m);
            }
            if let Some(len) = oversized {
                let h = FrameHeader {
                    version: VERSION,
                    opcode: 1,
                    flags: Flags::NONE,
                    correlation_id: 1,
                    body_len: len | 0x0100_0000,
                };
                bytes.extend_from_slice(&h.to_bytes());
            }
            bytes
        });
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..1024),
        3 => frames,
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn framing_does_not_depend_on_read_sizes(
        bytes in stream(),
        reads in prop::collection::vec(1usize..80, 1..16),
        tight: bool,
    ) {
        let limits = limits(tight);
        for f in frame_both_ways(&bytes, &reads, &limits) {
            check_frame(&f.header, f.body, &limits);
        }
    }

    #[test]
    fn a_valid_request_with_one_mutation_follows_the_rules(
        req in common::request(),
        m in mutation(),
        tight: bool,
    ) {
        let mut bytes = encoded_request(&req);
        apply(&mut bytes, &m);
        let limits = limits(tight);
        for f in frame_both_ways(&bytes, &[1, 7, 64], &limits) {
            check_frame(&f.header, f.body, &limits);
        }
    }

    #[test]
    fn a_valid_response_with_one_mutation_follows_the_rules(
        (op, resp) in common::response_with_opcode(),
        m in mutation(),
        tight: bool,
    ) {
        let mut bytes = encoded_response(op, &resp);
        apply(&mut bytes, &m);
        let limits = limits(tight);
        for f in frame_both_ways(&bytes, &[3, 16, 100], &limits) {
            check_frame(&f.header, f.body, &limits);
        }
    }

    /// Any opcode byte (known or not) and any flags in front of random bytes.
    #[test]
    fn random_bodies_under_every_opcode_follow_the_rules(
        opcode: u8,
        flags in 0u16..4,
        body in prop::collection::vec(any::<u8>(), 0..300),
        tight: bool,
    ) {
        let h = FrameHeader { version: VERSION, opcode, flags: Flags(flags), correlation_id: 3, body_len: body.len() as u32 };
        check_frame(&h, Bytes::from(body), &limits(tight));
    }

    /// Every strict prefix of a valid frame waits for more bytes; every strict prefix
    /// of a valid body, announced as the whole body, is refused as truncated.
    #[test]
    fn truncations_at_every_length_are_incomplete_or_truncated(
        req in common::request(),
        (op, resp) in common::response_with_opcode(),
    ) {
        for frame in [encoded_request(&req), encoded_response(op, &resp)] {
            let full = one_frame(BytesMut::from(&frame[..]), &Limits::DEFAULT);
            for n in 0..frame.len() {
                let mut buf = BytesMut::from(&frame[..n]);
                prop_assert_eq!(FrameDecoder::new(&Limits::DEFAULT).decode(&mut buf), Ok(None));
                prop_assert_eq!(buf.len(), n);
            }
            for k in 0..full.body.len() {
                let h = FrameHeader { body_len: k as u32, ..full.header };
                let body = full.body.slice(..k);
                let errs = if h.flags.is_response() {
                    decode_response(&h, body, &Limits::DEFAULT).err()
                } else {
                    decode_request(&h, body, &Limits::DEFAULT).err()
                };
                prop_assert!(
                    matches!(errs, Some(ProtocolError::Truncated { .. })),
                    "prefix of {} of {} body bytes: {:?}", k, full.body.len(), errs
                );
            }
        }
    }

    /// A length prefix past the frame limit (a 4 GiB claim, or one byte too many) is
    /// refused from the header alone, before any body byte, allocating nothing.
    #[test]
    fn oversized_length_prefixes_are_fatal_and_allocate_nothing(
        over in prop_oneof![Just(1u32), Just(2), 1u32..1 << 20, Just(u32::MAX)],
        tight: bool,
        opcode: u8,
    ) {
        let limits = limits(tight);
        let max_body = limits.max_frame_bytes - HEADER_LEN as u32;
        let body_len = max_body.saturating_add(over);
        let h = FrameHeader { version: VERSION, opcode, flags: Flags::NONE, correlation_id: 1, body_len };
        let mut buf = BytesMut::from(&h.to_bytes()[..]);
        let (bytes, res) = allocated_by(|| FrameDecoder::new(&limits).decode(&mut buf));
        let err = res.unwrap_err();
        prop_assert!(matches!(err, ProtocolError::FrameTooLarge { .. }), "{:?}", err);
        prop_assert!(err.is_fatal());
        prop_assert_eq!(err.code(), ErrorCode::FrameTooLarge);
        prop_assert_eq!(bytes, 0);
        prop_assert_eq!(buf.len(), HEADER_LEN);
        // Exactly at the limit is a valid frame still on its way, and costs nothing.
        let h = FrameHeader { body_len: max_body, ..h };
        let mut buf = BytesMut::from(&h.to_bytes()[..]);
        let (bytes, res) = allocated_by(|| FrameDecoder::new(&limits).decode(&mut buf));
        prop_assert_eq!(res, Ok(None));
        prop_assert_eq!(bytes, 0);
    }
}

/// The node's own fatal errors come from the 16 header bytes, whatever follows.
#[test]
fn bad_magic_version_flags_and_reserved_bytes_are_fatal_header_errors() {
    let good = FrameHeader {
        version: VERSION,
        opcode: 9,
        flags: Flags::NONE,
        correlation_id: 1,
        body_len: 0,
    }
    .to_bytes();
    let cases: [(usize, u8, ErrorCode); 5] = [
        (0, b'X', ErrorCode::MalformedFrame),
        (2, 2, ErrorCode::UnsupportedVersion),
        (2, 0, ErrorCode::UnsupportedVersion),
        (4, 0x80, ErrorCode::MalformedFrame),
        (7, 1, ErrorCode::MalformedFrame),
    ];
    for (at, value, code) in cases {
        let mut bytes = good.to_vec();
        bytes[at] = value;
        bytes.extend_from_slice(b"anything at all after the header");
        let mut buf = BytesMut::from(&bytes[..]);
        let err = FrameDecoder::new(&Limits::DEFAULT)
            .decode(&mut buf)
            .unwrap_err();
        assert!(err.is_fatal(), "{err:?}");
        assert_eq!(err.code(), code, "{err:?}");
        assert_eq!(buf.len(), bytes.len());
    }
}
