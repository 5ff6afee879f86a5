//! The wire codec: the framer over a byte stream cut into arbitrary reads, and the
//! request and response body decoders.
//!
//! Rules checked (docs/protocol.md): framing does not depend on how the stream is cut;
//! a framer error is always fatal and leaves the buffer as it was; a body error is never
//! fatal and never INTERNAL; whatever decodes re-encodes (the encoder refuses exactly
//! what the decoder refuses, under the same limits) and decodes to the same value; and
//! decoding allocates at most the documented 13x of the frame plus 64 KiB.

use bytes::{Bytes, BytesMut};
use swarmmq_protocol::{
    Flags, Frame, FrameDecoder, FrameHeader, HEADER_LEN, ProtocolError, Response, VERSION,
    decode_request, decode_response, encode_error, encode_request, encode_response,
};
use swarmmq_types::{ErrorCode, Limits};

use crate::alloc::allocated_by;

/// Limits small enough that every count and length limit is reachable by a short
/// input, with the frame limit low enough that oversized prefixes are cheap to hit.
pub fn tight() -> Limits {
    Limits {
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
    }
}

/// The default limits or the tight ones, by the low bit of a selector byte.
pub fn limits_for(selector: u8) -> Limits {
    if selector & 1 == 0 {
        Limits::DEFAULT
    } else {
        tight()
    }
}

/// A small deterministic generator for read sizes (xorshift).
struct Cuts(u32);

impl Cuts {
    fn next(&mut self, max: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        1 + (self.0 as usize % max.max(1))
    }
}

/// How a stream ended: the bytes left over, or the fatal error that stopped it.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Leftover(usize),
    Failed(ProtocolError),
}

fn frame_all(dec: &mut FrameDecoder, buf: &mut BytesMut, out: &mut Vec<Frame>) -> Option<End> {
    loop {
        let before = buf.clone();
        match dec.decode(buf) {
            Ok(Some(frame)) => out.push(frame),
            Ok(None) => {
                assert_eq!(*buf, before, "an incomplete frame must not consume bytes");
                return None;
            }
            Err(e) => {
                assert!(e.is_fatal(), "framer error {e:?} is not fatal");
                assert_eq!(
                    *buf, before,
                    "a framer error must leave the buffer as it was"
                );
                return Some(End::Failed(e));
            }
        }
    }
}

/// `data[0]`: limits selector; `data[1..3]`: seed of the read sizes; the rest: the
/// stream. The stream is framed in one piece and in random reads; both must agree, and
/// every frame goes through both body decoders.
pub fn check_stream(data: &[u8]) {
    let (Some(&sel), Some(seed)) = (data.first(), data.get(1..3)) else {
        return;
    };
    let limits = limits_for(sel);
    let stream = data.get(3..).unwrap_or_default();

    let mut whole = Vec::new();
    let mut buf = BytesMut::from(stream);
    let end_whole = frame_all(&mut FrameDecoder::new(&limits), &mut buf, &mut whole)
        .unwrap_or(End::Leftover(buf.len()));

    let mut cuts = Cuts(u32::from(u16::from_le_bytes([seed[0], seed[1]])) | 1 << 16);
    let max_read = 1 + (sel as usize >> 1);
    let mut dec = FrameDecoder::new(&limits);
    let mut buf = BytesMut::new();
    let mut pieces = Vec::new();
    let mut rest = stream;
    let mut end_pieces = None;
    while !rest.is_empty() {
        let n = cuts.next(max_read).min(rest.len());
        let (read, tail) = rest.split_at(n);
        rest = tail;
        buf.extend_from_slice(read);
        if let Some(end) = frame_all(&mut dec, &mut buf, &mut pieces) {
            end_pieces = Some(end);
            break;
        }
    }
    let end_pieces = end_pieces.unwrap_or(End::Leftover(buf.len()));
    assert_eq!(whole, pieces, "frames depend on how the stream was cut");
    assert_eq!(
        end_whole, end_pieces,
        "the end depends on how the stream was cut"
    );

    for frame in whole {
        check_frame(&frame.header, frame.body, &limits);
    }
}

/// `data[0]`: opcode; `data[1]`: limits selector; the rest: a request body.
pub fn check_request_input(data: &[u8]) {
    let (Some(&opcode), Some(&sel)) = (data.first(), data.get(1)) else {
        return;
    };
    let body = data.get(2..).unwrap_or_default();
    check_frame(
        &header(opcode, Flags::NONE, body),
        Bytes::copy_from_slice(body),
        &limits_for(sel),
    );
}

/// `data[0]`: opcode; `data[1]`: bit 0 limits selector, bits 1-2 the flags
/// (RESPONSE, ERROR); the rest: a response body.
pub fn check_response_input(data: &[u8]) {
    let (Some(&opcode), Some(&sel)) = (data.first(), data.get(1)) else {
        return;
    };
    let flags = Flags(u16::from(sel >> 1) & Flags::KNOWN.bits());
    let body = data.get(2..).unwrap_or_default();
    check_frame(
        &header(opcode, flags, body),
        Bytes::copy_from_slice(body),
        &limits_for(sel),
    );
}

fn header(opcode: u8, flags: Flags, body: &[u8]) -> FrameHeader {
    FrameHeader {
        version: VERSION,
        opcode,
        flags,
        correlation_id: 7,
        body_len: u32::try_from(body.len()).unwrap_or(u32::MAX),
    }
}

fn check_body_error(e: &ProtocolError) {
    assert!(!e.is_fatal(), "body error {e:?} is fatal");
    assert_ne!(
        e.code(),
        ErrorCode::Internal,
        "body error {e:?} maps to INTERNAL"
    );
    assert!(!e.to_string().is_empty());
}

fn allocation_bound(body: &Bytes) -> usize {
    (HEADER_LEN + body.len()) * 13 + 64 * 1024
}

/// Runs both body decoders over one frame with every rule of the module header.
pub fn check_frame(h: &FrameHeader, body: Bytes, limits: &Limits) {
    let bound = allocation_bound(&body);
    let (bytes, req) = allocated_by(|| decode_request(h, body.clone(), limits));
    assert!(
        bytes <= bound,
        "request decode allocated {bytes} bytes (bound {bound})"
    );
    match req {
        Ok(req) => {
            let mut out = BytesMut::new();
            encode_request(h.correlation_id, &req, limits, &mut out)
                .unwrap_or_else(|e| panic!("decoded request {req:?} does not re-encode: {e}"));
            let again = one_frame(out, limits);
            let back = decode_request(&again.header, again.body, limits)
                .unwrap_or_else(|e| panic!("re-encoded request does not decode: {e}"));
            assert_eq!(back, req, "request changed through re-encoding");
        }
        Err(e) => check_body_error(&e),
    }

    let (bytes, resp) = allocated_by(|| decode_response(h, body.clone(), limits));
    assert!(
        bytes <= bound,
        "response decode allocated {bytes} bytes (bound {bound})"
    );
    match resp {
        Ok(resp) => {
            let mut out = BytesMut::new();
            match (&resp, h.known_opcode()) {
                (Response::Error(e), _) => {
                    encode_error(h.correlation_id, h.opcode, e, limits, &mut out)
                }
                (_, Some(op)) => encode_response(h.correlation_id, op, &resp, limits, &mut out),
                (_, None) => panic!(
                    "a non-error response decoded under unknown opcode {}",
                    h.opcode
                ),
            }
            .unwrap_or_else(|e| panic!("decoded response {resp:?} does not re-encode: {e}"));
            let again = one_frame(out, limits);
            let back = decode_response(&again.header, again.body, limits)
                .unwrap_or_else(|e| panic!("re-encoded response does not decode: {e}"));
            assert_eq!(back, resp, "response changed through re-encoding");
        }
        Err(e) => check_body_error(&e),
    }
}

fn one_frame(mut buf: BytesMut, limits: &Limits) -> Frame {
    let frame = FrameDecoder::new(limits)
        .decode(&mut buf)
        .unwrap_or_else(|e| panic!("encoder output does not frame: {e}"))
        .unwrap_or_else(|| panic!("encoder output is not a whole frame"));
    assert!(buf.is_empty(), "encoder wrote more than one frame");
    frame
}
