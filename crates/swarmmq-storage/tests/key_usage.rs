//! Key id usage of a partition log: counted from batch headers across segments, after
//! a key rotation, truncation, retention and reopening; sealed segments are not read
//! again.

mod common;

use std::os::unix::fs::FileExt;

use common::{batch, open, small_config};
use swarmmq_crypto::{KeyRing, MasterKey};
use swarmmq_storage::{IoMode, KeyIdUsage, KeyUsage, LogConfig, PartitionLog};

/// Appends `n` batches under the ring's active key; returns their total bytes.
fn append(log: &mut PartitionLog, ring: &KeyRing, n: u64) -> u64 {
    let mut bytes = 0;
    for i in 0..n {
        let next = log.next_offset();
        let mut b = [batch(
            ring,
            next,
            (i % 3 + 1) as u32,
            100,
            1_000 + next as i64,
        )];
        bytes += b[0].len() as u64;
        log.append(&mut b, 1).unwrap();
    }
    bytes
}

fn usage(id: u32, bytes: u64, batches: u64) -> (u32, KeyIdUsage) {
    (id, KeyIdUsage { bytes, batches })
}

fn listed(u: &KeyUsage) -> Vec<(u32, KeyIdUsage)> {
    u.iter().collect()
}

fn usage_follows_rotation_truncation_and_retention(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let mut ring = KeyRing::single(MasterKey::from_bytes([1u8; 32]));
    let mut log = open(dir.path(), small_config(mode));
    let reader = log.reader();
    assert!(reader.key_usage().unwrap().is_empty(), "empty log, no ids");

    let under_1 = append(&mut log, &ring, 60);
    assert!(log.segment_count() > 3, "spans several segments");
    assert_eq!(
        listed(&reader.key_usage().unwrap()),
        vec![usage(1, under_1, 60)]
    );

    ring.add(2, MasterKey::from_bytes([2u8; 32])).unwrap();
    ring.set_active(2).unwrap();
    let boundary = log.next_offset();
    let under_2 = append(&mut log, &ring, 12);
    let u = reader.key_usage().unwrap();
    assert_eq!(
        listed(&u),
        vec![usage(1, under_1, 60), usage(2, under_2, 12)]
    );
    assert_eq!(under_1 + under_2, log.size_bytes(), "every byte is counted");
    assert_eq!(u.get(3), KeyIdUsage::default());
    // Repeated calls give the same answer (served from the cache plus the new tail).
    assert_eq!(reader.key_usage().unwrap(), u);

    // Truncating back to the rotation point drops the key-2 batches.
    log.truncate_suffix(boundary).unwrap();
    assert_eq!(
        listed(&reader.key_usage().unwrap()),
        vec![usage(1, under_1, 60)]
    );
    let again_2 = append(&mut log, &ring, 2);
    assert_eq!(
        listed(&reader.key_usage().unwrap()),
        vec![usage(1, under_1, 60), usage(2, again_2, 2)]
    );

    // A reopened log (fresh cache) counts the same.
    drop(reader);
    log.close().unwrap();
    let log = open(dir.path(), small_config(mode));
    let reader = log.reader();
    assert_eq!(
        listed(&reader.key_usage().unwrap()),
        vec![usage(1, under_1, 60), usage(2, again_2, 2)]
    );

    // Retention removes the key-1 segments; only data decides what a key covers.
    let mut config = small_config(mode);
    config.retention_max_bytes = Some(1);
    drop(reader);
    log.close().unwrap();
    let mut log = open(dir.path(), config);
    log.enforce_retention(0).unwrap();
    let left = reader_usage(&log);
    assert!(left.get(1).bytes < under_1, "retention dropped key-1 bytes");
    assert_eq!(
        left.get(2),
        KeyIdUsage {
            bytes: again_2,
            batches: 2
        }
    );
    assert_eq!(
        left.iter().map(|(_, u)| u.bytes).sum::<u64>(),
        log.size_bytes()
    );
}

fn reader_usage(log: &PartitionLog) -> KeyUsage {
    log.reader().key_usage().unwrap()
}

/// Sealed segments are immutable, so their counts are cached: damage written into one
/// after the first scan is not seen by later calls of the same log (a fresh open
/// rescans and reports it).
fn sealed_segments_are_scanned_once(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let ring = KeyRing::single(MasterKey::from_bytes([1u8; 32]));
    let mut log = open(dir.path(), small_config(mode));
    let bytes = append(&mut log, &ring, 20);
    let reader = log.reader();
    let first = reader.key_usage().unwrap();
    assert_eq!(first.get(1).bytes, bytes);

    let first_segment = dir.path().join(format!("{:020}.log", 0));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&first_segment)
        .unwrap();
    // Overwrite the key id of the first batch (bytes 36..40) with id 9.
    f.write_all_at(&9u32.to_le_bytes(), 36).unwrap();
    f.sync_all().unwrap();

    let more = append(&mut log, &ring, 1);
    let second = reader.key_usage().unwrap();
    assert_eq!(
        second.get(1).bytes,
        bytes + more,
        "only the new batch was read"
    );
    assert_eq!(second.get(9), KeyIdUsage::default());

    // A fresh reader of a reopened log reads every header again and sees id 9.
    drop(reader);
    drop(log);
    let log = open(dir.path(), small_config(mode));
    let fresh = log.reader().key_usage().unwrap();
    assert_eq!(fresh.get(9).batches, 1);
}

/// Batches far larger than the scan window (whose bodies are skipped) mixed with small
/// ones are all counted exactly.
fn mixed_batch_sizes_are_counted_exactly(mode: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let ring = KeyRing::single(MasterKey::from_bytes([1u8; 32]));
    let config = LogConfig {
        segment_max_bytes: 2 << 20,
        ..small_config(mode)
    };
    let mut log = open(dir.path(), config);
    let mut batches = 0;
    for (i, len) in [
        150_000usize,
        100,
        100,
        700_000,
        90_000,
        100,
        64 * 1024,
        3000,
    ]
    .iter()
    .cycle()
    .take(40)
    .enumerate()
    {
        let next = log.next_offset();
        let n = if *len > 10_000 { 1 } else { (i % 5 + 1) as u32 };
        log.append(&mut [batch(&ring, next, n, *len, 1_000)], 1)
            .unwrap();
        batches += 1;
    }
    assert!(log.segment_count() > 2);
    let u = log.reader().key_usage().unwrap();
    assert_eq!(
        listed(&u),
        vec![usage(1, log.size_bytes(), batches)],
        "every batch and byte, whatever its size"
    );
}

fn merge_adds_per_id() {
    let mut a = KeyUsage::default();
    a.add(1, 100).unwrap();
    a.add(2, 50).unwrap();
    let mut b = KeyUsage::default();
    b.add(2, 25).unwrap();
    b.add(3, 10).unwrap();
    a.merge(&b).unwrap();
    assert_eq!(
        listed(&a),
        vec![usage(1, 100, 1), usage(2, 75, 2), usage(3, 10, 1)]
    );
    let mut many = KeyUsage::default();
    for id in 0..swarmmq_storage::MAX_KEY_IDS as u32 {
        many.add(id, 1).unwrap();
    }
    assert!(many.add(u32::MAX, 1).is_err(), "distinct ids are bounded");
    many.add(0, 1).unwrap();
}

#[test]
fn key_usage_merges_and_is_bounded() {
    merge_adds_per_id();
}

in_both_modes!(
    usage_follows_rotation_truncation_and_retention,
    sealed_segments_are_scanned_once,
    mixed_batch_sizes_are_counted_exactly
);
