//! CPU cost of the write path (build + encrypt + append, no fsync) and of the read
//! path (read + CRC + decrypt), for batches of 100 records of 1 KiB.
//!
//! The log lives on tmpfs when `/dev/shm` exists, so the numbers are CPU, not disk.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use swarmmq_crypto::{KeyRing, MasterKey};
use swarmmq_storage::{
    BatchBuilder, EncodedBatch, FsyncPolicy, LogConfig, PartitionLog, RecordInput,
};
use swarmmq_types::MessageId;

const RECORDS: usize = 100;
const RECORD_BYTES: usize = 1024;

fn bench_dir() -> tempfile::TempDir {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("tempdir")
    } else {
        tempfile::tempdir().expect("tempdir")
    }
}

fn build(ring: &KeyRing, ids: &[MessageId], payload: &[u8]) -> EncodedBatch {
    let mut b = BatchBuilder::new(ring, 1, RECORDS * (RECORD_BYTES + 48)).expect("builder");
    for id in ids {
        b.push(RecordInput {
            timestamp_ms: 1_700_000_000_000,
            priority: 5,
            id: Some(id),
            key: None,
            headers: &[],
            deliver_at_ms: None,
            expires_at_ms: None,
            payload,
        })
        .expect("push");
    }
    b.finish()
}

fn config() -> LogConfig {
    LogConfig {
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    }
}

fn write_path(c: &mut Criterion) {
    let ring = KeyRing::single(MasterKey::generate().expect("rng"));
    let ids: Vec<MessageId> = (0..RECORDS).map(|_| MessageId::new_v7()).collect();
    let payload = vec![0x5a; RECORD_BYTES];
    let mut group = c.benchmark_group("log_write");
    group.throughput(Throughput::Bytes((RECORDS * RECORD_BYTES) as u64));
    group.bench_function("build_encrypt_100x1KiB", |b| {
        b.iter(|| black_box(build(&ring, &ids, &payload)));
    });
    let dir = bench_dir();
    let (mut log, _) = PartitionLog::open(dir.path(), config()).expect("open");
    group.bench_function("build_encrypt_append_100x1KiB", |b| {
        b.iter(|| {
            let mut batch = [build(&ring, &ids, &payload)];
            log.append(&mut batch, 1).expect("append");
            // Keep the tmpfs small: start over every 256 MiB.
            if log.size_bytes() > 256 << 20 {
                log.truncate_suffix(0).expect("truncate");
            }
        });
    });
    group.bench_function("append_only_100x1KiB", |b| {
        b.iter_batched(
            || [build(&ring, &ids, &payload)],
            |mut batch| {
                log.append(&mut batch, 1).expect("append");
                if log.size_bytes() > 256 << 20 {
                    log.truncate_suffix(0).expect("truncate");
                }
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn read_path(c: &mut Criterion) {
    let ring = KeyRing::single(MasterKey::generate().expect("rng"));
    let ids: Vec<MessageId> = (0..RECORDS).map(|_| MessageId::new_v7()).collect();
    let payload = vec![0x5a; RECORD_BYTES];
    let dir = bench_dir();
    let (mut log, _) = PartitionLog::open(dir.path(), config()).expect("open");
    for _ in 0..640 {
        log.append(&mut [build(&ring, &ids, &payload)], 1)
            .expect("append");
    }
    let reader = log.reader();
    let end = log.next_offset();
    let mut group = c.benchmark_group("log_read");
    group.throughput(Throughput::Bytes((RECORDS * RECORD_BYTES) as u64 * 10));
    // Each iteration reads ~1 MiB (10 batches) and decrypts every record.
    let mut next = 0;
    group.bench_function("read_decrypt_1000x1KiB", |b| {
        b.iter(|| {
            if next >= end {
                next = 0;
            }
            let res = reader
                .read(next, 10 * RECORDS * (RECORD_BYTES + 40), end)
                .expect("read");
            for batch in &res.batches {
                for r in batch.decrypt_records(&ring) {
                    black_box(r.expect("record").payload.len());
                }
            }
            next = res.next_offset().unwrap_or(0);
        });
    });
    group.finish();
}

criterion_group!(benches, write_path, read_path);
criterion_main!(benches);
