//! Helpers shared by the integration tests: a key ring, batches whose payloads say
//! which offset they were meant for, and a log opener with tiny segments.
#![allow(dead_code)]

use std::path::Path;

use swarmmq_crypto::{KeyRing, MasterKey};
use swarmmq_storage::{
    Batch, BatchBuilder, EncodedBatch, FsyncPolicy, IoMode, LogConfig, LogReader, PartitionLog,
    RecordHeaderRef, RecordInput,
};
use swarmmq_types::MessageId;

pub fn ring() -> KeyRing {
    KeyRing::single(MasterKey::from_bytes([42u8; 32]))
}

/// The payload of the record with the given tag.
pub fn payload(tag: u64, len: usize) -> Vec<u8> {
    let mut p = format!("payload-{tag:08}-").into_bytes();
    while p.len() < len {
        p.push(b'a' + (p.len() % 26) as u8);
    }
    p.truncate(len.max(18));
    p
}

/// A batch of `n` records tagged `first_tag..first_tag + n`, timestamps `ts0 + i`.
pub fn batch(ring: &KeyRing, first_tag: u64, n: u32, len: usize, ts0: i64) -> EncodedBatch {
    let mut b = BatchBuilder::new(ring, 7, n as usize * (len + 64)).unwrap();
    for i in 0..u64::from(n) {
        let p = payload(first_tag + i, len);
        let id = MessageId::Uuid([(first_tag + i) as u8; 16]);
        b.push(RecordInput {
            timestamp_ms: ts0 + i as i64,
            priority: 5,
            id: Some(&id),
            key: None,
            headers: &[RecordHeaderRef {
                name: "h",
                value: b"v",
            }],
            deliver_at_ms: None,
            expires_at_ms: None,
            payload: &p,
        })
        .unwrap();
    }
    b.finish()
}

pub fn small_config(io: IoMode) -> LogConfig {
    LogConfig {
        io,
        segment_max_bytes: 4096,
        index_interval_bytes: 512,
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    }
}

/// Appends `n` batches of 1..=4 records (100-byte payloads, tagged with their offsets,
/// timestamps now, so a reopened segment is not old enough to roll) one by one.
pub fn append_tagged(log: &mut PartitionLog, ring: &KeyRing, n: u64) {
    for i in 0..n {
        let next = log.next_offset();
        let now = swarmmq_types::now_ms();
        log.append(&mut [batch(ring, next, (i % 4 + 1) as u32, 100, now)], 1)
            .unwrap();
    }
}

pub fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config).unwrap().0
}

/// Every record from `from` to the end as (offset, payload), checking batch order.
pub fn read_all(reader: &LogReader, ring: &KeyRing, from: u64, upto: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = from;
    while next < upto {
        let res = reader.read(next, 3000, upto).unwrap();
        if res.is_empty() {
            break;
        }
        for b in &res.batches {
            out.extend(records(b, ring).into_iter().filter(|(o, _)| *o >= next));
        }
        next = res.next_offset().unwrap();
    }
    out
}

pub fn records(b: &Batch, ring: &KeyRing) -> Vec<(u64, Vec<u8>)> {
    b.decrypt_records(ring)
        .map(|r| {
            let r = r.unwrap();
            (r.meta.offset, r.payload.to_vec())
        })
        .collect()
}

/// Turns test functions taking an [`IoMode`] into `direct::name` and `buffered::name`
/// tests.
#[macro_export]
macro_rules! in_both_modes {
    ($($name:ident),* $(,)?) => {
        mod direct {
            $(#[test]
            fn $name() {
                super::$name(swarmmq_storage::IoMode::Direct)
            })*
        }
        mod buffered {
            $(#[test]
            fn $name() {
                super::$name(swarmmq_storage::IoMode::Buffered)
            })*
        }
    };
}
