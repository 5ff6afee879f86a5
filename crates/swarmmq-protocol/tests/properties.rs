//! Property tests: every value survives encode/decode unchanged, header included, and
//! no input bytes (random or mutated valid frames) make the decoders panic. Whatever the
//! decoders accept, the encoders accept too.

mod common;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use swarmmq_protocol::*;
use swarmmq_types::Limits;

const L: Limits = Limits::DEFAULT;

fn one_frame(mut buf: BytesMut) -> Frame {
    let frame = FrameDecoder::new(&L).decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty(), "exactly one frame");
    frame
}

/// Runs every decoder over `bytes`. When a decoder accepts a frame, the value must
/// re-encode, and the re-encoding must decode to the same value.
fn decode_everything(bytes: &[u8]) {
    let mut buf = BytesMut::from(bytes);
    let mut dec = FrameDecoder::new(&L);
    while let Ok(Some(frame)) = dec.decode(&mut buf) {
        let h = frame.header;
        if let Ok(req) = decode_request(&h, frame.body.clone(), &L) {
            let mut out = BytesMut::new();
            encode_request(h.correlation_id, &req, &L, &mut out)
                .expect("decoded request re-encodes");
            let again = one_frame(out);
            assert_eq!(decode_request(&again.header, again.body, &L).unwrap(), req);
        }
        if let Ok(resp) = decode_response(&h, frame.body.clone(), &L) {
            let mut out = BytesMut::new();
            match (&resp, h.known_opcode()) {
                (Response::Error(e), _) => {
                    encode_error(h.correlation_id, h.opcode, e, &L, &mut out)
                }
                (_, Some(op)) => encode_response(h.correlation_id, op, &resp, &L, &mut out),
                (_, None) => panic!("a non-error response decoded under an unknown opcode"),
            }
            .expect("decoded response re-encodes");
            let again = one_frame(out);
            assert_eq!(
                decode_response(&again.header, again.body, &L).unwrap(),
                resp
            );
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    FlipBit(usize, u8),
    /// Overwrite four bytes with a big-endian value: hits length and count fields.
    SetU32(usize, u32),
    SetU16(usize, u16),
    SetU8(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let big = prop_oneof![
        Just(u32::MAX),
        Just(0x8000_0000),
        Just(0x0001_0000),
        Just(100_000),
        Just(0),
        any::<u32>()
    ];
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<usize>(), big).prop_map(|(i, v)| Mutation::SetU32(i, v)),
        (any::<usize>(), any::<u16>()).prop_map(|(i, v)| Mutation::SetU16(i, v)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::SetU8(i, v)),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutations: &[Mutation]) {
    fn put(bytes: &mut [u8], i: usize, v: &[u8]) {
        let at = i % bytes.len().max(1);
        for (k, b) in v.iter().enumerate() {
            if let Some(slot) = bytes.get_mut(at + k) {
                *slot = *b;
            }
        }
    }
    for m in mutations {
        match *m {
            Mutation::Truncate(i) => bytes.truncate(i % bytes.len().max(1)),
            Mutation::FlipBit(i, bit) => {
                let at = i % bytes.len().max(1);
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= 1 << bit;
                }
            }
            Mutation::SetU32(i, v) => put(bytes, i, &v.to_be_bytes()),
            Mutation::SetU16(i, v) => put(bytes, i, &v.to_be_bytes()),
            Mutation::SetU8(i, v) => put(bytes, i, &[v]),
        }
    }
}

proptest! {
    // proptest's default of 256 cases keeps CI fast; PROPTEST_CASES=20000 digs deeper.

    #[test]
    fn requests_round_trip(cid: u32, req in common::request()) {
        let mut out = BytesMut::new();
        encode_request(cid, &req, &L, &mut out).unwrap();
        let frame = one_frame(out);
        prop_assert_eq!(frame.header.version, VERSION);
        prop_assert_eq!(frame.header.opcode, req.opcode().as_u8());
        prop_assert_eq!(frame.header.flags, Flags::NONE);
        prop_assert_eq!(frame.header.correlation_id, cid);
        prop_assert_eq!(frame.header.body_len as usize, frame.body.len());
        prop_assert_eq!(decode_request(&frame.header, frame.body, &L).unwrap(), req);
    }

    #[test]
    fn responses_round_trip(cid: u32, (opcode, resp) in common::response_with_opcode()) {
        let mut out = BytesMut::new();
        encode_response(cid, opcode, &resp, &L, &mut out).unwrap();
        let frame = one_frame(out);
        prop_assert_eq!(frame.header.opcode, opcode.as_u8());
        prop_assert_eq!(frame.header.correlation_id, cid);
        prop_assert!(frame.header.flags.is_response());
        prop_assert_eq!(frame.header.flags.is_error(), matches!(resp, Response::Error(_)));
        prop_assert_eq!(decode_response(&frame.header, frame.body, &L).unwrap(), resp);
    }

    /// Pipelined frames in one buffer come apart in order, whatever the read sizes.
    #[test]
    fn pipelined_frames_split_at_any_read_size(
        reqs in proptest::collection::vec(common::request(), 1..6),
        chunk in 1usize..64,
    ) {
        let mut wire = BytesMut::new();
        for (i, r) in reqs.iter().enumerate() {
            encode_request(i as u32, r, &L, &mut wire).unwrap();
        }
        let mut dec = FrameDecoder::new(&L);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push((f.header.correlation_id, decode_request(&f.header, f.body, &L).unwrap()));
            }
        }
        let want: Vec<_> = reqs.into_iter().enumerate().map(|(i, r)| (i as u32, r)).collect();
        prop_assert_eq!(got, want);
    }

    /// The incremental pull encoder writes exactly what `encode_response` writes, and
    /// `encoded_len` predicts every message's size exactly.
    #[test]
    fn pull_encoder_matches_encode_response(
        cid: u32,
        messages in proptest::collection::vec(common::delivered_message(), 0..6),
    ) {
        let mut expected = BytesMut::new();
        let resp = Response::Pull(PullResponse { messages: messages.clone() });
        encode_response(cid, Opcode::Pull, &resp, &L, &mut expected).unwrap();

        let mut out = BytesMut::from(&b"prefix"[..]);
        let mut predicted = (HEADER_LEN + 4) as u64;
        let mut enc = PullResponseEncoder::begin(&mut out, cid, &L);
        for m in &messages {
            let headers: Vec<HeaderRef<'_>> = m.headers.iter().map(HeaderRef::from).collect();
            let r = DeliveredMessageRef {
                partition: m.partition,
                offset: m.offset,
                timestamp_ms: m.timestamp_ms,
                priority: m.priority,
                delivery_attempt: m.delivery_attempt,
                id: m.id.as_ref(),
                key: m.key.as_deref(),
                headers: &headers,
                payload: &m.payload,
            };
            predicted += r.encoded_len();
            enc.push(&r).unwrap();
        }
        prop_assert_eq!(enc.len() as usize, messages.len());
        enc.finish().unwrap();
        prop_assert_eq!(&out[..6], b"prefix");
        prop_assert_eq!(&out[6..], &expected[..]);
        prop_assert_eq!(predicted, expected.len() as u64);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    /// A valid header in front of random bytes reaches every body decoder.
    #[test]
    fn random_bodies_never_panic(
        opcode in 0u8..=24,
        flags in 0u16..4,
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let header = FrameHeader { version: VERSION, opcode, flags: Flags(flags), correlation_id: 1, body_len: body.len() as u32 };
        let mut bytes = header.to_bytes().to_vec();
        bytes.extend_from_slice(&body);
        decode_everything(&bytes);
        // Bodies that disagree with the header's length are refused, not misread.
        let short = Bytes::copy_from_slice(body.get(1..).unwrap_or_default());
        if !body.is_empty() {
            prop_assert!(decode_request(&header, short.clone(), &L).is_err());
            prop_assert!(decode_response(&header, short, &L).is_err());
        }
    }

    #[test]
    fn mutated_requests_never_panic(
        req in common::request(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut out = BytesMut::new();
        encode_request(9, &req, &L, &mut out).unwrap();
        let mut bytes = out.to_vec();
        apply(&mut bytes, &mutations);
        decode_everything(&bytes);
    }

    #[test]
    fn mutated_responses_never_panic(
        (opcode, resp) in common::response_with_opcode(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut out = BytesMut::new();
        encode_response(9, opcode, &resp, &L, &mut out).unwrap();
        let mut bytes = out.to_vec();
        apply(&mut bytes, &mutations);
        decode_everything(&bytes);
    }
}
