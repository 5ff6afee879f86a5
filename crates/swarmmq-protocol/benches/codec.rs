//! Codec hot paths: a 100 x 1 KiB publish (encode, decode), a 100 x 1 KiB pull response
//! written with the incremental encoder, and header decoding.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use swarmmq_protocol::*;
use swarmmq_types::{Limits, MessageId};

const MESSAGES: usize = 100;
const PAYLOAD: usize = 1024;

fn publish_request() -> Request {
    let payload = Bytes::from(vec![0xab; PAYLOAD]);
    let messages = (0..MESSAGES)
        .map(|i| PublishMessage {
            id: Some(MessageId::Uuid([i as u8; 16])),
            key: Some(Bytes::from(format!("key-{i}"))),
            headers: vec![Header {
                name: "content-type".into(),
                value: Bytes::from_static(b"application/octet-stream"),
            }],
            priority: 5,
            deliver_at_ms: None,
            ttl_ms: None,
            payload: payload.clone(),
        })
        .collect();
    Request::Publish(PublishRequest {
        destination: "orders".into(),
        acks: Acks::All,
        partition: None,
        messages,
    })
}

fn publish(c: &mut Criterion) {
    let limits = Limits::DEFAULT;
    let req = publish_request();
    let mut out = BytesMut::new();
    encode_request(1, &req, &limits, &mut out).unwrap();
    let frame = FrameDecoder::new(&limits)
        .decode(&mut out)
        .unwrap()
        .unwrap();

    let mut g = c.benchmark_group("publish_100x1KiB");
    g.throughput(Throughput::Bytes((HEADER_LEN + frame.body.len()) as u64));
    g.bench_function("encode", |b| {
        let mut out = BytesMut::with_capacity(256 * 1024);
        b.iter(|| {
            out.clear();
            encode_request(1, black_box(&req), &limits, &mut out).unwrap();
            black_box(out.len())
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| decode_request(&frame.header, black_box(frame.body.clone()), &limits).unwrap())
    });
    g.bench_function("encode_frame_decode", |b| {
        let mut out = BytesMut::with_capacity(256 * 1024);
        let mut framer = FrameDecoder::new(&limits);
        b.iter(|| {
            encode_request(1, black_box(&req), &limits, &mut out).unwrap();
            let f = framer.decode(&mut out).unwrap().unwrap();
            // Drop the decoded request before the next encode so the buffer is reused.
            drop(decode_request(&f.header, f.body, &limits).unwrap());
            out.reserve(256 * 1024);
        })
    });
    g.finish();
}

fn pull(c: &mut Criterion) {
    let limits = Limits::DEFAULT;
    let payload = vec![0xcd; PAYLOAD];
    let ids: Vec<MessageId> = (0..MESSAGES)
        .map(|i| MessageId::Uuid([i as u8; 16]))
        .collect();
    let headers = [HeaderRef {
        name: "content-type",
        value: b"application/octet-stream",
    }];
    let msgs: Vec<DeliveredMessageRef<'_>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| DeliveredMessageRef {
            partition: 0,
            offset: i as u64,
            timestamp_ms: 1_700_000_000_000,
            priority: 5,
            delivery_attempt: 1,
            id: Some(id),
            key: Some(b"key"),
            headers: &headers,
            payload: &payload,
        })
        .collect();
    let frame_len: u64 = 20
        + msgs
            .iter()
            .map(DeliveredMessageRef::encoded_len)
            .sum::<u64>();

    let mut g = c.benchmark_group("pull_response_100x1KiB");
    g.throughput(Throughput::Bytes(frame_len));
    g.bench_function("incremental_encode", |b| {
        let mut out = BytesMut::with_capacity(256 * 1024);
        b.iter(|| {
            out.clear();
            let mut enc = PullResponseEncoder::begin(&mut out, 1, &limits);
            for m in &msgs {
                enc.push(black_box(m)).unwrap();
            }
            enc.finish().unwrap();
            black_box(out.len())
        })
    });
    g.finish();
}

fn header(c: &mut Criterion) {
    let limits = Limits::DEFAULT;
    let bytes = FrameHeader {
        version: VERSION,
        opcode: 1,
        flags: Flags::NONE,
        correlation_id: 42,
        body_len: 1000,
    }
    .to_bytes();
    c.bench_function("decode_header", |b| {
        b.iter(|| decode_header(black_box(&bytes), &limits).unwrap())
    });
}

criterion_group!(benches, publish, pull, header);
criterion_main!(benches);
