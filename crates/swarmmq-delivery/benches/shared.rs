//! CPU cost of shared-mode delivery per message: observe the metadata of a 1,000-record
//! batch, poll it as one pull, ack each grant (what the node does per pull with
//! per-batch acks). Three shapes: one priority (the fast path), a different priority on
//! every record (worst case for ranges), and a TTL on every record. Divide the reported
//! time by 1,000 for ns per message.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use swarmmq_delivery::{RecordInfo, SharedPartition, SharedSettings};

const BATCH: u64 = 1_000;

fn settings() -> SharedSettings {
    SharedSettings {
        ack_timeout_ms: 30_000,
        max_leased: 100_000,
        max_tracked: 100_000,
        max_delayed: 1_000_000,
        max_delivery_attempts: 5,
        priority_aging_ms: 10_000,
    }
}

fn run(c: &mut Criterion, name: &str, shape: fn(u64, i64) -> RecordInfo) {
    let s = settings();
    let mut group = c.benchmark_group("shared");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function(name, |b| {
        let mut p = SharedPartition::new(0);
        let mut records: Vec<RecordInfo> = Vec::with_capacity(BATCH as usize);
        let mut now = 1_700_000_000_000i64;
        b.iter(|| {
            now += 1;
            let end = p.scan_position() + BATCH;
            let (from, n) = p.scan_request(end, &s).expect("room to scan");
            records.clear();
            records.extend((from..from + n).map(|o| shape(o, now)));
            p.observe(&records, now);
            let out = p.poll(now, BATCH, &s);
            for g in &out.grants {
                black_box(p.ack(g.start, g.end));
            }
            black_box(out);
        });
        assert_eq!(p.counts().tracked, 0, "everything was acked");
    });
    group.finish();
}

fn plain(offset: u64, now: i64) -> RecordInfo {
    RecordInfo {
        offset,
        priority: 5,
        timestamp_ms: now,
        deliver_at_ms: None,
        expires_at_ms: None,
    }
}

fn mixed_priority(offset: u64, now: i64) -> RecordInfo {
    RecordInfo {
        priority: (offset * 7 % 10) as u8 + 1,
        ..plain(offset, now)
    }
}

fn with_ttl(offset: u64, now: i64) -> RecordInfo {
    RecordInfo {
        expires_at_ms: Some(now + 60_000),
        ..plain(offset, now)
    }
}

fn benches(c: &mut Criterion) {
    run(c, "observe_poll_ack_1000_same_priority", plain);
    run(c, "observe_poll_ack_1000_mixed_priority", mixed_priority);
    run(c, "observe_poll_ack_1000_with_ttl", with_ttl);
}

criterion_group!(shared, benches);
criterion_main!(shared);
